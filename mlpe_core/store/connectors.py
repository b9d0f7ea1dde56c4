"""Connector state: files the folder watcher took, each connector's heartbeat and watermark, idempotency keys."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from .common import _frame, _utc, now
from .models import ConnectorState, Detection, IdempotencyKey, WatchedFile

# --------------------------------------------------------------------------------------------- watched files


def watched_file(session: Session, sha256: str) -> WatchedFile | None:
    """The newest record of a file with these bytes."""
    return session.execute(select(WatchedFile).where(WatchedFile.sha256 == sha256)
                           .order_by(WatchedFile.id.desc()).limit(1)).scalars().first()


def mark_file(session: Session, folder: str, name: str, sha256: str, size: int, state: str, *,
              batch_id: int | None = None, reason: str | None = None, attempt: bool = False) -> WatchedFile:
    """Record what became of a file (one row per hash, updated as it moves on); no commit."""
    rec = watched_file(session, sha256)
    t = now()
    if rec is None:
        rec = WatchedFile(folder=folder, name=name, sha256=sha256, size=size, state=state, first_seen_at=t,
                          updated_at=t)
    rec.folder, rec.name, rec.size, rec.state, rec.updated_at = folder, name, size, state, t
    rec.batch_id = batch_id if batch_id is not None else rec.batch_id
    rec.reason = reason
    if attempt:
        rec.attempts = (rec.attempts or 0) + 1
    session.add(rec)
    session.flush()
    return rec


def files_in_state(session: Session, state: str, folder: str | None = None) -> list[WatchedFile]:
    q = select(WatchedFile).where(WatchedFile.state == state)
    if folder is not None:
        q = q.where(WatchedFile.folder == folder)
    return list(session.execute(q.order_by(WatchedFile.id)).scalars())


def watched_files_frame(session: Session, limit: int = 500) -> pd.DataFrame:
    q = select(WatchedFile).order_by(WatchedFile.id.desc()).limit(limit)
    return _utc(_frame(session, q), ["first_seen_at", "updated_at"])


def unfused_detections(session: Session) -> int:
    """How many detections belong to no leak yet (loaded by any face since the last fusion)."""
    return int(session.execute(select(func.count()).select_from(Detection).where(Detection.leak_id.is_(None)))
               .scalar_one())


def any_unfused(session: Session) -> bool:
    """Whether any detection waits for a fusion (one indexed lookup)."""
    return session.execute(select(Detection.id).where(Detection.leak_id.is_(None)).limit(1)).first() is not None


# --------------------------------------------------------------------------------------------- connectors


def connector_beat(session: Session, name: str, kind: str, *, ok: bool, error: str | None = None,
                   loaded: int = 0, watermark=None) -> ConnectorState:
    """A connector finished a cycle (``ok`` or with ``error``); no commit."""
    st = session.get(ConnectorState, name) or ConnectorState(name=name, kind=kind)
    t = now()
    st.kind, st.last_run_at = kind, t
    st.n_runs = (st.n_runs or 0) + 1
    st.n_loaded = (st.n_loaded or 0) + int(loaded)
    if ok:
        st.last_ok_at, st.last_error = t, None
    else:
        st.n_failed = (st.n_failed or 0) + 1
        st.last_error = (error or "failed")[:2000]
    if watermark is not None:
        st.watermark = watermark
    session.add(st)
    session.flush()
    return st


def connector_state(session: Session, name: str) -> ConnectorState | None:
    return session.get(ConnectorState, name)


def connectors_frame(session: Session) -> pd.DataFrame:
    return _utc(_frame(session, select(ConnectorState).order_by(ConnectorState.name)),
                ["watermark", "last_run_at", "last_ok_at"])


# --------------------------------------------------------------------------------------------- idempotency


def idempotent_answer(session: Session, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, key)


def save_idempotent_answer(session: Session, key: str, actor: str, sha256: str, status_code: int,
                           response: dict) -> None:
    """Keep the first answer to ``key`` (no commit)."""
    session.add(IdempotencyKey(key=key, actor=actor, sha256=sha256, status_code=status_code,
                               response=json.dumps(response, default=str), created_at=now()))
    session.flush()


def batch_for_sha(session: Session, sha256: str):
    """The detection batch loaded from these bytes, if any (what ingest itself checks before loading)."""
    from .models import IngestBatch

    return session.execute(select(IngestBatch).where(IngestBatch.sha256 == sha256,
                                                     IngestBatch.kind.in_(("detections", "coverage")))
                           .order_by(IngestBatch.id).limit(1)).scalars().first()


def recent_alarms(session: Session, since, source_types: list[str]) -> pd.DataFrame:
    """Detections at a named asset observed since ``since`` from sensors of ``source_types`` (the burst rule's
    input): a few columns, not the whole table."""
    cols = (Detection.id, Detection.detection_id, Detection.source_name, Detection.source_type, Detection.asset_id,
            Detection.observed_at, Detection.rate_kg_h)
    q = select(*cols).where(Detection.observed_at >= since, Detection.asset_id.is_not(None),
                            Detection.source_type.in_(list(source_types)))
    return _utc(_frame(session, q), ["observed_at"])
