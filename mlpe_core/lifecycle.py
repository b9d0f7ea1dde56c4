"""Lifecycle: the states a leak goes through from ranking to closed, and the only legal moves.

    open ─dispatch─▶ dispatched ─visit─▶ confirmed ─repair_attempt─▶ repair_attempted ─repair─▶ repaired ─close─▶ closed
      │                  │     └─visit─▶ not_found ─────────────────────close────────────────────────────────▶ closed
      └──────visit───────┴─────visit───▶ no_access ─dispatch again / visit again
    repaired | closed | not_found ─reopen (seen again)─▶ open   (after a repair: flagged as a possible failed repair)

Every status change of a leak goes through :func:`transition`, which refuses an illegal move with
a :class:`TransitionError` that says why (a leak not found cannot be repaired; a confirmed leak is
closed only after its repair; a closed leak takes no more visits until it re-opens). The store
functions that record visits, approvals and work-order updates call it, so the app, the command
line and the API cannot disagree about what a leak's status may become. Each change is written as a
:class:`~mlpe_core.store.models.LeakEvent` row: the history a regulator reads.

A field visit (contract §2 row) is the event ``visit`` with its outcome, followed by
``repair_attempt`` when it carries ``repair_attempted_at``, ``repair`` when it carries
``repaired_at`` (unless the outcome is ``already_repaired``, where the time says when someone else
repaired it) and ``delay_of_repair`` when it carries ``delay_reason``.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .errors import NotFound
from .store import LeakState, leak_events_frame, lock_states, save_states
from .store import as_time as _ts
from .store.models import Detection, Leak

STATUSES: tuple[str, ...] = ("open", "dispatched", "confirmed", "not_found", "no_access", "repair_attempted",
                             "repaired", "closed")
EVENTS: tuple[str, ...] = ("dispatch", "release", "visit", "repair_attempt", "repair", "delay_of_repair", "close",
                           "reopen")
OUTCOME_STATUS = {"confirmed": "confirmed", "not_found": "not_found", "already_repaired": "repaired",
                  "not_accessible": "no_access"}
OPEN_STATUSES = ("open", "dispatched")  # ranked and shown as work to do
DISPATCHABLE = ("open", "no_access", "dispatched")
LEAKING = ("confirmed", "repair_attempted")  # a crew has seen it emit and it is not repaired yet
REOPENABLE = ("repaired", "closed", "not_found")
# the row column a refused event is reported against (bulk import rejects name a column)
EVENT_COLUMN = {"visit": "outcome", "repair_attempt": "repair_attempted_at", "repair": "repaired_at",
                "delay_of_repair": "delay_reason"}


class TransitionError(ValueError):
    """An illegal lifecycle move; the message names the leak, its status, the move and the reason."""

    def __init__(self, leak_id: str | None, status: str, event: str, reason: str, outcome: str | None = None):
        self.leak_id, self.status, self.event, self.reason, self.outcome = leak_id, status, event, reason, outcome
        what = f"record a '{outcome}' visit" if event == "visit" and outcome else event.replace("_", " ")
        who = f"leak {leak_id}" if leak_id else "leak"
        super().__init__(f"{who} is {status}: cannot {what}: {reason}")


def _refuse(state: LeakState, event: str, reason: str, outcome: str | None = None) -> TransitionError:
    return TransitionError(state.leak_id, state.status, event, reason, outcome)


def next_status(state: LeakState, event: str, outcome: str | None = None) -> str:
    """The status after ``event`` (``outcome`` for a visit), or a :class:`TransitionError` saying why not."""
    s = state.status
    if s not in STATUSES:
        raise _refuse(state, event, f"unknown status '{s}' (one of {', '.join(STATUSES)})")
    if event not in EVENTS:
        raise _refuse(state, event, f"unknown event (one of {', '.join(EVENTS)})")
    if event == "visit":
        if outcome not in OUTCOME_STATUS:
            raise _refuse(state, event, f"outcome must be one of {', '.join(OUTCOME_STATUS)}", outcome)
        if s == "closed":
            raise _refuse(state, event, "the leak is closed; it re-opens when new detections show it again "
                                        "(or reopen it first)", outcome)
        if s in LEAKING:
            if outcome == "not_found" and s == "confirmed":
                raise _refuse(state, event, "a crew confirmed it leaking; record its repair (repaired_at) or "
                                            "'already_repaired' instead", outcome)
            if outcome == "not_found":  # a check after a repair attempt that finds nothing: the repair held
                return "repaired"
            return "repaired" if outcome == "already_repaired" else s
        if s == "repaired":
            return "confirmed" if outcome == "confirmed" else "repaired"  # confirmed: the repair failed
        return OUTCOME_STATUS[outcome]
    if event == "dispatch":
        if s in DISPATCHABLE:
            return "dispatched"
        why = {"confirmed": "it is confirmed; it needs a repair, not another finding visit",
               "repair_attempted": "its repair is under way", "not_found": "a crew did not find it; reopen it first",
               }.get(s, "only open or not-accessible leaks are dispatched")
        raise _refuse(state, event, why)
    if event == "release":
        if s == "dispatched":
            return "open"
        raise _refuse(state, event, "only a dispatched leak can be released from its list")
    if event in ("repair_attempt", "repair", "delay_of_repair"):
        if s in LEAKING:
            return {"repair_attempt": "repair_attempted", "repair": "repaired", "delay_of_repair": s}[event]
        if s == "repaired" and event == "repair":
            raise _refuse(state, event, "it is already repaired")
        why = {"not_found": "a leak that was not found cannot be repaired",
               "no_access": "the crew could not reach it, so nothing was repaired"}.get(
            s, "only a leak a crew has confirmed can be repaired (record a 'confirmed' visit first)")
        raise _refuse(state, event, why)
    if event == "close":
        if s in ("repaired", "not_found"):
            return "closed"
        if s in LEAKING:
            raise _refuse(state, event, "a confirmed leak is closed only after its repair")
        raise _refuse(state, event, "only a repaired or not-found leak can be closed")
    # reopen
    if s in REOPENABLE:
        return "open"
    raise _refuse(state, event, "only a repaired, closed or not-found leak can re-open")


def transition(state: LeakState, event: str, at, outcome: str | None = None, actor: str = "system",
               source: str | None = None, detail: dict | None = None) -> LeakState:
    """Apply one event to ``state`` (a new state is returned; the input is unchanged).

    Raises :class:`TransitionError` when the move is illegal. The event is queued on the new state's
    ``events`` for :func:`save_states` to write.
    """
    at = _ts(at) or pd.Timestamp.now(tz="UTC")
    new = next_status(state, event, outcome)
    out = replace(state, status=new, status_at=at, events=list(state.events))
    det = dict(detail or {})
    if event == "repair_attempt" and state.repair_attempted_at is None:
        out.repair_attempted_at = at  # the first attempt of this cycle starts the final-repair clock
    if new == "repaired" and state.status != "repaired":
        out.repaired_at = at
        out.failed_repair = False
    if event == "visit" and state.status == "repaired" and outcome == "confirmed":
        out.failed_repair = True  # a check after the repair finds it leaking
        out.repair_attempted_at = None
    if event == "reopen":  # a new cycle: the old repair times move to the event's detail
        out.reopened_at = at
        out.failed_repair = state.status in ("repaired", "closed") and state.repaired_at is not None
        if state.repaired_at is not None:
            det["repaired_at"] = state.repaired_at.isoformat()
        out.repaired_at = out.repair_attempted_at = None
    if outcome:
        det["outcome"] = outcome
    out.events.append({"leak_id": state.leak_id, "at": at, "event": event, "from_status": state.status,
                       "to_status": new, "actor": actor, "source": source, "detail": det or None})
    return out


# --------------------------------------------------------------------------------------------- store


EVENT_PERMISSION = {"dispatch": "mark_dispatch", "release": "mark_dispatch", "visit": "validate",
                    "repair_attempt": "validate", "repair": "validate", "delay_of_repair": "validate",
                    "close": "approve_dispatch", "reopen": "approve_dispatch"}


def apply_event(session: Session, leak_id: str, event: str, at=None, actor: str = "system",
                source: str | None = None, detail: dict | None = None, commit: bool = True) -> LeakState:
    """Apply one event to one stored leak; raises KeyError (no such leak) or TransitionError.

    The actor needs the permission for the event (``EVENT_PERMISSION``): marking for dispatch is
    triage, field events are validations, closing is a supervisor's decision.
    """
    from .auth import require

    require(session, actor, EVENT_PERMISSION.get(event, "approve_dispatch"))
    states = lock_states(session, [leak_id])
    if leak_id not in states:
        session.rollback()
        raise NotFound(f"no leak '{leak_id}'")
    try:
        new = transition(states[leak_id], event, at, actor=actor, source=source, detail=detail)
    except TransitionError:
        session.rollback()
        raise
    save_states(session, {leak_id: new})
    if commit:
        session.commit()
    return new


def validation_events(row: dict) -> list[tuple[str, pd.Timestamp, str | None]]:
    """The lifecycle events one field-visit row stands for, in order: (event, time, outcome)."""
    outcome = row["outcome"]
    visited = _ts(row["visited_at"])
    ev = [("visit", visited, outcome)]
    if outcome != "already_repaired":
        if _ts(row.get("repair_attempted_at")) is not None:
            ev.append(("repair_attempt", _ts(row["repair_attempted_at"]), None))
        if _ts(row.get("repaired_at")) is not None:
            ev.append(("repair", _ts(row["repaired_at"]), None))
    if row.get("delay_reason") not in (None, "") and not pd.isna(row.get("delay_reason")):
        ev.append(("delay_of_repair", max(t for _, t, _ in ev), None))
    return ev


def _row_problem(row: dict) -> tuple[str, str] | None:
    """Stateless contradictions inside one visit row: (column, reason)."""
    visited, repaired = _ts(row["visited_at"]), _ts(row.get("repaired_at"))
    attempted = _ts(row.get("repair_attempted_at"))
    leaking_now = row["outcome"] == "confirmed"
    if leaking_now and repaired is not None and repaired.normalize() < visited.normalize():
        return ("repaired_at", f"repaired_at {repaired:%Y-%m-%d} is before visited_at {visited:%Y-%m-%d}: a leak "
                               "found leaking on this visit is repaired after it (use outcome already_repaired)")
    if attempted is not None and repaired is not None and attempted > repaired:
        return ("repair_attempted_at", "repair_attempted_at is after repaired_at")
    has_delay = row.get("delay_reason") not in (None, "") and not pd.isna(row.get("delay_reason"))
    if has_delay and repaired is not None:
        return ("delay_reason", "a delay of repair is recorded but the same row says it was repaired")
    return None


def plan_validations(states: dict[str, LeakState], rows: list[tuple[int, dict]], actor: str = "system"
                     ) -> tuple[list[int], list[tuple[int, str, str]]]:
    """Run visit rows through the lifecycle in visit-time order, row by row.

    ``rows`` are (row number, record). Returns the row numbers accepted and the rejects as (row number,
    column, reason); ``states`` is updated in place with the accepted rows' events queued. A
    refused row changes nothing, as for any other bad row.
    """
    accepted, rejects = [], []
    order = sorted(rows, key=lambda x: (_ts(x[1]["visited_at"]), x[0]))
    for rownum, rec in order:
        prob = _row_problem(rec)
        if prob:
            rejects.append((rownum, *prob))
            continue
        st = states.get(rec["leak_id"])
        if st is None:
            rejects.append((rownum, "leak_id", f"unknown leak_id '{rec['leak_id']}'"))
            continue
        try:
            new = st
            for ev, at, outcome in validation_events(rec):
                detail = {"row": rownum}
                if ev == "delay_of_repair":
                    detail["reason"] = rec.get("delay_reason")
                new = transition(new, ev, at, outcome, actor=actor, source="validation", detail=detail)
        except TransitionError as exc:
            rejects.append((rownum, EVENT_COLUMN.get(exc.event, "outcome"), str(exc)))
            continue
        states[rec["leak_id"]] = new
        accepted.append(rownum)
    return sorted(accepted), sorted(rejects)


def set_status(session: Session, leak_ids: list[str], status: str, actor: str = "system", at=None,
               source: str | None = None) -> None:
    """Move leaks to ``status`` through the lifecycle (no commit); refuses any illegal move.

    ``status`` names where to go: dispatched (dispatch), open (release a dispatched leak, or re-open a
    repaired, closed or not-found one), repair_attempted, repaired, closed.
    """
    states = lock_states(session, leak_ids)
    missing = sorted(set(map(str, leak_ids)) - set(states))
    if missing:
        raise NotFound(f"no leak '{missing[0]}'")
    for lid, st in states.items():
        if status == "open":
            event = "release" if st.status == "dispatched" else "reopen"
        else:
            event = {"dispatched": "dispatch", "repair_attempted": "repair_attempt", "repaired": "repair",
                     "closed": "close"}.get(status)
            if event is None:
                raise TransitionError(lid, st.status, f"set status {status}",
                                      "field outcomes (confirmed, not_found, no_access) are recorded as visits")
        states[lid] = transition(st, event, at, actor=actor, source=source)
    save_states(session, states)


def allowed_events(status: str) -> list[str]:
    """The events a leak in ``status`` may take next (a visit counts if any outcome is allowed)."""
    out = []
    for ev in EVENTS:
        outcomes = list(OUTCOME_STATUS) if ev == "visit" else [None]
        for o in outcomes:
            try:
                next_status(LeakState("?", status), ev, o)
            except TransitionError:
                continue
            out.append(ev)
            break
    return out


def history(session: Session, leak_id: str) -> pd.DataFrame:
    """The lifecycle events of a leak in the order they were applied (each was checked against the status
    the one before left; ``at`` is when it happened in the field, which a late record can put earlier)."""
    return leak_events_frame(session, leak_id)


def reopen_seen_again(session: Session, actor: str = "system", commit: bool = True,
                      reopened: list | None = None) -> dict:
    """Re-open leaks that detections show again after they were repaired, closed or not found (their ids
    appended to ``reopened`` when given).

    A detection observed after a leak's repair (or after the visit that did not find it) moves the
    leak back to ``open`` so it is ranked again; after a repair the leak is flagged
    ``failed_repair`` (a possible failed repair) and the event names the detection. Idempotent.
    """
    cand = session.execute(select(Leak.leak_id, Leak.status, Leak.status_at, Leak.repaired_at)
                           .where(Leak.active == True, Leak.status.in_(REOPENABLE))).all()  # noqa: E712
    if not cand:
        return {"reopened": 0, "failed_repairs": 0}
    since = {}
    for lid, status, status_at, repaired_at in cand:
        ref = _ts(repaired_at) if status in ("repaired", "closed") and repaired_at is not None else _ts(status_at)
        if ref is not None:
            since[lid] = ref
    if not since:
        return {"reopened": 0, "failed_repairs": 0}
    dets = pd.read_sql(select(Detection.leak_id, Detection.observed_at, Detection.source_name, Detection.detection_id)
                       .where(Detection.leak_id.in_(list(since))), session.connection())
    dets["observed_at"] = pd.to_datetime(dets["observed_at"], utc=True, format="ISO8601")
    dets = dets[dets["observed_at"] > dets["leak_id"].map(since)]
    if dets.empty:
        return {"reopened": 0, "failed_repairs": 0}
    first = dets.sort_values("observed_at").groupby("leak_id").first()
    states = lock_states(session, first.index)
    failed = 0
    moved = []
    for lid, row in first.iterrows():
        st = states[lid]
        if st.status not in REOPENABLE:
            continue
        moved.append(lid)
        detail = {"reason": "seen again after repair: possible failed repair" if st.status != "not_found"
                  and st.repaired_at is not None else "seen again after a visit that did not find it",
                  "detection": f"{row['source_name']}:{row['detection_id']}"}
        states[lid] = transition(st, "reopen", row["observed_at"], actor=actor, source="detections", detail=detail)
        failed += int(states[lid].failed_repair)
    n = save_states(session, states)
    if commit:
        session.commit()
    if reopened is not None:
        reopened.extend(sorted(moved))
    return {"reopened": n, "failed_repairs": failed}


def validated_since_open(leaks: pd.DataFrame, validations: pd.DataFrame) -> set[str]:
    """Leaks with a field visit since they (last) became open: they wait for their outcome's workflow."""
    if validations is None or validations.empty:
        return set()
    v = validations[["leak_id", "visited_at"]].copy()
    v["visited_at"] = pd.to_datetime(v["visited_at"], utc=True)
    if "reopened_at" in leaks and leaks["reopened_at"].notna().any():
        ro = pd.to_datetime(leaks.set_index("leak_id")["reopened_at"], utc=True)
        since = v["leak_id"].map(ro)
        v = v[since.isna() | (v["visited_at"] > since)]
    return set(v["leak_id"])
