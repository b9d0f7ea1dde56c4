"""The polled API (issue 22): pages of the effective ranking equal ``mlpe export leaks`` for the same filters, answers
are computed once per store version and tagged with it (ETag, 304), every kind of write changes the version, and
the answer cache stays bounded. Timings are in ``benchmarks/api.py``, not here."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from conftest_app import ROOT, copy_store
from fastapi.testclient import TestClient

from mlpe_core import desk
from mlpe_core.answers import AnswerCache
from mlpe_core.api import create_app
from mlpe_core.store.db import get_engine


@pytest.fixture
def db(filled_db, tmp_path) -> Path:
    """A fresh copy of the filled store for each test (tests write to it)."""
    return copy_store(filled_db, tmp_path / "mlpe.db")


@pytest.fixture
def engine(db):
    eng = get_engine(str(db))
    yield eng
    eng.dispose()


@pytest.fixture
def api(engine):
    with TestClient(create_app(engine=engine)) as c:
        yield c


def all_pages(api, params: dict, limit: int = 7) -> tuple[list[dict], int]:
    rows, offset, count = [], 0, None
    while offset is not None:
        r = api.get("/leaks", params={**params, "limit": limit, "offset": offset})
        assert r.status_code == 200, r.text
        body = r.json()
        assert count in (None, body["count"])  # the same total on every page
        count = body["count"]
        assert len(body["leaks"]) <= limit
        rows += body["leaks"]
        offset = body["next_offset"]
    return rows, count


FILTERS = [
    ({}, {"ranked_only": True}),
    ({"ranked": "false"}, {}),
    ({"band": ["HIGH", "MEDIUM"]}, {"bands": ["HIGH", "MEDIUM"], "ranked_only": True}),
    ({"status": "open", "min_rate_kg_h": 3}, {"statuses": ["open"], "min_rate_kg_h": 3, "ranked_only": True}),
    ({"source_type": ["satellite", "aerial"]}, {"source_types": ["satellite", "aerial"], "ranked_only": True}),
    ({"search": "0", "min_priority": 0.5}, {"search": "0", "min_priority": 0.5, "ranked_only": True}),
    ({"overdue": "false", "failed_repair": "false"}, {"overdue": False, "failed_repair": False, "ranked_only": True}),
]


@pytest.mark.parametrize(("params", "flt"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_pages_join_to_the_export_for_the_same_filters(api, engine, params, flt):
    rows, count = all_pages(api, params)
    with desk.open_session(engine) as s:
        exp = desk.export_leaks(s, desk.LeakFilter(**flt))
    assert count == len(exp) == len(rows)
    assert [r["leak_id"] for r in rows] == exp["leak_id"].tolist()
    assert [r["rank"] for r in rows] == [None if pd.isna(v) else int(v) for v in exp["rank"]]
    assert len(exp) > 0 or params  # the unfiltered list is not trivially empty


def test_filters_by_operator_and_time_window(api, engine):
    with desk.open_session(engine) as s:
        rk = desk.ranking(s, desk.LeakFilter(ranked_only=True))
        op = rk["operator"].dropna().value_counts().index[0]
        lo, hi = rk["last_seen"].min().date(), rk["first_seen"].max().date()
        mid = lo + (hi - lo) / 2
        want_op = desk.export_leaks(s, desk.LeakFilter(operators=[op], ranked_only=True))["leak_id"].tolist()
        want_win = desk.export_leaks(s, desk.LeakFilter(window=(mid, mid), ranked_only=True))["leak_id"].tolist()
        want_from = desk.export_leaks(s, desk.LeakFilter(window=(mid, pd.Timestamp.max.date()),
                                                         ranked_only=True))["leak_id"].tolist()
    assert 0 < len(want_op) < len(rk)
    assert [r["leak_id"] for r in all_pages(api, {"operator": op})[0]] == want_op
    assert [r["leak_id"] for r in all_pages(api, {"seen_from": str(mid), "seen_to": str(mid)})[0]] == want_win
    assert [r["leak_id"] for r in all_pages(api, {"seen_from": str(mid)})[0]] == want_from


def test_the_whole_list_equals_the_command_line_export(api, db, tmp_path):
    out = tmp_path / "leaks.csv"
    env = {**os.environ, "MLPE_DB": str(db)}
    r = subprocess.run([sys.executable, "-m", "mlpe_core.cli", "export", "leaks", "-o", str(out)], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with open(out, newline="", encoding="utf-8") as fh:
        cli = [(row["leak_id"], row["rank"]) for row in csv.DictReader(fh)]
    rows, _ = all_pages(api, {"ranked": "false"}, limit=500)
    assert [(x["leak_id"], "" if x["rank"] is None else str(x["rank"])) for x in rows] == cli


def test_sorted_pages_follow_the_column_with_ties_in_rank_order(api, engine):
    with desk.open_session(engine) as s:
        rk = desk.ranking(s, desk.LeakFilter(ranked_only=True))
    want = rk.sort_values("est_rate_kg_h", ascending=False, kind="stable", na_position="last")["leak_id"].tolist()
    assert [r["leak_id"] for r in all_pages(api, {"sort": "-est_rate_kg_h"}, limit=9)[0]] == want
    want = rk.sort_values("last_seen", kind="stable", na_position="last")["leak_id"].tolist()
    assert [r["leak_id"] for r in all_pages(api, {"sort": "last_seen"}, limit=9)[0]] == want


def test_the_last_page_and_past_the_end(api):
    first = api.get("/leaks", params={"limit": 5}).json()
    n = first["count"]
    assert first["next_offset"] == 5 and first["limit"] == 5 and first["sort"] == "rank"
    last = api.get("/leaks", params={"limit": 5, "offset": n - 2}).json()
    assert len(last["leaks"]) == 2 and last["next_offset"] is None
    past = api.get("/leaks", params={"limit": 5, "offset": n + 10}).json()
    assert past["leaks"] == [] and past["count"] == n and past["next_offset"] is None
    assert len(api.get("/leaks", params={"top": 3}).json()["leaks"]) == 3  # the older name still works


@pytest.mark.parametrize(("params", "named"), [
    ({"band": "PURPLE"}, "band"), ({"status": "lost"}, "status"), ({"source_type": "drone"}, "source_type"),
    ({"sort": "colour"}, "sort"), ({"sort": "-"}, "sort"), ({"limit": -1}, "limit"), ({"offset": -3}, "offset"),
    ({"limit": "many"}, "limit"), ({"seen_from": "last tuesday"}, "seen_from"),
    ({"seen_from": "2026-02-02", "seen_to": "2026-01-01"}, "seen_from"), ({"limit": 5, "top": 6}, "limit"),
    ({"min_rate_kg_h": -1}, "min_rate_kg_h"),
])
def test_bad_query_parameters_are_refused_naming_the_parameter(api, params, named):
    r = api.get("/leaks", params=params)
    assert r.status_code == 422, r.text
    assert named in r.json()["detail"], r.json()["detail"]


def test_etag_answers_304_until_a_write_then_the_new_answer(api, engine):
    first = api.get("/leaks", params={"limit": 10})
    tag = first.headers["etag"]
    assert tag.startswith('"') and "max-age=" in first.headers["cache-control"]
    again = api.get("/leaks", params={"limit": 10}, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert api.get("/leaks", headers={"If-None-Match": f'W/{tag}'}).status_code == 304
    assert api.get("/leaks", headers={"If-None-Match": f'"other", {tag}'}).status_code == 304
    assert api.get("/leaks", headers={"If-None-Match": '"other"'}).status_code == 200
    lid = first.json()["leaks"][5]["leak_id"]
    for path in ("/dispatch", f"/leaks/{lid}", "/dispatch?routed=true", "/obligations"):
        assert api.get(path).headers["etag"] == tag
        assert api.get(path, headers={"If-None-Match": tag}).status_code == 304
    # a supervisor moves the sixth leak to the top: every tag is stale and the answers say so
    r = api.post(f"/leaks/{lid}/override", json={"rank": 1, "reason": "blowdown reported"},
                 headers={"X-MLPE-User": "sup"})
    assert r.status_code == 200, r.text
    after = api.get("/leaks", params={"limit": 10}, headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag
    assert after.json()["leaks"][0]["leak_id"] == lid
    detail = api.get(f"/leaks/{lid}", headers={"If-None-Match": tag})
    assert detail.status_code == 200 and detail.json()["leak"]["rank"] == 1
    with desk.open_session(engine) as s:
        assert desk.export_leaks(s, desk.LeakFilter(ranked_only=True))["leak_id"].iloc[0] == lid


def test_a_304_reads_no_leaks(api, engine, monkeypatch):
    with desk.open_session(engine) as s:
        tag = desk.snapshot(s).etag
    desk.ANSWERS.clear()

    def refuse(*_a, **_k):
        raise AssertionError("a conditional request read the leaks")

    monkeypatch.setattr(desk, "ranking", refuse)
    monkeypatch.setattr(desk, "leak_detail", refuse)
    monkeypatch.setattr(desk, "export_dispatch", refuse)
    for path in ("/leaks?limit=50", "/dispatch", "/leaks/L000001"):
        assert api.get(path, headers={"If-None-Match": tag}).status_code == 304
    assert [q[2] for q in desk.ANSWERS.questions()] == [("api:open_mode",)]  # who may ask; nothing of the leaks


def test_answers_are_computed_once_per_version(api, monkeypatch):
    calls = []
    real = desk.ranking
    monkeypatch.setattr(desk, "ranking", lambda *a, **k: calls.append(1) or real(*a, **k))
    desk.ANSWERS.clear()
    for offset in (0, 10, 20, 0):
        assert api.get("/leaks", params={"limit": 10, "offset": offset}).status_code == 200
    lid = api.get("/leaks", params={"limit": 1}).json()["leaks"][0]["leak_id"]
    for _ in range(3):
        assert api.get("/dispatch").status_code == 200
        assert api.get(f"/leaks/{lid}").status_code == 200
    assert len(calls) == 1  # the pages, the list to visit next and the leak's detail share one ranking
    assert api.post(f"/leaks/{lid}/events", json={"event": "dispatch"}).status_code == 200
    assert api.get("/leaks", params={"limit": 10}).status_code == 200
    assert len(calls) == 2  # the new version: once more


def test_every_kind_of_write_changes_the_version(engine):
    """Overrides, marks, field outcomes, scores, plans (and their approval), notes, notices and work-order status
    each change the stamp the cached answers are keyed on, and the answer then reflects the write."""
    with desk.open_session(engine) as s:
        stamps = [desk.version(s)]

        def changed(what: str) -> None:
            v = desk.version(s)
            assert v != stamps[-1], f"{what} did not change the store version"
            stamps.append(v)

        snap = desk.snapshot(s)
        ids = snap.ranking().dropna(subset=["rank"])["leak_id"].tolist()
        desk.override_rank(s, "sup", ids[4], 1, "blowdown reported")
        changed("an override")
        assert desk.snapshot(s).ranking()["leak_id"].iloc[0] == ids[4]
        desk.mark_for_dispatch(s, "ana", ids[-1])
        changed("a mark for dispatch")
        assert bool(desk.snapshot(s).ranking().set_index("leak_id").at[ids[-1], "marked"])
        rows = pd.DataFrame([{"leak_id": ids[2], "visited_at": "2026-01-01T10:00:00Z", "outcome": "not_found"}])
        assert desk.record_outcomes(s, "lead", rows.astype(str))["recorded"] == 1
        changed("a field outcome")
        assert ids[2] not in set(desk.snapshot(s).dispatch(50)["leak_id"])
        desk.score(s, "system")
        changed("a scoring run")
        list_id = desk.plan_list(s, "sup", 5)
        changed("a planned list")
        assert desk.snapshot(s).plan()[0]["list_id"] == list_id
        desk.approve_list(s, "boss", list_id)
        changed("an approval")
        desk.add_note(s, "ana", ids[0], "valve checked")
        changed("a note")
        desk.set_work_order_status(s, "lead", "in_progress", leak_id=desk.list_stops(s, list_id)["leak_id"].iloc[0])
        changed("a work-order status")
        desk.add_notification(s, "ana", {"notification_id": "N-1", "received_at": "2026-01-02T00:00:00Z",
                                         "program": "state", "latitude": 32.0, "longitude": -102.0})
        changed("a notification")
    assert len(set(stamps)) == len(stamps)


def test_a_write_from_another_process_is_seen(api, db):
    tag = api.get("/leaks").headers["etag"]
    lid = api.get("/leaks", params={"limit": 3}).json()["leaks"][2]["leak_id"]
    env = {**os.environ, "MLPE_DB": str(db), "MLPE_USER": "cli-sup"}
    r = subprocess.run([sys.executable, "-m", "mlpe_core.cli", "leak", "override", lid, "--rank", "1", "--reason",
                        "operator call"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fresh = api.get("/leaks", params={"limit": 3}, headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.json()["leaks"][0]["leak_id"] == lid


# ----------------------------------------------------------------------------------- the cache itself


def test_the_cache_is_bounded_and_keeps_one_version_per_store():
    c = AnswerCache(max_entries=3)
    for q in range(5):
        assert c.get("a", (1,), q, lambda q=q: q * 10) == q * 10
    assert len(c) == 3 and ("a", (1,), 0) not in c and ("a", (1,), 4) in c
    c.get("b", (7,), "x", lambda: "b")  # another store: evicts the least recently used of "a"
    assert len(c) == 3 and ("b", (7,), "x") in c
    c.get("a", (2,), 0, lambda: "new")  # a new version of "a": its older answers go at once
    assert {k[:2] for k in c.questions()} == {("a", (2,)), ("b", (7,))}
    with pytest.raises(ZeroDivisionError):
        c.get("a", (2,), "bad", lambda: 1 / 0)
    assert ("a", (2,), "bad") not in c
    with pytest.raises(ValueError, match="max_entries"):
        AnswerCache(0)


def test_callers_asking_at_once_share_one_computation():
    c, calls, gate = AnswerCache(4), [], threading.Event()

    def slow():
        calls.append(1)
        gate.wait(5)
        return "answer"

    out: list = []
    threads = [threading.Thread(target=lambda: out.append(c.get("s", (1,), "q", slow))) for _ in range(6)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert out == ["answer"] * 6 and len(calls) == 1


def test_the_api_cache_stays_bounded(api, monkeypatch):
    small = AnswerCache(max_entries=5)
    monkeypatch.setattr(desk, "ANSWERS", small)
    ids = [r["leak_id"] for r in api.get("/leaks", params={"limit": 12}).json()["leaks"]]
    for lid in ids:
        assert api.get(f"/leaks/{lid}").status_code == 200
    for band in ("HIGH", "MEDIUM", "LOW"):
        assert api.get("/leaks", params={"band": band}).status_code == 200
    assert len(small) <= 5


def test_two_in_memory_stores_never_share_answers():
    a, b = get_engine("sqlite://"), get_engine("sqlite://")
    with desk.open_session(a) as sa, desk.open_session(b) as sb:
        assert desk.snapshot(sa).version == desk.snapshot(sb).version
        assert desk.store_key(sa) != desk.store_key(sb) and desk.snapshot(sa).etag != desk.snapshot(sb).etag
    a.dispose()
    b.dispose()


def test_with_tokens_a_poll_is_still_checked_every_time(engine, monkeypatch):
    from mlpe_core import auth, store

    with desk.open_session(engine) as s:
        auth.add_user(s, "admin", "admin", "admin", "a long enough password")
        token, rec = auth.create_token(s, "admin", "admin", label="poller")
        token_id = rec.id
        short, _ = auth.create_token(s, "admin", "admin", label="short", expires_days=1)
    with TestClient(create_app(engine=engine)) as api:
        ok = api.get("/leaks", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        tag = ok.headers["etag"]
        assert api.get("/leaks", headers={"If-None-Match": tag}).status_code == 401  # no 304 without a token
        assert api.get("/leaks", headers={"If-None-Match": tag, "Authorization": "Bearer mlpe_nope"}
                       ).status_code == 401
        assert api.get("/dispatch", headers={"Authorization": f"Bearer {short}"}).status_code == 200
        later = store.now() + pd.Timedelta(days=2)
        monkeypatch.setattr(store, "now", lambda: later)  # the short token expires; nothing was written
        assert api.get("/dispatch", headers={"Authorization": f"Bearer {short}"}).status_code == 401
        assert api.get("/dispatch", headers={"Authorization": f"Bearer {short}", "If-None-Match": tag}
                       ).status_code == 401  # a URL polled before: the short path checks expiry too
        assert api.get("/leaks", headers={"Authorization": f"Bearer {token}", "If-None-Match": tag}
                       ).status_code == 304
        monkeypatch.undo()
        assert api.delete(f"/tokens/{token_id}", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert api.get("/leaks", headers={"Authorization": f"Bearer {token}", "If-None-Match": tag}
                       ).status_code == 401  # revoked: refused at once


def test_a_repeated_poll_is_answered_before_routing(api, engine, monkeypatch):
    """A URL the full path answered, polled again with its ETag: 304 from the version stamp alone (no session, no
    snapshot); a new URL, a stale tag or a URL whose parameters never passed still go the full way."""
    first = api.get("/leaks", params={"limit": 5, "band": "HIGH"})
    tag = first.headers["etag"]
    lid = first.json()["leaks"][0]["leak_id"]
    assert api.get(f"/leaks/{lid}").status_code == 200

    def refuse(*_a, **_k):
        raise AssertionError("the full path ran")

    monkeypatch.setattr(desk, "snapshot", refuse)
    for path in ("/leaks?limit=5&band=HIGH", f"/leaks/{lid}"):
        r = api.get(path, headers={"If-None-Match": tag})
        assert r.status_code == 304 and r.content == b"", path
        assert r.headers["etag"] == tag and "max-age=" in r.headers["cache-control"]
    with pytest.raises(AssertionError, match="full path"):
        api.get("/leaks?limit=6&band=HIGH", headers={"If-None-Match": tag})  # never answered: not known valid
    with pytest.raises(AssertionError, match="full path"):
        api.get("/leaks?limit=5&band=HIGH", headers={"If-None-Match": '"other"'})  # a tag of another version
    with pytest.raises(AssertionError, match="full path"):
        api.get("/leaks?limit=5&band=HIGH")  # not a conditional request
    monkeypatch.undo()
    # parameters that never passed are refused however often they are polled
    for _ in range(2):
        assert api.get("/leaks?limit=-1", headers={"If-None-Match": tag}).status_code == 422
    # an asker the full path refuses is refused here too: a reserved name in open mode
    assert api.get("/leaks?limit=5&band=HIGH", headers={"If-None-Match": tag, "X-MLPE-User": "system"}
                   ).status_code == 403
    # after a write the old tag answers the new list
    assert api.post(f"/leaks/{lid}/override", json={"rank": 3, "reason": "gauge checked"},
                    headers={"X-MLPE-User": "sup"}).status_code == 200
    after = api.get("/leaks?limit=5&band=HIGH", headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag
