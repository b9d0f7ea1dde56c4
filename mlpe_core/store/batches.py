"""Ingest batches: the lineage record of every imported file."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .common import _frame, _utc, now
from .models import IngestBatch


def batches_frame(session: Session) -> pd.DataFrame:
    return _utc(_frame(session, select(IngestBatch).order_by(IngestBatch.id.desc())), ["ingested_at"])


def file_batch(name: str, sha256: str, kind: str, user: str, **counts: int) -> IngestBatch:
    """The lineage record of one imported file (name, hash, time, who, row counts)."""
    return IngestBatch(
        file_name=name,
        sha256=sha256,
        format=kind,
        kind=kind,
        ingested_at=now(),
        recorded_by=user,
        **counts,
    )


def add_batch(session: Session, batch: IngestBatch) -> IngestBatch:
    """Write (or update) a batch record inside the caller's transaction; its id is set on return."""
    session.add(batch)
    session.flush()
    return batch
