"""Field validations: reads and inserts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .common import _utc, now, read_frame
from .models import Validation


def validations_frame(session: Session) -> pd.DataFrame:
    df = read_frame(session, Validation, order_by=Validation.id)
    return _utc(df, ["visited_at", "repaired_at", "recorded_at"])


def validation_keys(session: Session) -> set[tuple]:
    """(leak_id, visited_at as UTC, outcome) of every stored outcome: the same again is a duplicate."""
    out = set()
    for a, b, c in session.execute(select(Validation.leak_id, Validation.visited_at, Validation.outcome)):
        t = pd.Timestamp(b)
        out.add((a, t.tz_localize("UTC") if t.tzinfo is None else t, c))
    return out


def insert_validations(session: Session, rows: list[dict], user: str, batch_id: int | None = None) -> None:
    """Add checked outcome rows (no commit: the caller's transaction, which the unique key guards)."""
    for r in rows:
        clean = {k: (None if (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT) else v)
                 for k, v in r.items()}
        for k in ("visited_at", "repaired_at", "repair_attempted_at"):
            if clean.get(k) is not None:
                clean[k] = pd.Timestamp(clean[k]).to_pydatetime()
        session.add(Validation(**clean, recorded_at=now(), recorded_by=user, batch_id=batch_id))
