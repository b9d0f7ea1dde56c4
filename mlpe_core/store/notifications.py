"""Notifications: the notices that start legal clocks (reads, inserts, and the leak each is matched to)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select, update
from sqlmodel import Session

from .common import _frame, _utc, now
from .models import Notification

NOTIFICATION_FIELDS = ["notification_id", "received_at", "program", "notifier", "detection_ref", "latitude",
                       "longitude", "rate_kg_h", "notes", "leak_id", "match_method", "match_distance_m", "batch_id",
                       "source_row", "recorded_at", "recorded_by"]


def notifications_frame(session: Session, with_ids: bool = False) -> pd.DataFrame:
    """Every stored notification, oldest receipt first (the columns of ``NOTIFICATION_FIELDS``; with ``with_ids``
    the row id first, which a report cites)."""
    cols = (["id"] if with_ids else []) + NOTIFICATION_FIELDS
    df = _frame(session, select(Notification).order_by(Notification.received_at, Notification.id))
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c in ("received_at", "recorded_at")
                                          else object) for c in cols})
    return _utc(df, ["received_at", "recorded_at"])[cols]


def notification_ids(session: Session) -> set[str]:
    """The notification ids already stored: the same id again is a duplicate, not a new notice."""
    return set(session.execute(select(Notification.notification_id)).scalars())


def _clean(v):
    if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


def insert_notifications(session: Session, rows: list[dict], user: str, batch_id: int | None = None) -> int:
    """Add checked notification rows whose id is new (no commit: the caller's transaction); returns how many.

    Each row has the contract columns (``schema.NOTIFICATION_COLUMNS``) and may carry ``source_row`` and a
    match (``leak_id``, ``match_method``, ``match_distance_m``)."""
    known = notification_ids(session)
    n = 0
    for r in rows:
        if r["notification_id"] in known:
            continue
        known.add(r["notification_id"])
        clean = {k: _clean(v) for k, v in r.items() if k in NOTIFICATION_FIELDS}
        session.add(Notification(**clean, recorded_at=now(), recorded_by=user, batch_id=batch_id))
        n += 1
    return n


def set_notification_matches(session: Session, matches: list[dict]) -> None:
    """Write matches: each ``{notification_id, leak_id, match_method, match_distance_m}`` (no commit)."""
    for m in matches:
        session.execute(update(Notification).where(Notification.notification_id == m["notification_id"])
                        .values(leak_id=_clean(m.get("leak_id")), match_method=_clean(m.get("match_method")),
                                match_distance_m=_clean(m.get("match_distance_m"))))
