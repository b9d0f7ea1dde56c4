"""Lifecycle: legal moves go through, illegal ones are refused with a reason, visits recorded in bulk
are checked row by row, and a leak seen again after repair re-opens flagged as a possible failed repair."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlmodel import select

from mlpe_core import desk
from mlpe_core import lifecycle as lc
from mlpe_core.desk import export_frame
from mlpe_core.ingest.tables import validate_validations
from mlpe_core.lifecycle import LeakState, TransitionError, next_status, set_status, transition
from mlpe_core.outcomes import import_validations, record_validations
from mlpe_core.pipeline import run_lifecycle
from mlpe_core.store import leaks_frame
from mlpe_core.store.models import Detection, Leak, LeakEvent, LeakRank, Validation

T = pd.Timestamp("2025-03-03T10:00:00Z")
VAL_HEADER = "leak_id,visited_at,outcome,measured_rate_kg_h,component,repaired_at,crew,notes"


def at(days: float) -> pd.Timestamp:
    return T + pd.Timedelta(days=days)


def utc(v) -> pd.Timestamp:
    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


# --------------------------------------------------------------------------------------------- the state machine


def run(events, status="open"):
    st = LeakState("L1", status)
    for e in events:
        ev, outcome = (e, None) if isinstance(e, str) else e
        st = transition(st, ev, T, outcome)
    return st


def test_the_whole_path_from_open_to_closed():
    st = run(["dispatch", ("visit", "confirmed"), "repair_attempt", "repair", "close"])
    assert st.status == "closed"
    assert [(e["from_status"], e["to_status"]) for e in st.events] == [
        ("open", "dispatched"), ("dispatched", "confirmed"), ("confirmed", "repair_attempted"),
        ("repair_attempted", "repaired"), ("repaired", "closed")]
    assert st.repaired_at == T and st.repair_attempted_at == T and not st.failed_repair


@pytest.mark.parametrize(("outcome", "status"), [("confirmed", "confirmed"), ("not_found", "not_found"),
                                                 ("already_repaired", "repaired"), ("not_accessible", "no_access")])
def test_each_visit_outcome_has_its_status(outcome, status):
    assert run(["dispatch", ("visit", outcome)]).status == status


@pytest.mark.parametrize(("status", "event", "outcome", "says"), [
    ("confirmed", "visit", "not_found", "record its repair"),
    ("not_found", "repair", None, "not found cannot be repaired"),
    ("no_access", "repair_attempt", None, "could not reach it"),
    ("open", "repair", None, "only a leak a crew has confirmed"),
    ("confirmed", "close", None, "closed only after its repair"),
    ("repair_attempted", "close", None, "closed only after its repair"),
    ("open", "close", None, "only a repaired or not-found leak"),
    ("closed", "visit", "confirmed", "re-opens when new detections"),
    ("confirmed", "dispatch", None, "needs a repair"),
    ("repaired", "repair", None, "already repaired"),
    ("open", "reopen", None, "only a repaired, closed or not-found"),
    ("open", "release", None, "only a dispatched leak"),
])
def test_illegal_moves_are_refused_with_the_reason(status, event, outcome, says):
    with pytest.raises(TransitionError) as err:
        next_status(LeakState("L7", status), event, outcome)
    msg = str(err.value)
    assert says in msg and "L7" in msg and status in msg
    assert err.value.status == status and err.value.event == event


def test_a_check_after_a_repair_attempt_that_finds_nothing_means_repaired():
    assert run([("visit", "confirmed"), "repair_attempt", ("visit", "not_found")]).status == "repaired"


def test_confirmed_again_after_repair_is_a_failed_repair():
    st = run([("visit", "confirmed"), "repair", ("visit", "confirmed")])
    assert st.status == "confirmed" and st.failed_repair and st.repair_attempted_at is None
    assert run([("visit", "confirmed"), "repair", ("visit", "not_found")]).status == "repaired"


def test_reopen_flags_a_failed_repair_only_after_a_repair():
    st = run([("visit", "confirmed"), "repair", "close", "reopen"])
    assert (st.status, st.failed_repair, st.repaired_at) == ("open", True, None)
    assert st.events[-1]["detail"]["repaired_at"] == T.isoformat()
    st = run([("visit", "not_found"), "close", "reopen"])
    assert (st.status, st.failed_repair) == ("open", False)


def test_transition_does_not_change_its_input():
    st = LeakState("L1", "open")
    transition(st, "dispatch", T)
    assert st.status == "open" and st.events == []


def test_allowed_events():
    assert lc.allowed_events("open") == ["dispatch", "visit"]
    assert lc.allowed_events("repaired") == ["visit", "close", "reopen"]
    assert lc.allowed_events("closed") == ["reopen"]
    assert set(lc.allowed_events("confirmed")) == {"visit", "repair_attempt", "repair", "delay_of_repair"}


# --------------------------------------------------------------------------------------------- in the store


@pytest.fixture
def leaks(session):
    for i in range(1, 6):
        session.add(Leak(leak_id=f"L{i:06d}", latitude=32.0 + i / 100, longitude=-102.0, radius_m=5.0,
                         n_detections=1, n_sources=1, source_types="aerial", first_seen=T.to_pydatetime(),
                         last_seen=T.to_pydatetime()))
        session.add(LeakRank(leak_id=f"L{i:06d}", rank=i))
    session.commit()
    return session


def _status(session) -> dict[str, str]:
    session.expire_all()
    return dict(zip(*[leaks_frame(session)[c] for c in ("leak_id", "status")], strict=True))


def test_bulk_import_rejects_illegal_moves_row_by_row(leaks, write):
    first = (f"{VAL_HEADER}\nL000001,2025-03-04T10:00:00Z,confirmed,4,valve,,crew-1,\n"
             "L000002,2025-03-04T11:00:00Z,not_found,,,,crew-1,\n")
    assert import_validations(leaks, write("v1.csv", first))["recorded"] == 2
    text = (f"{VAL_HEADER}\n"
            "L000001,2025-03-06T10:00:00Z,not_found,,,,crew-2,\n"            # confirmed leak: refused
            "L000002,2025-03-06T10:00:00Z,not_found,,,2025-03-06T12:00:00Z,crew-2,\n"  # repair of a leak not found
            "L000003,2025-03-06T10:00:00Z,not_accessible,,,,crew-2,gate\n"   # fine
            "L000004,2025-03-06T10:00:00Z,confirmed,,,2025-03-01T12:00:00Z,crew-2,\n"  # repaired before it was found
            "L000005,2025-03-06T10:00:00Z,confirmed,,,,crew-2,\n")           # fine
    r = import_validations(leaks, write("v2.csv", text), user="lead")
    assert r["rejects"][["row", "column"]].values.tolist() == [[2, "outcome"], [3, "repaired_at"],
                                                               [5, "repaired_at"]]
    assert "record its repair" in r["rejects"]["reason"].iloc[0]
    assert "not found cannot be repaired" in r["rejects"]["reason"].iloc[1]
    assert "before visited_at" in r["rejects"]["reason"].iloc[2]
    assert (r["rows"], r["recorded"], r["rejected"]) == (5, 2, 3)
    assert _status(leaks) == {"L000001": "confirmed", "L000002": "not_found", "L000003": "no_access",
                              "L000004": "open", "L000005": "confirmed"}
    assert len(leaks.exec(select(Validation)).all()) == 4


def test_rows_for_one_leak_apply_in_visit_time_order(leaks, write):
    text = (f"{VAL_HEADER}\n"
            "L000001,2025-03-10T10:00:00Z,confirmed,,,2025-03-10T12:00:00Z,crew-1,fixed\n"
            "L000001,2025-03-04T10:00:00Z,confirmed,5,valve,,crew-1,found\n")
    r = import_validations(leaks, write("v.csv", text))
    assert (r["recorded"], r["rejected"]) == (2, 0)
    leaks.expire_all()
    leak = leaks.get(Leak, "L000001")
    assert leak.status == "repaired"
    assert utc(leak.repaired_at) == pd.Timestamp("2025-03-10T12:00:00Z")
    hist = lc.history(leaks, "L000001")
    assert hist["event"].tolist() == ["visit", "visit", "repair"]
    assert hist["to_status"].tolist() == ["confirmed", "confirmed", "repaired"]


def test_optional_columns_are_checked_and_kept(leaks, write):
    text = ("leak_id,visited_at,outcome,found_by,rate_method,repair_attempted_at,delay_reason\n"
            "L000001,2025-03-04T10:00:00Z,confirmed,OGI,hi-flow,2025-03-04T11:00:00Z,needs a shutdown\n"
            "L000002,2025-03-04T10:00:00Z,confirmed,sniffer-dog,,,\n"
            "L000003,2025-03-04T10:00:00Z,confirmed,,,soon,\n")
    r = import_validations(leaks, write("v.csv", text))
    assert r["rejects"][["row", "column"]].values.tolist() == [[3, "found_by"], [4, "repair_attempted_at"]]
    v = leaks.exec(select(Validation)).one()
    assert (v.found_by, v.rate_method, v.delay_reason) == ("ogi", "hi-flow", "needs a shutdown")
    assert _status(leaks)["L000001"] == "repair_attempted"
    assert lc.history(leaks, "L000001")["event"].tolist() == ["visit", "repair_attempt", "delay_of_repair"]
    assert lc.history(leaks, "L000001")["at"].is_monotonic_increasing


def test_record_validations_reports_lifecycle_rejects_like_the_form_needs(leaks):
    row = pd.DataFrame([{"leak_id": "L000001", "visited_at": "2025-03-04T10:00:00Z", "outcome": "not_accessible",
                         "repaired_at": "2025-03-04T12:00:00Z"}], dtype=str)
    good, rejects = validate_validations(row, {"L000001"}, "form")
    assert rejects.empty
    res = record_validations(leaks, good, "crew-9")
    assert (res["recorded"], res["rejected"]) == (0, 1)
    assert res["rejects"][["row", "column"]].values.tolist() == [[2, "repaired_at"]]
    assert "could not reach it" in res["rejects"]["reason"].iloc[0]
    assert _status(leaks)["L000001"] == "open"


def test_set_status_goes_through_the_lifecycle(leaks):
    set_status(leaks, ["L000001", "L000002"], "dispatched", actor="sup")
    leaks.commit()
    assert _status(leaks)["L000001"] == "dispatched"
    with pytest.raises(TransitionError, match="only a repaired or not-found leak can be closed"):
        set_status(leaks, ["L000001"], "closed")
    leaks.rollback()
    set_status(leaks, ["L000001"], "open")  # released from its list
    leaks.commit()
    assert _status(leaks)["L000001"] == "open"
    events = leaks.exec(select(LeakEvent).where(LeakEvent.leak_id == "L000001")).all()
    assert [(e.event, e.actor) for e in events] == [("dispatch", "sup"), ("release", "system")]


def test_apply_event_on_unknown_leak_is_a_key_error(leaks):
    with pytest.raises(KeyError, match="L999999"):
        lc.apply_event(leaks, "L999999", "close")


# --------------------------------------------------------------------------------------------- seen again


def _detect(session, leak_id: str, when: pd.Timestamp, n: int) -> None:
    session.add(Detection(detection_id=f"d{n}", source_type="aerial", source_name="AirLidar",
                          observed_at=when.to_pydatetime(), latitude=32.01, longitude=-102.0,
                          location_uncertainty_m=5.0, leak_id=leak_id))
    session.commit()


def test_a_leak_seen_again_after_repair_reopens_as_a_possible_failed_repair(leaks, write):
    _detect(leaks, "L000001", at(0), 1)
    _detect(leaks, "L000002", at(0), 2)
    text = (f"{VAL_HEADER}\nL000001,2025-03-04T10:00:00Z,confirmed,5,valve,2025-03-04T12:00:00Z,crew-1,\n"
            "L000002,2025-03-04T10:00:00Z,not_found,,,,crew-1,\n")
    import_validations(leaks, write("v.csv", text))
    assert run_lifecycle(leaks) == {"reopened": 0, "failed_repairs": 0}  # nothing new since
    _detect(leaks, "L000001", at(3), 3)  # after the repair
    _detect(leaks, "L000002", at(5), 4)  # after the visit that did not find it
    assert run_lifecycle(leaks, user="fuse") == {"reopened": 2, "failed_repairs": 1}
    leaks.expire_all()
    l1, l2 = leaks.get(Leak, "L000001"), leaks.get(Leak, "L000002")
    assert (l1.status, l1.failed_repair, l2.status, l2.failed_repair) == ("open", True, "open", False)
    assert utc(l1.reopened_at) == at(3)
    ev = lc.history(leaks, "L000001").iloc[-1]
    assert (ev["event"], ev["actor"]) == ("reopen", "fuse")
    assert "possible failed repair" in ev["detail"] and "AirLidar:d3" in ev["detail"]
    assert run_lifecycle(leaks) == {"reopened": 0, "failed_repairs": 0}  # idempotent
    # re-opened leaks are dispatchable again, although they have visits on record
    leaks.execute(LeakRank.__table__.delete())
    leaks.execute(LeakRank.__table__.insert(), [{"leak_id": "L000001", "rank": 1}, {"leak_id": "L000002", "rank": 2}])
    leaks.commit()
    assert set(export_frame(leaks, "dispatch", 10)["leak_id"]) == {"L000001", "L000002"}


def test_old_detections_loaded_late_do_not_reopen(leaks, write):
    import_validations(leaks, write("v.csv", f"{VAL_HEADER}\nL000001,2025-03-04T10:00:00Z,already_repaired,,,,,\n"))
    _detect(leaks, "L000001", at(-3), 1)  # observed before the visit, ingested after it
    assert run_lifecycle(leaks)["reopened"] == 0


# --------------------------------------------------------------------------------------------- detection to closed


def test_a_leak_followed_from_detection_to_closed_with_every_deadline(session, write):
    """Detection → fuse → score → plan → approve → visit (found by OGI) → repair → close, deadlines at each step."""
    from mlpe_core import dispatch as dsp
    from mlpe_core.comply import leak_clocks, load_rules
    from mlpe_core.comply.notifications import add_notification
    from mlpe_core.pipeline import run_fuse, run_score
    from mlpe_core.store import detections_frame, notifications_frame, validations_frame

    for i, (src, typ, t, lat, lon, rate) in enumerate([("PointSat", "satellite", at(0), 32.0, -102.0, 150.0),
                                                       ("PointSat", "satellite", at(7), 32.0001, -102.0001, 140.0),
                                                       ("AirLidar", "aerial", at(0.1), 32.5, -102.5, 3.0)]):
        session.add(Detection(detection_id=f"d{i}", source_type=typ, source_name=src, observed_at=t.to_pydatetime(),
                              latitude=lat, longitude=lon, location_uncertainty_m=25.0, rate_kg_h=rate))
    session.commit()
    # EPA's notice arrives before the plume is fused: it matches its detection's leak once fused
    add_notification(session, {"notification_id": "EPA-0001", "received_at": at(0).isoformat(),
                               "program": "ooooB_super_emitter", "detection_ref": "d0"})
    run_fuse(session)
    run_score(session, as_of=at(8))
    leak = leaks_frame(session).sort_values("est_rate_kg_h").iloc[-1]
    lid = leak["leak_id"]
    assert leak["due_by"] == at(5) and leak["due_rule"] == "ooooB_super_emitter:investigate"

    def clocks():
        return leak_clocks(detections_frame(session, lid), validations_frame(session), load_rules(), at(8), lid,
                           notifications=notifications_frame(session))

    assert clocks()[["action", "due_by"]].values.tolist() == [["investigate", at(5)], ["report", at(15)]]
    list_id = desk.plan_list(session, "planner", 2, day="2025-03-11")
    dsp.approve_list(session, list_id, "supervisor")
    session.expire_all()
    assert session.get(Leak, lid).status == "dispatched"
    visit = f"{VAL_HEADER},found_by\n{lid},2025-03-11T09:00:00Z,confirmed,120,wellhead valve,,crew-1,,ogi\n"
    assert import_validations(session, write("v.csv", visit), user="crew-1")["recorded"] == 1
    c = clocks()
    assert c[["rule", "action", "due_by"]].values.tolist() == [
        ["ooooB_fugitive_ogi", "repair_attempt", pd.Timestamp("2025-04-10T09:00:00Z")],
        ["ooooB_fugitive_ogi", "repair", pd.Timestamp("2025-05-10T09:00:00Z")]]
    wo = f"MLPE-{list_id:05d}-{lid}"
    dsp.set_work_order_status(session, "repair_attempted", "crew-1", work_order_id=wo, at="2025-03-12T10:00:00Z")
    assert clocks()[["action", "due_by"]].values.tolist() == [["repair", pd.Timestamp("2025-04-11T10:00:00Z")]]
    dsp.set_work_order_status(session, "repaired", "crew-1", work_order_id=wo, at="2025-03-14T10:00:00Z")
    assert clocks().empty
    lc.apply_event(session, lid, "close", "2025-03-20T00:00:00Z", actor="supervisor")
    hist = lc.history(session, lid)
    assert hist["to_status"].tolist() == ["dispatched", "confirmed", "confirmed", "repair_attempted",
                                          "repair_attempted", "repaired", "closed"]
    session.expire_all()
    assert session.get(Leak, lid).status == "closed"
