"""What every store module shares: the clock, reading a statement into a frame, bulk upserts, counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlmodel import Session

from .models import (
    Asset,
    Detection,
    IngestBatch,
    Leak,
    ModelVersion,
    MonitorCoverage,
    Notification,
    Validation,
)


def now() -> datetime:
    return datetime.now(UTC)


def _frame(session: Session, stmt) -> pd.DataFrame:
    return pd.read_sql(stmt, session.connection())


def _utc(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    for c in cols:
        if c in df:
            df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df


def counts(session: Session) -> dict[str, int]:
    def n(model) -> int:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())

    leaks = int(session.execute(select(func.count()).select_from(Leak).where(Leak.active == True)).scalar_one())  # noqa: E712
    return {
        "detections": n(Detection),
        "leaks": leaks,
        "assets": n(Asset),
        "validations": n(Validation),
        "batches": n(IngestBatch),
        "models": n(ModelVersion),
    }


def upsert(session: Session, model, key: str, rows: list[dict], existing: set) -> tuple[list[dict], list[dict]]:
    """Insert rows whose ``key`` is new, bulk-update the others; returns (inserted, updated)."""
    new = [r for r in rows if r[key] not in existing]
    upd = [r for r in rows if r[key] in existing]
    if new:
        session.add_all([model(**r) for r in new])
    if upd:
        session.execute(update(model), upd)
    return new, upd


def clear_store(session: Session) -> None:
    """Empty the data tables. The audit trail and leak history are append-only (triggers refuse DELETE) and stay."""
    for m in (Validation, Notification, Detection, MonitorCoverage, Leak, IngestBatch, ModelVersion, Asset):
        session.execute(delete(m))
    session.commit()
