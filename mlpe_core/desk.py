"""Desk: the one service layer every face calls (the CLI, the API and the app's pages).

Why it exists: a decision made twice is a decision that disagrees. The effective ranking (model rank,
supervisors' overrides, leaks marked for dispatch), the day's plan, a leak's detail, the obligations queue
and what a recorded outcome changes are each assembled here once, as of one clock, and every face draws
what these functions return. Actions check the actor's role (``auth``) and are audited in the stages they
call; faces never reach the store or re-derive a decision.

The clock: every score is computed as of an explicit time (``mlpe score --as-of``, default now) and that
time is recorded with the run. :func:`as_of` returns it; "days ago", "overdue" and "today" all count from it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import weakref
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from .answers import AnswerCache
from .lazy import lazy
from .schema import (  # noqa: F401  (faces label what the contract names)
    DISPATCH_EXPORT_COLUMNS,
    LEAK_EXPORT_COLUMNS,
    OUTCOMES,
    RISK_BANDS,
    SOURCE_TYPES,
    VALIDATION_COLUMNS,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sqlmodel import Session

    from . import auth, comply, dispatch, learn, lifecycle, lineage, pipeline, review, store
    from . import outcomes as _outcomes
    from . import score as _score
    from .ingest import tables as _tables
    from .store import models as tables
else:  # imported on first use: `mlpe --help` and `mlpe status` must not pay for pandas, the stages or the models
    np, pd = lazy("numpy"), lazy("pandas")
    auth, comply, dispatch = lazy("mlpe_core.auth"), lazy("mlpe_core.comply"), lazy("mlpe_core.dispatch")
    learn, lifecycle, lineage = lazy("mlpe_core.learn"), lazy("mlpe_core.lifecycle"), lazy("mlpe_core.lineage")
    pipeline, review, store = lazy("mlpe_core.pipeline"), lazy("mlpe_core.review"), lazy("mlpe_core.store")
    _score = lazy("mlpe_core.score")
    _outcomes, _tables = lazy("mlpe_core.outcomes"), lazy("mlpe_core.ingest.tables")
    tables = lazy("mlpe_core.store.models")

# Names the faces read from the desk (``from mlpe_core.desk import IngestError``), resolved when first asked for.
_REEXPORTS = {
    "PermissionDenied": "mlpe_core.auth",  # faces catch the desk's refusals by these names
    "LoginThrottle": "mlpe_core.auth",
    "claimable_name": "mlpe_core.auth",
    "crew_capacity": "mlpe_core.dispatch",  # one day of the crews' visits: the default list size
    "FORMATS": "mlpe_core.ingest",
    "IngestError": "mlpe_core.ingest",
    "FOUND_BY": "mlpe_core.ingest.tables",
    "validate_validations": "mlpe_core.ingest.tables",
    "STATUSES": "mlpe_core.lifecycle",
    "TransitionError": "mlpe_core.lifecycle",
    "OPEN": ("mlpe_core.lifecycle", "OPEN_STATUSES"),
    "Session": "sqlmodel",
}


def __getattr__(name: str):
    where = _REEXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = where if isinstance(where, tuple) else (where, name)
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


# --------------------------------------------------------------------------------------------- the store


def store_url(db: str | None = None) -> str:
    """The store a face works on: ``db``, else ``MLPE_DB``, else ``data/mlpe.db`` (a path or any SQLAlchemy URL)."""
    from .store.db import resolve_url

    return resolve_url(db)


def engine(db: str | None = None):
    """An engine on the store, its schema brought to the newest migration."""
    from .store.db import get_engine

    return get_engine(db)


def open_session(eng) -> Session:
    """A session on ``eng`` (use it as a context manager)."""
    from sqlmodel import Session

    return Session(eng)


def is_open(session: Session) -> bool:
    """True while the store has no users: anyone may act (``auth.open_mode``)."""
    return auth.open_mode(session)


# --------------------------------------------------------------------------------------------- the clock


def as_of(session: Session) -> pd.Timestamp:
    """The clock of the scores on show: the as-of of the latest scoring run, else now (nothing scored yet)."""
    return pipeline.last_score_as_of(session) or pipeline.clock()


def version(session: Session) -> tuple:
    """A cheap stamp that changes whenever anything is written (cached answers are keyed on it): the newest id
    of each append-only table, in one statement (four primary-key lookups, no scan).

    Every write that changes an answer appends to one of them in the same transaction: the audit trail records
    scores and re-scores, fusions, overrides, reviews, notes, plans and approvals, work-order status, notices,
    model changes, users and tokens; lifecycle moves (marks for dispatch, closes) append a leak event; field
    outcomes a validation; ingests a batch (``tests/test_api_cache.py`` checks each kind of write)."""
    ids = [select(func.max(m.id)).scalar_subquery()
           for m in (tables.AuditEvent, tables.IngestBatch, tables.LeakEvent, tables.Validation)]
    return tuple(int(v or 0) for v in session.execute(select(*ids)).one())


def status(session: Session) -> dict[str, int]:
    """What the store holds (``mlpe status``). ``session`` may also be a plain connection (the CLI opens one, so
    the command does not load the ORM table classes)."""
    return store.counts(session)


def can(session: Session, user: str | None, action: str) -> bool:
    """Whether a face should offer ``action`` to ``user``; the core refuses it anyway when not allowed."""
    return auth.can(session, user, action)


def require(session: Session, user: str, action: str) -> None:
    """Refuse ``action`` for ``user`` with the reason (``PermissionDenied``) unless the role allows it."""
    auth.require(session, user, action)


def role_of(session: Session, user: str | None) -> str | None:
    """The active role of ``user`` (None for an unknown or deactivated user)."""
    return auth.role_of(session, user) if user else None


def sign_in(session: Session, user: str, password: str):
    """The user when the password matches an active account, else None."""
    return auth.authenticate(session, user, password)


# --------------------------------------------------------------------------------------------- filters


@dataclass
class LeakFilter:
    """The filters every face offers on the ranking (the app's sidebar, the API's query, the CLI's export).

    Empty lists mean "all". ``window`` keeps leaks whose first-to-last sighting overlaps it (dates, UTC).
    ``search`` matches leak or asset ids (case-insensitive substring). ``overdue`` and ``due_within_days``
    count from the clock (:func:`as_of`)."""

    bands: list[str] = field(default_factory=list)
    source_types: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    operators: list[str] = field(default_factory=list)
    min_rate_kg_h: float | None = None
    min_priority: float | None = None
    window: tuple[date, date] | None = None
    search: str | None = None
    asset_id: str | None = None
    overdue: bool | None = None
    due_within_days: float | None = None
    failed_repair: bool | None = None
    ranked_only: bool = False

    def __post_init__(self) -> None:
        bad = sorted(set(self.bands) - set(RISK_BANDS))
        if bad:
            raise ValueError(f"risk band '{bad[0]}' is not one of {', '.join(RISK_BANDS)}")
        bad = sorted(set(self.statuses) - set(lifecycle.STATUSES))
        if bad:
            raise ValueError(f"status '{bad[0]}' is not one of {', '.join(lifecycle.STATUSES)}")

    def key(self) -> tuple:
        """The filter as a hashable value (cached selections are keyed on it)."""
        return tuple((f, tuple(v) if isinstance(v, list) else v) for f, v in self.__dict__.items())

    def apply(self, leaks: pd.DataFrame, clock: pd.Timestamp) -> pd.DataFrame:
        return leaks[self.mask(leaks, clock)]

    def mask(self, leaks: pd.DataFrame, clock: pd.Timestamp) -> pd.Series:
        """True for the rows of ``leaks`` (a :func:`ranking`) this filter keeps."""
        m = pd.Series(True, index=leaks.index)
        if self.ranked_only:
            m &= leaks["rank"].notna()
        if self.bands:
            m &= leaks["risk_band"].isin(self.bands)
        if self.source_types:
            want = set(self.source_types)
            m &= leaks["source_types"].fillna("").str.split(",").map(lambda t: bool(want & {x.strip() for x in t}))
        if self.statuses:
            m &= leaks["status"].isin(self.statuses)
        if self.operators and "operator" in leaks:
            m &= leaks["operator"].isin(self.operators)
        if self.min_rate_kg_h:
            m &= leaks["est_rate_kg_h"].fillna(0) >= float(self.min_rate_kg_h)
        if self.min_priority is not None:
            m &= leaks["priority_score"].fillna(-1) >= float(self.min_priority)
        if self.window and len(leaks):
            lo, hi = self.window
            m &= (leaks["first_seen"].dt.date <= hi) & (leaks["last_seen"].dt.date >= lo)
        if self.search:
            q = self.search.strip()
            m &= (leaks["leak_id"].str.contains(q, case=False, regex=False)
                  | leaks["asset_id"].fillna("").str.contains(q, case=False, regex=False))
        if self.asset_id:
            m &= leaks["asset_id"] == self.asset_id
        due = leaks["due_by"]
        if self.overdue is not None:
            m &= (due.notna() & (due < clock)) == self.overdue
        if self.due_within_days is not None:
            m &= due.notna() & (due <= clock + pd.Timedelta(days=float(self.due_within_days)))
        if self.failed_repair is not None:
            m &= leaks["failed_repair"].fillna(False).astype(bool) == self.failed_repair
        return m


# --------------------------------------------------------------------------------------------- the ranking


def marked(session: Session) -> set[str]:
    """Leaks an analyst marked for dispatch (they go on the next plan whatever their rank)."""
    return dispatch.marked_ids(session)


def ranking(session: Session, flt: LeakFilter | None = None) -> pd.DataFrame:
    """Every active leak in the order crews should visit: the model's rank with supervisors' overrides applied.

    Columns: the leak's stored fields, ``operator`` and ``asset_type`` of its asset, ``model_rank`` (the
    scorer's), ``rank`` (effective: 1 = visit first; blank for leaks no longer open), ``override`` and
    ``override_reason``, ``marked`` (for dispatch), ``overdue`` (a deadline passed, as of the clock) and
    ``band_why`` (what set the risk band). Ranked leaks first, in rank order.
    """
    lk = store.leaks_frame(session)
    assets = store.assets_frame(session)
    cols = [c for c in ("asset_id", "operator", "asset_type") if c in assets]
    lk = lk.merge(assets[cols], on="asset_id", how="left") if len(assets) and "asset_id" in cols else lk.assign(
        operator=None, asset_type=None)
    lk = lk.rename(columns={"rank": "model_rank"})
    eff = review.effective_ranking(lk.rename(columns={"model_rank": "rank"}), review.rank_overrides(session))
    by = eff.set_index("leak_id")
    lk["rank"] = lk["leak_id"].map(by["eff_rank"]).astype("Int64")
    lk["override"] = lk["leak_id"].map(by["override"]).astype("Int64")
    lk["override_reason"] = lk["leak_id"].map(by["override_reason"])
    lk["marked"] = lk["leak_id"].isin(marked(session))
    clock = as_of(session)
    lk["overdue"] = lk["due_by"].notna() & (lk["due_by"] < clock)
    lk["band_why"] = band_why(lk, clock)
    if flt is not None:
        lk = flt.apply(lk, clock)
    return lk.sort_values(["rank", "priority_score", "leak_id"], ascending=[True, False, True],
                          na_position="last").reset_index(drop=True)


def band_why(lk: pd.DataFrame, clock: pd.Timestamp) -> pd.Series:
    """What set each leak's risk band, in words shown beside it: the reason the scorer stored with the band
    (``score.rank.band_reasons``), else (a store scored by an older MLPE) one derived from priority and deadline."""
    from .score import HIGH_KG_H, MEDIUM_KG_H

    stored = lk["band_reason"] if "band_reason" in lk else pd.Series(None, index=lk.index, dtype=object)
    out = []
    for band, pr, due, rule in zip(lk["risk_band"], lk["priority_score"], lk["due_by"], lk["due_rule"], strict=True):
        if band is None or pd.isna(band):
            out.append("not scored yet")
        elif band == "HIGH" and pd.notna(due) and due < clock and (pd.isna(pr) or pr < HIGH_KG_H):
            out.append(f"HIGH because a deadline is overdue ({rule})")
        elif band == "HIGH":
            out.append(f"HIGH: about {pr:,.1f} kg/h expected to be found per visit (at least {HIGH_KG_H:g})")
        elif band == "MEDIUM":
            out.append(f"MEDIUM: about {pr:,.1f} kg/h expected per visit ({MEDIUM_KG_H:g} to {HIGH_KG_H:g})")
        else:
            out.append(f"LOW: under {MEDIUM_KG_H:g} kg/h expected per visit")
    derived = pd.Series(out, index=lk.index, dtype=object)
    return stored.where(stored.notna() & (stored.astype(str) != ""), derived)


def export_leaks(session: Session, flt: LeakFilter | None = None, top: int | None = None) -> pd.DataFrame:
    """``mlpe export leaks``: the contract's columns first (``rank`` is the effective rank), then the extras."""
    rk = ranking(session, flt)
    if top is not None:
        rk = rk[rk["rank"].notna()].head(top)
    extra = ["model_rank", "override_reason", "rate_lo_kg_h", "rate_hi_kg_h", "due_by", "due_rule", "n_ambiguous",
             "band_why"]
    return pipeline.round_export(rk.reindex(columns=list(LEAK_EXPORT_COLUMNS) + extra))


# --------------------------------------------------------------------------------------------- the day's plan


def _plan_day(session: Session, day: str | None) -> str:
    d = day or as_of(session).date().isoformat()
    try:
        date.fromisoformat(d)
    except ValueError as exc:
        raise ValueError(f"--date '{d}' is not a YYYY-MM-DD date") from exc
    return d


def dispatch_candidates(session: Session, top: int | None = None, day: str | None = None, *,
                        ranked: pd.DataFrame | None = None) -> pd.DataFrame:
    """The leaks to visit next, in the order they should go out (contract §4, ``mlpe export dispatch``).

    Leaks that must go come first: a legal deadline overdue or falling on the plan day, then leaks an
    analyst marked for dispatch; the effective ranking (with supervisors' overrides) fills the rest. Only
    leaks still needing a visit (open or marked, no field visit since they became open) are listed.
    ``rank`` is the order on the list (1 = first); ``must`` and ``why_listed`` say why each is there.
    ``ranked``: :func:`ranking` already computed at the store's current version (not modified).
    """
    k = dispatch.crew_capacity() if top is None else int(top)
    if k < 0:
        raise ValueError("--top must be ≥ 0")
    d = _plan_day(session, day)
    rk = ranking(session) if ranked is None else ranked
    vals = store.validations_frame(session)
    visited = lifecycle.validated_since_open(rk, vals)
    return dispatch.select_for_day(rk, visited, k, pd.Timestamp(d, tz="UTC") + pd.Timedelta(days=1))


def export_dispatch(session: Session, top: int | None = None, *, ranked: pd.DataFrame | None = None) -> pd.DataFrame:
    """``mlpe export dispatch``: the contract's dispatch columns of :func:`dispatch_candidates`."""
    cand = dispatch_candidates(session, top, ranked=ranked)
    return pipeline.round_export(cand.reindex(columns=list(DISPATCH_EXPORT_COLUMNS)))


def plan(session: Session, top: int | None = None, day: str | None = None, *,
         ranked: pd.DataFrame | None = None) -> tuple[dict, pd.DataFrame]:
    """The plan for ``day`` (default: the clock's day): its approved list, else its draft, else a routed proposal.

    Returns (meta, stops). meta: list_id (None for a proposal), status (approved, draft, proposal, empty),
    plan_date, created_by, approved_by, approved_at, total_km, left_over (must-visit leaks that did not fit).
    Stops: the contract's dispatch columns, then crew, stop, leg_km and the route (and the work order of a
    stored list), in crew and stop order.
    """
    d = _plan_day(session, day)
    lists = store.lists_frame(session)
    mine = lists[(lists["plan_date"] == d) & lists["status"].isin(["approved", "draft"])] if len(lists) else lists
    if len(mine):
        row = mine.sort_values(["status", "id"], ascending=[True, False]).iloc[0]  # approved before draft
        meta = {k: row.get(k) for k in ("status", "plan_date", "created_by", "approved_by", "approved_at",
                                        "total_km")}
        meta.update(list_id=int(row["id"]), left_over=[])
        return meta, dispatch.list_frame(session, int(row["id"]))
    cand = dispatch_candidates(session, top, d, ranked=ranked)
    if cand.empty:
        return {"list_id": None, "status": "empty", "plan_date": d, "total_km": 0.0, "left_over": []}, cand
    routed, left = dispatch.route_day(cand, d)
    km = float(routed.drop_duplicates(["day", "crew"])["route_km"].sum()) if len(routed) else 0.0
    return {"list_id": None, "status": "proposal", "plan_date": d, "total_km": km, "left_over": left}, routed


def plan_list(session: Session, user: str, top: int | None = None, day: str | None = None,
              note: str | None = None) -> int:
    """Store the day's proposal as a draft list for a supervisor to approve; returns its id."""
    auth.require(session, user, "plan_dispatch")
    cap = dispatch.crew_capacity()
    if top is not None and not 0 < int(top) <= cap:
        raise ValueError(f"--top must be 1..{cap}: a dispatch list is one day of the crews' visits "
                         "(config/dispatch.yaml)")
    d = _plan_day(session, day)
    cand = dispatch_candidates(session, top, d)
    if cand.empty:
        raise ValueError("nothing to dispatch: no open, unvisited, ranked leak (run `mlpe score` first)")
    routed, left = dispatch.route_day(cand, d)
    return dispatch.store_draft(session, routed, left, d, user, note)


def approve_list(session: Session, user: str, list_id: int, note: str | None = None) -> dict:
    return dispatch.approve_list(session, list_id, user, note)


def withdraw_list(session: Session, user: str, list_id: int) -> dict:
    return dispatch.withdraw_list(session, list_id, user)


def lists(session: Session) -> pd.DataFrame:
    return dispatch.lists_frame(session)


def list_stops(session: Session, list_id: int) -> pd.DataFrame:
    return dispatch.list_frame(session, list_id)


def work_orders(session: Session, list_id: int | None = None, top: int | None = None) -> dict:
    """The work-order document of a stored list, or of the day's plan (a draft) when ``list_id`` is None."""
    if list_id is not None:
        return dispatch.work_orders(session, list_id)
    meta, stops = plan(session, top)
    if meta["list_id"] is not None:
        return dispatch.work_orders(session, meta["list_id"])
    return dispatch.work_orders(session, frame=stops)


def set_work_order_status(session: Session, user: str, status: str, work_order_id: str | None = None,
                          leak_id: str | None = None, at=None, crew: str | None = None, note: str | None = None,
                          reason: str | None = None) -> dict:
    res = dispatch.set_work_order_status(session, status, user, work_order_id=work_order_id, leak_id=leak_id,
                                         at=at, crew=crew, note=note, reason=reason)
    if status in ("repair_attempted", "repaired", "delayed", "closed", "cancelled"):
        pipeline.rescore_leaks(session, {res["leak_id"]}, user="system")
    return res


# --------------------------------------------------------------------------------------------- one leak


def leak_detail(session: Session, leak_id: str, *, ranked: pd.DataFrame | None = None) -> dict:
    """Everything any face shows about one leak, as of the clock.

    Keys: ``leak`` (stored fields plus ``rank`` (effective), ``model_rank``, ``override``, ``override_reason``,
    ``marked``, ``overdue``, ``band_why``, ``operator``, ``asset_type``), ``as_of``, ``detections``,
    ``validations``, ``events`` (lifecycle transitions), ``history`` (audit events on it), ``notes``,
    ``story`` (its lineage), ``clocks`` (every running compliance clock), ``contributions`` (the score's
    log-odds terms), ``candidates`` (nearby assets with attribution likelihood), ``allowed_events``.
    ``ranked``: :func:`ranking` already computed at the store's current version (not modified).
    """
    leak = session.get(tables.Leak, leak_id)
    if leak is None:
        raise KeyError(f"no leak '{leak_id}'")
    clock = as_of(session)
    rk = ranking(session) if ranked is None else ranked
    row = rk[rk["leak_id"] == leak_id]
    rec = leak.model_dump()
    if len(row):
        r = row.iloc[0]
        rec.update({k: (None if pd.isna(r[k]) else r[k]) for k in ("rank", "model_rank", "override",
                                                                     "override_reason", "operator", "asset_type")})
        rec.update(marked=bool(r["marked"]), overdue=bool(r["overdue"]), band_why=r["band_why"])
    else:  # a leak a later fusion retired: shown as it was
        rec.update(rank=None, model_rank=rec.get("rank"), override=None, override_reason=None, marked=False,
                   overdue=False, band_why="retired by a later fusion", operator=None, asset_type=None)
    for k in ("first_seen", "last_seen", "due_by", "scored_at", "status_at", "repaired_at", "reopened_at",
              "repair_attempted_at"):
        if rec.get(k) is not None:
            t = pd.Timestamp(rec[k])
            rec[k] = t.tz_localize("UTC") if t.tzinfo is None else t
    dets = store.detections_frame(session, leak_id)
    vals = store.validations_frame(session)
    vals = vals[vals["leak_id"] == leak_id].reset_index(drop=True)
    history = store.audit_frame(session, leak_id)
    clocks = comply.leak_clocks(dets, vals, comply.load_rules(), clock, leak_id, assets=store.assets_frame(session),
                                leaks=store.leaks_frame(session, active_only=False),
                                notifications=store.notifications_frame(session))
    notes = history[history["action"] == "note"].assign(
        note=lambda h: h["detail"].map(lambda x: json.loads(x or "{}").get("note", "")))
    return {
        "leak": rec,
        "as_of": clock,
        "detections": dets,
        "validations": vals,
        "events": lifecycle.history(session, leak_id),
        "history": history,
        "notes": notes[["id", "at", "actor", "note"]].reset_index(drop=True),
        "story": lineage.leak_story(session, leak_id),
        "clocks": clocks,
        "contributions": json.loads(leak.contributions or "{}"),
        "candidates": json.loads(leak.asset_candidates or "[]"),
        "allowed_events": lifecycle.allowed_events(leak.status),
    }


def add_note(session: Session, user: str, leak_id: str, text: str) -> int:
    """An analyst's note on a leak (kept in the append-only audit trail); returns its event id."""
    auth.require(session, user, "note")
    text = (text or "").strip()
    if not text:
        raise ValueError("a note needs some text")
    if session.get(tables.Leak, leak_id) is None:
        raise KeyError(f"no leak '{leak_id}'")
    return store.add_note(session, user, leak_id, text)


def leak_event(session: Session, user: str, leak_id: str, event: str, at=None, note: str | None = None,
               source: str = "desk") -> str:
    """Apply a lifecycle event (close, reopen, release, dispatch) to one leak; the ranking follows at once.
    Returns the leak's new status."""
    st = lifecycle.apply_event(session, leak_id, event, at, actor=user, source=source,
                               detail={"note": note} if note else None)
    pipeline.rescore_leaks(session, {leak_id}, user="system")
    return st.status


def mark_for_dispatch(session: Session, user: str, leak_id: str) -> str:
    """Put a leak on the next plan whatever its rank (it must go out); recorded with the user's name."""
    return leak_event(session, user, leak_id, "dispatch", source="mark")


def release(session: Session, user: str, leak_id: str) -> str:
    """Take a marked (or dispatched) leak back to open."""
    return leak_event(session, user, leak_id, "release", source="release")


# --------------------------------------------------------------------------------------------- obligations


OBLIGATION_VIEW = ["leak_id", "site", "title", "action", "due_by", "state", "days_left", "started_at", "started_text",
                   "met_at", "citation", "verified", "voluntary", "due_rule", "rank", "status"]


def obligations(session: Session, include_met: bool = False) -> pd.DataFrame:
    """What regulation requires and by when, soonest first, as of the clock (``comply.obligation_queue``).

    Independent of the methane ranking: a leak ranked low still owes its deadline, and a notice that matched no
    leak still runs its clocks (``leak_id`` blank). Each row says what started it (a notice received, an OGI find,
    an action level crossed), its state (overdue, due soon, running; met ones with ``include_met``), the citation
    and whether the rule text was verified; ``rank`` and ``status`` are the leak's."""
    ob, _ = comply.obligation_queue(session, as_of(session), include_met=include_met)
    if ob.empty:
        return pd.DataFrame(columns=OBLIGATION_VIEW)
    lk = store.leaks_frame(session).set_index("leak_id")
    rk = ranking(session).set_index("leak_id")["rank"]
    ob = ob.assign(rank=ob["leak_id"].map(rk).astype("Int64"), status=ob["leak_id"].map(lk["status"]))
    order = {"overdue": 0, "due soon": 1, "running": 2, "met": 3}
    ob = ob.assign(_o=ob["state"].map(order).fillna(9)).sort_values(["_o", "due_by", "leak_id"]).drop(columns="_o")
    return ob.reindex(columns=OBLIGATION_VIEW).reset_index(drop=True)


def watch_list(session: Session) -> pd.DataFrame:
    """Likely notifications: detections that would qualify for a notice that has not arrived. Never a deadline,
    never overdue, never the band on its own."""
    return comply.obligation_queue(session, as_of(session), include_met=False)[1]


def notifications(session: Session) -> pd.DataFrame:
    """Every recorded notice, with the leak it was matched to and how."""
    return store.notifications_frame(session)


def import_notifications(session: Session, user: str, path: str | Path) -> dict:
    """``mlpe notifications import``: record notices, match them to leaks, start their clocks, re-score."""
    from .comply.notifications import import_notifications as _import

    auth.require(session, user, "notifications")
    r = _import(session, path, user=user)
    if r.get("recorded"):
        pipeline.run_score(session, as_of=as_of(session), user=user)
    return r


def add_notification(session: Session, user: str, fields: dict) -> dict:
    """One notice entered by hand (Leak page, API); starts its clocks and re-scores."""
    from .comply.notifications import add_notification as _add

    auth.require(session, user, "notifications")
    r = _add(session, fields, user=user)
    pipeline.run_score(session, as_of=as_of(session), user=user)
    return r


def set_notification_match(session: Session, user: str, notification_id: str, leak_id: str | None,
                           reason: str = "") -> dict:
    """Correct which leak a notice concerns (audited; later fusions keep it); re-scores."""
    from .comply.notifications import set_match

    auth.require(session, user, "notifications")
    r = set_match(session, notification_id, leak_id, user=user, reason=reason)
    pipeline.run_score(session, as_of=as_of(session), user=user)
    return r


def action_levels(session: Session, site: str) -> pd.DataFrame:
    """A site's continuous-monitor rolling averages per day and rule, with baseline and threshold (for a chart)."""
    return comply.action_level_series(store.detections_frame(session), comply.load_rules(), site,
                                      leaks=store.leaks_frame(session), assets=store.assets_frame(session))


# --------------------------------------------------------------------------------------------- field outcomes


def _what_changed(res: dict, leak_ids: set[str]) -> dict:
    before, after = res["before"], res["after"]
    left = sorted(lid for lid in leak_ids if lid in before and lid not in after)
    moved = sum(1 for lid, r in after.items() if lid in before and before[lid] != r)
    return {"left_ranking": left, "moved": moved, "ranked": len(after)}


def record_outcomes(session: Session, user: str, rows: pd.DataFrame, label: str = "form") -> dict:
    """Check and record field outcomes (contract §2 columns, as text) and re-score the leaks they concern.

    Returns recorded, duplicates, rejected, rejects (row, column, reason: row 2 is the first data row) and
    ``changes`` (which leaks left the ranking, how many others moved)."""
    auth.require(session, user, "validate")
    good, rejects = _tables.validate_validations(rows, store.leak_ids(session), label)
    res = _outcomes.record_validations(session, good, user) if len(good) else {
        "recorded": 0, "duplicates": 0, "rejected": 0, "rejects": rejects.iloc[0:0]}
    allrej = pd.concat([x for x in (rejects, res["rejects"]) if len(x)] or [rejects], ignore_index=True)
    allrej = allrej.sort_values("row", kind="stable").reset_index(drop=True)
    touched = set(res.get("leak_ids", []))
    changes = _what_changed(pipeline.rescore_leaks(session, touched, user="system"), touched) if touched else \
        {"left_ranking": [], "moved": 0}
    return {"rows": len(rows), "recorded": res["recorded"], "duplicates": res["duplicates"],
            "rejected": int(allrej["row"].nunique()) if len(allrej) else 0, "rejects": allrej, "changes": changes}


def import_outcomes(session: Session, user: str, path: str | Path) -> dict:
    """``mlpe validations import``: record a file of field outcomes and re-score the leaks they concern."""
    auth.require(session, user, "validate")
    r = _outcomes.import_validations(session, path, user=user)
    touched = set(r.pop("leak_ids", []))
    r["changes"] = _what_changed(pipeline.rescore_leaks(session, touched, user="system"), touched) if touched else \
        {"left_ranking": [], "moved": 0}
    return r


def outcomes(session: Session, leak_id: str | None = None) -> pd.DataFrame:
    """Recorded field outcomes, newest first (contract §2 columns plus recorded_at, recorded_by)."""
    v = store.validations_frame(session)
    if leak_id is not None:
        v = v[v["leak_id"] == leak_id]
    cols = [*VALIDATION_COLUMNS, "found_by", "rate_method", "repair_attempted_at", "delay_reason", "recorded_at",
            "recorded_by"]
    return v.sort_values("id", ascending=False).reindex(columns=cols).reset_index(drop=True)


# --------------------------------------------------------------------------------------------- review


def override_rank(session: Session, user: str, leak_id: str, after: int | None, reason: str) -> str:
    """Move a leak to rank ``after`` (None clears its override), with the reason; recorded with the ranks before."""
    rk = ranking(session)
    row = rk[rk["leak_id"] == leak_id]
    if row.empty or pd.isna(row.iloc[0]["rank"]):
        raise KeyError(f"no ranked leak '{leak_id}'")
    r = row.iloc[0]
    if after is not None and int(after) == int(r["rank"]):
        raise ValueError(f"{leak_id} is already at rank {after}")
    if after is None and pd.isna(r["override"]):
        raise ValueError(f"{leak_id} has no override to clear")
    review.record_override(session, user, leak_id, int(r["rank"]), int(r["model_rank"]), after, reason)
    return f"{leak_id}: override cleared." if after is None else f"{leak_id} moved from #{int(r['rank'])} to #{after}."


def overrides(session: Session) -> pd.DataFrame:
    return review.rank_overrides(session)


def review_changes(session: Session) -> dict | None:
    """What changed since the last review: None before the first; else at, by, n_then and the change tables
    (new, up, down, dropped) against today's effective ranking."""
    last = review.last_review(session)
    if last is None:
        return None
    rk = ranking(session)
    ranked = rk[rk["rank"].notna()].rename(columns={"rank": "eff_rank"})
    return {**last, "n_then": len(last["ranks"]), "n_now": len(ranked),
            **review.changes(last["ranks"], ranked, store.leaks_frame(session))}


def mark_reviewed(session: Session, user: str) -> int:
    """Record today's effective ranking as reviewed by ``user`` (supervisors); returns how many leaks."""
    rk = ranking(session)
    return review.mark_reviewed(session, user, rk[rk["rank"].notna()].rename(columns={"rank": "eff_rank"}))


# --------------------------------------------------------------------------------------------- models


def models(session: Session) -> pd.DataFrame:
    """The model registry, newest first (no blobs)."""
    return store.models_frame(session)


def rank_with(session: Session, model_id: int) -> pd.DataFrame:
    """Today's open leaks scored by stored model version ``model_id`` as of the clock (nothing written):
    leak_id, p_real, est_rate_kg_h, priority_score, risk_band, rank."""
    mv = session.get(tables.ModelVersion, int(model_id))
    if mv is None:
        raise KeyError(f"no model version {model_id}")
    model = _score.loads(mv.blob) if mv.blob else _score.default_model()
    s, _ = pipeline.score_frame(session, as_of(session), model=model)
    cols = ["leak_id", "p_real", "est_rate_kg_h", "priority_score", "risk_band", "rank"]
    if s.empty:
        return pd.DataFrame(columns=cols)
    return s[s["rank"].notna()][cols].sort_values("rank").reset_index(drop=True)


def compare_models(session: Session, a: int, b: int, top: int | None = None) -> tuple[pd.DataFrame, dict]:
    """How versions ``a`` and ``b`` rank today's leaks, side by side, with the overlap of their top ``top``."""
    return review.compare(rank_with(session, a), rank_with(session, b), top or dispatch.crew_capacity())


def train(session: Session, user: str) -> dict:
    return pipeline.run_train(session, user=user)


def activate_model(session: Session, user: str, version_id: int) -> dict:
    """Roll back (or forward) to a recorded model version and re-score with it (an admin's action)."""
    auth.require(session, user, "activate_model")
    if session.get(tables.ModelVersion, int(version_id)) is None:
        raise KeyError(f"no model version {version_id}")
    store.activate_model(session, int(version_id), user=user)
    return pipeline.run_score(session, as_of=as_of(session), user=user)


def sensor_quality(session: Session) -> pd.DataFrame:
    """Per sensor: how often the leaks it saw were real when a crew checked (from field outcomes)."""
    return learn.sensor_precision(store.detections_frame(session), store.validations_frame(session))


# --------------------------------------------------------------------------------------------- runs


def ingest(session: Session, user: str, files: list[Path], fmt: str = "auto", source_name: str | None = None,
           progress=None, asset: str | None = None) -> list:
    """Validate every file's structure first (a bad file among several loads nothing), then load each in its
    own transaction. ``asset`` names the site of files that name none. Returns one ``IngestReport`` per file."""
    from .ingest import load_prepared, prepare_file

    auth.require(session, user, "ingest")
    prepared = [prepare_file(session, f, fmt, source_name, str(f), asset) for f in files]
    return [load_prepared(session, p, user=user, progress=progress) for p in prepared]


def ingest_upload(session: Session, user: str, path: Path, fmt: str = "auto", source_name: str | None = None,
                  label: str | None = None, asset: str | None = None):
    """One uploaded file (the app keeps going with the others when one is refused)."""
    from .ingest import ingest_file

    return ingest_file(session, path, fmt, source_name, user=user, label=label, asset=asset)


def import_assets(session: Session, user: str, path: Path) -> dict:
    return pipeline.import_assets(session, path, user=user)


def fuse_summary(r: dict) -> str:
    """One line on a fusion's result (full or incremental, and why), for the CLI and the Upload page."""
    return pipeline.fuse_summary(r)


def fuse(session: Session, user: str, full: bool = False, progress=None) -> dict:
    return pipeline.run_fuse(session, user=user, full=full, progress=progress)


def score(session: Session, user: str, as_of_time=None, progress=None) -> dict:
    return pipeline.run_score(session, as_of=as_of_time, user=user, progress=progress)


def fuse_and_score(session: Session, user: str, full: bool = False, progress=None) -> tuple[dict, dict]:
    """New detections into leaks, then every open leak re-scored now (the Upload page's one button)."""
    fz = pipeline.run_fuse(session, user=user, full=full,
                           progress=(lambda f, t: progress(0.5 * f, f"fuse: {t}")) if progress else None)
    sc = pipeline.run_score(session, user=user,
                            progress=(lambda f, t: progress(0.5 + 0.5 * f, f"score: {t}")) if progress else None)
    return fz, sc


def demo(session: Session, user: str = "demo", seed: int = 0, n_assets: int = 2000, progress=None) -> dict:
    return pipeline.run_demo(session, seed=seed, n_assets=n_assets, progress=progress, user=user)


def ensure_demo(session: Session) -> dict | None:
    """Fill an empty store that has no users with the demo basin (the README's run command relies on this)."""
    if store.counts(session)["detections"] == 0 and auth.open_mode(session):
        return pipeline.run_demo(session)
    return None


# --------------------------------------------------------------------------------------------- records


def batches(session: Session) -> pd.DataFrame:
    return store.batches_frame(session)


def audit_trail(session: Session, actor: str | None = None, action: str | None = None, target: str | None = None,
                since=None, until=None) -> pd.DataFrame:
    return store.audit_events(session, actor, action, target, since, until)


def leak_story(session: Session, leak_id: str) -> pd.DataFrame:
    return lineage.leak_story(session, leak_id)


def assets(session: Session) -> pd.DataFrame:
    return store.assets_frame(session)


def detections(session: Session, leak_ids: set[str] | None = None) -> pd.DataFrame:
    """Detections (all, or of ``leak_ids``), oldest first."""
    if leak_ids is not None and len(leak_ids) <= 500:
        D = tables.Detection
        d = pd.read_sql(select(D).where(D.leak_id.in_(sorted(leak_ids))).order_by(D.id),
                        session.connection())
        d["observed_at"] = pd.to_datetime(d["observed_at"], utc=True, format="ISO8601")
        return d
    d = store.detections_frame(session)
    return d if leak_ids is None else d[d["leak_id"].isin(leak_ids)]


def export_frame(session: Session, what: str, top: int | None = None) -> pd.DataFrame:
    """The frame behind ``mlpe export WHAT``."""
    if what == "leaks":
        return export_leaks(session, top=top)
    if what == "dispatch":
        return export_dispatch(session, top)
    return pipeline.export_frame(session, what, top)


# --------------------------------------------------------------------------------------------- answers per version

ANSWERS = AnswerCache(max_entries=256)  # this process's answers, per store and version (``mlpe_core.answers``)
LEAK_SORTS = ("rank", "priority_score", "est_rate_kg_h", "p_real", "last_seen", "first_seen", "n_detections",
              "due_by", "leak_id")  # what ``leaks_page`` sorts by; ``-name`` for descending
_ENGINE_SERIAL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SERIALS = itertools.count(1)


def store_key(session: Session) -> str:
    """Which store ``session`` is on, for keying cached answers: its URL (password hidden). An in-memory SQLite
    store exists only inside its engine, so its key also names the engine (two such stores never share)."""
    eng = session.get_bind()
    eng = getattr(eng, "engine", eng)
    url = eng.url
    key = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        if eng not in _ENGINE_SERIAL:
            _ENGINE_SERIAL[eng] = next(_SERIALS)
        key += f"#engine{_ENGINE_SERIAL[eng]}"
    return key


@dataclass(frozen=True)
class Snapshot:
    """The store as of one version stamp: the answers the faces poll for, each computed once per version and kept
    in :data:`ANSWERS` (the API serves from it; ``etag`` names the version for HTTP caches).

    Every answer is exactly what the uncached desk function returns for the same question (the effective ranking
    is :func:`ranking`, a page of it is :func:`ranking` with the filter, in the same order); answers are shared,
    so callers must not modify them."""

    session: Session
    store: str
    version: tuple

    @property
    def etag(self) -> str:
        """A strong entity tag for this store version (quoted, as HTTP sends it)."""
        digest = hashlib.sha256(repr((self.store, self.version)).encode()).hexdigest()[:20]
        return f'"{digest}"'

    def answer(self, question: tuple, compute):
        return ANSWERS.get(self.store, self.version, question, compute)

    def ranking(self) -> pd.DataFrame:
        """:func:`ranking` (every active leak, effective rank order), once per version."""
        return self.answer(("ranking",), lambda: ranking(self.session))

    def as_of(self) -> pd.Timestamp:
        return self.answer(("as_of",), lambda: as_of(self.session))

    def selection(self, flt: LeakFilter | None = None, sort: str = "rank") -> np.ndarray:
        """Row positions in :meth:`ranking` of the leaks ``flt`` keeps, in ``sort`` order (``rank``, the
        default, is the ranking's own order; ``-name`` sorts descending; ties keep the ranking's order)."""
        name = sort.lstrip("-")
        if name not in LEAK_SORTS:
            raise ValueError(f"sort '{sort}' is not one of {', '.join(LEAK_SORTS)} (prefix '-' for descending)")
        flt = flt or LeakFilter()

        def compute() -> np.ndarray:
            rk = self.ranking()
            sel = rk[flt.mask(rk, self.as_of())] if len(rk) else rk
            if sort != "rank" and len(sel):
                sel = sel.sort_values(name, ascending=not sort.startswith("-"), kind="stable", na_position="last")
            return rk.index.get_indexer(sel.index)

        return self.answer(("selection", flt.key(), sort), compute)

    def leaks_page(self, flt: LeakFilter | None = None, sort: str = "rank", offset: int = 0,
                   limit: int = 50) -> tuple[int, pd.DataFrame]:
        """(how many leaks ``flt`` keeps, the ``limit`` of them from ``offset`` in ``sort`` order)."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit are whole numbers ≥ 0")
        pos = self.selection(flt, sort)
        return len(pos), self.ranking().iloc[pos[offset:offset + limit]]

    def dispatch(self, top: int | None = None) -> pd.DataFrame:
        """:func:`export_dispatch`, once per version and ``top``."""
        return self.answer(("dispatch", top), lambda: export_dispatch(self.session, top, ranked=self.ranking()))

    def plan(self, top: int | None = None) -> tuple[dict, pd.DataFrame]:
        """:func:`plan` for the clock's day, once per version and ``top``."""
        return self.answer(("plan", top), lambda: plan(self.session, top, ranked=self.ranking()))

    def leak_detail(self, leak_id: str) -> dict:
        """:func:`leak_detail`, once per version and leak (an unknown leak raises ``KeyError`` each time)."""
        return self.answer(("leak", leak_id), lambda: leak_detail(self.session, leak_id, ranked=self.ranking()))

    def obligations(self) -> pd.DataFrame:
        return self.answer(("obligations",), lambda: obligations(self.session))


def snapshot(session: Session) -> Snapshot:
    """The store as of its current version (one cheap stamp read): see :class:`Snapshot`."""
    return Snapshot(session, store_key(session), version(session))
