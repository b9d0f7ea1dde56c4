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
    store: str | None = Field(None, description="ok, or why the store cannot be read")
    open_alerts: int | None = None
    last_run: dict[str, Any] | None = Field(None, description="id, kind, outcome and end of the newest run")
    connectors: list[dict[str, Any]] | None = Field(None, description="each connector's name, kind, lag_s (seconds "
                                                    "since its last good cycle) and last error")


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


class SiteRecord(_Open):
    """One site's roll-up (``desk.sites``)."""

    asset_id: str
    n_leaks: int
    n_open: int | None = None
    expected_kg_h: float | None = Field(None, description="sum of P(real) × rate over its open leaks")
    n_confirmed: int | None = None
    n_repaired: int | None = None
    median_days_to_repair: float | None = Field(None, description="first detection to repair, days")
    met_on_time: int | None = None
    met_late: int | None = None
    overdue: int | None = None
    worsening: bool | None = Field(None, description="the trend test flags it (docs/sites.md)")
    trend_p: float | None = None
    operator: str | None = None
    asset_type: str | None = None


class SitesOut(BaseModel):
    count: int
    as_of: str | None = None
    sites: list[SiteRecord]


class OperatorRecord(_Open):
    """One operator's roll-up (``desk.operators``)."""

    operator: str
    n_leaks: int
    n_sites: int | None = None
    n_open: int | None = None
    expected_kg_h: float | None = None
    median_days_to_repair: float | None = None
    on_time_share: float | None = Field(None, description="clocks met on time / clocks due")
    false_alarm_share: float | None = Field(None, description="checked leaks not found / checked leaks")
    n_worsening: int | None = None


class OperatorsOut(BaseModel):
    count: int
    as_of: str | None = None
    operators: list[OperatorRecord]


class TrendOut(_Open):
    worsening: bool
    p_value: float
    ratio: float
    changed_on: str | None = None
    evidence: str


class SiteDetailOut(BaseModel):
    site: dict[str, Any]
    as_of: str | None = None
    leaks: list[LeakRecord]
    weekly: list[dict[str, Any]] = Field(description="per sensor and week: watched and detected days, readings")
    emissions: list[dict[str, Any]] = Field(description="per week: summed rate of its emitting leaks with ±1σ")
    visits: list[dict[str, Any]]
    events: list[dict[str, Any]]
    obligations: list[dict[str, Any]]
    trend: TrendOut | None = None


class OperatorDetailOut(BaseModel):
    operator: OperatorRecord
    as_of: str | None = None
    sites: list[SiteRecord]
    sensors: list[dict[str, Any]] = Field(description="per sensor: precision of the leaks it saw, from field outcomes")
    worsening: list[dict[str, Any]]
    trend: TrendOut | None = None


class ReportOut(BaseModel):
    """The regulator's report (``desk.report``): every row cites its notification, validation, lifecycle-event
    and audit-event ids."""

    meta: dict[str, Any]
    emissions_total: dict[str, Any]
    notifications: list[dict[str, Any]]
    ldar: list[dict[str, Any]]
    action_levels: list[dict[str, Any]]
    totals: list[dict[str, Any]]
    emissions: list[dict[str, Any]]


class EmissionsOut(BaseModel):
    """Estimated emissions of the fused leaks in a period (``desk.emissions``): tonnes CH4 with a 90 % interval,
    annualised, by site and source category, and the OGMP 2.0 level the data supports (``ogmp``)."""

    start: str
    end: str
    ogmp: str
    total: dict[str, Any]
    by_site: list[dict[str, Any]]
    by_category: list[dict[str, Any]]
    basis: list[dict[str, Any]] = Field(description="leaks and tonnes by what their rate rests on")
# --------------------------------------------------------------------------------------------- always on (issue 18)


class DetectionRejectOut(BaseModel):
    row: int = Field(description="row 2 is the first data row (as in a CSV file with its header)")
    column: str
    reason: str


class DetectionsPostedOut(BaseModel):
    file: str = Field(description="the name the batch was recorded under")
    format: str
    rows: int
    accepted: int
    rejected: int
    duplicate: int = Field(description="rows whose detection was already stored")
    already_ingested: bool = Field(description="these exact bytes were loaded before: nothing loaded again")
    batch_id: int | None = None
    rejects: list[DetectionRejectOut]
    replayed: bool = Field(description="the answer to an earlier request with the same Idempotency-Key")
    processed: bool = Field(description="fused, scored and alerts checked before answering (process=true)")
    leaks: int | None = None
    new_alerts: int | None = None


class StageOut(BaseModel):
    stage: str
    seconds: float


class RunRecordOut(_Open):
    id: int
    kind: str
    source: str | None = None
    target: str | None = None
    actor: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    seconds: float | None = None
    n_in: int | None = None
    n_out: int | None = None
    n_rejected: int | None = None
    model_version: int | None = None
    code_version: str | None = None
    config_hash: str | None = None
    outcome: str | None = None
    error: str | None = None
    stages: list[StageOut]


class RunsOut(BaseModel):
    count: int
    runs: list[RunRecordOut]


class AlertRecord(_Open):
    id: int
    key: str
    rule: str
    kind: str
    severity: str
    title: str
    team: str
    state: str
    leak_id: str | None = None
    asset_id: str | None = None
    operator: str | None = None
    event_at: str | None = None
    created_at: str | None = None
    snoozed_until: str | None = None
    handled_by: str | None = None
    reason: str | None = None
    deliveries: str | None = Field(None, description="what was sent where, e.g. 'webhook:ops sent, email:leads "
                                   "pending'")
    detail: dict[str, Any] | None = None


class AlertsOut(BaseModel):
    count: int
    open: int = Field(description="open alerts (the inbox count)")
    alerts: list[AlertRecord]


class AlertOut(_Open):
    id: int
    state: str
    handled_by: str | None = None
    reason: str | None = None
    snoozed_until: str | None = None
