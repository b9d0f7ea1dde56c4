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

import gc
import hashlib
import itertools
import json
import sys
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from .answers import AnswerCache
from .errors import BadInput, NotFound
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
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from . import auth, comply, dispatch, learn, lifecycle, lineage, pipeline, review, runlog, store
    from . import ingest as _ingest
    from . import outcomes as _outcomes
    from . import report as reporting
    from . import score as _score
    from . import sites as rollups
    from .ingest import tables as _tables
    from .settings import Settings
    from .store import models as tables
else:  # imported on first use: `mlpe --help` and `mlpe status` must not pay for pandas, the stages or the models
    np, pd = lazy("numpy"), lazy("pandas")
    auth, comply, dispatch = lazy("mlpe_core.auth"), lazy("mlpe_core.comply"), lazy("mlpe_core.dispatch")
    learn, lifecycle, lineage = lazy("mlpe_core.learn"), lazy("mlpe_core.lifecycle"), lazy("mlpe_core.lineage")
    pipeline, review, store = lazy("mlpe_core.pipeline"), lazy("mlpe_core.review"), lazy("mlpe_core.store")
    _score = lazy("mlpe_core.score")
    reporting, rollups = lazy("mlpe_core.report"), lazy("mlpe_core.sites")
    runlog, _ingest = lazy("mlpe_core.runlog"), lazy("mlpe_core.ingest")
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
    "Settings": "mlpe_core.settings",  # faces catch bad settings and configuration files by these names
    "SettingsError": "mlpe_core.settings",
    "ConfigFileError": "mlpe_core.settings",
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
    of each append-only table, of the run records and of the alerts, in one statement (six primary-key lookups,
    no scan).

    Every write that changes an answer appends to one of them in the same transaction: the audit trail records
    scores and re-scores, fusions, overrides, reviews, notes, plans and approvals, work-order status, notices,
    model changes, users and tokens; lifecycle moves (marks for dispatch, closes) append a leak event; field
    outcomes a validation; ingests a batch (``tests/test_api_cache.py`` checks each kind of write); the Runs and
    Alerts pages follow run records and alerts."""
    ids = [select(func.max(m.id)).scalar_subquery()
           for m in (tables.AuditEvent, tables.IngestBatch, tables.LeakEvent, tables.Validation, tables.RunRecord,
                     tables.Alert)]
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
            raise BadInput(f"risk band '{bad[0]}' is not one of {', '.join(RISK_BANDS)}")
        bad = sorted(set(self.statuses) - set(lifecycle.STATUSES))
        if bad:
            raise BadInput(f"status '{bad[0]}' is not one of {', '.join(lifecycle.STATUSES)}")

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
        raise BadInput(f"--date '{d}' is not a YYYY-MM-DD date", options=("date",)) from exc
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
        raise BadInput("--top must be ≥ 0", options=("top",))
    d = _plan_day(session, day)
    rk = ranking(session) if ranked is None else ranked
    vals = store.validations_frame(session)
    visited = lifecycle.validated_since_open(rk, vals)
    return dispatch.select_for_day(rk, visited, k, pd.Timestamp(d, tz="UTC") + pd.Timedelta(days=1))


def export_dispatch(session: Session, top: int | None = None, *, ranked: pd.DataFrame | None = None) -> pd.DataFrame:
    """``mlpe export dispatch``: the contract's dispatch columns of :func:`dispatch_candidates`."""
    cand = dispatch_candidates(session, top, ranked=ranked)
    return pipeline.round_export(cand.reindex(columns=list(DISPATCH_EXPORT_COLUMNS)))


DISPATCH_FILE_COLUMNS = (*DISPATCH_EXPORT_COLUMNS, "crew", "stop", "leg_km", "arrive_at", "on_time", "due_rule",
                         "work_order_id", "wo_status", "home_lat", "home_lon")
_DISPATCH_ROUNDING = {"leg_km": 2, "home_lat": 6, "home_lon": 6}


def dispatch_file(session: Session, top: int | None = None, list_id: int | None = None) -> pd.DataFrame:
    """The frame every dispatch file is written from, whichever face writes it (``mlpe export dispatch``, ``mlpe
    dispatch show ID``, the Dispatch page's downloads): the contract's dispatch columns first, then the route
    (crew, stop, leg km, planned arrival, on time), the deadline's rule, the work order and the crew's yard.

    With ``list_id``: that stored list, in crew and stop order. Without: the ``top`` leaks to visit next
    (:func:`dispatch_candidates`, rank order, exactly the contract's rows) routed for the plan day; a must-visit
    leak that does not fit the crews' day keeps its row with a blank crew."""
    if list_id is not None:
        df = dispatch.list_frame(session, int(list_id))
    else:
        cand = dispatch_candidates(session, top)
        d = _plan_day(session, None)
        if cand.empty:
            df = cand
        else:
            routed, _ = dispatch.route_day(cand, d)
            route = routed.set_index("leak_id")
            df = cand.copy()
            for c in ("crew", "stop", "leg_km", "arrive_at", "on_time", "home_lat", "home_lon"):
                if c in route:
                    df[c] = df["leak_id"].map(route[c])
            df["stop"] = df["stop"].astype("Int64")
    out = df.reindex(columns=list(DISPATCH_FILE_COLUMNS))
    out["arrive_at"] = pd.to_datetime(out["arrive_at"], utc=True, errors="coerce")
    out["due_by"] = pd.to_datetime(out["due_by"], utc=True, errors="coerce")
    out = pipeline.round_export(out).round(_DISPATCH_ROUNDING)
    return out.reset_index(drop=True)


def dispatch_download(session: Session, fmt: str, top: int | None = None, list_id: int | None = None,
                      unit: str = "kg/h") -> str | bytes:
    """One dispatch file as the command line writes it (csv, geojson, kml, xlsx or workorder JSON), for a face
    that hands it to a person (the Dispatch page's downloads): the same frame and the same writers."""
    from .export import render, to_workorders, write_xlsx

    if fmt == "workorder":
        doc = work_orders(session, list_id, top) if list_id is not None else to_workorders(
            dispatch_file(session, top))
        return json.dumps(doc, indent=1, allow_nan=False)
    df = dispatch_file(session, top, list_id)
    if fmt == "xlsx":
        return _xlsx_bytes(write_xlsx, dispatch_sheets(df, unit))
    return render(df, fmt, unit, title=dispatch_title(list_id))


def dispatch_title(list_id: int | None = None) -> str:
    """The title a dispatch KML carries (the same from every face)."""
    return f"MLPE dispatch list {list_id}" if list_id is not None else "MLPE dispatch"


def dispatch_sheets(df: pd.DataFrame, unit: str = "kg/h") -> dict:
    """A dispatch frame as workbook sheets for people: one per crew (stops in visit order), then anything not
    routed."""
    from .present import people_frame

    sheets = {}
    routed = df[df["crew"].notna()] if "crew" in df else df.iloc[0:0]
    for crew, g in routed.groupby(routed["crew"].astype(str), sort=True):
        sheets[f"Dispatch {crew}"] = people_frame(g.sort_values("stop"), "dispatch", unit)
    rest = df[df["crew"].isna()] if "crew" in df else df
    if len(rest) or not sheets:
        sheets["Dispatch not routed" if sheets else "Dispatch"] = people_frame(rest, "dispatch", unit)
    return sheets


def _xlsx_bytes(writer, sheets: dict) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "book.xlsx"
        writer(sheets, path)
        return path.read_bytes()


def workbook(session: Session, what: str = "leaks", top: int | None = None, unit: str = "kg/h",
             flt: LeakFilter | None = None) -> dict:
    """The sheets of an Excel workbook for people (``mlpe export WHAT --format xlsx``, the Rankings page): for
    ``leaks`` the ranked leaks (people's columns, rates in ``unit``), the day's dispatch per crew and the obligations;
    for ``dispatch`` the dispatch per crew; for ``detections`` and ``validations`` one sheet of them."""
    from .present import people_frame

    if what == "leaks":
        rk = ranking(session, flt)
        rk = rk[rk["rank"].notna()] if top is not None else rk
        rk = rk.head(top) if top is not None else rk
        sheets = {"Ranked leaks": people_frame(rk, "leaks", unit)}
        sheets.update(dispatch_sheets(dispatch_file(session), unit))
        sheets["Obligations"] = people_frame(obligations(session), "obligations", unit)
        return sheets
    if what == "dispatch":
        return dispatch_sheets(dispatch_file(session, top), unit)
    if what == "detections":
        return {"Detections": people_frame(export_frame(session, "detections", top), "detections", unit)}
    if what == "validations":
        if top is not None:
            raise BadInput(NO_TOP_VALIDATIONS)
        return {"Field outcomes": people_frame(outcomes(session), "validations", unit)}
    raise BadInput(f"unknown export '{what}' (leaks, detections, dispatch or validations)")


