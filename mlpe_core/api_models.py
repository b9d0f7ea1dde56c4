"""Response models of the HTTP API: what each endpoint returns, typed, so ``/openapi.json`` documents it.

Records built from store frames name their main fields with types and allow further columns (a store with
more columns adds them without breaking a client); every error is an :class:`ErrorOut`.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorOut(BaseModel):
    """Every error: a one-line reason, and for a request that fails validation, which fields and why."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class HealthOut(BaseModel):
    status: str
    version: str


class LeakRecord(_Open):
    leak_id: str
    rank: int | None = None
    priority_score: float | None = None
    risk_band: str | None = None
    p_real: float | None = None
    est_rate_kg_h: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    radius_m: float | None = None
    n_detections: int | None = None
    n_sources: int | None = None
    source_types: str | None = None
    first_seen: str | None = Field(None, description="ISO 8601 UTC")
    last_seen: str | None = None
    asset_id: str | None = None
    status: str | None = None
    top_reasons: str | None = None
    due_by: str | None = None
    due_rule: str | None = None
    failed_repair: bool | None = None
    model_rank: int | None = Field(None, description="the scorer's rank before any supervisor's override")
    override_reason: str | None = None
    marked: bool | None = Field(None, description="marked for dispatch: goes on the next plan whatever its rank")
    overdue: bool | None = None
    band_why: str | None = Field(None, description="what set the risk band, in words")


class LeaksOut(BaseModel):
    count: int = Field(description="leaks matching the filters (all pages)")
    offset: int
    limit: int | None = Field(None, description="leaks per page")
    next_offset: int | None = Field(None, description="the offset of the next page; null on the last")
    sort: str | None = Field(None, description="the order: rank, or a column ('-' first: descending)")
    as_of: str | None = Field(None, description="the clock of the scores: 'overdue' counts from it")
    leaks: list[LeakRecord]


class DetectionRecord(_Open):
    detection_id: str
    source_name: str
    source_type: str | None = None
    observed_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    rate_kg_h: float | None = None
    leak_id: str | None = None


class ValidationRecord(_Open):
    leak_id: str
    visited_at: str | None = None
    outcome: str | None = None
    measured_rate_kg_h: float | None = None
    recorded_by: str | None = None


class LeakEventRecord(_Open):
    leak_id: str
    at: str | None = None
    event: str
    from_status: str | None = None
    to_status: str | None = None
    actor: str | None = None


class DeadlineRecord(_Open):
    due_by: str | None = None
    due_rule: str | None = None
    overdue: bool | None = None


class LeakDetailOut(BaseModel):
    leak: LeakRecord
    as_of: str | None = None
    allowed_events: list[str]
    deadlines: list[DeadlineRecord]
    detections: list[DetectionRecord]
    validations: list[ValidationRecord]
    history: list[LeakEventRecord]


class HistoryOut(BaseModel):
    leak_id: str
    events: list[LeakEventRecord]


class DispatchItemRecord(_Open):
    rank: int | None = None
    leak_id: str
    asset_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    est_rate_kg_h: float | None = None
    p_real: float | None = None
    priority_score: float | None = None
    risk_band: str | None = None
    due_by: str | None = None
    top_reasons: str | None = None


class DispatchOut(BaseModel):
    count: int
    status: str | None = Field(None, description="with routed=true: approved, draft or proposal")
    list_id: int | None = None
    items: list[DispatchItemRecord]


class ObligationRecord(_Open):
    leak_id: str | None = None
    site: str | None = None
    title: str | None = None
    action: str | None = None
    due_by: str | None = None
    state: str | None = Field(None, description="overdue, due soon, running or met")
    started_text: str | None = Field(None, description="what started the clock (a notice, a find, a crossing)")
    citation: str | None = None


class ObligationsOut(BaseModel):
    count: int
    as_of: str | None = None
    obligations: list[ObligationRecord]


class LeakStatusOut(BaseModel):
    leak_id: str
    status: str


class OverrideOut(BaseModel):
    leak_id: str
    message: str


class WorkOrderRecord(_Open):
    work_order_id: str
    leak_id: str
    priority_rank: int
    status: str


class WorkOrdersOut(_Open):
    """``docs/workorder.schema.json``."""

    schema_: str = Field(alias="schema")
    generated_at: str | None = None
    source: str
    list_id: int | None = None
    status: str
    plan_date: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    work_orders: list[WorkOrderRecord]


class DispatchListRecord(_Open):
    id: int
    created_at: str | None = None
    created_by: str | None = None
    plan_date: str
    status: str
    approved_by: str | None = None
    approved_at: str | None = None
    note: str | None = None
    n_items: int
    total_km: float | None = None


class ListsOut(BaseModel):
    lists: list[DispatchListRecord]


class ListOut(BaseModel):
    list: DispatchListRecord
    items: list[DispatchItemRecord]


class PlannedOut(BaseModel):
    list_id: int
    status: str
    items: list[DispatchItemRecord]


class ApprovedOut(_Open):
    list_id: int
    approved_by: str
    items: int


class RejectOut(BaseModel):
    index: int = Field(description="0-based position of the row in the request body")
    column: str
    reason: str


class ValidationsOut(BaseModel):
    rows: int
    recorded: int
    duplicates: int
    rejected: int
    rejects: list[RejectOut]
    changes: dict[str, Any] | None = Field(None, description="what the re-score changed: leaks that left the ranking, "
                                                             "how many others moved")


class StatusOut(_Open):
    leak_id: str
    leak_status: str


class LoginOut(BaseModel):
    token: str = Field(description="send it as `Authorization: Bearer <token>`; shown once")
    token_type: str = "bearer"
    username: str
    role: str
    expires_at: str | None = None


class TokenOut(BaseModel):
    id: int
    username: str
    label: str | None = None
    kind: str
    created_at: str
    created_by: str
    expires_at: str | None = None
    revoked_at: str | None = None


class TokenCreatedOut(TokenOut):
    token: str = Field(description="shown once: only its SHA-256 is stored")
