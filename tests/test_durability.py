"""The store under real pressure: several processes writing at once, and a process killed mid-ingest."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys, pandas as pd
from sqlmodel import Session
from mlpe_core.store.db import get_engine
from mlpe_core.outcomes import record_validations
db, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
eng = get_engine(db)
for i in range(n):
    with Session(eng) as s:
        day = int(who[1:]) if who[1:].isdigit() else 0
        row = pd.DataFrame([{"leak_id": f"L{i % 5 + 1:06d}",
                             "visited_at": pd.Timestamp("2026-07-01", tz="UTC") + pd.Timedelta(days=day, minutes=i),
                             "outcome": "not_accessible", "measured_rate_kg_h": None,
                             "component": None, "repaired_at": pd.NaT, "crew": who, "notes": f"{who}-{i}"}])
        record_validations(s, row, user=who)
"""


def _canonical(n: int, seed: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "detection_id": [f"{prefix}-{i:07d}" for i in range(n)],
        "source_type": "satellite", "source_name": f"Sat{prefix}",
        "observed_at": pd.Timestamp("2026-06-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86400 * 90, n), unit="s"),
        "latitude": 32 + rng.normal(0, 0.1, n), "longitude": -102 + rng.normal(0, 0.1, n),
        "location_uncertainty_m": 30.0, "rate_kg_h": rng.lognormal(4, 1, n), "rate_uncertainty_kg_h": 20.0,
        "confidence": 0.7, "wind_speed_m_s": 3.0, "asset_id": "", "event_type": "",
    })


def _mlpe(*args: str, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpe_core.cli", "--db", str(db), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


@pytest.fixture
def leak_store(tmp_path: Path) -> Path:
    """A store with five leaks to attach validations to."""
    db = tmp_path / "store.db"
    f = tmp_path / "few.csv"
    d = _canonical(5, 0, "F")
    d["latitude"] = 32 + np.arange(5) * 0.1  # five far-apart places: five leaks
    d.to_csv(f, index=False)
    assert _mlpe("ingest", str(f), db=db).returncode == 0
    assert _mlpe("fuse", db=db).returncode == 0
    return db


def test_concurrent_writers_lose_nothing(leak_store: Path) -> None:
    """Four processes record 40 validations each at the same time: all 160 are there."""
    writers, per = 4, 40
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(leak_store), f"w{k}", str(per)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for k in range(writers)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-400:] for e in errs]
    con = sqlite3.connect(leak_store)
    n = con.execute("select count(*) from validation").fetchone()[0]
    by = dict(con.execute("select recorded_by, count(*) from validation group by recorded_by").fetchall())
    con.close()
    assert n == writers * per
    assert by == {f"w{k}": per for k in range(writers)}


def test_racing_writers_store_each_outcome_once(leak_store: Path) -> None:
    """Two processes record the very same 40 outcomes at once: 40 rows, not 80, and no failure."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(leak_store), "same", "40"], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-400:] for e in errs]
    con = sqlite3.connect(leak_store)
    assert con.execute("select count(*) from validation").fetchone()[0] == 40
    con.close()


def test_ingest_while_recording(leak_store: Path, tmp_path: Path) -> None:
    """An ingest and a validation writer at once: both complete in full."""
    big = tmp_path / "big.csv"
    _canonical(20_000, 1, "B").to_csv(big, index=False)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(leak_store), "field", "30"], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True)
    r = _mlpe("ingest", str(big), db=leak_store)
    writer.communicate(timeout=300)
    assert r.returncode == 0, r.stderr
    assert writer.returncode == 0
    con = sqlite3.connect(leak_store)
    assert con.execute("select count(*) from detection where source_name='SatB'").fetchone()[0] == 20_000
    assert con.execute("select count(*) from validation").fetchone()[0] == 30
    con.close()


@pytest.mark.slow
def test_killed_ingest_leaves_store_as_before(leak_store: Path, tmp_path: Path) -> None:
    """SIGKILL in the middle of a large ingest: the store holds exactly what it held before."""
    big = tmp_path / "huge.csv"
    _canonical(400_000, 2, "K").to_csv(big, index=False)
    con = sqlite3.connect(leak_store)
    before = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("detection", "ingestbatch", "leak")}
    con.close()
    proc = subprocess.Popen([sys.executable, "-m", "mlpe_core.cli", "--db", str(leak_store), "ingest", str(big)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wal = Path(str(leak_store) + "-wal")
    start_size = wal.stat().st_size if wal.exists() else 0
    deadline = time.time() + 120
    # kill once the ingest has started writing (the write-ahead log grows), before it can commit
    while time.time() < deadline and proc.poll() is None:
        if wal.exists() and wal.stat().st_size > start_size + 1_000_000:
            break
        time.sleep(0.02)
    killed_mid_write = proc.poll() is None
    if killed_mid_write:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    if not killed_mid_write:
        pytest.skip("the ingest finished before it could be killed mid-write on this machine")
    con = sqlite3.connect(leak_store)
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    after = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("detection", "ingestbatch", "leak")}
    con.close()
    assert after == before
    # and the same file loads in full afterwards
    r = _mlpe("ingest", str(big), db=leak_store)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(leak_store)
    assert con.execute("select count(*) from detection where source_name='SatK'").fetchone()[0] == 400_000
    con.close()
