"""Run records and configuration snapshots: what each run did, how long each stage took, with what settings."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from .common import _frame, _utc, now
from .models import ConfigSnapshot, ModelVersion, RunRecord

RUN_COLUMNS = ["id", "kind", "source", "target", "actor", "started_at", "ended_at", "seconds", "stages", "n_in",
               "n_out", "n_rejected", "detail", "model_version", "code_version", "config_hash", "outcome", "error"]


def config_hash(content: dict) -> str:
    """SHA-256 of a configuration as canonical JSON (sorted keys): equal content, equal hash."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def save_snapshot(session: Session, content: dict) -> str:
    """Keep ``content`` once under its hash (no commit); returns the hash."""
    h = config_hash(content)
    if session.get(ConfigSnapshot, h) is None:
        session.add(ConfigSnapshot(hash=h, content=json.dumps(content, sort_keys=True, default=str),
                                   created_at=now()))
        session.flush()
    return h


def save_run(session: Session, run, *, model_version: int | None, code_version: str, config: dict) -> int:
    """Write a finished ``runlog.Run`` (no commit); returns the record's id."""
    rec = RunRecord(kind=run.kind, source=run.source, target=(run.target or None) and str(run.target)[:500],
                    actor=run.actor, started_at=run.started_at, ended_at=run.ended_at or now(),
                    seconds=float(run.seconds), stages=json.dumps([[k, round(v, 6)] for k, v in run.stages.items()]),
                    n_in=int(run.n_in), n_out=int(run.n_out), n_rejected=int(run.n_rejected),
                    detail=json.dumps(run.detail, default=str) if run.detail else None, model_version=model_version,
                    code_version=code_version, config_hash=save_snapshot(session, config), outcome=run.outcome,
                    error=run.error)
    session.add(rec)
    session.flush()
    return int(rec.id)


def runs_frame(session: Session, limit: int | None = 200, kind: str | None = None,
               after_id: int | None = None) -> pd.DataFrame:
    """Run records, newest first (``stages`` and ``detail`` as JSON text)."""
    q = select(*(getattr(RunRecord, c) for c in RUN_COLUMNS)).order_by(RunRecord.id.desc())
    if kind:
        q = q.where(RunRecord.kind == kind)
    if after_id is not None:
        q = q.where(RunRecord.id > int(after_id))
    if limit is not None:
        q = q.limit(int(limit))
    return _utc(_frame(session, q), ["started_at", "ended_at"])


def run_counts(session: Session) -> pd.DataFrame:
    """Runs per kind and outcome, with the newest run's end and duration per kind (for ``/metrics``)."""
    q = select(RunRecord.kind, RunRecord.outcome, func.count(), func.max(RunRecord.id)).group_by(
        RunRecord.kind, RunRecord.outcome)
    rows = session.execute(q).all()
    df = pd.DataFrame(rows, columns=["kind", "outcome", "n", "last_id"])
    if df.empty:
        return df.assign(last_seconds=pd.Series(dtype=float), last_end=pd.Series(dtype=object))
    last = {r.id: (r.seconds, r.ended_at) for r in session.execute(
        select(RunRecord.id, RunRecord.seconds, RunRecord.ended_at).where(RunRecord.id.in_(df["last_id"].tolist())))}
    df["last_seconds"] = df["last_id"].map(lambda i: last[i][0])
    df["last_end"] = df["last_id"].map(lambda i: last[i][1])
    return df


def snapshot(session: Session, h: str) -> dict | None:
    """The configuration stored under hash ``h``."""
    row = session.get(ConfigSnapshot, h)
    return json.loads(row.content) if row else None


def last_run_id(session: Session) -> int:
    return int(session.execute(select(func.max(RunRecord.id))).scalar() or 0)


def active_model_id(session: Session) -> int | None:
    """The live model version's id (the id only: the blob is not read)."""
    return session.execute(select(ModelVersion.id).where(ModelVersion.active == True)).scalar()  # noqa: E712
