"""HTTP API for other systems: ranked leaks, dispatch lists and work orders out; validations and
work-order status in. ``mlpe serve`` runs it (OpenAPI docs at ``/docs``, schema at ``/openapi.json``).

It reads and writes the same store as the command line and the app, through the same core
functions: validations posted here are checked row by row exactly as ``mlpe validations import``
checks a CSV (same columns, same reasons), and every status change goes through the leak lifecycle.

Who is acting: while the store has no users (open mode, ``mlpe_core.auth``) the ``X-MLPE-User``
header names the actor (default ``api``; reserved names are refused). Once users exist every request
except ``/health`` and ``/login`` needs a bearer token (``Authorization: Bearer mlpe_...``): ``POST /login``
with HTTP Basic gives one for 12 hours, an admin creates longer-lived ones (``POST /tokens`` or
``mlpe users token create``). Checking a token is one SHA-256 and an indexed lookup; the bcrypt of a
password is paid only at ``/login``, which backs off after repeated failures per user and per client
(429 with ``Retry-After``). Writes need the role for them (validate, approve). Responses are typed
(``mlpe_core.api_models``); every error is ``{"detail": "...", "errors": [...]}``. ``docs/dispatch.md``
lists the endpoints; ``SECURITY.md`` what is guaranteed.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations (local dependencies) at runtime
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, auth, desk, dispatch, lifecycle, pipeline, store
from . import api_models as m
from .errors import BadInput, Conflict, NotFound
from .export import iso_utc
from .export import json_lines as _json_lines
from .export import json_records as _json_records
from .ingest import IngestError
from .limits import limits, mb
from .report.model import TOTAL_COLUMNS
from .schema import LEAK_EXPORT_COLUMNS
from .store.models import Leak

LEAK_FIELDS = [*LEAK_EXPORT_COLUMNS, "model_rank", "override_reason", "marked", "overdue", "band_why", "rate_lo_kg_h",
               "rate_hi_kg_h", "due_by", "due_rule", "failed_repair", "status_at", "repair_attempted_at",
               "repaired_at", "reopened_at"]


# --------------------------------------------------------------------------------------------- numbers and times
# One format for every answer: times ISO 8601 UTC with Z to the second (``export.iso_utc``, as the files write them);
# numbers of the contract's columns rounded as the export files round them (``pipeline.ROUNDING``: p_real to 4
# places, coordinates to 6), any other number to 10 decimal places (as ``export.json_records`` writes frames); counts
# as integers.

COUNT_KEYS = frozenset({"count", *(c for c in TOTAL_COLUMNS if c not in ("site_type", "tonnes", "tonnes_lo",
                                                                           "tonnes_hi"))})


def json_records(df: pd.DataFrame) -> list[dict]:
    """``export.json_records`` with the contract's rounding (the API's frames)."""
    return _json_records(pipeline.round_export(df))


def json_lines(df: pd.DataFrame) -> list[str]:
    """``export.json_lines`` with the contract's rounding (the pages of ``/leaks``)."""
    return _json_lines(pipeline.round_export(df))


