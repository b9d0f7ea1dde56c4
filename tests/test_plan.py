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
        yield {"low": low["leak_id"], "marked": marked, "moved": moved, "meta": meta, "stops": stops, "ob": ob}
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
