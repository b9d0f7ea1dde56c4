"""Finding 1 and the audit chain of issue 16 under concurrent writers.

* A full fusion that another user's ingest-and-fuse overtakes must not retire the leaks that fusion made:
  before the fix the detections it fused pointed at inactive leaks, the next incremental fusion said
  "nothing new" and ``score`` left them out. The race is reproduced with two threads, each with its own
  engine on one file store (and on PostgreSQL when it is reachable), the overtaking fusion committing
  between the full fusion's reads and its write.
* Two processes appending audit events at once must not fork the hash chain.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PG_URL, offset
from sqlalchemy import create_engine, text
from sqlmodel import Session

from mlpe_core import store
from mlpe_core.ingest import ingest_file
from mlpe_core.pipeline import run_fuse, run_score
from mlpe_core.store.audit import verify_all
from mlpe_core.store.db import get_engine

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """A store two engines can share: a SQLite file, or the PostgreSQL test database (emptied first)."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    if not PG_URL:
        pytest.skip("no PostgreSQL: set MLPE_TEST_POSTGRES_URL (.ci/run does when it can start a server)")
    raw = create_engine(PG_URL)
    try:
        with raw.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL at MLPE_TEST_POSTGRES_URL not reachable: {exc}")
    finally:
        raw.dispose()
    return PG_URL


def _sites(path: Path, prefix: str, centres: list[tuple[float, float]], day: int) -> Path:
    """Three aerial sightings around each centre (metres from the test origin), a few metres apart."""
    rows = []
    for k, (dx, dy) in enumerate(centres):
        for j in range(3):
            lat, lon = offset(dx + 3 * j, dy)
            rows.append({"detection_id": f"{prefix}{k}-{j}", "source_type": "aerial", "source_name": "Air",
                         "observed_at": f"2025-03-{day + j:02d}T10:00:00Z", "latitude": lat, "longitude": lon,
                         "location_uncertainty_m": 5, "rate_kg_h": 20 + k})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _orphans(s: Session) -> pd.DataFrame:
    """Detections whose leak is missing or inactive."""
    dets = store.detections_frame(s)
    active = set(store.leaks_frame(s)["leak_id"])
    return dets[~dets["leak_id"].isin(active)]


def test_full_fusion_overtaken_by_another_fusion_loses_no_leak(url, tmp_path) -> None:
    eng_a, eng_b = get_engine(url), get_engine(url)
    first = _sites(tmp_path / "a.csv", "a", [(0, 0), (2000, 0), (4000, 0)], day=1)
    later = _sites(tmp_path / "b.csv", "b", [(9000, 9000), (12000, 9000)], day=5)
    with Session(eng_a) as s:
        ingest_file(s, first, user="ana")
        run_fuse(s, user="ana")
    a_read, b_done, errors = threading.Event(), threading.Event(), []

    def full_fusion() -> None:
        def hold(frac: float, _text: str) -> None:
            if frac >= 0.6 and not a_read.is_set():  # computed from what it read; not written yet
                a_read.set()
                b_done.wait(120)

        try:
            with Session(eng_a) as s:
                run_fuse(s, user="ana", full=True, progress=hold)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            a_read.set()

    def ingest_and_fuse() -> None:
        try:
            a_read.wait(120)
            with Session(eng_b) as s:
                ingest_file(s, later, user="ben")
                assert run_fuse(s, user="ben")["new"] == 2
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            b_done.set()

    threads = [threading.Thread(target=full_fusion), threading.Thread(target=ingest_and_fuse)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    with Session(eng_a) as s:
        assert _orphans(s).empty, "detections point at leaks a concurrent fusion retired"
        assert len(store.leaks_frame(s)) == 5
        again = run_fuse(s, user="ana")
        assert again["mode"] == "incremental" and again["refused"] == 0
        assert run_score(s, user="ana")["ranked"] == 5  # every leak is scored and ranked
        assert store.fusion_generation(s) == 4  # three fusions wrote (the full one twice tried, once written)
    eng_a.dispose()
    eng_b.dispose()


def test_scores_computed_before_a_fusion_are_not_written_after_it(url, tmp_path) -> None:
    """A scoring that a fusion overtakes scores again: no rank on a retired leak, none missing on a new one."""
    eng_a, eng_b = get_engine(url), get_engine(url)
    with Session(eng_a) as s:
        ingest_file(s, _sites(tmp_path / "a.csv", "a", [(0, 0), (3000, 0)], day=1), user="ana")
        run_fuse(s, user="ana")
    later = _sites(tmp_path / "b.csv", "b", [(9000, 9000)], day=5)
    fused = []

    def fuse_meanwhile(frac: float, _text: str) -> None:
        if frac >= 0.8 and not fused:
            with Session(eng_b) as s:
                ingest_file(s, later, user="ben")
                fused.append(run_fuse(s, user="ben"))

    with Session(eng_a) as s:
        r = run_score(s, user="ana", progress=fuse_meanwhile)
        lk = store.leaks_frame(s, active_only=False)
    assert fused and r["ranked"] == 3
    assert lk.loc[lk["active"], "rank"].notna().all() and lk.loc[~lk["active"], "rank"].isna().all()
    eng_a.dispose()
    eng_b.dispose()


APPENDER = r"""
import sys
from sqlmodel import Session
from mlpe_core import store
from mlpe_core.store.db import get_engine
db, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
eng = get_engine(db)
for i in range(n):
    with Session(eng) as s:
        store.audit(s, who, "note", f"L{i:06d}", {"i": i})
        if i % 3 == 0:
            store.audit(s, who, "note", f"L{i:06d}", {"i": i, "second": True})
        s.commit()
"""


def test_two_processes_appending_at_once_keep_one_chain(url) -> None:
    get_engine(url).dispose()  # migrate once, before the writers start
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, url, who, "60"], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True) for who in ("p1", "p2")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-600:]
    eng = get_engine(url)
    with Session(eng) as s:
        reports = verify_all(s)
        ev = store.audit_events(s)
    eng.dispose()
    assert reports[0].ok and reports[0].n == 160, reports[0].line()
    assert sorted(ev["actor"].value_counts().to_dict().items()) == [("p1", 80), ("p2", 80)]
    assert np.all(np.diff(ev["id"].to_numpy()) < 0)


def test_two_rankings_written_at_once_leave_the_later_one(url) -> None:
    """Two re-rankings of the same leaks in overlapping transactions (each deletes every rank and writes its own):
    the second waits for the first and its ranks stand, with no duplicate-key failure and no rank of the first
    left over."""
    get_engine(url).dispose()
    ids = [f"L{i:06d}" for i in range(1, 7)]
    first = {k: i + 1 for i, k in enumerate(ids)}
    second = {k: len(ids) - i for i, k in enumerate(ids[1:])}  # L000001 no longer ranked
    one, two = get_engine(url), get_engine(url)
    errors: list[BaseException] = []
    with Session(one) as s1:
        store.save_ranks(s1, first, complete=True)  # holds its write until committed below

        def later() -> None:
            try:
                with Session(two) as s2:
                    store.save_ranks(s2, second, complete=True)
                    s2.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        t = threading.Thread(target=later)
        t.start()
        t.join(1.0)  # the later writer is waiting on the first one's lock
        s1.commit()
    t.join(60)
    assert not t.is_alive() and not errors, errors
    with Session(one) as s:
        got = {k: store.rank_of(s, k) for k in ids}
    one.dispose()
    two.dispose()
    assert got == {"L000001": None, **second}
