"""SQLModel tables: the one store behind the app, the command line and the API.

Detections keep their lineage (batch, file hash, source row, original values) because a leak
sent to a crew must be traceable back to the file rows that created it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class Asset(SQLModel, table=True):
    asset_id: str = Field(primary_key=True)
    latitude: float
    longitude: float
    asset_type: str | None = None
    operator: str | None = Field(default=None, index=True)


class IngestBatch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    file_name: str
    sha256: str = Field(index=True)
    format: str
    kind: str = "detections"  # detections, assets, validations
    ingested_at: datetime
    recorded_by: str = "system"
    n_rows: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    n_duplicate: int = 0


class Detection(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("source_name", "detection_id", name="uq_detection_source"),)
    id: int | None = Field(default=None, primary_key=True)
    detection_id: str
    source_type: str
    source_name: str
    observed_at: datetime  # no index: time windows are applied to frames, and it cost 1/7 of a bulk load
    latitude: float
    longitude: float
    location_uncertainty_m: float
    rate_kg_h: float | None = None
    rate_uncertainty_kg_h: float | None = None
    confidence: float | None = None
    wind_speed_m_s: float | None = None
    asset_id: str | None = None
    event_type: str | None = None
    attributes: str | None = None  # JSON of extra columns and the original values
    batch_id: int | None = Field(default=None, foreign_key="ingestbatch.id")
    source_row: int | None = None  # 1-based line number in the source file (header = line 1)
    leak_id: str | None = Field(default=None, index=True)
    ambiguous: bool = False  # coarse detection compatible with several precise leaks


class MonitorCoverage(SQLModel, table=True):
    """A window in which a sensor watched a site, and what it saw: ``detected`` (the window of one of its
    detections, ``detection_id``), ``watching`` (it watched and saw nothing: a negative report, a zero-rate
    block, an aircraft pass without a plume) or ``offline`` (no data). Silence only counts where it watched."""

    id: int | None = Field(default=None, primary_key=True)
    source_name: str = Field(index=True)
    source_type: str
    asset_id: str
    start_at: datetime
    end_at: datetime
    state: str  # detected, watching, offline
    detection_id: str | None = None  # for ``detected``: the detection this window belongs to
    batch_id: int | None = Field(default=None, foreign_key="ingestbatch.id")
    source_row: int | None = None  # 1-based line number in the source file (header = line 1)


class Leak(SQLModel, table=True):
    leak_id: str = Field(primary_key=True)
    active: bool = True  # False when a later fusion no longer produces this leak
    latitude: float
    longitude: float
    radius_m: float
    n_detections: int
    n_sources: int
    source_types: str
    first_seen: datetime
    last_seen: datetime = Field(index=True)
    asset_id: str | None = Field(default=None, index=True)
    asset_candidates: str | None = None  # JSON list of {asset_id, p, distance_m}
    n_ambiguous: int = 0
    status: str = Field(default="open", index=True)
    p_real: float | None = None
    est_rate_kg_h: float | None = None
    rate_lo_kg_h: float | None = None
    rate_hi_kg_h: float | None = None
    rate_quantified: bool = False
    priority_score: float | None = None
    risk_band: str | None = Field(default=None, index=True)
    top_reasons: str | None = None
    contributions: str | None = None  # JSON {feature: contribution in log-odds}
    model_version: int | None = None
    due_by: datetime | None = None
    due_rule: str | None = None
    scored_at: datetime | None = None
    # lifecycle (mlpe_core.lifecycle): when the status last changed, repair times, re-open after repair
    status_at: datetime | None = None
    repair_attempted_at: datetime | None = None
    repaired_at: datetime | None = None
    reopened_at: datetime | None = None
    failed_repair: bool = False  # seen again after it was repaired: a possible failed repair
    band_reason: str | None = None  # why the risk band is what it is (score.rank.band_reasons), shown beside it


class LeakRank(SQLModel, table=True):
    """The model's rank of each ranked (open, scored) leak: 1 = visit first; a leak without a row has no rank.

    A table of its own, not a column of ``leak``: 500 new leaks move the rank of most of 100,000, and rewriting
    that many wide leak rows dirtied the whole leak table (0.9 s with the commit at 1M detections; 0.14 s here).
    """

    __tablename__ = "leak_rank"
    leak_id: str = Field(primary_key=True)
    rank: int = Field(index=True)


class Validation(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("leak_id", "visited_at", "outcome", name="uq_validation"),)
    id: int | None = Field(default=None, primary_key=True)
    leak_id: str = Field(index=True)
    visited_at: datetime
    outcome: str
    measured_rate_kg_h: float | None = None
    component: str | None = None
    repaired_at: datetime | None = None
    crew: str | None = None
    notes: str | None = None
    found_by: str | None = None  # how the crew found it: ogi, method21, avo, other (sets the OOOOb repair clock)
    rate_method: str | None = None  # how the rate was measured, e.g. hi-flow, QOGI, bagging, estimate
    repair_attempted_at: datetime | None = None
    delay_reason: str | None = None  # delay of repair recorded (e.g. needs a shutdown), with its reason
    recorded_at: datetime
    recorded_by: str = "system"
    batch_id: int | None = Field(default=None, foreign_key="ingestbatch.id")


class ModelVersion(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    kind: str  # cold_start or learned
    active: bool = False
    promoted: bool = False
    decision: str = ""
    metrics: str = "{}"  # JSON
    features: str = "[]"  # JSON
    data_hash: str = ""
    n_train: int = 0
    n_holdout: int = 0
    blob: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


class AuditEvent(SQLModel, table=True):
    """One recorded action. Append-only (database triggers refuse UPDATE and DELETE) and hash-chained:
    ``hash`` covers the event and ``prev_hash``, the hash of the event before it (``store.audit``)."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str
    action: str = Field(index=True)
    target: str | None = Field(default=None, index=True)
    detail: str | None = None  # JSON
    prev_hash: str | None = None
    hash: str | None = None