def tidy(obj: Any, key: str | None = None) -> Any:
    """A JSON-ready answer built as a dict (work orders, the report) rounded as :func:`json_records` rounds frames:
    a contract column's number as the export files, another float to 10 places, a count as an integer."""
    if isinstance(obj, dict):
        return {k: tidy(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [tidy(v, key) for v in obj]
    if isinstance(obj, float) and math.isfinite(obj):
        if key is not None and (key in COUNT_KEYS or key.startswith("n_")) and obj.is_integer():
            return int(obj)
        return round(obj, pipeline.ROUNDING.get(key or "", 10))
    return obj


# --------------------------------------------------------------------------------------------- bodies


class Body_(BaseModel):
    """A request body: a field it does not know is refused (422 naming it), never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ValidationRow(Body_):
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

    @field_validator("measured_rate_kg_h")
    @classmethod
    def _finite(cls, v: float | str | None) -> float | str | None:
        """NaN or Infinity is not a measurement (a blank or null is "not measured")."""
        try:
            x = float(v) if isinstance(v, str) and v.strip() else v
        except ValueError:
            return v  # a word: refused by the import with its reason, as in a CSV
        if isinstance(x, float) and not math.isfinite(x):
            raise ValueError("must be a finite number (leave it out or null when nothing was measured)")
        return v


class WorkOrderStatus(Body_):
    work_order_id: str | None = Field(None, examples=["MLPE-00001-L000123"])
    leak_id: str | None = None
    status: str = Field(..., description=", ".join(dispatch.WO_STATUSES))
    at: str | None = Field(None, description="when it happened (ISO 8601); default now")
    crew: str | None = None
    note: str | None = None
    reason: str | None = Field(None, description="required for status 'delayed' (delay of repair)")


class PlanRequest(Body_):
    top: int | None = Field(None, ge=0, le=10_000, description="stops on the list (default: the crews' capacity "
                            "for a day)")
    plan_date: str | None = Field(None, description="YYYY-MM-DD the crews go out (default today)")
    note: str | None = None


class ApproveRequest(Body_):
    note: str | None = None


class LeakEventRequest(Body_):
    event: Literal["dispatch", "release", "close", "reopen"] = Field(
        ..., description="dispatch (mark for the next plan), release, close or reopen")
    at: str | None = Field(None, description="when it happened (ISO 8601); default now")
    note: str | None = None


class OverrideRequest(Body_):
    rank: int | None = Field(None, ge=1, le=1_000_000, description="the rank to move the leak to; null clears")
    reason: str = Field(..., min_length=1, description="why: recorded as evidence with the ranks before and after")


class AckRequest(Body_):
    reason: str = Field(..., min_length=1, max_length=2000, description="why: recorded in the audit trail")


class SnoozeRequest(Body_):
    reason: str = Field(..., min_length=1, max_length=2000, description="why: recorded in the audit trail")
    hours: float = Field(..., gt=0, le=8760, description="back in the inbox after this many hours")


DETECTION_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "minItems": 1, "maxItems": 10000, "items": {
        "type": "object", "description": "one detection: the canonical columns (contract §1)",
        "properties": {"detection_id": {"type": "string"}, "source_type": {"type": "string"},
                       "source_name": {"type": "string"}, "observed_at": {"type": "string"},
                       "latitude": {"type": "number"}, "longitude": {"type": "number"},
                       "rate_kg_h": {"type": "number"}, "asset_id": {"type": "string"}},
        "required": ["detection_id", "source_type", "source_name", "observed_at", "latitude", "longitude"]}}},
    "text/csv": {"schema": {"type": "string", "description": "a canonical CSV with its header"}}}}}


class TokenRequest(Body_):
    username: str = Field(..., max_length=64)
    label: str | None = Field(None, max_length=200)
    expires_days: float | None = Field(None, gt=0, le=3650, description="default: until revoked")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CACHED: dict = {304: {"description": "not modified: If-None-Match named the current ETag (nothing was written "
                                      "since)"}}
MAX_ID = 2**63 - 1  # a database id; anything outside 1..MAX_ID names nothing (404, never an overflow)
ERRORS: dict = {code: {"model": m.ErrorOut, "description": why} for code, why in (
    (400, "the body is not JSON"),
    (401, "no or an invalid bearer token (once the store has users)"), (403, "the role may not do this"),
    (404, "no such leak, list, work order, token, site or operator"),
    (409, "the leak's lifecycle or the list's state forbids this"),
    (422, "a parameter or the body is not valid"), (429, "too many failed sign-ins: retry after Retry-After s"))}
# the same errors for a route whose own answer is not JSON: their content named, so it is not taken to be the route's
JSON_ERRORS: dict = {code: {"description": e["description"],
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
                     for code, e in ERRORS.items()}
POST_ERRORS: dict = {409: {"model": m.ErrorOut, "description": "the Idempotency-Key was used for another body"},
                     413: {"model": m.ErrorOut, "description": "the body is larger than MLPE_MAX_FILE_BYTES"},
                     415: {"model": m.ErrorOut, "description": "the body is neither application/json nor text/csv"}}

JSON_BODY_ERRORS: dict = {413: {"model": m.ErrorOut, "description": "the body is larger than MLPE_MAX_JSON_BYTES"},
                          415: {"model": m.ErrorOut, "description": "the body is not application/json"}}


def _token_out(t) -> dict:
    iso = [iso_utc(v) for v in (t.created_at, t.expires_at, t.revoked_at)]
    return {"id": t.id, "username": t.username, "label": t.label, "kind": t.kind, "created_at": iso[0],
            "created_by": t.created_by, "expires_at": iso[1], "revoked_at": iso[2]}


# --------------------------------------------------------------------------------------------- helpers


def leak_out(d: dict) -> dict:
    """``desk.leak_detail`` as the API's ``LeakDetailOut``."""
    rec = json_records(pd.DataFrame([d["leak"]]).reindex(columns=[*LEAK_FIELDS, "active", "n_ambiguous",
                                                                    "asset_candidates"]))[0]
    return {"leak": rec, "as_of": iso_utc(d["as_of"]), "allowed_events": d["allowed_events"],
            "deadlines": json_records(d["clocks"].drop(columns=["leak_id"])),
            "detections": json_records(d["detections"].drop(columns=["attributes"], errors="ignore")),
            "validations": json_records(d["validations"].drop(columns=["id", "batch_id"], errors="ignore")),
            "history": json_records(d["events"].drop(columns=["id"]))}


def _max_age() -> int:
    """Seconds a client may reuse an answer without asking again (``Cache-Control: max-age``): ``MLPE_API_MAX_AGE``,
    default 5. Polling with ``If-None-Match`` costs a 304 either way."""
    raw = os.environ.get("MLPE_API_MAX_AGE", "5")
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 86_400:
        raise ValueError(f"MLPE_API_MAX_AGE='{raw}': give whole seconds from 0 to 86400")
    return value


def etag_matches(sent: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``tag`` (or is ``*``); weak tags compare by their value."""
    return bool(sent) and (sent.strip() == "*" or tag in {t.strip().removeprefix("W/") for t in sent.split(",")})


class NotModified:
    """Answers a poll that repeats a checked URL with ``If-None-Match`` naming the current version: 304 before
    FastAPI routes the request (a pure ASGI middleware).

    Why: a 304 is what pollers get almost every time, and on the full path it pays routing, a dozen dependency and
    query-parameter validations, a worker-thread hop and an ORM session for an answer of two headers. Here it costs
    the version stamp (one statement on a pooled connection, run on the event loop: it is a handful of primary-key
    lookups) and dictionary lookups. It answers only when the full path would give the same 304:

    * the path and query string were answered by the full path before (``remember``): its parameters passed
      validation, which does not depend on the store, so nothing invalid is ever answered 304 here;
    * who is asking is already known at this version: open mode with an acceptable ``X-MLPE-User``, or a bearer
      token whose owner the full path looked up at this version (its expiry is checked now). Anything else (no or
      unknown token, a first user, a new version) goes the full way, which answers or refuses it.
    """

    def __init__(self, app, engine: Engine, cache_control: str, checked: "CheckedUrls") -> None:
        self.app, self.engine, self.checked = app, engine, checked
        self.cache_control = cache_control.encode()

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] == "http" and scope["method"] == "GET"
                and self.checked.has(scope["path"], scope.get("query_string", b""))):
            tag = self._not_modified(scope)
            if tag is not None:
                await send({"type": "http.response.start", "status": 304,
                            "headers": [(b"etag", tag.encode()), (b"cache-control", self.cache_control)]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    def _not_modified(self, scope) -> str | None:
        """The current ETag when the request's ``If-None-Match`` names it and its asker is known, else None."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of a repeated header, as Starlette's ``get`` reads it
        sent = headers.get(b"if-none-match")
        if not sent:
            return None
        try:
            key, version = desk.stamp(self.engine)
        except Exception:  # noqa: BLE001 - the full path reports a store that cannot be read
            return None
        is_open = desk.peek(key, version, ("api:open_mode",))
        if is_open is None:
            return None
        if is_open:
            user = headers.get(b"x-mlpe-user")
            try:
                auth.claimable_name(user.decode("latin-1") if user is not None else None, "api")
            except auth.PermissionDenied:
                return None
        else:
            scheme, token = get_authorization_scheme_param(headers.get(b"authorization", b"").decode("latin-1"))
            if scheme.lower() != "bearer" or not token or len(token) > 200:
                return None
            known = desk.peek(key, version, ("api:token", hashlib.sha256(token.encode()).hexdigest()))
            if known is None or _expired(known[1]):
                return None
        tag = desk.etag(key, version)
        return tag if etag_matches(sent.decode("latin-1"), tag) else None


class CheckedUrls:
    """The (path, query string) pairs the full path answered (their parameters are valid): a bounded LRU set."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._urls: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._lock = threading.Lock()

    def has(self, path: str, query: bytes) -> bool:
        return (path, query) in self._urls

    def remember(self, path: str, query: bytes) -> None:
        with self._lock:
            self._urls[(path, query)] = None
            self._urls.move_to_end((path, query))
            while len(self._urls) > self.max_entries:
                self._urls.popitem(last=False)


def _expired(expires: datetime | None) -> bool:
    return expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= store.now()


def _as_utc(v: str | None, name: str) -> pd.Timestamp | None:
    if v in (None, ""):
        return None
    t = pd.to_datetime(v, utc=True, errors="coerce")
    if pd.isna(t):
        raise HTTPException(422, f"{name}: cannot read '{v}' as an ISO 8601 time")
    return t


ECHO_CHARS = 200  # a refused value longer than this (as JSON) is not echoed back in ``errors``
MAX_ERRORS = 50  # entries listed in ``errors``; ``detail`` says how many there were


def _plain(v: Any) -> Any:
    """A value as JSON can carry it: NaN and infinities as the text JSON parsers accept, anything else unknown as
    its text."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return str(v)


def _small(v: Any, room: int = ECHO_CHARS) -> bool:
    """Whether ``v`` is at most ``room`` characters of JSON, without walking more of it than that."""
    if isinstance(v, str | bytes):
        return len(v) <= room
    if isinstance(v, dict | list | tuple):
        if len(v) > room:
            return False
        left = room
        for x in (v.items() if isinstance(v, dict) else v):
            if not _small(x, left):
                return False
            left -= len(json.dumps(_plain(x), default=str))
            if left < 0:
                return False
        return True
    return True


def error_entries(errors: list) -> list[dict]:
    """Pydantic's error list as JSON that always encodes: locations as text and numbers, values JSON cannot carry
    as text (``"NaN"``), a refused value echoed only when small (a 10,000-row body is not sent back), at most
    ``MAX_ERRORS`` entries."""
    out = []
    for e in errors[:MAX_ERRORS]:
        entry = {"type": str(e.get("type", "")), "loc": [x if isinstance(x, int | str) else str(x)
                                                        for x in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        if "input" in e and _small(e["input"]):
            entry["input"] = _plain(e["input"])
        if e.get("ctx"):
            entry["ctx"] = {str(k): _plain(v) if isinstance(v, int | float | str | bool | None) else str(v)
                            for k, v in e["ctx"].items()}
        out.append(entry)
    return out


def json_error_at(doc: Any, pos: Any) -> str:
    """Where a JSON decode error is, as line and column (1-based) of the body."""
    text = doc.decode("utf-8", "replace") if isinstance(doc, bytes) else doc if isinstance(doc, str) else ""
    pos = pos if isinstance(pos, int) and 0 <= pos <= len(text) else len(text)
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


class JsonBodies:
    """Every request with a body except ``POST /detections`` (which takes CSV too and has its own limit) sends JSON:
    a body over ``MLPE_MAX_JSON_BYTES`` is refused with 413 before it is parsed (``Content-Length``, else while it
    arrives), a non-empty body that is not ``application/json`` with 415 (a pure ASGI middleware)."""

    EXEMPT = frozenset({"/detections"})

    def __init__(self, app) -> None:
        self.app = app

    @staticmethod
    async def _refuse(send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or scope["path"] in self.EXEMPT:
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        limit = limits().max_json_bytes
        too_big = (f"the body is larger than {limit:,} bytes ({mb(limit)}), the most a JSON request may send "
                   "(MLPE_MAX_JSON_BYTES)")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, 413, too_big)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await self._refuse(send, 413, too_big)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if body.strip() and ctype != "application/json" and not ctype.endswith("+json"):
            return await self._refuse(send, 415, f"content type '{ctype or 'none'}': send the body as JSON with "
                                                 "Content-Type: application/json")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def accepted_query(route: APIRoute) -> frozenset[str]:
    """The query parameters a route declares (its own and its dependencies')."""
    names: set[str] = set()
    todo = [route.dependant]
    while todo:
        d = todo.pop()
        names.update(p.alias for p in d.query_params)
        todo.extend(d.dependencies)
    return frozenset(names)


def create_app(db: str | None = None, engine: Engine | None = None) -> FastAPI:
    """The FastAPI application on the store ``db`` (path or URL; default as for the CLI) or ``engine``."""
    desk.set_face("api")
    desk.settings(reload=True)  # a bad MLPE_* variable stops `mlpe serve` at start, naming it
    if engine is None:
        from .store.db import get_engine

        engine = get_engine(db)
    app = FastAPI(title="MLPE API", version=__version__, responses=ERRORS,
                  description="Methane Leak Prioritization Engine: ranked leaks, dispatch lists and work orders; "
                              "field validations and work-order status back into the same store.")
    max_age = _max_age()
    basic = HTTPBasic(auto_error=False)
    bearer = HTTPBearer(auto_error=False)
    throttle = auth.LoginThrottle()
    app.state.throttle = throttle
    cache_control = f"private, max-age={max_age}, must-revalidate"
    checked = CheckedUrls()
    app.add_middleware(NotModified, engine=engine, cache_control=cache_control, checked=checked)
    app.add_middleware(JsonBodies)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """The documented error shape for invalid requests too: a one-line reason plus pydantic's details (made
        JSON-safe: this answer never fails). A body that is not JSON at all is a 400 saying where."""
        raw = list(exc.errors())
        bad_json = next((e for e in raw if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            loc = list(bad_json.get("loc", ()))
            why = (bad_json.get("ctx") or {}).get("error", "JSON decode error")
            return JSONResponse({"detail": f"the body is not valid JSON: {why} at "
                                           f"{json_error_at(exc.body, loc[1] if len(loc) > 1 else None)}"}, 400)
        try:
            errs = error_entries(raw)
            first = errs[0] if errs else {}
            where = ".".join(str(x) for x in first.get("loc", ()))
            more = f" (and {len(raw) - 1:,} more)" if len(raw) > 1 else ""
            return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid request')}{more}", "errors": errs},
                                422)
        except Exception:  # noqa: BLE001 - an error answer must never become a 500
            return JSONResponse({"detail": "the request is not valid", "errors": []}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None))

    def session():
        with Session(engine) as s:
            yield s

    def actor(s: Annotated[Session, Depends(session)],
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
              x_mlpe_user: Annotated[str | None, Header()] = None) -> str:
        """Open mode: the header's name (never a reserved one). Otherwise the owner of a valid bearer token."""
        if auth.open_mode(s):
            try:
                return auth.claimable_name(x_mlpe_user, "api")
            except auth.PermissionDenied as exc:
                raise HTTPException(403, str(exc)) from exc
        if creds is None:
            raise HTTPException(401, "this store has users: send `Authorization: Bearer <token>` (POST /login with "
                                "HTTP Basic gives one)", headers={"WWW-Authenticate": "Bearer"})
        u = auth.token_user(s, creds.credentials)
        if u is None:
            raise HTTPException(401, "unknown, revoked or expired token", headers={"WWW-Authenticate": "Bearer"})
        return u.username

    def bearer_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> str | None:
        return creds.credentials if creds else None

    Db = Annotated[Session, Depends(session)]
    Who = Annotated[str, Depends(actor)]
    Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    UserHeader = Annotated[str | None, Header()]

    def guard(fn, *a, fields: dict[str, str] | None = None, **kw):
        """Core errors as HTTP: unknown → 404, illegal move or state → 409, not allowed → 403, bad input → 422. A
        refused input is named as the API names it: ``fields`` maps the core's names (``date``) to the request's
        (``plan_date``); others go by their bare name (``top``, ``from``), never as a command-line flag."""
        try:
            return fn(*a, **kw)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except KeyError as exc:  # a KeyError's str is the repr of its key: the message is its first argument
            raise HTTPException(404, str(exc.args[0]) if exc.args else "not found") from exc
        except lifecycle.TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc
        except auth.PermissionDenied as exc:
            raise HTTPException(403, str(exc)) from exc
        except Conflict as exc:  # well formed, but the record's state refuses it (a list no longer a draft)
            raise HTTPException(409, str(exc)) from exc
        except BadInput as exc:
            raise HTTPException(422, exc.worded(fields)) from exc
        except (ValueError, IngestError) as exc:
            raise HTTPException(422, str(exc)) from exc

    query_params: dict[int, frozenset[str]] = {}  # by id(route): filled once the routes are all declared

    def known_query(request: Request) -> None:
        """A query parameter the route does not take is refused (422 naming it and the accepted ones): a typo
        (``lmit``) would otherwise answer as if it were not there."""
        route = request.scope.get("route")
        if not isinstance(route, APIRoute):
            return
        accepted = query_params.get(id(route), frozenset())
        unknown = [k for k in dict.fromkeys(request.query_params.keys()) if k not in accepted]
        if unknown:
            raise HTTPException(422, f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(repr(k) for k in unknown[:5])}: {route.path} accepts "
                                f"{', '.join(sorted(accepted)) if accepted else 'none'}")

    app.router.dependencies.append(Depends(known_query))

    def cached_actor(s: Session, snap: desk.Snapshot, creds, x_mlpe_user: str | None) -> str:
        """:func:`actor`, with what it reads kept per store version: users and tokens change only by audited writes
        (a first user, a revoked token change the version), so a poll costs the version stamp and one SHA-256.
        Expiry is checked on every request; an unknown token is never cached."""
        if snap.answer(("api:open_mode",), lambda: auth.open_mode(s)):
            try:
                return auth.claimable_name(x_mlpe_user, "api")
            except auth.PermissionDenied as exc:
                raise HTTPException(403, str(exc)) from exc
        refused = HTTPException(401, "unknown, revoked or expired token", headers={"WWW-Authenticate": "Bearer"})
        if creds is None:
            raise HTTPException(401, "this store has users: send `Authorization: Bearer <token>` (POST /login with "
                                "HTTP Basic gives one)", headers={"WWW-Authenticate": "Bearer"})
        if len(creds.credentials) > 200:
            raise refused

        def owner() -> tuple[str, datetime | None]:
            u = auth.token_user(s, creds.credentials)
            if u is None:
                raise refused
            return u.username, store.token_by_digest(s, auth._token_digest(creds.credentials)).expires_at

        name, expires = snap.answer(("api:token", hashlib.sha256(creds.credentials.encode()).hexdigest()), owner)
        if _expired(expires):
            raise refused
        return name

    async def cached_get(request: Request, creds, x_mlpe_user: str | None, body, exists=None) -> Response:
        """A read answered from the store version's cached answers, in one worker thread: who is asking (as
        every endpoint checks), the version stamp, ``exists(snapshot)`` for a route naming one thing (it raises
        404 when there is no such thing: a 304 is only ever for something that exists), then a 304 when
        ``If-None-Match`` names its ETag (nothing else read), else ``body(snapshot)`` (JSON text). Every answer
        carries the ETag and ``Cache-Control``."""
        def work() -> Response:
            with Session(engine) as s:
                snap = desk.snapshot(s)
                cached_actor(s, snap, creds, x_mlpe_user)
                if exists is not None:
                    exists(snap)
                headers = {"ETag": snap.etag, "Cache-Control": cache_control}
                if etag_matches(request.headers.get("if-none-match"), snap.etag):
                    return Response(status_code=304, headers=headers)
                return Response(body(snap), media_type="application/json", headers=headers)

        response = await run_in_threadpool(work)
        checked.remember(request.scope["path"], request.scope.get("query_string", b""))  # valid: NotModified may answer
        return response

    def leak_filter(status, band, source_type, operator, asset_id, search, min_priority, min_rate_kg_h, seen_from,
                    seen_to, overdue, due_within_days, failed_repair, ranked) -> desk.LeakFilter:
        """The query's filters as the desk's, each refused with the parameter's name."""
        for name, given, allowed in (("status", status, lifecycle.STATUSES), ("band", band, desk.RISK_BANDS),
                                     ("source_type", source_type, desk.SOURCE_TYPES)):
            bad = [v for v in given or [] if v not in allowed]
            if bad:
                raise HTTPException(422, f"{name}: '{bad[0]}' is not one of {', '.join(allowed)}")
        if seen_from and seen_to and seen_from > seen_to:
            raise HTTPException(422, f"seen_from ({seen_from}) is after seen_to ({seen_to})")
        window = (seen_from or date.min, seen_to or date.max) if (seen_from or seen_to) else None
        return guard(desk.LeakFilter, bands=band or [], statuses=status or [], source_types=source_type or [],
                     operators=operator or [], asset_id=asset_id, search=search or None, min_priority=min_priority,
                     min_rate_kg_h=min_rate_kg_h, window=window, overdue=overdue, due_within_days=due_within_days,
                     failed_repair=failed_repair, ranked_only=ranked)

    def list_id_in_range(list_id: int) -> int:
        if not 1 <= list_id <= MAX_ID:
            raise HTTPException(404, f"no dispatch list {list_id}")
        return list_id

    @app.get("/health", tags=["meta"], response_model=m.HealthOut,
             responses={503: {"model": m.HealthOut, "description": "the store cannot be read"}})
    def health() -> Any:
        """Is the API up and its store readable; the newest run, each connector's lag, open alerts. No sign-in."""
        try:
            with Session(engine) as s:
                out = {"version": __version__, **desk.health(s)}
                if out.get("last_run"):
                    out["last_run"] = {**out["last_run"], "ended_at": iso_utc(out["last_run"]["ended_at"])}
                return out
        except Exception as exc:  # noqa: BLE001 - the answer is that the store is not there
            return JSONResponse({"status": "unavailable", "version": __version__,
                                 "store": f"{type(exc).__name__}: {exc}"[:500]}, 503)

    @app.get("/metrics", tags=["meta"], response_class=PlainTextResponse,
             responses={**JSON_ERRORS, 200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                            "description": "Prometheus text format"}})
    def metrics(s: Db, _who: Who) -> PlainTextResponse:
        """Prometheus text format: runs by kind and outcome, each connector's lag, open alerts, deliveries."""
        return PlainTextResponse(desk.metrics_text(s), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/runs", tags=["meta"], response_model=m.RunsOut, summary="Recorded runs, newest first")
    def get_runs(s: Db, _who: Who, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                 kind: Annotated[str | None, Query(max_length=32)] = None) -> dict:
        df = desk.runs(s, limit, kind)
        recs = json_records(df.drop(columns=["stages", "detail"]))
        for rec, stages in zip(recs, df["stages"], strict=True):
            rec["stages"] = [{"stage": k, "seconds": v} for k, v in stages]
        return {"count": len(recs), "runs": recs}

    @app.post("/detections", tags=["ingest"], response_model=m.DetectionsPostedOut, openapi_extra=DETECTION_BODY,
              responses=POST_ERRORS, summary="Load detections (canonical JSON or CSV), at most once per key")
    async def post_detections(request: Request, s: Db, who: Who,
                              idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
                              format: Annotated[Literal[tuple(desk.FORMATS)] | None, Query()] = None,  # noqa: A002
                              source_name: Annotated[str | None, Query(max_length=200)] = None,
                              process: Annotated[bool, Query(description="fuse, score and check alerts before "
                                                                         "answering")] = False) -> Any:
        """Checked and loaded exactly as a file: the same limits, reasons per row, and the same bytes never
        twice. Send an `Idempotency-Key` to retry safely: the same key and body give the first answer again
        (`replayed: true`); the same key with another body is refused (409). Without `process`, the watcher
        (`mlpe watch`) or the next `mlpe fuse` fuses what was loaded."""
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/json", "application/geo+json", "text/csv", "application/csv"):
            raise HTTPException(415, f"content type '{ctype or 'none'}' is not application/json or text/csv")
        limit = desk.settings().max_file_bytes
        body = await request.body()
        if len(body) > limit:
            raise HTTPException(413, f"the body is {len(body):,} bytes; at most {limit:,} (MLPE_MAX_FILE_BYTES)")
        if not body.strip():
            raise HTTPException(422, "request body: empty")

        def work():
            try:
                return desk.post_detections(s, who, body, ctype, idempotency_key, format or "auto", source_name,
                                            process)
            except desk.IdempotencyConflict as exc:
                raise HTTPException(409, str(exc)) from exc

        status, answer = await run_in_threadpool(guard, work)
        return JSONResponse(jsonable_encoder(answer), status,
                            headers={"Idempotent-Replayed": "true"} if answer.get("replayed") else None)

    def _alert_out(df) -> list:
        recs = json_records(df.drop(columns=["detail"], errors="ignore"))
        for rec, d in zip(recs, df["detail"] if "detail" in df else [None] * len(recs), strict=True):
            rec["detail"] = json.loads(d) if isinstance(d, str) and d else {}
        return recs

    @app.get("/alerts", tags=["alerts"], response_model=m.AlertsOut,
             summary="The alert inbox, most severe first, then newest")
    def get_alerts(s: Db, _who: Who,
                   state: Annotated[Literal["open", "acknowledged", "snoozed", "all"], Query()] = "open",
                   team: Annotated[str | None, Query(max_length=64)] = None,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict:
        df = desk.alerts_inbox(s, None if state == "all" else state, team, limit)
        return {"count": int(len(df)), "open": desk.open_alert_count(s), "alerts": _alert_out(df)}

    def alert_id_in_range(alert_id: int) -> int:
        if not 1 <= alert_id <= MAX_ID:
            raise HTTPException(404, f"no alert {alert_id}")
        return alert_id

    @app.post("/alerts/{alert_id}/ack", tags=["alerts"], response_model=m.AlertOut,
              summary="Acknowledge an alert, with the reason (audited)")
    def ack_alert(alert_id: int, body: AckRequest, s: Db, who: Who) -> dict:
        alert_id_in_range(alert_id)
        return guard(desk.acknowledge_alert, s, who, alert_id, body.reason)

    @app.post("/alerts/{alert_id}/snooze", tags=["alerts"], response_model=m.AlertOut,
              summary="Snooze an alert for some hours, with the reason (audited)")
    def snooze(alert_id: int, body: SnoozeRequest, s: Db, who: Who) -> dict:
        alert_id_in_range(alert_id)
        return guard(desk.snooze_alert, s, who, alert_id, body.reason, hours=body.hours)

    @app.get("/alerts/stream", tags=["alerts"], include_in_schema=False)
    async def alert_stream(request: Request, _who: Who, after: Annotated[int | None, Query(ge=0)] = None,
                           last_event_id: Annotated[str | None, Header()] = None,
                           timeout: Annotated[float | None, Query(gt=0, le=86400)] = None) -> StreamingResponse:
        """Server-sent events: one ``event: alert`` per new alert (``id`` is the alert id, ``data`` its JSON),
        a comment every 15 s to keep proxies open. Starts after ``after``, else after ``Last-Event-ID`` (a
        reconnecting browser resumes), else with alerts recorded from now on. Kept out of the OpenAPI schema:
        it never ends by itself unless ``timeout`` (seconds) is given."""
        import asyncio
        import time as _time

        def newest() -> int:
            with Session(engine) as s2:
                return desk.live_stamp(s2)["alert"]

        def fetch(last: int) -> list:
            with Session(engine) as s2:
                return desk.alerts_after(s2, last)

        start = after if after is not None else (int(last_event_id) if (last_event_id or "").isdigit() else None)
        if start is None:
            start = await run_in_threadpool(newest)

        async def events():
            last, t0 = start, _time.monotonic()
            beat = t0
            yield "retry: 2000\n: connected\n\n"
            while True:
                if await request.is_disconnected():
                    break
                for a in await run_in_threadpool(fetch, last):
                    last = int(a["id"])
                    yield f"id: {last}\nevent: alert\ndata: {json.dumps(a, default=str)}\n\n"
                now = _time.monotonic()
                if timeout is not None and now - t0 >= timeout:
                    break
                if now - beat >= 15:
                    beat = now
                    yield ": keep-alive\n\n"
                await asyncio.sleep(1.0)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/login", tags=["auth"], response_model=m.LoginOut, summary="A bearer token for HTTP Basic credentials")
    def login(request: Request, s: Db, creds: Annotated[HTTPBasicCredentials | None, Depends(basic)] = None) -> dict:
        """The only endpoint that takes a password. Repeated failures for a user name or from a client back off
        (429 with Retry-After, no password check while it lasts); unknown names cost the same time as known."""
        if auth.open_mode(s):
            raise HTTPException(404, "this store has no users (open mode): no sign-in is needed")
        if creds is None:
            raise HTTPException(401, "send HTTP Basic credentials", headers={"WWW-Authenticate": "Basic"})
        keys = (f"user:{creds.username.lower()}", f"client:{request.client.host if request.client else '-'}")
        wait = throttle.wait_s(*keys)
        if wait > 0:
            raise HTTPException(429, f"too many failed sign-ins: try again in {wait:.0f} s",
                                headers={"Retry-After": str(int(wait) + 1)})
        u = auth.authenticate(s, creds.username, creds.password)
        if u is None:
            throttle.failed(*keys)
            raise HTTPException(401, "unknown user or wrong password", headers={"WWW-Authenticate": "Basic"})
        throttle.succeeded(keys[0])
        token, rec = auth.create_token(s, u.username, u.username, label="login", kind="login")
        return {"token": token, "token_type": "bearer", "username": u.username, "role": u.role,
                "expires_at": _token_out(rec)["expires_at"]}

    @app.post("/logout", tags=["auth"], response_model=m.TokenOut, summary="Revoke the token of this request")
    def logout(s: Db, who: Who, token: Annotated[str | None, Depends(bearer_token)] = None) -> dict:
        rec = store.token_by_digest(s, auth._token_digest(token)) if token else None
        if rec is None:
            raise HTTPException(404, "no token in this request (open mode needs none)")
        return _token_out(guard(auth.revoke_token, s, who, rec.id))

    @app.get("/tokens", tags=["auth"], response_model=list[m.TokenOut], summary="Every token (admins)")
    def get_tokens(s: Db, who: Who) -> list:
        return [_token_out(t) for t in guard(auth.tokens, s, who)]

    @app.post("/tokens", tags=["auth"], status_code=201, response_model=m.TokenCreatedOut,
              summary="Create a token for a user (admins); it is shown once")
    def post_token(body: TokenRequest, s: Db, who: Who) -> dict:
        token, rec = guard(auth.create_token, s, who, body.username, body.label, body.expires_days)
        return {**_token_out(rec), "token": token}

    @app.delete("/tokens/{token_id}", tags=["auth"], response_model=m.TokenOut,
                summary="Revoke a token (admins any, users their own)")
    def delete_token(token_id: int, s: Db, who: Who) -> dict:
        if not 1 <= token_id <= MAX_ID:
            raise HTTPException(404, f"no token {token_id}")
        return _token_out(guard(auth.revoke_token, s, who, token_id))

    @app.get("/leaks", tags=["leaks"], summary="Ranked leaks: filtered, sorted, a page at a time",
             response_model=m.LeaksOut, responses=CACHED)
    async def get_leaks(request: Request, creds: Creds = None, x_mlpe_user: UserHeader = None,
                        status: Annotated[list[str] | None, Query(description="one or more statuses")] = None,
                        band: Annotated[list[str] | None, Query(description="HIGH, MEDIUM, LOW")] = None,
                        source_type: Annotated[list[str] | None, Query(
                            description="seen by any of these source types")] = None,
                        operator: Annotated[list[str] | None, Query(description="the asset's operator")] = None,
                        asset_id: str | None = None,
                        search: Annotated[str | None, Query(max_length=200,
                                                            description="part of a leak or asset id")] = None,
                        min_priority: float | None = None,
                        min_rate_kg_h: Annotated[float | None, Query(ge=0)] = None,
                        seen_from: Annotated[date | None, Query(
                            description="last seen on or after this day (YYYY-MM-DD)")] = None,
                        seen_to: Annotated[date | None, Query(description="first seen on or before this day")] = None,
                        overdue: bool | None = None,
                        due_within_days: Annotated[float | None, Query(ge=0, le=36_500)] = None,
                        failed_repair: bool | None = None,
                        ranked: Annotated[bool, Query(description="only leaks with a rank (open, scored)")] = True,
                        sort: Annotated[str, Query(max_length=40, description="rank (default) or " + ", ".join(
                            desk.LEAK_SORTS[1:]) + "; '-' before a name sorts descending")] = "rank",
                        limit: Annotated[int | None, Query(ge=0, le=100_000,
                                                           description="leaks per page (default 100)")] = None,
                        top: Annotated[int | None, Query(ge=0, le=100_000,
                                                         description="the same as limit (its older name)")] = None,
                        offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> Response:
        """The effective ranking (the model's rank with supervisors' overrides; ``desk.ranking``), filtered like the
        app's sidebar, a page at a time: ``count`` is how many leaks match on all pages, ``next_offset`` asks for
        the next page (null on the last). Answers are computed once per store version; ``ETag`` names that
        version, so ``If-None-Match`` with it answers 304 until something is written."""
        if limit is not None and top is not None and limit != top:
            raise HTTPException(422, f"limit ({limit}) and top ({top}) are the same setting: give one")
        size = limit if limit is not None else top if top is not None else 100
        if sort.lstrip("-") not in desk.LEAK_SORTS:
            raise HTTPException(422, f"sort: '{sort}' is not one of {', '.join(desk.LEAK_SORTS)} "
                                "(prefix '-' for descending)")
        flt = leak_filter(status, band, source_type, operator, asset_id, search, min_priority, min_rate_kg_h,
                          seen_from, seen_to, overdue, due_within_days, failed_repair, ranked)

        def page(snap: desk.Snapshot) -> bytes:
            rows = snap.answer(("api:rows",), lambda: json_lines(snap.ranking().reindex(columns=LEAK_FIELDS)))
            pos = snap.selection(flt, sort)
            total = len(pos)
            nxt = offset + size if size and offset + size < total else None
            head = json.dumps({"count": total, "offset": offset, "limit": size, "next_offset": nxt, "sort": sort,
                               "as_of": iso_utc(snap.as_of())})
            return (head[:-1] + ', "leaks": [' + ",".join(rows[i] for i in pos[offset:offset + size]) + "]}"
                    ).encode()

        return await cached_get(request, creds, x_mlpe_user, page)

    @app.get("/leaks/{leak_id}", tags=["leaks"], summary="One leak: detections, visits, lifecycle, deadlines",
             response_model=m.LeakDetailOut, responses=CACHED)
    async def get_leak(leak_id: str, request: Request, creds: Creds = None, x_mlpe_user: UserHeader = None
                       ) -> Response:
        def detail(snap: desk.Snapshot) -> bytes:
            return snap.answer(("api:leak", leak_id), lambda: m.LeakDetailOut.model_validate(
                leak_out(guard(snap.leak_detail, leak_id))).model_dump_json().encode())

        def exists(snap: desk.Snapshot) -> None:  # one primary-key lookup
            if snap.session.get(Leak, leak_id) is None:
                raise HTTPException(404, f"no leak '{leak_id}'")

        return await cached_get(request, creds, x_mlpe_user, detail, exists)

    @app.get("/obligations", tags=["leaks"], summary="Every running regulatory clock, soonest first",
             response_model=m.ObligationsOut, responses=CACHED)
    async def get_obligations(request: Request, creds: Creds = None, x_mlpe_user: UserHeader = None) -> Response:
        """Computed once per store version; ``ETag`` and ``If-None-Match`` as for ``/leaks``."""
        def queue(snap: desk.Snapshot) -> bytes:
            ob = desk.obligations(snap.session)
            return m.ObligationsOut(count=int(len(ob)), as_of=iso_utc(snap.as_of()),
                                    obligations=json_records(ob)).model_dump_json().encode()

        return await cached_get(request, creds, x_mlpe_user, lambda snap: snap.answer(("api:obligations",),
                                                                                     lambda: queue(snap)))

    @app.get("/dispatch", tags=["dispatch"], summary="The leaks to visit next (contract columns)",
             response_model=m.DispatchOut, responses=CACHED)
    async def get_dispatch(request: Request, creds: Creds = None, x_mlpe_user: UserHeader = None,
                           top: Annotated[int | None, Query(ge=0, le=10_000)] = None,
                           routed: Annotated[bool, Query(description="the day's plan: crew, stop and route km")
                                             ] = False) -> Response:
        """Computed once per store version (and ``top``); ``ETag`` and ``If-None-Match`` as for ``/leaks``."""
        def routed_out(snap: desk.Snapshot) -> bytes:
            meta, stops = guard(snap.plan, top)
            return m.DispatchOut(count=int(len(stops)), status=meta["status"], list_id=meta["list_id"],
                                 items=json_records(stops)).model_dump_json().encode()

        def listed_out(snap: desk.Snapshot) -> bytes:
            disp = guard(snap.dispatch, top)
            return m.DispatchOut(count=int(len(disp)), items=json_records(disp)).model_dump_json().encode()

        return await cached_get(request, creds, x_mlpe_user, lambda snap: snap.answer(
            ("api:plan" if routed else "api:dispatch", top), lambda: (routed_out if routed else listed_out)(snap)))

    @app.get("/dispatch/workorders", tags=["dispatch"], summary="Work orders of the day's plan",
             response_model=m.WorkOrdersOut, response_model_by_alias=True)
    def get_current_workorders(s: Db, _who: Who, top: Annotated[int | None, Query(ge=0, le=10_000)] = None) -> dict:
        return tidy(guard(desk.work_orders, s, None, top))

    @app.post("/dispatch/lists", tags=["dispatch"], status_code=201, summary="Plan a routed list (a draft)",
              response_model=m.PlannedOut)
    def post_list(s: Db, who: Who, body: Annotated[PlanRequest | None, Body()] = None) -> dict:
        body = body or PlanRequest()
        list_id = guard(desk.plan_list, s, who, body.top, body.plan_date, note=body.note, fields={"date": "plan_date"})
        return {"list_id": list_id, "status": "draft", "items": json_records(desk.list_stops(s, list_id))}

    @app.get("/dispatch/lists", tags=["dispatch"], summary="Every dispatch list, newest first",
             response_model=m.ListsOut)
    def get_lists(s: Db, _who: Who) -> dict:
        return {"lists": json_records(desk.lists(s))}

    @app.get("/dispatch/lists/{list_id}", tags=["dispatch"], summary="One list and its stops",
             response_model=m.ListOut)
    def get_list(list_id: int, s: Db, _who: Who) -> dict:
        list_id_in_range(list_id)
        lists = desk.lists(s)
        meta = lists[lists["id"] == list_id]
        if meta.empty:
            raise HTTPException(404, f"no dispatch list {list_id}")
        return {"list": json_records(meta)[0], "items": json_records(desk.list_stops(s, list_id))}

    @app.post("/dispatch/lists/{list_id}/approve", tags=["dispatch"], summary="Supervisor approval",
              response_model=m.ApprovedOut)
    def approve(list_id: int, s: Db, who: Who, body: Annotated[ApproveRequest | None, Body()] = None) -> dict:
        list_id_in_range(list_id)
        body = body or ApproveRequest()
        return guard(desk.approve_list, s, who, list_id, body.note)

    @app.get("/dispatch/lists/{list_id}/workorders", tags=["dispatch"], summary="Work orders of a stored list",
             response_model=m.WorkOrdersOut, response_model_by_alias=True)
    def get_workorders(list_id: int, s: Db, _who: Who) -> dict:
        list_id_in_range(list_id)
        return tidy(guard(desk.work_orders, s, list_id))

    @app.post("/validations", tags=["field"], summary="Record field outcomes (checked like the CSV import)",
              response_model=m.ValidationsOut)
    def post_validations(rows: Annotated[list[ValidationRow], Body(min_length=1, max_length=10_000)], s: Db,
                         who: Who) -> dict:
        raw = pd.DataFrame([r.model_dump() for r in rows]).astype(object)
        raw = raw.where(raw.notna(), "").astype(str)
        res = guard(desk.record_outcomes, s, who, raw, "request body")
        out = [{"index": int(r.row) - 2, "column": r.column, "reason": r.reason} for r in res["rejects"].itertuples()]
        return {"rows": len(rows), "recorded": res["recorded"], "duplicates": res["duplicates"],
                "rejected": len({o["index"] for o in out}), "rejects": out, "changes": res["changes"]}

    @app.post("/workorders/status", tags=["field"], summary="Work-order progress from a maintenance system",
              response_model=m.StatusOut)
    def post_status(body: WorkOrderStatus, s: Db, who: Who) -> dict:
        at = _as_utc(body.at, "at")
        return guard(desk.set_work_order_status, s, who, body.status, work_order_id=body.work_order_id,
                     leak_id=body.leak_id, at=at, crew=body.crew, note=body.note, reason=body.reason)

    @app.post("/leaks/{leak_id}/events", tags=["leaks"], summary="Mark for dispatch, release, close or reopen",
              response_model=m.LeakStatusOut)
    def post_leak_event(leak_id: str, body: LeakEventRequest, s: Db, who: Who) -> dict:
        at = _as_utc(body.at, "at")
        status = guard(desk.leak_event, s, who, leak_id, body.event, at, body.note, source="api")
        return {"leak_id": leak_id, "status": status}

    @app.post("/leaks/{leak_id}/override", tags=["leaks"], summary="A supervisor moves a leak in the ranking",
              response_model=m.OverrideOut)
    def post_override(leak_id: str, body: OverrideRequest, s: Db, who: Who) -> dict:
        return {"leak_id": leak_id, "message": guard(desk.override_rank, s, who, leak_id, body.rank, body.reason)}

    @app.get("/leaks/{leak_id}/history", tags=["leaks"], summary="Lifecycle events of a leak",
             response_model=m.HistoryOut)
    def get_history(leak_id: str, s: Db, _who: Who) -> dict[str, Any]:
        d = guard(desk.leak_detail, s, leak_id)
        return {"leak_id": leak_id, "events": json_records(d["events"].drop(columns=["id"]))}

    def _trend(t: dict | None) -> dict | None:
        return None if t is None else json_records(pd.DataFrame([t]))[0]

    @app.get("/sites", tags=["sites"], summary="Roll-up per site, most expected methane first",
             response_model=m.SitesOut)
    def get_sites(s: Db, _who: Who) -> dict:
        df = desk.sites(s)
        return {"count": int(len(df)), "as_of": iso_utc(desk.as_of(s)), "sites": json_records(df)}

    @app.get("/sites/{asset_id}", tags=["sites"], summary="One site: leaks, sensors and emissions through time, "
             "visits, obligations and trend", response_model=m.SiteDetailOut)
    def get_site(asset_id: str, s: Db, _who: Who) -> dict:
        d = guard(desk.site_detail, s, asset_id)
        return {"site": json_records(pd.DataFrame([d["site"]]))[0], "as_of": iso_utc(d["as_of"]),
                "leaks": json_records(d["leaks"].reindex(columns=LEAK_FIELDS)), "weekly": json_records(d["weekly"]),
                "emissions": json_records(d["emissions"]),
                "visits": json_records(d["visits"].drop(columns=["batch_id"], errors="ignore")),
                "events": json_records(d["events"].drop(columns=["hash"], errors="ignore")),
                "obligations": json_records(d["obligations"]), "trend": _trend(d["trend"])}

    @app.get("/operators", tags=["sites"], summary="Roll-up per operator", response_model=m.OperatorsOut)
    def get_operators(s: Db, _who: Who) -> dict:
        df = desk.operators(s)
        return {"count": int(len(df)), "as_of": iso_utc(desk.as_of(s)), "operators": json_records(df)}

    @app.get("/operators/{operator}", tags=["sites"], summary="One operator: sites, sensor precision, trend",
             response_model=m.OperatorDetailOut)
    def get_operator(operator: str, s: Db, _who: Who) -> dict:
        d = guard(desk.operator_detail, s, operator)
        return {"operator": json_records(pd.DataFrame([d["operator"]]))[0], "as_of": iso_utc(d["as_of"]),
                "sites": json_records(d["sites"]), "sensors": json_records(d["sensors"]),
                "worsening": json_records(d["worsening"]), "trend": _trend(d["trend"])}

    @app.get("/emissions", tags=["sites"], summary="Estimated emissions by site and source category, with the OGMP "
             "2.0 level they support", response_model=m.EmissionsOut)
    def get_emissions(s: Db, _who: Who, operator: Annotated[str | None, Query(max_length=200)] = None,
                      start: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD")] = None,
                      end: Annotated[str | None, Query(alias="to", description="YYYY-MM-DD, excluded")] = None) -> dict:
        e = guard(desk.emissions, s, start, end, operator)
        return {"start": iso_utc(e["start"]), "end": iso_utc(e["end"]), "ogmp": e["ogmp"],
                "total": json_records(e["total"])[0], "by_site": json_records(e["by_site"]),
                "by_category": json_records(e["by_category"]), "basis": json_records(e["basis"])}

    @app.get("/report", tags=["sites"], summary="The regulator's report for an operator and period",
             response_model=m.ReportOut,
             responses={200: {"content": {"application/pdf": {}, XLSX: {}},
                              "description": "JSON (the report model), or the PDF or XLSX file with format=pdf|xlsx"}})
    def get_report(s: Db, who: Who, operator: Annotated[str, Query(min_length=1, max_length=200)],
                   start: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD")] = None,
                   end: Annotated[str | None, Query(alias="to", description="YYYY-MM-DD, included")] = None,
                   format: Annotated[Literal["json", "pdf", "xlsx"], Query()] = "json"):  # noqa: A002
        rep = guard(desk.report, s, operator, start, end, user=who)
        if format == "json":
            return tidy(rep.to_dict())
        name = f"mlpe_report_{rep.meta['period_start']:%Y%m%d}_{rep.meta['period_end']:%Y%m%d}.{format}"
        return Response(desk.render_report(rep, format), media_type="application/pdf" if format == "pdf" else XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        query_params[id(route)] = accepted_query(route)  # per route, not per path: a path's GET and POST may differ
        if route.body_field is not None and route.path not in JsonBodies.EXEMPT:  # what JsonBodies refuses, in
            route.responses.update(JSON_BODY_ERRORS)  # the schema of every route that takes a JSON body
    app.state.started_at = iso_utc(datetime.now(UTC))
    return app


def serve(db: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn (``mlpe serve``)."""
    import uvicorn

    uvicorn.run(create_app(db), host=host, port=port, log_level="info")
