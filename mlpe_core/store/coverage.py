"""Monitor coverage: the windows in which a sensor watched a site and what it saw (``MonitorCoverage``).

Written only here, in the ingest transaction of the file that reported them; read as a frame by the
scorer (silence counts only where a sensor watched) and the rate estimate (how long each detection lasted).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .common import _frame, _utc
from .models import MonitorCoverage

COVERAGE_STATES = ("detected", "watching", "offline")

COVERAGE_COLUMNS = ["source_name", "source_type", "asset_id", "start_at", "end_at", "state", "detection_id",
                    "batch_id", "source_row"]


def insert_coverage(session: Session, frame: pd.DataFrame, batch_id: int) -> dict[str, int]:
    """Insert the windows of ``frame`` (``source_name, source_type, asset_id, start_at, end_at, state``, optional
    ``detection_id`` and ``source_row``) not already stored; returns how many were new, by state. Does not commit.

    A window is identified by (source_name, asset_id, start_at, end_at, state, detection_id): the same window
    reported again by another file is kept once."""
    if frame.empty:
        return {}
    f = frame.copy()
    if "detection_id" not in f:
        f["detection_id"] = None
    f["detection_id"] = f["detection_id"].astype(object).where(f["detection_id"].notna(), None)
    f["start_at"] = pd.to_datetime(f["start_at"], utc=True)
    f["end_at"] = pd.to_datetime(f["end_at"], utc=True)
    key = ["source_name", "asset_id", "start_at", "end_at", "state", "detection_id"]
    f = f.drop_duplicates(key)
    have: set = set()
    cols = (MonitorCoverage.source_name, MonitorCoverage.asset_id, MonitorCoverage.start_at, MonitorCoverage.end_at,
            MonitorCoverage.state, MonitorCoverage.detection_id)
    for name in pd.unique(f["source_name"]):
        rows = session.execute(select(*cols).where(MonitorCoverage.source_name == str(name))).all()
        have |= {(r[0], r[1], _utc_ts(r[2]), _utc_ts(r[3]), r[4], r[5]) for r in rows}
    new = [r for r in f[key + [c for c in ("source_type", "source_row") if c in f]].to_dict("records")
           if tuple(r[k] for k in key) not in have]
    if not new:
        return {}
    records = [{
        "source_name": str(r["source_name"]), "source_type": str(r["source_type"]), "asset_id": str(r["asset_id"]),
        "start_at": r["start_at"].to_pydatetime(), "end_at": r["end_at"].to_pydatetime(), "state": str(r["state"]),
        "detection_id": None if pd.isna(r.get("detection_id")) else str(r.get("detection_id")),
        "batch_id": batch_id,
        "source_row": None if pd.isna(r.get("source_row")) else int(r.get("source_row")),
    } for r in new]
    session.execute(MonitorCoverage.__table__.insert(), records)
    return pd.Series([r["state"] for r in records]).value_counts().to_dict()


def _utc_ts(v) -> pd.Timestamp:
    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def coverage_frame(session: Session, source_names: list[str] | None = None) -> pd.DataFrame:
    """Stored coverage windows (all, or of these sensors), oldest first, times as UTC timestamps."""
    stmt = select(MonitorCoverage)
    if source_names is not None:
        stmt = stmt.where(MonitorCoverage.source_name.in_([str(n) for n in source_names]))
    df = _frame(session, stmt.order_by(MonitorCoverage.source_name, MonitorCoverage.start_at, MonitorCoverage.id))
    df = _utc(df, ["start_at", "end_at"])
    return df.drop(columns=["id"], errors="ignore").reindex(columns=COVERAGE_COLUMNS)