class LeakEvent(SQLModel, table=True):
    """One lifecycle transition of a leak (``mlpe_core.lifecycle``): the history a regulator reads."""

    id: int | None = Field(default=None, primary_key=True)
    leak_id: str = Field(index=True)
    at: datetime  # when it happened in the field (visit, repair, approval time)
    event: str  # dispatch, release, visit, repair_attempt, repair, delay_of_repair, close, reopen
    from_status: str
    to_status: str
    actor: str = "system"
    recorded_at: datetime
    source: str | None = None  # validation:<id>, dispatch_list:<id>, api, fuse, cli
    detail: str | None = None  # JSON (outcome, reason, note)
    prev_hash: str | None = None  # hash-chained and append-only like AuditEvent
    hash: str | None = None


class ChainHead(SQLModel, table=True):
    """The newest hash of each chained table (``auditevent``, ``leakevent``) and how many events it covers.

    Writers lock this row before reading it, so two processes appending at once cannot fork a chain, and
    ``mlpe audit verify`` compares it with the last event, so removing the newest events shows.
    """

    name: str = Field(primary_key=True)
    hash: str
    n: int = 0


class FusionState(SQLModel, table=True):
    """The fusion generation: bumped by every fusion write, checked by fusion and scoring writes.

    A fusion or a scoring computes from what it read, then writes only if no other fusion wrote in
    between (compare-and-swap on ``generation``); otherwise it starts again from the new state.
    """

    id: int = Field(default=1, primary_key=True)
    generation: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None


class ApiToken(SQLModel, table=True):
    """A bearer token for the API and the command line: only its SHA-256 is stored, never the token."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True)
    token_hash: str = Field(unique=True)  # sha256 hex of the token
    label: str | None = None
    kind: str = "api"  # api (created by an admin) or login (POST /login)
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class DispatchList(SQLModel, table=True):
    """A planned day of visits; final only once a supervisor approves it."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    created_by: str = "system"
    plan_date: str  # YYYY-MM-DD the crews go out
    status: str = "draft"  # draft, approved, withdrawn
    approved_by: str | None = None
    approved_at: datetime | None = None
    note: str | None = None
    n_items: int = 0
    total_km: float = 0.0
    settings: str = "{}"  # JSON of the crews, speeds and limits it was planned with


