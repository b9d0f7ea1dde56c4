"""HTTP API for other systems: ranked leaks, dispatch lists and work orders out; validations and
work-order status in. ``mlpe serve`` runs it (OpenAPI docs at ``/docs``, schema at ``/openapi.json``).

It reads and writes the same store as the command line and the app, through the same core
functions: validations posted here are checked row by row exactly as ``mlpe validations import``
checks a CSV (same columns, same reasons), and every status change goes through the leak lifecycle.

Who is acting: while the store has no users (open mode, ``mlpe_core.auth``) the ``X-MLPE-User``
header names the actor (default ``api``). Once users exist every request except ``/health`` needs
HTTP Basic credentials of an active user, and writes need the role for them (validate, approve).
``docs/dispatch.md`` lists the endpoints.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations (local dependencies) at runtime
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path, Query
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import __version__, auth, desk, dispatch, lifecycle
from .export import json_records
from .ingest import IngestError
from .schema import LEAK_EXPORT_COLUMNS

LEAK_FIELDS = [*LEAK_EXPORT_COLUMNS, "model_rank", "override_reason", "marked", "overdue", "band_why", "rate_lo_kg_h",
               "rate_hi_kg_h", "due_by", "due_rule", "failed_repair", "status_at", "repair_attempted_at",
               "repaired_at", "reopened_at"]


# --------------------------------------------------------------------------------------------- bodies


class ValidationRow(BaseModel):
    """One field outcome: contract §2 columns plus the optional lifecycle columns (values as in the CSV)."""

    leak_id: str | None = Field(None, examples=["L000123"])
    visited_at: str | None = Field(None, description="ISO 8601; no zone means UTC", examples=["2026-09-10T09:00:00Z"])
    outcome: str | None = Field(None, description="confirmed, not_found, already_repaired or not_accessible")
    measured_rate_kg_h: float | str | None = None
    component: str | None = None
    repaired_at: str | None = None
    crew: str | None = None
    notes: str | None = None
    found_by: str | None = Field(None, description="ogi, method21, avo or other: how the crew found the leak")
    rate_method: str | None = None
    repair_attempted_at: str | None = None
    delay_reason: str | None = Field(None, description="a delay of repair, with its reason")


class WorkOrderStatus(BaseModel):
    work_order_id: str | None = Field(None, examples=["MLPE-00001-L000123"])
    leak_id: str | None = None
    status: str = Field(..., description=", ".join(dispatch.WO_STATUSES))
    at: str | None = Field(None, description="when it happened (ISO 8601); default now")
    crew: str | None = None
    note: str | None = None
    reason: str | None = Field(None, description="required for status 'delayed' (delay of repair)")


class PlanRequest(BaseModel):
    top: int | None = Field(None, description="stops on the list (default: the crews' capacity for a day)")
    plan_date: str | None = Field(None, description="YYYY-MM-DD the crews go out (default today)")
    note: str | None = None


class ApproveRequest(BaseModel):
    note: str | None = None


class LeakEventRequest(BaseModel):
    event: str = Field(..., description="dispatch (mark for the next plan), release, close or reopen")
    at: str | None = Field(None, description="when it happened (ISO 8601); default now")
    note: str | None = None


class OverrideRequest(BaseModel):
    rank: int | None = Field(None, ge=1, le=1_000_000, description="the rank to move the leak to; null clears")
    reason: str = Field(..., min_length=1, description="why: recorded as evidence with the ranks before and after")


# --------------------------------------------------------------------------------------------- helpers


def _as_utc(v: str | None, name: str) -> pd.Timestamp | None:
    if v in (None, ""):
        return None
    t = pd.to_datetime(v, utc=True, errors="coerce")
    if pd.isna(t):
        raise HTTPException(422, f"{name}: cannot read '{v}' as an ISO 8601 time")
    return t


def create_app(db: str | None = None, engine: Engine | None = None) -> FastAPI:
    """The FastAPI application on the store ``db`` (path or URL; default as for the CLI) or ``engine``."""
    if engine is None:
        from .store.db import get_engine

        engine = get_engine(db)
    app = FastAPI(title="MLPE API", version=__version__,
                  description="Methane Leak Prioritization Engine: ranked leaks, dispatch lists and work orders; "
                              "field validations and work-order status back into the same store.")
    basic = HTTPBasic(auto_error=False)

    def session():
        with Session(engine) as s:
            yield s

    def actor(s: Annotated[Session, Depends(session)],
              creds: Annotated[HTTPBasicCredentials | None, Depends(basic)] = None,
              x_mlpe_user: Annotated[str | None, Header()] = None) -> str:
        if auth.open_mode(s):
            return (x_mlpe_user or "api").strip() or "api"
        if creds is None:
            raise HTTPException(401, "this store has users: send HTTP Basic credentials",
                                headers={"WWW-Authenticate": "Basic"})
        u = auth.authenticate(s, creds.username, creds.password)
        if u is None or not secrets.compare_digest(u.username, creds.username):
            raise HTTPException(401, "unknown user or wrong password", headers={"WWW-Authenticate": "Basic"})
        return u.username

    Db = Annotated[Session, Depends(session)]
    Who = Annotated[str, Depends(actor)]

    def guard(fn, *a, **kw):
        """Core errors as HTTP: unknown → 404, illegal move → 409, not allowed → 403, bad input → 422."""
        try:
            return fn(*a, **kw)
        except KeyError as exc:
            raise HTTPException(404, str(exc).strip("'\"")) from exc
        except lifecycle.TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc
        except auth.PermissionDenied as exc:
            raise HTTPException(403, str(exc)) from exc
        except (ValueError, IngestError) as exc:
            raise HTTPException(422, str(exc)) from exc

    @app.get("/health", tags=["meta"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/leaks", tags=["leaks"], summary="Ranked leaks, filtered (the effective ranking)")
    def get_leaks(s: Db, _who: Who,
                  status: Annotated[list[str] | None, Query(description="one or more statuses")] = None,
                  band: Annotated[list[str] | None, Query(description="HIGH, MEDIUM, LOW")] = None,
                  source_type: str | None = None, asset_id: str | None = None,
                  min_priority: float | None = None, overdue: bool | None = None,
                  due_within_days: Annotated[float | None, Query(ge=0)] = None,
                  failed_repair: bool | None = None,
                  ranked: Annotated[bool, Query(description="only leaks with a rank (open, scored)")] = True,
                  top: Annotated[int, Query(ge=0, le=100_000)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0) -> dict:
        flt = guard(desk.LeakFilter, bands=band or [], statuses=status or [],
                    source_types=[source_type] if source_type else [], asset_id=asset_id, min_priority=min_priority,
                    overdue=overdue, due_within_days=due_within_days, failed_repair=failed_repair, ranked_only=ranked)
        sel = desk.ranking(s, flt)
        page = sel.iloc[offset:offset + top].reindex(columns=LEAK_FIELDS)
        return {"count": int(len(sel)), "offset": offset, "as_of": desk.as_of(s).isoformat(),
                "leaks": json_records(page)}

    @app.get("/leaks/{leak_id}", tags=["leaks"], summary="One leak: detections, visits, lifecycle, deadlines")
    def get_leak(leak_id: str, s: Db, _who: Who) -> dict:
        d = guard(desk.leak_detail, s, leak_id)
        rec = json_records(pd.DataFrame([d["leak"]]).reindex(columns=[*LEAK_FIELDS, "active", "n_ambiguous",
                                                                        "asset_candidates"]))[0]
        return {"leak": rec, "as_of": d["as_of"].isoformat(), "allowed_events": d["allowed_events"],
                "deadlines": json_records(d["clocks"].drop(columns=["leak_id"])),
                "detections": json_records(d["detections"].drop(columns=["attributes"], errors="ignore")),
                "validations": json_records(d["validations"].drop(columns=["id", "batch_id"], errors="ignore")),
                "history": json_records(d["events"].drop(columns=["id"]))}

    @app.get("/obligations", tags=["leaks"], summary="Every running regulatory clock, soonest first")
    def get_obligations(s: Db, _who: Who) -> dict:
        ob = desk.obligations(s)
        return {"count": int(len(ob)), "as_of": desk.as_of(s).isoformat(), "obligations": json_records(ob)}

    @app.get("/dispatch", tags=["dispatch"], summary="The leaks to visit next (contract columns)")
    def get_dispatch(s: Db, _who: Who, top: Annotated[int | None, Query(ge=0)] = None,
                     routed: Annotated[bool, Query(description="the day's plan: crew, stop and route km")] = False
                     ) -> dict:
        if routed:
            meta, stops = guard(desk.plan, s, top)
            return {"count": int(len(stops)), "status": meta["status"], "list_id": meta["list_id"],
                    "items": json_records(stops)}
        disp = guard(desk.export_dispatch, s, top)
        return {"count": int(len(disp)), "items": json_records(disp)}

    @app.get("/dispatch/workorders", tags=["dispatch"], summary="Work orders of the day's plan")
    def get_current_workorders(s: Db, _who: Who, top: Annotated[int | None, Query(ge=0)] = None) -> dict:
        return guard(desk.work_orders, s, None, top)

    @app.post("/dispatch/lists", tags=["dispatch"], status_code=201, summary="Plan a routed list (a draft)")
    def post_list(s: Db, who: Who, body: Annotated[PlanRequest | None, Body()] = None) -> dict:
        body = body or PlanRequest()
        list_id = guard(desk.plan_list, s, who, body.top, body.plan_date, note=body.note)
        return {"list_id": list_id, "status": "draft", "items": json_records(desk.list_stops(s, list_id))}

    @app.get("/dispatch/lists", tags=["dispatch"], summary="Every dispatch list, newest first")
    def get_lists(s: Db, _who: Who) -> dict:
        return {"lists": json_records(desk.lists(s))}

    @app.get("/dispatch/lists/{list_id}", tags=["dispatch"], summary="One list and its stops")
    def get_list(list_id: Annotated[int, Path(ge=1, le=2**31 - 1)], s: Db, _who: Who) -> dict:
        lists = desk.lists(s)
        meta = lists[lists["id"] == list_id]
        if meta.empty:
            raise HTTPException(404, f"no dispatch list {list_id}")
        return {"list": json_records(meta)[0], "items": json_records(desk.list_stops(s, list_id))}

    @app.post("/dispatch/lists/{list_id}/approve", tags=["dispatch"], summary="Supervisor approval")
    def approve(list_id: Annotated[int, Path(ge=1, le=2**31 - 1)], s: Db, who: Who,
                body: Annotated[ApproveRequest | None, Body()] = None) -> dict:
        body = body or ApproveRequest()
        return guard(desk.approve_list, s, who, list_id, body.note)

    @app.get("/dispatch/lists/{list_id}/workorders", tags=["dispatch"], summary="Work orders of a stored list")
    def get_workorders(list_id: Annotated[int, Path(ge=1, le=2**31 - 1)], s: Db, _who: Who) -> dict:
        return guard(desk.work_orders, s, list_id)

    @app.post("/validations", tags=["field"], summary="Record field outcomes (checked like the CSV import)")
    def post_validations(rows: Annotated[list[ValidationRow], Body(min_length=1, max_length=10_000)], s: Db,
                         who: Who) -> dict:
        raw = pd.DataFrame([r.model_dump() for r in rows]).astype(object)
        raw = raw.where(raw.notna(), "").astype(str)
        res = guard(desk.record_outcomes, s, who, raw, "request body")
        out = [{"index": int(r.row) - 2, "column": r.column, "reason": r.reason} for r in res["rejects"].itertuples()]
        return {"rows": len(rows), "recorded": res["recorded"], "duplicates": res["duplicates"],
                "rejected": len({o["index"] for o in out}), "rejects": out, "changes": res["changes"]}

    @app.post("/workorders/status", tags=["field"], summary="Work-order progress from a maintenance system")
    def post_status(body: WorkOrderStatus, s: Db, who: Who) -> dict:
        at = _as_utc(body.at, "at")
        return guard(desk.set_work_order_status, s, who, body.status, work_order_id=body.work_order_id,
                     leak_id=body.leak_id, at=at, crew=body.crew, note=body.note, reason=body.reason)

    @app.post("/leaks/{leak_id}/events", tags=["leaks"], summary="Mark for dispatch, release, close or reopen")
    def post_leak_event(leak_id: str, body: LeakEventRequest, s: Db, who: Who) -> dict:
        if body.event not in ("dispatch", "release", "close", "reopen"):
            raise HTTPException(422, "event must be dispatch, release, close or reopen")
        at = _as_utc(body.at, "at")
        status = guard(desk.leak_event, s, who, leak_id, body.event, at, body.note, source="api")
        return {"leak_id": leak_id, "status": status}

    @app.post("/leaks/{leak_id}/override", tags=["leaks"], summary="A supervisor moves a leak in the ranking")
    def post_override(leak_id: str, body: OverrideRequest, s: Db, who: Who) -> dict:
        return {"leak_id": leak_id, "message": guard(desk.override_rank, s, who, leak_id, body.rank, body.reason)}

    @app.get("/leaks/{leak_id}/history", tags=["leaks"], summary="Lifecycle events of a leak")
    def get_history(leak_id: str, s: Db, _who: Who) -> dict[str, Any]:
        d = guard(desk.leak_detail, s, leak_id)
        return {"leak_id": leak_id, "events": json_records(d["events"].drop(columns=["id"]))}

    app.state.started_at = datetime.now(UTC).isoformat()
    return app


def serve(db: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn (``mlpe serve``)."""
    import uvicorn

    uvicorn.run(create_app(db), host=host, port=port, log_level="info")
