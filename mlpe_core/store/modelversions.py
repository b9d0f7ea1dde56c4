"""The model registry: every fitted scoring model, its metrics, the decision and which one is live."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select, update
from sqlmodel import Session

from .audit import audit
from .common import _frame, _utc, now
from .models import ModelVersion


def models_frame(session: Session) -> pd.DataFrame:
    cols = [c for c in ModelVersion.__table__.columns if c.name != "blob"]
    return _utc(_frame(session, select(*cols).order_by(ModelVersion.id.desc())), ["created_at"])


def active_model(session: Session) -> ModelVersion | None:
    return session.execute(select(ModelVersion).where(ModelVersion.active == True)).scalars().first()  # noqa: E712


def save_model(
    session: Session,
    kind: str,
    model_blob: bytes | None,
    metrics: dict,
    features: list[str],
    data_hash: str,
    decision: str,
    promote: bool,
    n_train: int = 0,
    n_holdout: int = 0,
    user: str = "system",
) -> ModelVersion:
    if promote:
        session.execute(update(ModelVersion).values(active=False))
    mv = ModelVersion(
        created_at=now(),
        kind=kind,
        active=promote,
        promoted=promote,
        decision=decision,
        metrics=json.dumps(metrics, default=float),
        features=json.dumps(features),
        data_hash=data_hash,
        n_train=n_train,
        n_holdout=n_holdout,
        blob=model_blob,
    )
    session.add(mv)
    session.flush()
    audit(session, user, "model_promoted" if promote else "model_trained", f"model:{mv.id}", {"decision": decision})
    session.commit()
    return mv


def activate_model(session: Session, version_id: int, user: str = "system") -> None:
    """Roll back (or forward) to a recorded model version."""
    mv = session.get(ModelVersion, version_id)
    if mv is None:
        raise ValueError(f"no model version {version_id}")
    session.execute(update(ModelVersion).values(active=False))
    mv.active = True
    session.add(mv)
    audit(session, user, "model_activated", f"model:{version_id}", {})
    session.commit()