class DispatchItem(SQLModel, table=True):
    """One stop of a dispatch list, and the work order a maintenance system tracks for it."""

    __table_args__ = (UniqueConstraint("list_id", "leak_id", name="uq_dispatch_item"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="dispatchlist.id", index=True)
    leak_id: str = Field(index=True)
    work_order_id: str = Field(index=True)
    rank: int
    crew: str
    stop: int
    leg_km: float = 0.0
    latitude: float
    longitude: float
    asset_id: str | None = None
    est_rate_kg_h: float | None = None
    p_real: float | None = None
    priority_score: float | None = None
    risk_band: str | None = None
    due_by: datetime | None = None
    due_rule: str | None = None
    top_reasons: str | None = None
    wo_status: str = "planned"  # planned, dispatched, in_progress, repair_attempted, repaired, closed, cancelled
    wo_status_at: datetime | None = None



class User(SQLModel, table=True):
    username: str = Field(primary_key=True)
    role: str  # analyst, supervisor, field_lead, admin (auth.ROLES)
    password_hash: str  # bcrypt
    active: bool = True
    created_at: datetime


class Notification(SQLModel, table=True):
    """A regulator's or program's notice about an emission (contract §2): legal clocks start from its receipt.

    ``leak_id`` is the leak it was matched to (``comply.notifications``): by ``detection_ref``, else by position
    and time, or set by a person (``match_method`` manual, audited); a blank ``leak_id`` is unmatched.
    """

    __table_args__ = (UniqueConstraint("notification_id", name="uq_notification_id"),)
    id: int | None = Field(default=None, primary_key=True)
    notification_id: str  # the notice's own id (unique): importing it again adds nothing
    received_at: datetime  # when the operator received it: the clocks' date of notice
    program: str  # ooooB_super_emitter, imeo_mars, state, voluntary
    notifier: str | None = None
    detection_ref: str | None = None  # the detection_id (or the source's plume id) it concerns
    latitude: float | None = None
    longitude: float | None = None
    rate_kg_h: float | None = None  # the rate the notice states
    notes: str | None = None
    leak_id: str | None = Field(default=None, index=True)
    match_method: str | None = None  # reference, position, manual (None: unmatched)
    match_distance_m: float | None = None  # from the notice's position to the matched detection, when both known
    batch_id: int | None = Field(default=None, foreign_key="ingestbatch.id")
    source_row: int | None = None  # 1-based line in the source file (header = line 1); None when entered by hand
    recorded_at: datetime
    recorded_by: str = "system"



# --------------------------------------------------------------------------------------------- always on (issue 18)


class RunRecord(SQLModel, table=True):
    """One run of a stage or a connector cycle (ingest, fuse, score, train, demo, watch, pull, alerts): when,
    how long each stage took, counts in and out, the model and code versions and the configuration used
    (``config_hash`` names a :class:`ConfigSnapshot`), and how it ended."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    source: str | None = None  # the face or connector that ran it: cli, api, app, watch, pull:<name>
    target: str | None = None  # a file name, a folder, a connector
    actor: str = "system"
    started_at: datetime
    ended_at: datetime
    seconds: float = 0.0
    stages: str = "[]"  # JSON [[stage, seconds], ...] in order
    n_in: int = 0
    n_out: int = 0
    n_rejected: int = 0
    detail: str | None = None  # JSON: the stage's own summary
    model_version: int | None = None
    code_version: str = ""
    config_hash: str = ""
    outcome: str = "ok"  # ok, nothing (nothing new to do), failed
    error: str | None = None


class ConfigSnapshot(SQLModel, table=True):
    """The configuration a run used (settings without secrets and the content of every configuration file),
    stored once per distinct content and named by its SHA-256."""

    hash: str = Field(primary_key=True)
    content: str  # JSON
    created_at: datetime


class WatchedFile(SQLModel, table=True):
    """A file the folder watcher took (``mlpe watch``): its hash and what became of it. ``loading`` is written and
    committed before the file's ingest transaction, so a watcher killed mid-file finds it on restart and finishes
    it (its batch committed) or loads it again (nothing committed), exactly once either way."""

    id: int | None = Field(default=None, primary_key=True)
    folder: str
    name: str
    sha256: str = Field(index=True)
    size: int = 0
    state: str  # loading, loaded, duplicate, rejected, error
    batch_id: int | None = None
    attempts: int = 0
    reason: str | None = None
    first_seen_at: datetime
    updated_at: datetime


class ConnectorState(SQLModel, table=True):
    """A connector's heartbeat and watermark: the folder watcher and each pull connector (lag in ``/metrics``)."""

    name: str = Field(primary_key=True)
    kind: str  # folder, stac, plumes_json
    watermark: datetime | None = None  # pull: the newest observation time fetched (the next `since`)
    last_run_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_error: str | None = None
    n_runs: int = 0
    n_failed: int = 0
    n_loaded: int = 0


class IdempotencyKey(SQLModel, table=True):
    """``POST /detections`` with an ``Idempotency-Key``: the same key again returns the first answer."""

    key: str = Field(primary_key=True)
    actor: str
    sha256: str  # of the body: the same key with another body is refused (409)
    status_code: int
    response: str  # JSON
    created_at: datetime


class Alert(SQLModel, table=True):
    """A condition someone must know about (a new HIGH leak, a deadline, a failed repair, a burst, a worsening
    site), routed to a team. ``key`` deduplicates: the same condition never alerts twice."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    rule: str = Field(index=True)
    kind: str
    severity: str = "high"  # high, medium, info
    title: str
    detail: str | None = None  # JSON
    leak_id: str | None = Field(default=None, index=True)
    asset_id: str | None = None
    operator: str | None = None
    asset_type: str | None = None
    team: str = "unrouted"
    event_at: datetime | None = None  # when the thing happened (last alarm, due date)
    created_at: datetime
    state: str = "open"  # open, acknowledged, snoozed
    snoozed_until: datetime | None = None
    handled_by: str | None = None
    handled_at: datetime | None = None
    reason: str | None = None


class AlertDelivery(SQLModel, table=True):
    """One alert to one channel (a webhook, an e-mail list): retried with back-off, ``failed`` once it gives up."""

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    channel: str  # webhook, email
    target: str  # the channel's name in the alert configuration
    state: str = "pending"  # pending, sent, failed
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    created_at: datetime
