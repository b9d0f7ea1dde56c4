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
import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from . import __version__, auth, dispatch, lifecycle, store
from .comply import leak_clocks, load_rules
from .ingest import IngestError
from .ingest.tables import validate_validations
from .outcomes import record_validations
from .schema import LEAK_EXPORT_COLUMNS, RISK_BANDS
from .store.models import Leak

LEAK_FIELDS = [*LEAK_EXPORT_COLUMNS, "rate_lo_kg_h", "rate_hi_kg_h", "due_by", "due_rule", "failed_repair",
               "status_at", "repair_attempted_at", "repaired_at", "reopened_at"]


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


# --------------------------------------------------------------------------------------------- helpers


def _jsonable(df: pd.DataFrame) -> list[dict]:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.loads(out.to_json(orient="records", date_format="iso"))


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

    @app.get("/leaks", tags=["leaks"], summary="Ranked leaks, filtered")
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
        lk = store.leaks_frame(s)
        if band and not set(band) <= set(RISK_BANDS):
            raise HTTPException(422, f"band must be among {', '.join(RISK_BANDS)}")
        now = pd.Timestamp.now(tz="UTC")
        m = pd.Series(True, index=lk.index)
        if ranked:
            m &= lk["rank"].notna()
        if status:
            m &= lk["status"].isin(status)
        if band:
            m &= lk["risk_band"].isin(band)
        if source_type:
            m &= lk["source_types"].fillna("").str.split(",").map(lambda t: source_type in [x.strip() for x in t])
        if asset_id:
            m &= lk["asset_id"] == asset_id
        if min_priority is not None:
            m &= lk["priority_score"].fillna(-1) >= min_priority
        if overdue is not None:
            m &= (lk["due_by"].notna() & (lk["due_by"] < now)) == overdue
        if due_within_days is not None:
            m &= lk["due_by"].notna() & (lk["due_by"] <= now + pd.Timedelta(days=due_within_days))
        if failed_repair is not None:
            m &= lk["failed_repair"].fillna(False).astype(bool) == failed_repair
        sel = lk[m]
        page = sel.iloc[offset:offset + top].reindex(columns=LEAK_FIELDS)
        page = page.assign(overdue=page["due_by"].notna() & (page["due_by"] < now))
        return {"count": int(len(sel)), "offset": offset, "leaks": _jsonable(page)}

    @app.get("/leaks/{leak_id}", tags=["leaks"], summary="One leak: detections, visits, lifecycle, deadlines")
    def get_leak(leak_id: str, s: Db, _who: Who) -> dict:
        leak = s.get(Leak, leak_id)
        if leak is None:
            raise HTTPException(404, f"no leak '{leak_id}'")
        dets = store.detections_frame(s, leak_id)
        vals = store.validations_frame(s)
        vals = vals[vals["leak_id"] == leak_id]
        clocks = leak_clocks(dets, vals, load_rules(), pd.Timestamp.now(tz="UTC"), leak_id,
                             assets=store.assets_frame(s), leaks=store.leaks_frame(s, active_only=False),
                             notifications=store.notifications_frame(s))
        rec = _jsonable(pd.DataFrame([leak.model_dump()]).reindex(columns=[*LEAK_FIELDS, "active", "n_ambiguous",
                                                                           "asset_candidates"]))[0]
        return {"leak": rec, "allowed_events": lifecycle.allowed_events(leak.status),
                "deadlines": _jsonable(clocks.drop(columns=["leak_id"])),
                "detections": _jsonable(dets.drop(columns=["attributes"], errors="ignore")),
                "validations": _jsonable(vals.drop(columns=["id", "batch_id"], errors="ignore")),
                "history": _jsonable(lifecycle.history(s, leak_id).drop(columns=["id"]))}

    @app.get("/dispatch", tags=["dispatch"], summary="The current dispatch list (contract columns)")
    def get_dispatch(s: Db, _who: Who, top: Annotated[int | None, Query(ge=0)] = None,
                     routed: Annotated[bool, Query(description="add crew, day, stop and route km")] = False) -> dict:
        disp = guard(dispatch.current_list, s, top)
        if routed:
            disp = guard(dispatch.route_dispatch, disp)
        return {"count": int(len(disp)), "items": _jsonable(disp)}

    @app.get("/dispatch/workorders", tags=["dispatch"], summary="Work orders for the current list (draft)")
    def get_current_workorders(s: Db, _who: Who, top: Annotated[int | None, Query(ge=0)] = None) -> dict:
        from .pipeline import dispatch_workorders

        return guard(dispatch_workorders, s, top)

    @app.post("/dispatch/lists", tags=["dispatch"], status_code=201, summary="Plan a routed list (a draft)")
    def post_list(s: Db, who: Who, body: Annotated[PlanRequest | None, Body()] = None) -> dict:
        body = body or PlanRequest()
        list_id = guard(dispatch.plan_list, s, body.top, body.plan_date, who, note=body.note)
        return {"list_id": list_id, "status": "draft", "items": _jsonable(dispatch.list_frame(s, list_id))}

    @app.get("/dispatch/lists", tags=["dispatch"], summary="Every dispatch list, newest first")
    def get_lists(s: Db, _who: Who) -> dict:
        return {"lists": _jsonable(dispatch.lists_frame(s))}

    @app.get("/dispatch/lists/{list_id}", tags=["dispatch"], summary="One list and its stops")
    def get_list(list_id: int, s: Db, _who: Who) -> dict:
        lists = dispatch.lists_frame(s)
        meta = lists[lists["id"] == list_id]
        if meta.empty:
            raise HTTPException(404, f"no dispatch list {list_id}")
        return {"list": _jsonable(meta)[0], "items": _jsonable(dispatch.list_frame(s, list_id))}

    @app.post("/dispatch/lists/{list_id}/approve", tags=["dispatch"], summary="Supervisor approval")
    def approve(list_id: int, s: Db, who: Who, body: Annotated[ApproveRequest | None, Body()] = None) -> dict:
        body = body or ApproveRequest()
        return guard(dispatch.approve_list, s, list_id, who, body.note)

    @app.get("/dispatch/lists/{list_id}/workorders", tags=["dispatch"], summary="Work orders of a stored list")
    def get_workorders(list_id: int, s: Db, _who: Who) -> dict:
        return guard(dispatch.work_orders, s, list_id)

    @app.post("/validations", tags=["field"], summary="Record field outcomes (checked like the CSV import)")
    def post_validations(rows: Annotated[list[ValidationRow], Body(min_length=1, max_length=10_000)], s: Db,
                         who: Who) -> dict:
        guard(auth.require, s, who, "validate")
        raw = pd.DataFrame([r.model_dump() for r in rows]).astype(object)
        raw = raw.where(raw.notna(), "").astype(str)
        known = set(s.execute(select(Leak.leak_id)).scalars())
        good, rejects = guard(validate_validations, raw, known, "request body")
        res = record_validations(s, good, who)
        allrej = pd.concat([x for x in (rejects, res["rejects"]) if len(x)] or [rejects], ignore_index=True)
        allrej = allrej.sort_values("row", kind="stable")
        out = [{"index": int(r.row) - 2, "column": r.column, "reason": r.reason} for r in allrej.itertuples()]
        return {"rows": len(rows), "recorded": res["recorded"], "duplicates": res["duplicates"],
                "rejected": len({o["index"] for o in out}), "rejects": out}

    @app.post("/workorders/status", tags=["field"], summary="Work-order progress from a maintenance system")
    def post_status(body: WorkOrderStatus, s: Db, who: Who) -> dict:
        at = _as_utc(body.at, "at")
        return guard(dispatch.set_work_order_status, s, body.status, who, work_order_id=body.work_order_id,
                     leak_id=body.leak_id, at=at, crew=body.crew, note=body.note, reason=body.reason)

    @app.get("/leaks/{leak_id}/history", tags=["leaks"], summary="Lifecycle events of a leak")
    def get_history(leak_id: str, s: Db, _who: Who) -> dict[str, Any]:
        if s.get(Leak, leak_id) is None:
            raise HTTPException(404, f"no leak '{leak_id}'")
        return {"leak_id": leak_id, "events": _jsonable(lifecycle.history(s, leak_id).drop(columns=["id"]))}

    app.state.started_at = datetime.now(UTC).isoformat()
    return app


def serve(db: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn (``mlpe serve``)."""
    import uvicorn

    uvicorn.run(create_app(db), host=host, port=port, log_level="info")
