"""The folder inbox (issue 18): a file is read only once it has settled, temporary names wait, and each handled
file leaves the folder for done/ or rejects/ (never over another file), with its reasons beside it. Then the desk's
handling of one file: loaded once, a copy recognised by its hash, a file of only bad rows refused with the rows."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlmodel import Session

from mlpe_core import desk, store
from mlpe_core.connectors import Inbox

HEADER = "detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h\n"


def test_a_file_is_ready_only_after_it_settles(tmp_path):
    ib = Inbox(tmp_path, settle_s=1.0, ignore=["*.part", ".*"])
    f = tmp_path / "a.csv"
    f.write_text("x")
    assert ib.ready(now=0.0) == []  # first sight
    assert ib.ready(now=0.5) == []  # not settled yet
    f.write_text("xy")  # still growing: the clock starts again
    os.utime(f, ns=(1, 10**9))
    assert ib.ready(now=0.9) == []
    assert ib.ready(now=1.5) == []
    assert ib.ready(now=2.0) == [f]
    (tmp_path / "b.csv.part").write_text("half")
    (tmp_path / ".hidden").write_text("x")
    assert [p.name for p in ib.candidates()] == ["a.csv"]
    f.unlink()
    ib.ready(now=3.0)
    assert ib.waiting() == []  # a file that left is forgotten: memory does not grow


def test_moves_never_overwrite_and_write_reasons(tmp_path):
    ib = Inbox(tmp_path, settle_s=0)
    for _ in range(2):
        (tmp_path / "x.csv").write_text("1")
        ib.move(tmp_path / "x.csv", "rejects", "row 2: bad")
    assert sorted(p.name for p in (tmp_path / "rejects").iterdir()) == ["x.1.csv", "x.1.csv.reasons.txt", "x.csv",
                                                                        "x.csv.reasons.txt"]
    with pytest.raises(ValueError, match="not a folder"):
        Inbox(tmp_path / "missing")


@pytest.fixture
def world(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    eng = desk.engine(str(tmp_path / "m.db"))
    with Session(eng) as s:
        opts = desk.watch_options().watch
        yield s, desk.open_inbox(inbox, opts), opts, inbox
    eng.dispose()


def test_one_file_loads_once_and_its_copy_is_recognised(world):
    s, ib, opts, inbox = world
    body = HEADER + "a,aerial,Air,2025-03-03T10:00:00Z,32.0,-102.0,5\nb,aerial,Air,2025-03-03T10:00:00Z,32.1,-102.0,x\n"
    (inbox / "one.csv").write_text(body)
    r = desk.watch_file(s, "ana", ib, inbox / "one.csv", opts)
    assert (r["state"], r["accepted"], r["rejected"]) == ("loaded", 1, 1)
    reasons = (inbox / "done" / "one.csv.reasons.txt").read_text()
    assert "row 3, column 'rate_kg_h'" in reasons
    (inbox / "copy.csv").write_text(body)
    r = desk.watch_file(s, "ana", ib, inbox / "copy.csv", opts)
    assert r["state"] == "duplicate" and store.counts(s)["detections"] == 1
    assert "same bytes as 'one.csv'" in (inbox / "done" / "copy.csv.reasons.txt").read_text()
    files = desk.watched_files(s)
    assert dict(zip(files["name"], files["state"], strict=True)) == {"copy.csv": "duplicate"}  # one row per hash
    runs = desk.runs(s, kind="ingest")
    assert runs["source"].tolist() == ["watch"] and runs["target"].tolist() == ["one.csv"]
    # the run's configuration names the store it used (the Runs page said $MLPE_DB's default, data/mlpe.db)
    cfg = desk.run_config(s, runs["config_hash"].iloc[0])
    assert cfg["settings"]["db"] == str(inbox.parent / "m.db")


def test_a_file_of_only_bad_rows_goes_to_rejects_with_each_row(world):
    s, ib, opts, inbox = world
    (inbox / "bad.csv").write_text(HEADER + "a,aerial,Air,not a time,32.0,-102.0,5\n")
    r = desk.watch_file(s, "ana", ib, inbox / "bad.csv", opts)
    assert r["state"] == "rejected" and (inbox / "rejects" / "bad.csv").exists()
    assert "row 2, column 'observed_at'" in (inbox / "rejects" / "bad.csv.reasons.txt").read_text()


def test_a_failure_that_is_not_the_files_fault_is_retried_then_rejected(world, monkeypatch):
    s, ib, opts, inbox = world
    (inbox / "f.csv").write_text(HEADER + "a,aerial,Air,2025-03-03T10:00:00Z,32.0,-102.0,5\n")
    import mlpe_core.ingest as ing

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ing, "load_prepared", boom)
    for attempt in range(1, opts.retries + 1):
        r = desk.watch_file(s, "ana", ib, inbox / "f.csv", opts)
        if attempt < opts.retries:
            assert r["state"] == "error" and (inbox / "f.csv").exists()
    assert r["state"] == "rejected" and "failed 3 times" in (inbox / "rejects" / "f.csv.reasons.txt").read_text()


def test_a_steady_feed_does_not_put_off_the_full_alert_check(tmp_path, monkeypatch):
    """A cycle checks only the alerts new detections set off; the timer for every rule keeps running, so files
    arriving more often than ``alerts_every_s`` cannot postpone deadline alerts for ever."""
    from mlpe_core.daemon import Watcher

    (tmp_path / "in").mkdir()
    w = Watcher(str(tmp_path / "m.db"), tmp_path / "in", "system", settle_s=0.0, alerts_every_s=900.0,
                say=lambda _m: None)
    (tmp_path / "in" / "a.csv").write_text(
        "detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h\n"
        "d1,aerial,Air,2026-01-05T10:00:00Z,32.0,-102.0,20.0\n")
    checked = []
    monkeypatch.setattr(desk, "check_alerts", lambda s, u, **k: checked.append(k.get("kinds")) or
                        {"found": 0, "new": 0, "ids": []})
    w._last_alerts = 123.0
    assert w.cycle() is not None
    assert checked == [desk.CYCLE_ALERT_KINDS] and w._last_alerts == 123.0  # the timer was not reset
    w.engine.dispose()


def test_the_full_alert_check_runs_beside_the_cycles(tmp_path, monkeypatch):
    """The timer's check of every rule runs in its own thread: a file landing while it runs is loaded at once, no
    second check starts meanwhile, and its new alerts are said (and delivered by the loop, not by the check)."""
    from mlpe_core.daemon import Watcher

    (tmp_path / "in").mkdir()
    said: list[str] = []
    w = Watcher(str(tmp_path / "m.db"), tmp_path / "in", "system", settle_s=0.0, alerts_every_s=0.0,
                say=said.append)
    started, release = threading.Event(), threading.Event()
    full: list[dict] = []

    def check(s, u, **k):
        if k.get("kinds") is not None:  # a cycle's own check of what new detections set off
            return {"found": 0, "new": 0, "ids": []}
        full.append(k)
        started.set()
        release.wait(20)
        return {"found": 2, "new": 2, "ids": [1, 2]}

    monkeypatch.setattr(desk, "check_alerts", check)
    t0 = time.monotonic()
    assert w.cycle() is None and started.wait(10)
    assert time.monotonic() - t0 < 5  # the cycle did not wait for the check
    (tmp_path / "in" / "a.csv").write_text(
        "detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h\n"
        "d1,aerial,Air,2026-01-05T10:00:00Z,32.0,-102.0,20.0\n")
    r = w.cycle()
    assert r is not None and [f["state"] for f in r["files"]] == ["loaded"]
    assert w.cycle() is None and len(full) == 1  # the timer is due again, but one check at a time
    release.set()
    w._check.join(10)
    assert full == [{"deliver": False}] and "watch: 2 new alert(s)" in said
    w.engine.dispose()
