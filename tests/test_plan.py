"""The day's plan honours the law and the people (issue 15): an overdue OOOOb super-emitter investigation goes out
first whatever the leak's rank, a leak marked for dispatch and a supervisor's override go on the plan, and every
face reads the same plan."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlmodel import Session

from mlpe_core import desk, pipeline
from mlpe_core.store.db import get_engine

END = pd.Timestamp("2026-06-01T00:00:00Z")


@pytest.fixture(scope="module")
def planned():
    eng = get_engine("sqlite://")
    with Session(eng) as s:
        pipeline.run_demo(s, seed=2, n_assets=800, end=END.isoformat())
        rk = desk.ranking(s, desk.LeakFilter(ranked_only=True))
        ob = desk.obligations(s)
        owed = set(ob.loc[ob["state"].isin(["overdue", "due soon"]), "leak_id"].dropna())
        free = rk[~rk["leak_id"].isin(owed) & (rk["status"] == "open")]
        low = free.iloc[-1]  # the lowest-ranked open leak owes nothing yet
        dets = desk.detections(s, {low["leak_id"]})
        desk.add_notification(s, "epa-desk", {
            "notification_id": "EPA-TEST-0001", "received_at": (END - pd.Timedelta(days=9)).isoformat(),
            "program": "ooooB_super_emitter", "notifier": "EPA", "detection_ref": dets["detection_id"].iloc[0],
            "rate_kg_h": "250"})
        marked = free.iloc[-2]["leak_id"]
        desk.mark_for_dispatch(s, "ana", marked)
        moved = free.iloc[-3]["leak_id"]
        desk.override_rank(s, "sup", moved, 1, "operator reports a blowdown")
        meta, stops = desk.plan(s, day=END.date().isoformat())
        ob = desk.obligations(s)
        proposed = desk.dispatch_file(s)  # `mlpe export dispatch`, the Dispatch page's proposal downloads
        lid = desk.plan_list(s, "sup")  # the same day's list, stored as a draft
        stored = desk.dispatch_file(s, list_id=lid)  # `mlpe dispatch show ID -o FILE`, a stored list's downloads
        api = desk.list_stops(s, lid)  # GET /dispatch/lists/{id}
        yield {"low": low["leak_id"], "marked": marked, "moved": moved, "meta": meta, "stops": stops, "ob": ob,
               "proposed": proposed, "stored": stored, "api": api}
    eng.dispose()


def test_an_overdue_super_emitter_investigation_is_a_first_stop(planned):
    ob = planned["ob"]
    mine = ob[(ob["leak_id"] == planned["low"]) & (ob["action"] == "investigate")]
    assert len(mine) == 1 and mine["state"].iloc[0] == "overdue"
    assert "EPA-TEST-0001" in mine["started_text"].iloc[0]  # the clock names the notice that started it
    stop = planned["stops"].set_index("leak_id").loc[planned["low"]]
    assert stop["stop"] == 1, planned["stops"][["crew", "stop", "leak_id", "why_listed"]]
    assert stop["why_listed"].startswith("deadline overdue")


def test_the_marked_leak_and_the_override_go_on_the_plan(planned):
    stops = planned["stops"].set_index("leak_id")
    assert planned["marked"] in stops.index and stops.loc[planned["marked"], "why_listed"] == "marked for dispatch"
    assert planned["moved"] in stops.index
    assert planned["meta"]["status"] == "proposal" and planned["meta"]["plan_date"] == "2026-06-01"


def test_a_stored_list_writes_the_same_dispatch_file_as_the_proposal_it_was_planned_from(planned):
    """One dispatch file for every face: `dispatch show ID` left ``on_time`` blank for overdue stops (a stored list
    never had the column) where `export dispatch` wrote False."""
    from mlpe_core.export import to_csv_text

    proposed, stored = planned["proposed"], planned["stored"]
    assert list(stored.columns) == list(proposed.columns)
    assert sorted(stored["leak_id"]) == sorted(proposed["leak_id"])
    assert (proposed["on_time"] == False).any(), proposed[["leak_id", "due_by", "arrive_at", "on_time"]]  # noqa: E712
    only_stored = ["work_order_id", "wo_status"]  # a draft has work orders; a proposal has none yet
    a = proposed.drop(columns=only_stored).set_index("leak_id").sort_index()
    b = stored.drop(columns=only_stored).set_index("leak_id").sort_index()
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    csv_a = pd.read_csv(__import__("io").StringIO(to_csv_text(a.reset_index())), dtype=str, keep_default_na=False)
    csv_b = pd.read_csv(__import__("io").StringIO(to_csv_text(b.reset_index())), dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(csv_a, csv_b)  # the files' text too: False is False, blank is blank
    api = planned["api"].set_index("leak_id").sort_index()
    assert api["on_time"].astype(object).where(api["on_time"].notna(), None).tolist() == \
        b["on_time"].astype(object).where(b["on_time"].notna(), None).tolist()
