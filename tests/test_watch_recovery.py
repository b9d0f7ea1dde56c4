"""Killing the watcher mid-file loses nothing (issue 18): the next start finishes or redoes that file exactly once.

The real thing: `mlpe watch` in a subprocess, SIGKILLed while it loads a 200,000-row file (its ``watchedfile``
record says ``loading``), then started again. And the narrow window between the ingest's commit and the file's
move, driven through the desk, since a kill cannot be aimed at it reliably."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_helpers import wait_for
from sqlmodel import Session

from mlpe_core import desk
from mlpe_core.ingest import file_sha256

MLPE = shutil.which("mlpe") or str(Path(sys.prefix) / "bin" / "mlpe")


def _big_file(path: Path, n: int) -> None:
    rng = np.random.default_rng(5)
    site = rng.integers(0, 40, n)  # forty sources seen many times: a big file, a cheap fusion afterwards
    pd.DataFrame({"detection_id": [f"K{i:07d}" for i in range(n)], "source_type": "aerial", "source_name": "Air",
                  "observed_at": "2025-03-03T10:00:00Z",
                  "latitude": np.round(32 + site * 0.02 + rng.normal(0, 2e-5, n), 6),
                  "longitude": np.round(-102 + rng.normal(0, 2e-5, n), 6), "rate_kg_h": 5.0}).to_csv(path, index=False)


def _q(db: Path, sql: str, *args):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
        return c.execute(sql, args).fetchall()


@pytest.mark.slow
def test_kill_9_mid_file_then_restart_loads_it_exactly_once(tmp_path):
    if not Path(MLPE).exists():
        pytest.skip("needs the `mlpe` console script")
    db, inbox = tmp_path / "mlpe.db", tmp_path / "inbox"
    inbox.mkdir()
    env = {**os.environ, "MLPE_DB": str(db)}
    desk.engine(str(db)).dispose()  # the store exists, migrated (`mlpe status` no longer creates one)
    n = 200_000
    staged = tmp_path / "big.csv"
    _big_file(staged, n)
    sha = file_sha256(staged)
    os.replace(staged, inbox / "big.csv")
    w = subprocess.Popen([MLPE, "watch", str(inbox), "--settle", "0.2", "--interval", "0.1"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _q(db, "select 1 from watchedfile where state = 'loading'"), 120, 0.02,
                 what="the watcher to start loading the file")
        time.sleep(0.5)  # inside the read, checks or insert of the file's one transaction
        w.send_signal(signal.SIGKILL)
        w.wait(30)
    finally:
        if w.poll() is None:
            w.kill()
    committed = _q(db, "select count(*) from ingestbatch where sha256 = ?", sha)[0][0]
    assert (inbox / "big.csv").exists()  # never moved: the kill came before the end of the file's handling
    assert _q(db, "select state from watchedfile where sha256 = ?", sha) == [("loading",)]
    r = subprocess.run([MLPE, "watch", str(inbox), "--once", "--settle", "0.2"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "recovered big.csv" in r.stdout
    assert _q(db, "select count(*) from detection")[0][0] == n
    assert _q(db, "select count(distinct detection_id) from detection")[0][0] == n
    assert _q(db, "select count(*) from ingestbatch where sha256 = ?", sha)[0][0] == 1
    assert _q(db, "select state from watchedfile where sha256 = ?", sha) == [("loaded",)]
    assert (inbox / "done" / "big.csv").exists() and not (inbox / "big.csv").exists()
    said = next(line for line in r.stdout.splitlines() if "recovered" in line)
    print(f"\nkilled {'after' if committed else 'before'} the ingest commit; restart: {said}")


def test_committed_but_not_moved_is_finished_without_a_second_load(tmp_path):
    """The kill falls after the ingest committed and before the file left the folder: the restart only files it."""
    db, inbox = tmp_path / "m.db", tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "f.csv").write_text("detection_id,source_type,source_name,observed_at,latitude,longitude\n"
                                 "a,aerial,Air,2025-03-03T10:00:00Z,32.0,-102.0\n", encoding="utf-8")
    eng = desk.engine(str(db))
    with Session(eng) as s:
        opts = desk.watch_options().watch
        ib = desk.open_inbox(inbox, opts)
        sha = file_sha256(inbox / "f.csv")
        from mlpe_core import store

        store.connectors.mark_file(s, str(ib.folder), "f.csv", sha, 10, "loading", attempt=True)
        s.commit()
        desk.ingest(s, "ana", [inbox / "f.csv"])  # committed; then "killed" before watch_file could move it
        said = desk.recover_watched(s, ib)
        assert said == ["f.csv: its rows were committed before the stop; finished"]
        assert (inbox / "done" / "f.csv").exists()
        assert store.connectors.watched_file(s, sha).state == "loaded"
        assert store.counts(s)["batches"] == 1 and store.counts(s)["detections"] == 1
    eng.dispose()
