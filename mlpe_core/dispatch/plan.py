"""Plans: what goes on the day's list, drafts a supervisor approves, and the work orders that hang off them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .. import auth, store
from ..errors import BadInput, Conflict, NotFound
from ..lifecycle import TransitionError, apply_event, transition
from ..outcomes import record_validations
from ..schema import DISPATCH_EXPORT_COLUMNS
from ..store.models import Leak
from .routing import on_time, route_dispatch
from .settings import load_settings

DISPATCHABLE = ("open",)
WO_STATUSES = ("dispatched", "in_progress", "repair_attempted", "repaired", "delayed", "closed", "cancelled")
WORKORDER_SCHEMA = "https://mlpe.local/schemas/workorder-1.0.json"  # also in export.py
PLAN_COLUMNS = (*DISPATCH_EXPORT_COLUMNS, "must", "why_listed", "model_rank", "due_rule")


def select_for_day(ranking: pd.DataFrame, visited: set[str], k: int, day_end: pd.Timestamp) -> pd.DataFrame:
    """The ``k`` leaks to visit next, in the order they go out (rank 1..k on the list).

    Leaks still needing a visit are those open (or marked for dispatch) with a rank and no field visit since
    they became open. First the ones the law says must be visited: a deadline before ``day_end`` (overdue, or
    due on the plan day), soonest first; then the ones an analyst marked; then the effective ranking (which
    carries supervisors' overrides). ``must`` flags the first two kinds (the router never drops them),
    ``why_listed`` says in words why each leak is on the list. ``ranking`` is ``desk.ranking`` (columns rank,
    model_rank, marked, status, due_by, ...); it is not modified.
    """
    if k < 0:
        raise BadInput("--top must be ≥ 0", options=("top",))
    marked = ranking["marked"].fillna(False).astype(bool) if "marked" in ranking else pd.Series(False,
                                                                                                  ranking.index)
    pool = ranking[(ranking["status"].isin(DISPATCHABLE) | marked) & ~ranking["leak_id"].isin(visited)
                   & ranking["rank"].notna()]
    pmark = marked.reindex(pool.index).to_numpy()
    due = (pool["due_by"].notna() & (pool["due_by"] < day_end)).to_numpy()
    parts = [pool[due].sort_values(["due_by", "rank"]), pool[~due & pmark].sort_values("rank"),
             pool[~due & ~pmark].sort_values("rank")]
    out = pd.concat(parts).head(k).copy()
    day_start = day_end - pd.Timedelta(days=1)
    is_due = out["due_by"].notna() & (out["due_by"] < day_end)
    is_mark = marked.reindex(out.index).fillna(False).to_numpy()
    out["must"] = is_due.to_numpy() | is_mark
    out["why_listed"] = [
        (f"deadline overdue ({r})" if d < day_start else f"due on the plan day ({r})") if isd
        else "marked for dispatch" if mk else f"rank {int(rk)}"
        for isd, d, r, mk, rk in zip(is_due, out["due_by"], out["due_rule"], is_mark, out["rank"], strict=True)]
    if "model_rank" not in out:
        out["model_rank"] = out["rank"]
    out["rank"] = range(1, len(out) + 1)
    return out.reindex(columns=list(PLAN_COLUMNS)).reset_index(drop=True)


def route_day(selected: pd.DataFrame, day: str | None = None, settings: dict | None = None
              ) -> tuple[pd.DataFrame, list[str]]:
    """Route the selected leaks on the plan ``day`` (YYYY-MM-DD; its clock starts the crews' day, so deadlines
    inside it are met): (stops of day 1, ids that did not fit in the crews' day)."""
    if selected.empty:
        return selected.assign(**{c: pd.Series(dtype=object) for c in ("crew", "day", "stop", "leg_km")}), []
    routed = route_dispatch(selected, settings or load_settings(), start=day)
    left = routed.loc[routed["day"] > 1, "leak_id"].tolist()
    return routed[routed["day"] == 1].reset_index(drop=True), left


def store_draft(session, routed: pd.DataFrame, left: list[str], plan_date: str, user: str,
                note: str | None = None, settings: dict | None = None) -> int:
    """Store a routed day as a draft list (a supervisor approves it); returns its id."""
    cfg = settings or load_settings()
    total = float(routed.drop_duplicates(["day", "crew"])["route_km"].sum()) if len(routed) else 0.0
    items = [dict(
        leak_id=r.leak_id, rank=int(r.rank), crew=r.crew, stop=int(r.stop), leg_km=float(r.leg_km),
        latitude=float(r.latitude), longitude=float(r.longitude), asset_id=None if pd.isna(r.asset_id) else r.asset_id,
        est_rate_kg_h=_f(r.est_rate_kg_h), p_real=_f(r.p_real), priority_score=_f(r.priority_score),
        risk_band=r.risk_band, due_by=None if pd.isna(r.due_by) else pd.Timestamp(r.due_by).to_pydatetime(),
        due_rule=_s(getattr(r, "due_rule", None)), top_reasons=_s(r.top_reasons))
        for r in routed.itertuples(index=False)]
    saved = dict(cfg.items())
    saved["route"] = _route_facts(routed)  # yards and arrival times, so a stored list draws and exports like the plan
    dl = store.insert_list(session, user, plan_date, note, total, saved, items)
    store.audit(session, user, "dispatch_planned", f"dispatch_list:{dl.id}",
                {"items": len(routed), "total_km": round(total, 2), "plan_date": plan_date, "did_not_fit": left})
    session.commit()
    return int(dl.id)


def _route_facts(routed: pd.DataFrame) -> dict:
    """What a stored list keeps of its routing beyond the stops: each crew's yard and each stop's planned arrival."""
    yards, arrive = {}, {}
    for r in routed.itertuples(index=False):
        lat, lon = getattr(r, "home_lat", None), getattr(r, "home_lon", None)
        if r.crew is not None and lat is not None and pd.notna(lat) and pd.notna(lon):
            yards[str(r.crew)] = [float(lat), float(lon)]
        t = getattr(r, "arrive_at", None)
        if t is not None and pd.notna(t):
            arrive[str(r.leak_id)] = pd.Timestamp(t).isoformat()
    return {"yards": yards, "arrive_at": arrive}


def _f(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _s(v) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def approve_list(session, list_id: int, user: str, note: str | None = None, settings: dict | None = None) -> dict:
    """A supervisor approves a draft list: it becomes final and its leaks move to ``dispatched``.

    Refused (nothing changes) when the user may not approve (``auth``: supervisor or admin), when
    the planner approves their own list (``approval.separate_approver``, outside open mode), when
    the list is not a draft, or when a leak on it is no longer open (visited or on another list
    since it was planned: plan again).
    """
    cfg = settings or load_settings()
    auth.require(session, user, "approve_dispatch")
    dl = store.get_list(session, list_id)
    if dl is None:
        raise NotFound(f"no dispatch list {list_id}")
    if dl.status != "draft":
        raise Conflict(f"dispatch list {list_id} is {dl.status}; only a draft can be approved")
    if cfg["separate_approver"] and user == dl.created_by and not auth.open_mode(session):
        raise auth.PermissionDenied(f"'{user}' planned dispatch list {list_id}; another supervisor must approve it")
    items = store.list_items(session, list_id)
    marked = marked_ids(session)
    states = store.lock_states(session, [i.leak_id for i in items])
    at = store.now()
    try:
        for it in items:
            st = states[it.leak_id]
            if st.status == "dispatched" and it.leak_id in marked:  # marked for dispatch: now on this list
                store.set_item_status(session, it, "dispatched", at)
                continue
            if st.status not in ("open", "no_access"):
                raise TransitionError(it.leak_id, st.status, "dispatch",
                                      f"it is no longer open (on list {list_id} since planning); plan a new list")
            states[it.leak_id] = transition(st, "dispatch", at, actor=user, source=f"dispatch_list:{list_id}",
                                            detail={"work_order_id": it.work_order_id, "crew": it.crew})
            store.set_item_status(session, it, "dispatched", at)
    except TransitionError:
        session.rollback()
        raise
    store.save_states(session, states)
    store.set_list_status(session, dl, "approved", user, at, note)
    store.audit(session, user, "dispatch_approved", f"dispatch_list:{list_id}", {"items": len(items), "note": note})
    session.commit()
    return {"list_id": list_id, "approved_by": user, "items": len(items)}


def withdraw_list(session, list_id: int, user: str) -> dict:
    """Withdraw a draft, or an approved list whose leaks are still only dispatched (they return to open)."""
    auth.require(session, user, "approve_dispatch")
    dl = store.get_list(session, list_id)
    if dl is None:
        raise NotFound(f"no dispatch list {list_id}")
    if dl.status == "withdrawn":
        raise Conflict(f"dispatch list {list_id} is already withdrawn")
    released = 0
    if dl.status == "approved":
        items = store.list_items(session, list_id)
        states = store.lock_states(session, [i.leak_id for i in items])
        for it in items:
            if states[it.leak_id].status == "dispatched" and it.wo_status == "dispatched":
                states[it.leak_id] = transition(states[it.leak_id], "release", store.now(), actor=user,
                                                source=f"dispatch_list:{list_id}")
                store.set_item_status(session, it, "cancelled", store.now())
                released += 1
        store.save_states(session, states)
    store.set_list_status(session, dl, "withdrawn")
    store.audit(session, user, "dispatch_withdrawn", f"dispatch_list:{list_id}", {"released": released})
    session.commit()
    return {"list_id": list_id, "released": released}


def lists_frame(session) -> pd.DataFrame:
    """Every dispatch list, newest first."""
    return store.lists_frame(session)


def list_frame(session, list_id: int) -> pd.DataFrame:
    """A stored list's stops: the contract's dispatch columns, then crew, stop, leg_km, work order, the planned
    arrival, ``on_time`` (by the same rule as when the list was routed) and the crew's yard."""
    if store.get_list(session, list_id) is None:
        raise NotFound(f"no dispatch list {list_id}")
    df = store.list_items_frame(session, list_id)
    extra = ["crew", "stop", "leg_km", "work_order_id", "due_rule", "wo_status", "wo_status_at"]
    df = df[list(DISPATCH_EXPORT_COLUMNS) + extra].copy()
    try:
        route = json.loads(store.get_list(session, list_id).settings or "{}").get("route") or {}
    except ValueError:
        route = {}
    yards = route.get("yards") or {}  # lists planned before issue 17 have none: their routes start at the first stop
    df["arrive_at"] = pd.to_datetime(df["leak_id"].map(route.get("arrive_at") or {}), utc=True, errors="coerce")
    df["on_time"] = on_time(df["arrive_at"], df["due_by"])
    df["home_lat"] = df["crew"].map(lambda c: yards.get(str(c), [None, None])[0]).astype(float)
    df["home_lon"] = df["crew"].map(lambda c: yards.get(str(c), [None, None])[1]).astype(float)
    return df


def work_orders(session, list_id: int | None = None, frame: pd.DataFrame | None = None) -> dict:
    """The work-order document for maintenance systems (``docs/workorder.schema.json``).

    From a stored list (``list_id``), or from a routed frame (``frame``, e.g. the current list as a
    draft that has no list id yet).
    """
    from ..export import to_workorders

    meta: dict = {"list_id": None, "status": "draft", "plan_date": None, "approved_by": None, "approved_at": None}
    if list_id is not None:
        dl = store.get_list(session, list_id)
        if dl is None:
            raise NotFound(f"no dispatch list {list_id}")
        frame = list_frame(session, list_id)
        meta = {"list_id": dl.id, "status": dl.status, "plan_date": dl.plan_date, "approved_by": dl.approved_by,
                "approved_at": dl.approved_at}
    if frame is None:
        raise ValueError("work_orders needs a list id or a frame")
    return to_workorders(frame, meta)


def set_work_order_status(session, status: str, user: str, work_order_id: str | None = None,
                          leak_id: str | None = None, at=None, crew: str | None = None, note: str | None = None,
                          reason: str | None = None) -> dict:
    """A maintenance system reports a work order's progress; the leak moves through its lifecycle.

    ``repair_attempted``, ``repaired`` and ``delayed`` (delay of repair, ``reason`` required) are
    recorded as a field record (a ``confirmed`` visit with the repair times), so the compliance
    clocks see them; ``closed`` closes a repaired leak; ``cancelled`` releases a dispatched leak;
    ``in_progress`` and ``dispatched`` change the work order only. An illegal move raises
    ``lifecycle.TransitionError`` and changes nothing.
    """
    if status not in WO_STATUSES:
        raise BadInput(f"status '{status}' is not one of {', '.join(WO_STATUSES)}")
    auth.require(session, user, "validate")
    item = None
    if work_order_id:
        item = store.item_by_work_order(session, work_order_id)
        if item is None:
            raise NotFound(f"no work order '{work_order_id}'")
        leak_id = item.leak_id
    if not leak_id:
        raise BadInput("give a work_order_id or a leak_id")
    if session.get(Leak, leak_id) is None:
        raise NotFound(f"no leak '{leak_id}'")
    at = pd.Timestamp(at or store.now())
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    result: dict = {"leak_id": leak_id, "work_order_id": work_order_id, "status": status}
    text = f"work order {work_order_id or '-'}: {status}" + (f": {note}" if note else "")
    if status in ("repair_attempted", "repaired", "delayed"):
        if status == "delayed" and not reason:
            raise BadInput("a delay of repair needs its reason (e.g. needs a shutdown)")
        now_status = _status(session, leak_id)
        event = {"repair_attempted": "repair_attempt", "repaired": "repair", "delayed": "delay_of_repair"}[status]
        if now_status in ("repaired", "closed", "not_found", "no_access"):
            # a work order reports work on a leak; it is not a new sighting (that is a field visit)
            raise TransitionError(leak_id, now_status, event, {
                "repaired": "it is already repaired (a leak seen leaking again is recorded as a visit or "
                            "re-opens from new detections)",
                "closed": "the leak is closed", "not_found": "a leak that was not found cannot be repaired",
                "no_access": "the crew could not reach it; record a visit that reached it first"}[now_status])
        row = {"leak_id": leak_id, "visited_at": at, "outcome": "confirmed", "measured_rate_kg_h": np.nan,
               "component": None, "repaired_at": at if status == "repaired" else pd.NaT, "crew": crew,
               "notes": text, "found_by": None, "rate_method": None,
               "repair_attempted_at": at if status == "repair_attempted" else pd.NaT,
               "delay_reason": reason if status == "delayed" else None}
        res = record_validations(session, pd.DataFrame([row]), user)
        if res["rejected"]:
            reason_txt = res["rejects"]["reason"].iloc[0]
            raise TransitionError(leak_id, _status(session, leak_id), event, reason_txt.split(": ", 2)[-1])
        result["recorded"] = res["recorded"]
    elif status == "closed":
        apply_event(session, leak_id, "close", at, actor=user, source="work_order", detail={"note": note}, commit=False)
    elif status == "cancelled":
        if _status(session, leak_id) == "dispatched":
            apply_event(session, leak_id, "release", at, actor=user, source="work_order", detail={"note": note},
                        commit=False)
    if item is not None:
        store.set_item_status(session, session.get(type(item), item.id), status, at.to_pydatetime())
    store.audit(session, user, "work_order_status", leak_id, {"work_order_id": work_order_id, "status": status,
                                                                "note": note})
    session.commit()
    result["leak_status"] = _status(session, leak_id)
    return result


def _status(session, leak_id: str) -> str:
    session.expire_all()
    return session.get(Leak, leak_id).status


def marked_ids(session) -> set[str]:
    """Leaks marked for dispatch: ``dispatched``, but not as a stop of an approved list still out."""
    lk = store.leaks_frame(session)
    dispatched = set(lk.loc[lk["status"] == "dispatched", "leak_id"])
    if not dispatched:
        return set()
    on_lists: set[str] = set()
    lists = store.lists_frame(session)
    for lid in lists.loc[lists["status"] == "approved", "id"]:
        items = store.list_items_frame(session, int(lid))
        on_lists |= set(items.loc[items["wo_status"].isin(["dispatched", "in_progress"]), "leak_id"])
    return dispatched - on_lists
