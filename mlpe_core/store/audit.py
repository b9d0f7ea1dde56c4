"""The audit trail: one append-only event per recorded action (who, what, on what, when, detail)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..lazy import lazy
from .common import _frame, _utc, now

if TYPE_CHECKING:
    import pandas as pd
    from sqlmodel import Session

    from . import models
    from .models import AuditEvent
else:  # light: the package binds `store.audit` at import, and `mlpe status` must not load the table classes
    models = lazy("mlpe_core.store.models")


def audit(session: Session, actor: str, action: str, target: str | None = None, detail: dict | None = None) -> None:
    """Append one audit event (committed with the caller's transaction)."""
    session.add(
        models.AuditEvent(
            at=now(),
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(detail, default=str) if detail else None,
        )
    )


def audit_frame(session: Session, target: str | None = None) -> pd.DataFrame:
    stmt = select(models.AuditEvent).order_by(models.AuditEvent.id.desc())
    if target:
        stmt = stmt.where(models.AuditEvent.target == target)
    return _utc(_frame(session, stmt), ["at"])


def add_note(session: Session, user: str, leak_id: str, text: str) -> int:
    """An analyst's note on a leak, kept in the append-only audit trail; returns the event id (the caller
    checks the role)."""
    text = (text or "").strip()
    if not text:
        raise ValueError("a note needs some text")
    if session.get(models.Leak, leak_id) is None:
        raise KeyError(f"no leak '{leak_id}'")
    ev = models.AuditEvent(at=now(), actor=user, action="note", target=leak_id,
                           detail=json.dumps({"note": text[:4000]}))
    session.add(ev)
    session.commit()
    return int(ev.id)


def audit_events(session: Session, actor: str | None = None, action: str | None = None, target: str | None = None,
                 since: pd.Timestamp | None = None, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """The audit trail, newest first, filtered."""
    import pandas as pd

    q = select(models.AuditEvent).order_by(models.AuditEvent.id.desc())
    if actor:
        q = q.where(models.AuditEvent.actor == actor)
    if action:
        q = q.where(models.AuditEvent.action == action)
    if target:
        q = q.where(models.AuditEvent.target == target)
    if since is not None:
        q = q.where(models.AuditEvent.at >= pd.Timestamp(since).to_pydatetime())
    if until is not None:
        q = q.where(models.AuditEvent.at <= pd.Timestamp(until).to_pydatetime())
    df = pd.DataFrame([a.model_dump() for a in session.execute(q).scalars()],
                      columns=["id", "at", "actor", "action", "target", "detail"])
    df["at"] = pd.to_datetime(df["at"], utc=True)
    return df


def latest_audit(session: Session, action: str) -> AuditEvent | None:
    """The newest audit event of ``action`` (None when there is none)."""
    return session.execute(select(models.AuditEvent).where(models.AuditEvent.action == action)
                           .order_by(models.AuditEvent.id.desc()).limit(1)).scalars().first()