def workbook_bytes(session: Session, what: str = "leaks", unit: str = "kg/h", flt: LeakFilter | None = None) -> bytes:
    """:func:`workbook` as the bytes of an .xlsx file (the app's download)."""
    from .export import write_xlsx

    return _xlsx_bytes(write_xlsx, workbook(session, what, unit=unit, flt=flt))


def plan(session: Session, top: int | None = None, day: str | None = None, *,
         ranked: pd.DataFrame | None = None, proposal: bool = True) -> tuple[dict, pd.DataFrame]:
    """The plan for ``day`` (default: the clock's day): its approved list, else its draft, else a routed proposal
    (``proposal=False``: no proposal, status empty; routing one takes a few tenths of a second, which the field
    form, which only orders its leaks by a stored list, need not spend after every visit).

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
    cand = dispatch_candidates(session, top, d, ranked=ranked) if proposal else pd.DataFrame()
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
        raise BadInput(f"--top must be 1..{cap}: a dispatch list is one day of the crews' visits "
                         "(config/dispatch.yaml)", options=("top",))
    d = _plan_day(session, day)
    cand = dispatch_candidates(session, top, d)
    if cand.empty:
        raise BadInput("nothing to dispatch: no open, unvisited, ranked leak (run `mlpe score` first)")
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
        raise NotFound(f"no leak '{leak_id}'")
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
        raise BadInput("a note needs some text")
    if session.get(tables.Leak, leak_id) is None:
        raise NotFound(f"no leak '{leak_id}'")
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


# --------------------------------------------------------------------------------------------- sites and operators


def _bundle(session: Session) -> rollups.Bundle:
    """What every roll-up reads, once, as of the clock: the effective ranking, every clock (met ones too) and the
    detections, outcomes and coverage behind them."""
    clock = as_of(session)
    ob, _ = comply.obligation_queue(session, clock, include_met=True)
    return rollups.Bundle(clock, ranking(session), store.assets_frame(session), store.detections_frame(session),
                        store.validations_frame(session), store.coverage_frame(session), ob)


def worsening_sites(session: Session) -> pd.DataFrame:
    """Sites whose emissions got worse over the last ``sites.TREND_DAYS`` days before the clock, most certain first:
    asset_id, operator, evidence (in words), p_value, ratio (estimated emissions after/before), changed_on, z_count,
    z_rate, n_days, n_detected_days. The test and its measured precision and recall: ``trends``, docs/sites.md."""
    return rollups.worsening(_bundle(session))[
        ["asset_id", "operator", "evidence", "p_value", "ratio", "changed_on", "z_count", "z_rate", "n_days",
         "n_detected_days"]]


def sites(session: Session, bundle: rollups.Bundle | None = None) -> pd.DataFrame:
    """``mlpe sites``: one row per site with leaks (``sites.SITE_COLUMNS``), most expected methane first, plus
    ``worsening``, ``trend_p`` and ``trend_ratio`` from the trend test (blank for a site with too little data)."""
    b = bundle or _bundle(session)
    roll = rollups.site_rollup(b)
    tr = rollups.worsening(b, all_tested=True).set_index("asset_id")
    roll["worsening"] = roll["asset_id"].map(tr["worsening"]).fillna(False).astype(bool)
    roll["trend_p"] = roll["asset_id"].map(tr["p_value"])
    roll["trend_ratio"] = roll["asset_id"].map(tr["ratio"])
    return roll


def operators(session: Session) -> pd.DataFrame:
    """``mlpe operators``: one row per operator (``sites.OPERATOR_COLUMNS``), most expected methane first."""
    b = _bundle(session)
    return rollups.operator_rollup(b, rollups.worsening(b))


def site_detail(session: Session, asset_id: str) -> dict:
    """One site (``sites.site_detail``): its roll-up, leaks, detections per sensor through time, emissions through
    time with bounds, visits, lifecycle events, obligations and trend, as of the clock."""
    b = _bundle(session)
    lk = b.leaks[b.leaks["asset_id"] == asset_id]
    return rollups.site_detail(b, asset_id, store.leak_events_of(session, set(lk["leak_id"])))


def operator_detail(session: Session, operator: str) -> dict:
    """One operator (``sites.operator_detail``): its roll-up, sites, per-sensor precision from field outcomes,
    obligations, weekly series, worsening sites and the trend over its sites pooled."""
    b = _bundle(session)
    return rollups.operator_detail(b, operator, rollups.worsening(b))


def ranking_groups(session: Session, by: str, flt: LeakFilter | None = None) -> pd.DataFrame:
    """The (filtered) ranking grouped by site (``asset_id``) or ``operator`` (``sites.ranking_groups``)."""
    return rollups.ranking_groups(ranking(session, flt), by)


def group_ranking(ranked: pd.DataFrame, by: str) -> pd.DataFrame:
    """A ranking frame a face already filtered, grouped by site or operator (the Rankings page's grouped view)."""
    return rollups.ranking_groups(ranked, by)


def emissions(session: Session, start: str | None = None, end: str | None = None, operator: str | None = None) -> dict:
    """Estimated emissions of the fused leaks in [start, end) (dates; default: the year to the clock), by site and by
    source category, with a 90 % interval and the OGMP 2.0 level they support (``sites.emissions_summary``)."""
    b = _bundle(session)
    try:
        end_t = pd.Timestamp(date.fromisoformat(str(end)), tz="UTC") if end else b.as_of
        start_t = pd.Timestamp(date.fromisoformat(str(start)), tz="UTC") if start else end_t - pd.Timedelta(days=365)
    except ValueError as exc:
        raise BadInput(f"from/to must be YYYY-MM-DD dates ({exc})") from exc
    if end_t <= start_t:
        raise BadInput("the period must end after it starts")
    if operator is not None and operator not in set(b.assets["operator"].dropna()):
        raise NotFound(f"no operator '{operator}'")
    lk = b.leaks if operator is None else b.leaks[b.leaks["operator"] == operator]
    return rollups.emissions_summary(lk, b.vals, start_t, end_t, b.as_of)


def default_period(clock: pd.Timestamp) -> tuple[date, date]:
    """The last full calendar quarter before the clock (what an operator files)."""
    q0 = pd.Timestamp(clock).tz_convert("UTC").tz_localize(None).to_period("Q").start_time
    prev = (q0 - pd.Timedelta(days=1)).to_period("Q")
    return prev.start_time.date(), prev.end_time.date()


def report(session: Session, operator: str, start: date | str | None = None, end: date | str | None = None,
           user: str = "system") -> reporting.Report:
    """The regulator's report of ``operator`` for the clocks started from ``start`` to ``end`` (dates, UTC, both
    included; default the last full quarter before the clock), as of the clock: notifications, LDAR findings,
    action-level exceedances, totals by site type and emissions, each row citing its records (``report.build``)."""
    b = _bundle(session)
    clock = b.as_of
    d0, d1 = default_period(clock)
    try:
        a = date.fromisoformat(str(start)) if start else d0
        z = date.fromisoformat(str(end)) if end else (d1 if not start else clock.date())
    except ValueError as exc:
        raise BadInput(f"--from/--to must be YYYY-MM-DD dates ({exc})", options=("from", "to")) from exc
    if z < a:
        raise BadInput(f"--to {z} is before --from {a}", options=("from", "to"))
    leaks = b.leaks[b.leaks["operator"] == operator]
    events = store.leak_events_of(session, set(leaks["leak_id"]))
    audit = store.audit_by_actions(session, ["notification", "validation", *[f"lifecycle_{e}" for e in
                                                                               lifecycle.EVENTS]])
    audit = audit[audit["target"].isin(set(leaks["leak_id"])) | (audit["action"] == "notification")]
    notices = store.notifications_frame(session, with_ids=True)
    return reporting.build(b, operator, pd.Timestamp(a, tz="UTC"), pd.Timestamp(z, tz="UTC") + pd.Timedelta(days=1),
                           comply.load_rules(), notices, events, audit, store.chain_heads(session), user)


def render_report(rep: reporting.Report, fmt: str) -> bytes:
    """The report's file: ``pdf``, ``xlsx`` or ``json`` bytes."""
    return reporting.render(rep, fmt)


# --------------------------------------------------------------------------------------------- field outcomes


def _what_changed(res: dict, leak_ids: set[str]) -> dict:
    before, after = res["before"], res["after"]
    left = sorted(lid for lid in leak_ids if lid in before and lid not in after)
    moved = sum(1 for lid, r in after.items() if lid in before and before[lid] != r)
    return {"left_ranking": left, "moved": moved, "ranked": len(after)}


def record_outcomes(session: Session, user: str, rows: pd.DataFrame, label: str = "form",
                    rescore: bool = True) -> dict:
    """Check and record field outcomes (contract §2 columns, as text) and re-score the leaks they concern.

    Returns recorded, duplicates, rejected, rejects (row, column, reason: row 2 is the first data row) and
    ``changes`` (which leaks left the ranking, how many others moved). With ``rescore=False`` (the phone form,
    which must answer in under a second) the open leaks are re-ranked at once (a visited leak leaves the ranking
    before the answer) and ``pending`` names the leaks whose scores, clocks and bands :func:`rescore` should
    update next (about 2 s on the demo basin)."""
    auth.require(session, user, "validate")
    good, rejects = _tables.validate_validations(rows, store.leak_ids(session), label)
    res = _outcomes.record_validations(session, good, user) if len(good) else {
        "recorded": 0, "duplicates": 0, "rejected": 0, "rejects": rejects.iloc[0:0]}
    allrej = pd.concat([x for x in (rejects, res["rejects"]) if len(x)] or [rejects], ignore_index=True)
    allrej = allrej.sort_values("row", kind="stable").reset_index(drop=True)
    touched = set(res.get("leak_ids", []))
    pending: list[str] = []
    if not touched:
        changes = {"left_ranking": [], "moved": 0}
    elif rescore:
        changes = _what_changed(pipeline.rescore_leaks(session, touched, user="system"), touched)
    else:
        before = store.leaks_frame(session)
        before = before.loc[before["rank"].notna()].set_index("leak_id")["rank"].astype(int).to_dict()
        after = pipeline.rank_open(session)
        session.commit()
        changes, pending = _what_changed({"before": before, "after": after}, touched), sorted(touched)
    return {"rows": len(rows), "recorded": res["recorded"], "duplicates": res["duplicates"],
            "rejected": int(allrej["row"].nunique()) if len(allrej) else 0, "rejects": allrej, "changes": changes,
            "pending": pending}


def rescore(session: Session, leak_ids: list[str] | set[str]) -> dict:
    """Re-score ``leak_ids`` as of the scores' clock and re-rank (what :func:`record_outcomes` leaves pending)."""
    return pipeline.rescore_leaks(session, set(leak_ids), user="system")


def import_outcomes(session: Session, user: str, path: str | Path) -> dict:
    """``mlpe validations import``: record a file of field outcomes and re-score the leaks they concern."""
    auth.require(session, user, "validate")
    r = _outcomes.import_validations(session, path, user=user)
    touched = set(r.pop("leak_ids", []))
    r["changes"] = _what_changed(pipeline.rescore_leaks(session, touched, user="system"), touched) if touched else \
        {"left_ranking": [], "moved": 0}
    return r


def outcomes(session: Session, leak_id: str | None = None) -> pd.DataFrame:
    """Recorded field outcomes, newest visit first (by the visit's time, as the tables show it first; a visit
    recorded late from a paper sheet goes where its date puts it; ties: the later recorded first), contract §2
    columns plus recorded_at, recorded_by."""
    v = store.validations_frame(session)
    if leak_id is not None:
        v = v[v["leak_id"] == leak_id]
    cols = [*VALIDATION_COLUMNS, "found_by", "rate_method", "repair_attempted_at", "delay_reason", "recorded_at",
            "recorded_by"]
    v = v.sort_values(["visited_at", "recorded_at", "id"], ascending=False, na_position="last")
    return v.reindex(columns=cols).reset_index(drop=True)


# --------------------------------------------------------------------------------------------- review


def override_rank(session: Session, user: str, leak_id: str, after: int | None, reason: str) -> str:
    """Move a leak to rank ``after`` (None clears its override), with the reason; recorded with the ranks before."""
    rk = ranking(session)
    row = rk[rk["leak_id"] == leak_id]
    if row.empty or pd.isna(row.iloc[0]["rank"]):
        raise NotFound(f"no ranked leak '{leak_id}'")
    r = row.iloc[0]
    if after is not None and int(after) == int(r["rank"]):
        raise BadInput(f"{leak_id} is already at rank {after}")
    if after is None and pd.isna(r["override"]):
        raise BadInput(f"{leak_id} has no override to clear")
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
        raise NotFound(f"no model version {model_id}")
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
    """Fit a model from the field outcomes; promoted only if it beats the live one (recorded as a ``train`` run)."""
    auth.require(session, user, "train")
    with recorded(session, "train", user) as run:
        r = pipeline.run_train(session, user=user)
        run.detail = {k: v for k, v in r.items() if k != "model"}
        run.n_out = int(bool(r.get("promoted")))
        run.n_in = int(r.get("n_holdout", 0) or 0)
        if r.get("version") is None:
            run.outcome = "nothing"
    return r


def activate_model(session: Session, user: str, version_id: int) -> dict:
    """Roll back (or forward) to a recorded model version and re-score with it (an admin's action)."""
    auth.require(session, user, "activate_model")
    if session.get(tables.ModelVersion, int(version_id)) is None:
        raise NotFound(f"no model version {version_id}")
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
    with recorded(session, "ingest", user, target=", ".join(Path(f).name for f in files)[:500]) as run:
        prepared = [prepare_file(session, f, fmt, source_name, str(f), asset) for f in files]
        reports = [load_prepared(session, p, user=user, progress=progress) for p in prepared]
        _count_ingest(run, reports)
    return reports


def ingest_upload(session: Session, user: str, path: Path, fmt: str = "auto", source_name: str | None = None,
                  label: str | None = None, asset: str | None = None):
    """One uploaded file (the app keeps going with the others when one is refused)."""
    from .ingest import ingest_file

    auth.require(session, user, "ingest")
    with recorded(session, "ingest", user, target=label or Path(path).name) as run:
        rep = ingest_file(session, path, fmt, source_name, user=user, label=label, asset=asset)
        _count_ingest(run, [rep])
    return rep


def import_assets(session: Session, user: str, path: Path) -> dict:
    return pipeline.import_assets(session, path, user=user)


def fuse_summary(r: dict) -> str:
    """One line on a fusion's result (full or incremental, and why), for the CLI and the Upload page."""
    return pipeline.fuse_summary(r)


def fuse(session: Session, user: str, full: bool = False, progress=None, hand_over: bool = False,
         memory: store.DetectionMemory | None = None) -> dict:
    """Detections into leaks (incremental unless ``full``), recorded as a ``fuse`` run. ``hand_over``: an
    incremental fusion's answer carries ``detections_frame`` for ``score(dets=...)``; ``memory``: the detections a
    watcher holds between cycles (:func:`detection_memory`; both ``pipeline.run_fuse``)."""
    auth.require(session, user, "fuse")
    with recorded(session, "fuse", user) as run:
        r = pipeline.run_fuse(session, user=user, full=full, progress=progress, hand_over=hand_over, memory=memory)
        run.n_in = int(r.get("new_detections", r.get("detections", 0)) if r.get("mode") == "incremental"
                       else r.get("detections", 0))
        run.n_out = int(r.get("leaks", 0))
        # (ids: for score(changed=...); the frame: for score(dets=...))
        run.detail = {k: v for k, v in r.items() if k not in ("changed_leaks", "detections_frame")}
        if r.get("mode") == "incremental" and not r.get("refused"):
            run.outcome = "nothing"
    return r


def score(session: Session, user: str, as_of_time=None, progress=None, changed: list[str] | None = None,
          dets=None) -> dict:
    """Every open leak scored and ranked as of ``as_of_time`` (default now), recorded as a ``score`` run.

    ``changed`` (an incremental fusion's ``changed_leaks``): only the leaks it changed and those their change
    can reach are re-scored, as of the current scores' clock, and every open leak re-ranked
    (``pipeline.run_score_changed``; ``mode`` "incremental"); everything is scored now when there are no
    scores yet or they are more than a day old. ``dets``: with ``changed``, the detections frame that fusion
    handed over (``fuse(hand_over=True)``), so they are not read again."""
    auth.require(session, user, "score")
    with recorded(session, "score", user) as run:
        r = None
        if changed is not None and as_of_time is None:
            r = pipeline.run_score_changed(session, set(changed), user=user, progress=progress, dets=dets)
        if r is None:
            r = pipeline.run_score(session, as_of=as_of_time, user=user, progress=progress)
        run.n_in, run.n_out = int(r.get("scored", 0)), int(r.get("ranked", 0))
        run.detail = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
        if not r.get("scored"):
            run.outcome = "nothing"
    return r


def fuse_and_score(session: Session, user: str, full: bool = False, progress=None) -> tuple[dict, dict]:
    """New detections into leaks, then every open leak re-scored now (the Upload page's one button)."""
    fz = fuse(session, user, full=full,
              progress=(lambda f, t: progress(0.5 * f, f"fuse: {t}")) if progress else None)
    sc = score(session, user, progress=(lambda f, t: progress(0.5 + 0.5 * f, f"score: {t}")) if progress else None)
    return fz, sc


def demo(session: Session, user: str = "demo", seed: int = 0, n_assets: int = 2000, progress=None) -> dict:
    """A simulated basin through the whole pipeline (recorded as a ``demo`` run)."""
    auth.require(session, user, "demo")
    with recorded(session, "demo", user, target=f"seed {seed}") as run:
        r = pipeline.run_demo(session, seed=seed, n_assets=n_assets, progress=progress, user=user)
        run.n_out = int(r.get("detections", 0))
        run.detail = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
    return r


def ensure_demo(session: Session) -> dict | None:
    """Fill an empty store that has no users with the demo basin (the README's run command relies on this)."""
    if store.counts(session)["detections"] == 0 and auth.open_mode(session):
        with recorded(session, "demo", "demo", target="seed 0") as run:
            r = pipeline.run_demo(session)
            run.n_out = int(r.get("detections", 0))
        return r
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


OVERLAY_MAX_BYTES = 20 * 2**20  # a lease or boundary file drawn on every map: bigger ones are skipped


def map_overlays(spec: str) -> list[tuple[str, dict]]:
    """Outlines for the maps' orientation (leases, field or county boundaries): the GeoJSON files named in ``spec``
    (paths separated by the OS path separator, ``MLPE_MAP_LAYERS``), as (name, GeoJSON). A file that is missing,
    too big (over 20 MiB) or not GeoJSON is skipped: a map never fails for its decoration."""
    import os

    out = []
    for part in filter(None, (spec or "").split(os.pathsep)):
        p = Path(part).expanduser()
        try:
            if not p.is_file() or p.stat().st_size > OVERLAY_MAX_BYTES:
                continue
            gj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(gj, dict) and gj.get("type") in ("FeatureCollection", "Feature", "Polygon", "MultiPolygon",
                                                        "LineString", "MultiLineString"):
            out.append((p.stem, gj))
    return out


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


NO_TOP_VALIDATIONS = "--top applies to leaks, dispatch and detections exports, not to validations (field outcomes " \
                     "have no rank)"


def export_frame(session: Session, what: str, top: int | None = None) -> pd.DataFrame:
    """The frame behind ``mlpe export WHAT``. ``top``: the first K leaks in rank order, the K leaks to visit next,
    or the detections of the first K leaks (in their rank order); field outcomes have no rank (ValueError)."""
    if what == "leaks":
        return export_leaks(session, top=top)
    if what == "dispatch":
        return export_dispatch(session, top)
    if top is not None and what == "validations":
        raise BadInput(NO_TOP_VALIDATIONS)
    if top is not None and what == "detections":
        return top_detections(session, top)
    return pipeline.export_frame(session, what)


def top_detections(session: Session, top: int) -> pd.DataFrame:
    """``mlpe export detections --top K``: the detections of the first K leaks of the effective ranking, leak by leak
    in rank order (each leak's in the store's order), with the export's columns."""
    rk = ranking(session)
    ids = rk.loc[rk["rank"].notna(), "leak_id"].head(int(top)).tolist()
    d = pipeline.export_frame(session, "detections")
    d = d[d["leak_id"].isin(ids)]
    order = d["leak_id"].map({leak: i for i, leak in enumerate(ids)})
    return d.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- always on (issue 18)
# settings, run records, connectors (folder watcher, pull, POST /detections), alerts, live stamps and metrics.

_SETTINGS: dict = {}


def settings(reload: bool = False) -> Settings:
    """The validated ``MLPE_*`` settings, read once per process (``SettingsError`` names every bad variable)."""
    if reload or "s" not in _SETTINGS:
        from .settings import load as load_settings

        _SETTINGS["s"] = load_settings()
    return _SETTINGS["s"]


def setting_warnings() -> list[str]:
    """``MLPE_*`` variables no setting reads (likely typos), for a face to print at start."""
    from .settings import unknown_variables

    return unknown_variables()


def set_face(name: str) -> None:
    """Name the face this process serves (``cli``, ``api``, ``app``, ``watch``): recorded with every run."""
    runlog.set_face(name)


def _file_text(p: Path | None) -> dict | None:
    if p is None:
        return None
    try:
        return {"path": str(p), "text": Path(p).read_text(encoding="utf-8")}
    except OSError as exc:
        return {"path": str(p), "error": str(exc)}


def watch_config_path(explicit: str | Path | None = None) -> Path | None:
    s = settings()
    return Path(explicit).expanduser() if explicit else s.config_file("watch.yaml", s.watch_config)


def alerts_config_path() -> Path:
    from .config import config_path

    s = settings()
    return s.config_file("alerts.yaml", s.alerts_config) or config_path("alerts.yaml")


def config_snapshot(watch_config: str | Path | None = None) -> dict:
    """The configuration a run uses: settings (secrets only as 'set') and the text of every configuration file."""
    from .config import FILES, config_path

    files = {name: _file_text(config_path(name)) for name in FILES}
    files["watch.yaml"] = _file_text(watch_config_path(watch_config))
    files["alerts.yaml"] = _file_text(alerts_config_path())
    return {"settings": settings().public(), "files": files}


def store_name(session: Session) -> str:
    """The store a session writes, as a person names it: a SQLite file's path, or a server's URL without its
    password."""
    url = session.get_bind().url
    if url.drivername.startswith("sqlite"):
        return url.database or "in memory"
    return url.render_as_string(hide_password=True)


@contextmanager
def recorded(session: Session, kind: str, user: str, target: str | None = None, source: str | None = None):
    """Time a run (``runlog.Run``: laps the stages mark) and write its record when it ends, ok or failed.

    A record that cannot be written (the store gone) is reported on stderr, never raised over the run's own
    result or error."""
    run = runlog.Run(kind=kind, target=target, actor=user, source=source or runlog.face())
    try:
        with run:
            yield run
    finally:
        try:
            if run.outcome == "failed":
                session.rollback()
            cfg = config_snapshot()
            cfg["settings"]["db"] = store_name(session)  # the store this run used (--db), not only $MLPE_DB's
            store.runs.save_run(session, run, model_version=store.runs.active_model_id(session),
                                code_version=runlog.code_version(), config=cfg)
            session.commit()
        except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more than its record
            session.rollback()
            print(f"mlpe: warning: could not record the {kind} run: {exc}", file=sys.stderr)


def _count_ingest(run: runlog.Run, reports: list) -> None:
    run.n_in += sum(int(r.n_rows) for r in reports)
    run.n_out += sum(int(r.n_accepted) for r in reports)
    run.n_rejected += sum(int(r.n_rejected) for r in reports)
    run.detail.setdefault("files", []).extend(
        {"file": r.file_name, "sha256": r.sha256, "format": r.format, "rows": int(r.n_rows),
         "accepted": int(r.n_accepted), "rejected": int(r.n_rejected), "duplicate": int(r.n_duplicate),
         "already_ingested": bool(r.already_ingested), "batch_id": r.batch_id} for r in reports)
    if all(r.already_ingested or r.n_accepted == 0 for r in reports):
        run.outcome = "nothing"


def _run_frame(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["model_version"] = df["model_version"].astype("Int64")
    df["stages"] = df["stages"].map(lambda s: [(k, float(v)) for k, v in json.loads(s or "[]")])
    df["detail"] = df["detail"].map(lambda s: json.loads(s) if isinstance(s, str) and s else {})
    return df


def runs(session: Session, limit: int | None = 200, kind: str | None = None) -> pd.DataFrame:
    """Recorded runs, newest first: kind, source, target, who, start, end, seconds, ``stages`` (a list of
    (stage, seconds) in order), counts in and out, rejects, model and code versions, config hash, outcome, error."""
    return _run_frame(store.runs.runs_frame(session, limit, kind))


def run_config(session: Session, config_hash: str) -> dict | None:
    """The configuration snapshot a run recorded (by its hash)."""
    return store.runs.snapshot(session, config_hash)


def stage_times(session: Session, last: int = 30, kind: str | None = None) -> pd.DataFrame:
    """One row per (run, stage) of the last ``last`` runs: id, kind, started_at, stage, seconds (for a chart)."""
    rs = runs(session, last, kind)
    rows = [{"id": r.id, "kind": r.kind, "started_at": r.started_at, "stage": st, "seconds": sec}
            for r in rs.itertuples() for st, sec in r.stages]
    return pd.DataFrame(rows, columns=["id", "kind", "started_at", "stage", "seconds"])


# ---- connectors


def watch_options(config: str | Path | None = None):
    """The validated watch and connectors file (``--config``, ``MLPE_WATCH_CONFIG``, ``watch.yaml`` in
    ``MLPE_CONFIG_DIR``; none: defaults, folder watching only)."""
    from .connectors import load_watch_config

    return load_watch_config(watch_config_path(config))


def open_inbox(folder: str | Path, options) -> object:
    """The folder's inbox (``connectors.Inbox``) with the options' settle time and ignored names."""
    from .connectors import Inbox

    return Inbox(folder, options.settle_s, options.ignore)


def _reject_lines(rejects: pd.DataFrame, limit: int = 1000) -> str:
    lines = [f"row {r.row}, column '{r.column}': {r.reason}" for r in rejects.head(limit).itertuples()]
    if len(rejects) > limit:
        lines.append(f"... {len(rejects) - limit} more")
    return "\n".join(lines)


def recover_watched(session: Session, inbox) -> list[str]:
    """Files a stopped or killed watcher left mid-load: those whose rows were committed are finished (marked
    loaded, moved to done/); the others stay in the folder and load on the next cycle. Exactly once either way,
    because the ingest itself refuses bytes it has loaded."""
    from .connectors.folder import DONE

    said = []
    for rec in store.connectors.files_in_state(session, "loading", folder=str(inbox.folder)):
        batch = store.connectors.batch_for_sha(session, rec.sha256)
        path = inbox.folder / rec.name
        if batch is not None:
            store.connectors.mark_file(session, rec.folder, rec.name, rec.sha256, rec.size, "loaded",
                                       batch_id=batch.id, reason="finished after a restart (rows committed before)")
            session.commit()
            if path.exists():
                inbox.move(path, DONE)
            said.append(f"{rec.name}: its rows were committed before the stop; finished")
        else:
            store.connectors.mark_file(session, rec.folder, rec.name, rec.sha256, rec.size, "interrupted",
                                       reason="the watcher stopped mid-load; nothing was committed")
            session.commit()
            said.append(f"{rec.name}: nothing was committed before the stop; loading it again")
    return said


def watch_file(session: Session, user: str, inbox, path: Path, options) -> dict:
    """One settled file: loaded once (to done/), recognised as bytes already loaded (to done/, with a note), or
    refused with its reasons (to rejects/ with NAME.reasons.txt). A failure that is not the file's fault (the
    store unreachable) leaves it in place for the next cycle, up to ``options.retries`` tries."""
    from .connectors.folder import DONE, REJECTS
    from .ingest import file_sha256, load_prepared, prepare_file

    folder = str(inbox.folder)
    try:
        sha, size = file_sha256(path), path.stat().st_size
    except FileNotFoundError:
        return {"file": path.name, "state": "gone"}
    batch = store.connectors.batch_for_sha(session, sha)
    prev = store.connectors.watched_file(session, sha)
    if batch is not None:
        finished = prev is not None and prev.state == "loading"
        state = "loaded" if finished else "duplicate"
        why = None if finished else f"same bytes as '{batch.file_name}' (batch {batch.id}), already loaded: " \
                                    "nothing loaded again"
        store.connectors.mark_file(session, folder, path.name, sha, size, state, batch_id=batch.id, reason=why)
        session.commit()
        inbox.move(path, DONE, reasons=why)
        return {"file": path.name, "state": state, "batch_id": batch.id, "accepted": 0}
    store.connectors.mark_file(session, folder, path.name, sha, size, "loading", attempt=True)
    session.commit()  # before the ingest transaction: a kill from here on is found by recover_watched
    try:
        with recorded(session, "ingest", user, target=path.name, source="watch") as run:
            prep = prepare_file(session, path, options.format, options.source_name, path.name, options.asset)
            rep = load_prepared(session, prep, user=user)
            _count_ingest(run, [rep])
    except (_ingest.IngestError, ValueError) as exc:
        store.connectors.mark_file(session, folder, path.name, sha, size, "rejected", reason=str(exc))
        session.commit()
        inbox.move(path, REJECTS, reasons=f"{exc}\n\nNothing from this file was loaded.")
        return {"file": path.name, "state": "rejected", "reason": str(exc), "accepted": 0}
    except Exception as exc:  # noqa: BLE001 - not the file's fault: try again next cycle, then give up visibly
        session.rollback()
        rec = store.connectors.mark_file(session, folder, path.name, sha, size, "error",
                                         reason=f"{type(exc).__name__}: {exc}")
        session.commit()
        if rec.attempts >= options.retries:
            inbox.move(path, REJECTS, reasons=f"failed {rec.attempts} times; last: {type(exc).__name__}: {exc}")
            return {"file": path.name, "state": "rejected", "reason": str(exc), "accepted": 0}
        return {"file": path.name, "state": "error", "reason": str(exc), "accepted": 0}
    reasons = None
    if rep.n_rejected:
        reasons = f"{rep.summary()}\n\nRejected rows (row 2 is the first data row):\n{_reject_lines(rep.rejects)}"
    all_bad = rep.n_accepted == 0 and rep.n_rejected > 0 and not rep.already_ingested
    state = "rejected" if all_bad else "loaded"
    store.connectors.mark_file(session, folder, path.name, sha, size, state, batch_id=rep.batch_id,
                               reason=rep.summary())
    session.commit()
    inbox.move(path, REJECTS if all_bad else DONE, reasons=reasons)
    return {"file": path.name, "state": state, "accepted": int(rep.n_accepted), "rejected": int(rep.n_rejected),
            "duplicate": int(rep.n_duplicate), "batch_id": rep.batch_id}


def pull(session: Session, user: str, conn) -> dict:
    """One cycle of a pull connector: fetch what is newer than its watermark, load it as one batch, move the
    watermark only once the rows are committed. Recorded as a ``pull`` run; a failure is recorded on the
    connector (``/metrics`` shows its lag) and raised."""
    import tempfile

    from .connectors import PullError, fetch
    from .ingest import load_prepared, prepare_file

    auth.require(session, user, "ingest")
    name = f"pull:{conn.name}"
    st = store.connectors.connector_state(session, name)
    since = st.watermark if st is not None and st.watermark is not None else conn.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with recorded(session, "pull", user, target=conn.name, source=name) as run:
        try:
            res = fetch(conn, since)
        except PullError as exc:
            session.rollback()
            store.connectors.connector_beat(session, name, conn.kind, ok=False, error=str(exc))
            session.commit()
            raise
        run.lap("fetch")
        run.detail.update(pages=res.pages, requests=res.requests, retries=res.retries, truncated=res.truncated,
                          since=since.isoformat() if since else None)
        out = {"connector": conn.name, "records": len(res.records), "pages": res.pages, "retries": res.retries,
               "accepted": 0, "watermark": res.watermark.isoformat() if res.watermark else None}
        if not res.records:
            run.outcome = "nothing"
            store.connectors.connector_beat(session, name, conn.kind, ok=True, watermark=res.watermark)
            session.commit()
            return out
        wm = res.watermark.strftime("%Y%m%dT%H%M%SZ") if res.watermark else "undated"
        label = f"{conn.name}-to-{wm}.json"
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / label
            p.write_text(json.dumps(res.records, default=str), encoding="utf-8")
            try:
                rep = load_prepared(session, prepare_file(session, p, conn.format, None, label), user=user)
            except (_ingest.IngestError, ValueError) as exc:
                session.rollback()
                store.connectors.connector_beat(session, name, conn.kind, ok=False, error=str(exc))
                session.commit()
                raise
        _count_ingest(run, [rep])
        store.connectors.connector_beat(session, name, conn.kind, ok=True, loaded=rep.n_accepted,
                                        watermark=res.watermark)
        session.commit()
        out.update(accepted=int(rep.n_accepted), rejected=int(rep.n_rejected), duplicate=int(rep.n_duplicate))
    return out


def connector_heartbeat(session: Session, name: str, kind: str = "folder", loaded: int = 0) -> None:
    """A connector is alive (``/metrics``: its lag is the time since its last good cycle)."""
    store.connectors.connector_beat(session, name, kind, ok=True, loaded=loaded)
    session.commit()


def connectors_status(session: Session) -> pd.DataFrame:
    """Every connector: kind, watermark, last run, last success, last error, runs, failures, rows loaded, and
    ``lag_s`` (seconds since its last success, as of now)."""
    df = store.connectors.connectors_frame(session)
    now = pd.Timestamp.now(tz="UTC")
    df["lag_s"] = (now - df["last_ok_at"]).dt.total_seconds() if len(df) else pd.Series(dtype=float)
    return df


def watched_files(session: Session, limit: int = 500) -> pd.DataFrame:
    """What the folder watcher did with each file, newest first."""
    return store.connectors.watched_files_frame(session, limit)


def has_unfused(session: Session) -> bool:
    """Whether detections wait for a fusion (loaded by any face since the last one)."""
    return store.connectors.any_unfused(session)


def detection_memory() -> store.DetectionMemory:
    """What a long-running watcher keeps of every detection between its cycles (the columns a fusion and the
    re-score after it read), so a cycle reads only the new rows (``store.DetectionMemory``)."""
    return store.DetectionMemory(pipeline.MEMORY_COLUMNS)


def warm_up(session: Session | None = None, memory: store.DetectionMemory | None = None) -> float:
    """Load the fusion and scoring code now (``pipeline.warm_up``: ~1.3 s) and, with a session and a ``memory``,
    fill it from the store (``pipeline.remember_detections``: ~6 s at a million detections), as a watcher does when
    it starts; seconds taken."""
    t0 = time.perf_counter()
    pipeline.warm_up()
    if session is not None and memory is not None:
        pipeline.remember_detections(session, memory)
        session.rollback()  # end the read transaction: a long-lived reader must not pin an old snapshot
        # what a watcher holds from its start on (the code, the memory's rows) lives as long as it does: out of the
        # cyclic collector's reach, a full collection in a cycle no longer walks its ~200,000 objects (0.15 s of a
        # 4 s update at 1M detections). Reference counting still frees any of them that are dropped.
        gc.collect()
        gc.freeze()
    return time.perf_counter() - t0


def process_new(session: Session, user: str, lap=None, alerts: bool = True,
                memory: store.DetectionMemory | None = None) -> dict:
    """Fuse what is new, score, then check the alert rules and deliver (the watcher's and ``POST /detections?
    process=true``'s follow-up). Each step is its own recorded run; ``lap(step)`` is called after each.
    ``alerts=False`` stops at the updated ranking (``benchmarks/live.py``).

    After an incremental fusion only the leaks it changed are re-scored, from the detections the fusion read
    (handed over with the leak ids it wrote: a million rows are read once a cycle, not twice). ``memory`` (a
    watcher's :func:`detection_memory`): the fusion reads only the rows stored since the last cycle."""
    fz = fuse(session, user, hand_over=True, memory=memory)
    frame = fz.pop("detections_frame", None)
    if lap:
        lap("fuse")
    sc = score(session, user, changed=fz.get("changed_leaks"), dets=frame)
    del frame
    if lap:
        lap("score")
    if not alerts:
        return {"fuse": fz, "score": sc}
    al = check_alerts(session, user, kinds=CYCLE_ALERT_KINDS)
    if lap:
        lap("alerts")
    return {"fuse": fz, "score": sc, "alerts": al}


# what new detections set off at once; deadlines and site trends move on a scale of days and read the whole store
# (the obligations queue, every site's trend: minutes at a million detections), so they are checked on the
# watcher's timer (``alerts_every_s``, 15 minutes by default) and by ``mlpe alerts check``, not after every cycle
CYCLE_ALERT_KINDS = ("new_high_leak", "failed_repair", "burst")


def watch_cycle(session: Session, user: str, inbox, options, files: list[Path], pulls: list = (),
                memory: store.DetectionMemory | None = None) -> dict:
    """One cycle of ``mlpe watch``: every settled file, the pull connectors that are due, then (when anything new
    waits) fuse, score and the alert rules. Recorded as a ``watch`` run whose stages are those steps."""
    with recorded(session, "watch", user, target=str(inbox.folder), source="watch") as run:
        results = [watch_file(session, user, inbox, p, options) for p in files]
        run.lap("files")
        pulled, failed = [], []
        for conn in pulls:
            try:
                pulled.append(pull(session, user, conn))
            except Exception as exc:  # noqa: BLE001 - one catalogue down never stops the folder
                failed.append({"connector": conn.name, "error": str(exc)})
        if pulls:
            run.lap("pull")
        loaded = sum(r.get("accepted", 0) for r in results) + sum(p.get("accepted", 0) for p in pulled)
        summary: dict = {"files": results, "pulled": pulled, "pull_failed": failed, "accepted": loaded}
        if has_unfused(session):  # the follow-up POST /detections?process=true makes (it used to score in full)
            summary.update(process_new(session, user, lap=run.lap, memory=memory))
        run.n_in = len(results) + len(pulled)
        run.n_out = loaded
        run.n_rejected = sum(1 for r in results if r["state"] == "rejected")
        run.detail = {"files": [{k: v for k, v in r.items() if k != "reason"} for r in results], "pulled": pulled,
                      "pull_failed": failed}
        if not loaded and "fuse" not in summary:
            run.outcome = "nothing"
        store.connectors.connector_beat(session, f"folder:{inbox.folder}", "folder", ok=True, loaded=loaded)
        session.commit()
    return summary


class IdempotencyConflict(ValueError):
    """An ``Idempotency-Key`` already used for a different body."""


def post_detections(session: Session, user: str, body: bytes, content_type: str, key: str | None = None,
                    fmt: str = "auto", source_name: str | None = None, process: bool = False) -> tuple[int, dict]:
    """``POST /detections``: canonical JSON (an array of objects, ``{"detections": [...]}`` or GeoJSON) or CSV,
    checked and loaded exactly like a file (same limits, same reasons, the same bytes never twice). With an
    ``Idempotency-Key`` a retried request gets the first answer (``replayed: true``); the same key with another
    body is refused. ``process`` fuses, scores and checks alerts before answering. Returns (status, answer)."""
    import hashlib
    import tempfile

    from .ingest import load_prepared, prepare_file

    auth.require(session, user, "ingest")
    sha = hashlib.sha256(body).hexdigest()
    if key is not None:
        prev = store.connectors.idempotent_answer(session, key)
        if prev is not None:
            if prev.sha256 != sha:
                raise IdempotencyConflict(f"Idempotency-Key '{key}' was used for a different body")
            return prev.status_code, {**json.loads(prev.response), "replayed": True}
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in ("application/json", "application/geo+json"):
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _ingest.IngestError("request body", f"is not JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("detections"), list):
            data = data["detections"]
        elif isinstance(data, dict) and data.get("type") != "FeatureCollection":
            data = [data]
        if isinstance(data, list) and not data:
            raise _ingest.IngestError("request body", "holds no detections")
        payload, suffix = json.dumps(data).encode("utf-8"), ".json"
    elif ctype in ("text/csv", "application/csv", "text/plain"):
        payload, suffix = body, ".csv"
    else:
        raise _ingest.IngestError("request body",
                                  f"content type '{ctype or 'none'}' is not application/json or text/csv")
    label = f"api-{key or sha[:12]}{suffix}"
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "body"
        p = p.with_suffix(suffix)
        p.write_bytes(payload)
        with recorded(session, "ingest", user, target=label, source="api") as run:
            rep = load_prepared(session, prepare_file(session, p, fmt, source_name, label), user=user)
            _count_ingest(run, [rep])
    answer = {"file": label, "format": rep.format, "rows": int(rep.n_rows), "accepted": int(rep.n_accepted),
              "rejected": int(rep.n_rejected), "duplicate": int(rep.n_duplicate),
              "already_ingested": bool(rep.already_ingested), "batch_id": rep.batch_id,
              "rejects": [{"row": int(r.row), "column": str(r.column), "reason": str(r.reason)}
                          for r in rep.rejects.head(100).itertuples()], "replayed": False, "processed": False}
    if process and rep.n_accepted:
        res = process_new(session, user)
        answer.update(processed=True, leaks=res["fuse"].get("leaks"), new_alerts=res["alerts"].get("new", 0))
    if key is not None:
        try:
            store.connectors.save_idempotent_answer(session, key, user, sha, 200, answer)
            session.commit()
        except Exception:  # noqa: BLE001 - a concurrent retry with the same key won: its answer stands
            session.rollback()
    return 200, answer


# ---- alerts

_ALERT_CFG: dict = {}


def alert_config():
    """The validated alert rules, teams and channels (re-read when the file changes)."""
    from .alerts import load_alert_config

    p = alerts_config_path()
    stamp = (str(p), p.stat().st_mtime_ns if p.exists() else 0)
    if _ALERT_CFG.get("stamp") != stamp:
        _ALERT_CFG.update(stamp=stamp, cfg=load_alert_config(p))
    return _ALERT_CFG["cfg"]


ALERT_FIELDS = ("key", "rule", "kind", "severity", "title", "detail", "leak_id", "asset_id", "operator", "asset_type",
                "team", "event_at")


def check_alerts(session: Session, user: str = "system", deliver: bool = True,
                 kinds: tuple[str, ...] | None = None) -> dict:
    """Run the alert rules on the store as it is now, record the new alerts (a key seen before adds nothing),
    queue each for its team's channels and deliver what is due. Recorded as an ``alerts`` run. ``kinds`` limits
    the rules checked to those kinds (:data:`CYCLE_ALERT_KINDS` after a watch cycle); all by default."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from .alerts import evaluate

    cfg = alert_config()
    if kinds is not None:
        cfg = cfg.model_copy(update={"rules": [r for r in cfg.rules if r.kind in kinds]})
    kinds = {r.kind for r in cfg.rules if r.enabled}
    with recorded(session, "alerts", user) as run:
        now = pipeline.clock()
        leaks = ranking(session) if kinds & {"new_high_leak", "failed_repair"} else pd.DataFrame()
        obl = obligations(session) if "obligation_due" in kinds else pd.DataFrame()
        bursts = [r for r in cfg.rules if r.enabled and r.kind == "burst"]
        alarms = store.connectors.recent_alarms(
            session, (now - pd.Timedelta(hours=max(r.lookback_hours for r in bursts))).to_pydatetime(),
            sorted({t for r in bursts for t in r.source_types})) if bursts else pd.DataFrame()
        worse = worsening_sites(session) if "worsening_site" in kinds else pd.DataFrame()
        assets_ = store.assets_frame(session)
        run.lap("read")
        found = evaluate(cfg, leaks=leaks, obligations=obl, alarms=alarms, worsening_sites=worse, assets=assets_,
                         now=now, open_statuses=lifecycle.OPEN_STATUSES)
        run.lap("evaluate")
        rows = []
        for a in found:
            d = dict(a.get("detail") or {})
            for k in ("latitude", "longitude"):
                if a.get(k) is not None:
                    d[k] = a[k]
            row = {k: a.get(k) for k in ALERT_FIELDS} | {"detail": d}
            row["event_at"] = pd.Timestamp(row["event_at"]).to_pydatetime() if row["event_at"] is not None and \
                pd.notna(row["event_at"]) else None
            rows.append(row)
        for attempt in range(3):
            try:
                new = store.alerts.insert_alerts(session, rows)
                for a in new:
                    store.alerts.add_deliveries(session, a.id, cfg.channels(a.team))
                ids = [int(a.id) for a in new]
                session.commit()
                break
            except IntegrityError:  # another process recorded some of these keys meanwhile: skip them now
                session.rollback()
                if attempt:
                    raise
            except OperationalError as exc:  # a writer held the store past the busy timeout: minutes of checking
                session.rollback()           # are not thrown away for that, the record is tried again
                if "locked" not in str(exc) or attempt == 2:
                    raise
        run.lap("record")
        out = {"found": len(found), "new": len(ids), "ids": ids}
        if deliver:
            out["delivery"] = deliver_alerts(session)
            run.lap("deliver")
        run.n_in, run.n_out = len(found), len(ids)
        run.detail = {"new": ids[:200], "by_rule": pd.Series([r["rule"] for r in rows]).value_counts().to_dict()
                      if rows else {}}
        if not ids:
            run.outcome = "nothing"
    return out


def _alert_dict(a) -> dict:
    from .export import iso_utc

    d = a.model_dump()
    d["detail"] = json.loads(d.get("detail") or "{}")
    for k in ("event_at", "created_at", "snoozed_until", "handled_at"):
        d[k] = iso_utc(d.get(k))
    return d


def deliver_alerts(session: Session) -> dict:
    """Send every delivery that is due; a failure is retried later with back-off (``MLPE_DELIVERY_ATTEMPTS``
    tries, then marked failed, still listed). Returns how many were sent, will be retried, gave up."""
    from .alerts import backoff_s, email_message, send_email, send_webhook, webhook_payload

    s = settings()
    out = {"sent": 0, "retrying": 0, "failed": 0}
    due = store.alerts.due_deliveries(session)
    if not due:
        return out
    cfg = alert_config()
    for d in due:
        a = _alert_dict(store.alerts.get_alert(session, d.alert_id))
        try:
            if d.channel == "webhook":
                hook = cfg.webhook(d.target)
                if hook is None:
                    raise RuntimeError(f"webhook '{d.target}' is no longer in the alert configuration")
                send_webhook(hook.resolved_url(), webhook_payload(a, hook.format, s.app_url), s.webhook_timeout_s)
            elif d.channel == "email":
                em = cfg.email(d.target)
                if em is None:
                    raise RuntimeError(f"e-mail list '{d.target}' is no longer in the alert configuration")
                send_email(email_message(a, s.smtp_from, em.to, s.app_url), s.smtp_host, s.smtp_port,
                           user=s.smtp_user, password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                           starttls=s.smtp_starttls, timeout_s=s.smtp_timeout_s)
            else:
                raise RuntimeError(f"unknown channel '{d.channel}'")
            store.alerts.record_attempt(session, d, ok=True)
            out["sent"] += 1
        except Exception as exc:  # noqa: BLE001 - recorded on the delivery, retried, never silently dropped
            give_up = (d.attempts or 0) + 1 >= s.delivery_attempts
            nxt = store.now() + pd.Timedelta(seconds=backoff_s((d.attempts or 0) + 1)).to_pytimedelta()
            store.alerts.record_attempt(session, d, ok=False, error=str(exc), next_at=nxt, give_up=give_up)
            out["failed" if give_up else "retrying"] += 1
        session.commit()
    return out


def _effective_state(df: pd.DataFrame, now: pd.Timestamp) -> pd.Series:
    woke = (df["state"] == "snoozed") & df["snoozed_until"].notna() & (df["snoozed_until"] <= now)
    return df["state"].where(~woke, "open")


def alerts_inbox(session: Session, state: str | None = "open", team: str | None = None,
                 limit: int | None = 500) -> pd.DataFrame:
    """Alerts, most severe first (high, medium, low, information), newest first within a severity, so a dozen
    medium alerts never bury a high one; with ``deliveries`` (what was sent where). ``state``: open (default;
    snoozed ones whose time is up count as open), acknowledged, snoozed, or None for all."""
    df = store.alerts.alerts_frame(session, limit=None)  # the limit after the sort: the most severe, in every state
    if df.empty:
        return df
    df["state"] = _effective_state(df, pd.Timestamp.now(tz="UTC"))
    if state:
        df = df[df["state"] == state]
    if team:
        df = df[df["team"] == team]
    order = df["severity"].map(SEVERITY_ORDER).fillna(len(SEVERITY_ORDER))
    df = df.assign(_o=order).sort_values(["_o", "id"], ascending=[True, False], kind="stable").drop(columns="_o")
    return (df.head(limit) if limit else df).reset_index(drop=True)


SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


def last_alert_check(session: Session) -> pd.Timestamp | None:
    """When the alert rules were last checked (the newest ``alerts`` run's start), None when never."""
    r = store.runs.runs_frame(session, 1, "alerts")
    return None if r.empty else pd.Timestamp(r["started_at"].iloc[0])


def open_alert_count(session: Session) -> int:
    """Open alerts (snoozed ones whose time is up included): the count beside the inbox."""
    return store.alerts.open_alert_count(session)


def alert_deliveries(session: Session, alert_ids: list[int] | None = None) -> pd.DataFrame:
    """Deliveries (channel, target, state, attempts, next try, last error), newest first."""
    return store.alerts.deliveries_frame(session, alert_ids)


def acknowledge_alert(session: Session, user: str, alert_id: int, reason: str) -> dict:
    """Someone has it in hand: the alert leaves the inbox (audited with the reason)."""
    auth.require(session, user, "alerts")
    if not (reason or "").strip():
        raise BadInput("acknowledging an alert needs a reason")
    return _alert_dict(store.alerts.set_alert_state(session, alert_id, "acknowledged", user, reason.strip()))


def snooze_alert(session: Session, user: str, alert_id: int, reason: str, hours: float | None = None,
                 until=None) -> dict:
    """Out of the inbox until ``until`` (or for ``hours``), then back (audited with the reason)."""
    auth.require(session, user, "alerts")
    if not (reason or "").strip():
        raise BadInput("snoozing an alert needs a reason")
    if until is None:
        if hours is None or not 0 < float(hours) <= 24 * 365:
            raise BadInput("snooze for 0 to 8760 hours, or until a time")
        until = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=float(hours))
    until = pd.Timestamp(until)
    until = until.tz_localize("UTC") if until.tzinfo is None else until.tz_convert("UTC")
    if until <= pd.Timestamp.now(tz="UTC"):
        raise BadInput("a snooze must end in the future")
    return _alert_dict(store.alerts.set_alert_state(session, alert_id, "snoozed", user, reason.strip(),
                                                    until.to_pydatetime()))


def alerts_after(session: Session, after_id: int, limit: int = 100) -> list[dict]:
    """Alerts newer than ``after_id``, oldest first (the live stream)."""
    df = store.alerts.alerts_frame(session, limit=limit, after_id=after_id)
    from .export import json_records

    if df.empty:
        return []
    df = df.sort_values("id")
    df["detail"] = df["detail"].map(lambda s: json.loads(s) if isinstance(s, str) and s else {})
    return json_records(df)


# ---- live


def live_stamp(session: Session) -> dict:
    """What an open page compares to notice news without a reload: the newest run and alert ids and the open
    alert count (three indexed lookups)."""
    return {"run": store.runs.last_run_id(session), "alert": store.alerts.last_alert_id(session),
            "open_alerts": store.alerts.open_alert_count(session)}


def changes_since(session: Session, stamp: dict) -> dict:
    """What is new since ``stamp`` (:func:`live_stamp`): runs by kind, alerts, and one sentence saying so."""
    new_runs = store.runs.runs_frame(session, limit=500, after_id=int(stamp.get("run", 0)))
    new_alerts = store.alerts.last_alert_id(session) - int(stamp.get("alert", 0))
    kinds = new_runs["kind"].value_counts().to_dict() if len(new_runs) else {}
    parts = []
    if len(new_runs):
        what = ", ".join(f"{n} {k}" for k, n in kinds.items())
        parts.append(f"{len(new_runs)} new run{'s' if len(new_runs) != 1 else ''} since you opened this page "
                     f"({what})")
    if new_alerts > 0:
        parts.append(f"{new_alerts} new alert{'s' if new_alerts != 1 else ''}")
    loaded = int(new_runs.loc[new_runs["kind"].isin(["ingest", "pull"]), "n_out"].sum()) if len(new_runs) else 0
    if loaded:
        parts.append(f"{loaded:,} detections loaded")
    return {"runs": int(len(new_runs)), "kinds": kinds, "alerts": max(new_alerts, 0), "detections": loaded,
            "message": "; ".join(parts)}


def health(session: Session) -> dict:
    """Is the store reachable, what ran last, how far behind each connector is, how many alerts are open."""
    last = store.runs.runs_frame(session, limit=1)
    cons = connectors_status(session)
    return {"status": "ok", "store": "ok", "open_alerts": open_alert_count(session),
            "last_run": None if last.empty else {"id": int(last["id"].iloc[0]), "kind": last["kind"].iloc[0],
                                                 "outcome": last["outcome"].iloc[0],
                                                 "ended_at": last["ended_at"].iloc[0].isoformat()},
            "connectors": [{"name": r.name, "kind": r.kind, "lag_s": None if pd.isna(r.lag_s) else float(r.lag_s),
                            "last_error": r.last_error} for r in cons.itertuples()]}


def _prom_label(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metrics_text(session: Session) -> str:
    """Prometheus text exposition: runs by kind and outcome, last run seconds, each connector's lag and
    watermark age, open alerts by team and rule, deliveries by state, detections and active leaks."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict, float]]) -> None:
        lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}"])
        for labels, v in samples:
            lab = ",".join(f'{k}="{_prom_label(x)}"' for k, x in labels.items())
            lines.append(f"{name}{{{lab}}} {float(v):.6g}" if lab else f"{name} {float(v):.6g}")

    rc = store.runs.run_counts(session)
    metric("mlpe_runs_total", "counter", "Recorded runs by kind and outcome.",
           [({"kind": r.kind, "outcome": r.outcome}, r.n) for r in rc.itertuples()])
    last = rc.sort_values("last_id").groupby("kind").tail(1) if len(rc) else rc
    metric("mlpe_run_last_seconds", "gauge", "Duration of the newest run of each kind.",
           [({"kind": r.kind}, r.last_seconds) for r in last.itertuples()])
    cons = connectors_status(session)
    now = pd.Timestamp.now(tz="UTC")
    metric("mlpe_connector_lag_seconds", "gauge", "Seconds since each connector's last successful cycle.",
           [({"connector": r.name, "kind": r.kind}, r.lag_s if pd.notna(r.lag_s) else float("inf"))
            for r in cons.itertuples()])
    metric("mlpe_connector_watermark_age_seconds", "gauge", "Age of the newest observation a pull connector fetched.",
           [({"connector": r.name}, (now - r.watermark).total_seconds()) for r in cons.itertuples()
            if pd.notna(r.watermark)])
    metric("mlpe_connector_failures_total", "counter", "Failed cycles per connector.",
           [({"connector": r.name}, r.n_failed) for r in cons.itertuples()])
    oc = store.alerts.open_alert_counts(session)
    metric("mlpe_alerts_open", "gauge", "Open alerts by team and rule.",
           [({"team": r.team, "rule": r.rule}, r.n) for r in oc.itertuples()])
    metric("mlpe_alerts_open_total", "gauge", "Open alerts.", [({}, int(oc["n"].sum()) if len(oc) else 0)])
    dc = store.alerts.delivery_counts(session)
    metric("mlpe_alert_deliveries", "gauge", "Alert deliveries by state (failed: gave up after every retry).",
           [({"state": k}, dc.get(k, 0)) for k in ("pending", "sent", "failed")])
    n = store.counts(session)
    metric("mlpe_detections", "gauge", "Detections in the store.", [({}, n["detections"])])
    metric("mlpe_leaks_active", "gauge", "Active leaks.", [({}, n["leaks"])])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- answers per version

ANSWERS = AnswerCache(max_entries=256)  # this process's answers, per store and version (``mlpe_core.answers``)
LEAK_SORTS = ("rank", "priority_score", "est_rate_kg_h", "p_real", "last_seen", "first_seen", "n_detections",
              "due_by", "leak_id")  # what ``leaks_page`` sorts by; ``-name`` for descending
_ENGINE_SERIAL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SERIALS = itertools.count(1)


def store_key(session: Session | Engine) -> str:
    """Which store ``session`` (or an engine) is on, for keying cached answers: its URL (password hidden). An
    in-memory SQLite store exists only inside its engine, so its key also names the engine (two such stores never
    share)."""
    eng = session.get_bind() if hasattr(session, "get_bind") else session
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
        return etag(self.store, self.version)

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
            raise BadInput(f"sort '{sort}' is not one of {', '.join(LEAK_SORTS)} (prefix '-' for descending)")
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
            raise BadInput("offset and limit are whole numbers ≥ 0")
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


def etag(store: str, version_: tuple) -> str:
    """A strong entity tag for a store version (quoted, as HTTP sends it): :attr:`Snapshot.etag`."""
    return f'"{hashlib.sha256(repr((store, version_)).encode()).hexdigest()[:20]}"'


def stamp(engine: Engine) -> tuple[str, tuple]:
    """The store's key and version stamp (as :func:`snapshot` reads them) on one pooled connection, without an ORM
    session: the API's conditional-request path asks only this before answering 304."""
    with engine.connect() as conn:
        return store_key(engine), version(conn)


def peek(store: str, version_: tuple, question: tuple, default=None):
    """A cached answer of that store version, or ``default``; nothing is computed (see :class:`Snapshot`)."""
    return ANSWERS.peek(store, version_, question, default)


def snapshot(session: Session) -> Snapshot:
    """The store as of its current version (one cheap stamp read): see :class:`Snapshot`."""
    return Snapshot(session, store_key(session), version(session))
