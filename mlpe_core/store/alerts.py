"""Alerts and their deliveries: the inbox, who handled what (acknowledged or snoozed, audited), what was sent."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
from sqlalchemy import func, or_, select
from sqlmodel import Session

from ..errors import BadInput, NotFound
from .audit import audit
from .common import _frame, _utc, now
from .models import Alert, AlertDelivery

ALERT_STATES = ("open", "acknowledged", "snoozed")


def alert_keys(session: Session, keys: list[str]) -> set[str]:
    """Which of ``keys`` already have an alert."""
    out: set[str] = set()
    for i in range(0, len(keys), 500):
        out |= set(session.execute(select(Alert.key).where(Alert.key.in_(keys[i:i + 500]))).scalars())
    return out


def insert_alerts(session: Session, rows: list[dict]) -> list[Alert]:
    """Add the alerts whose key is new (no commit); returns them with their ids."""
    seen = alert_keys(session, [r["key"] for r in rows])
    new = []
    for r in rows:
        if r["key"] in seen:
            continue
        seen.add(r["key"])
        a = Alert(**{**r, "detail": json.dumps(r.get("detail") or {}, default=str), "created_at": now()})
        session.add(a)
        new.append(a)
    session.flush()
    return new


def add_deliveries(session: Session, alert_id: int, targets: list[tuple[str, str]]) -> None:
    """One pending delivery per (channel, target), due now (no commit)."""
    t = now()
    for channel, target in targets:
        session.add(AlertDelivery(alert_id=alert_id, channel=channel, target=target, state="pending",
                                  next_attempt_at=t, created_at=t))
    session.flush()


def due_deliveries(session: Session, at: datetime | None = None, limit: int = 200) -> list[AlertDelivery]:
    """Pending deliveries whose next attempt is due."""
    at = at or now()
    q = (select(AlertDelivery).where(AlertDelivery.state == "pending",
                                     or_(AlertDelivery.next_attempt_at.is_(None), AlertDelivery.next_attempt_at <= at))
         .order_by(AlertDelivery.id).limit(limit))
    return list(session.execute(q).scalars())


def record_attempt(session: Session, delivery: AlertDelivery, *, ok: bool, error: str | None = None,
                   next_at: datetime | None = None, give_up: bool = False) -> None:
    """One try of a delivery: sent, retried later (``next_at``) or, after the last try, failed (no commit)."""
    delivery.attempts = (delivery.attempts or 0) + 1
    if ok:
        delivery.state, delivery.sent_at, delivery.last_error = "sent", now(), None
    else:
        delivery.last_error = (error or "failed")[:2000]
        delivery.state = "failed" if give_up else "pending"
        delivery.next_attempt_at = None if give_up else next_at
    session.add(delivery)
    session.flush()


def get_alert(session: Session, alert_id: int) -> Alert | None:
    return session.get(Alert, int(alert_id))


def alerts_frame(session: Session, limit: int | None = 500, after_id: int | None = None) -> pd.DataFrame:
    """Alerts, newest first, with their delivery states summed up (``deliveries``: e.g. ``webhook:ops sent``)."""
    q = select(Alert).order_by(Alert.id.desc())
    if after_id is not None:
        q = q.where(Alert.id > int(after_id))
    if limit is not None:
        q = q.limit(int(limit))
    df = _utc(_frame(session, q), ["event_at", "created_at", "snoozed_until", "handled_at"])
    if df.empty:
        return df.assign(deliveries=pd.Series(dtype=object))
    ids = df["id"].tolist()
    dl = deliveries_frame(session, ids)
    summary = dl.assign(s=dl["channel"] + ":" + dl["target"] + " " + dl["state"]).groupby("alert_id")["s"].agg(
        ", ".join) if len(dl) else pd.Series(dtype=object)
    df["deliveries"] = df["id"].map(summary).fillna("inbox only")
    return df


def deliveries_frame(session: Session, alert_ids: list[int] | None = None, limit: int = 1000) -> pd.DataFrame:
    q = select(AlertDelivery).order_by(AlertDelivery.id.desc()).limit(limit)
    if alert_ids is not None:
        q = q.where(AlertDelivery.alert_id.in_([int(i) for i in alert_ids]))
    return _utc(_frame(session, q), ["next_attempt_at", "sent_at", "created_at"])


def delivery_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(AlertDelivery.state, func.count()).group_by(AlertDelivery.state)).all()
    return {s: int(n) for s, n in rows}


def open_alerts_filter(at: datetime):
    """Open, or snoozed until a time already past."""
    return or_(Alert.state == "open", (Alert.state == "snoozed") & (Alert.snoozed_until <= at))


def open_alert_count(session: Session, at: datetime | None = None) -> int:
    at = at or now()
    return int(session.execute(select(func.count()).select_from(Alert).where(open_alerts_filter(at))).scalar_one())


def open_alert_counts(session: Session, at: datetime | None = None) -> pd.DataFrame:
    """Open alerts per team and rule (for ``/metrics``)."""
    at = at or now()
    rows = session.execute(select(Alert.team, Alert.rule, func.count()).where(open_alerts_filter(at))
                           .group_by(Alert.team, Alert.rule)).all()
    return pd.DataFrame(rows, columns=["team", "rule", "n"])


def last_alert_id(session: Session) -> int:
    return int(session.execute(select(func.max(Alert.id))).scalar() or 0)


def set_alert_state(session: Session, alert_id: int, state: str, user: str, reason: str,
                    until: datetime | None = None) -> Alert:
    """Acknowledge, snooze (until a time) or re-open an alert, with the reason, audited; commits."""
    if state not in ALERT_STATES:
        raise BadInput(f"alert state '{state}' is not one of {', '.join(ALERT_STATES)}")
    a = session.get(Alert, int(alert_id))
    if a is None:
        raise NotFound(f"no alert {alert_id}")
    before = a.state
    a.state, a.reason, a.handled_by, a.handled_at = state, reason, user, now()
    a.snoozed_until = until if state == "snoozed" else None
    session.add(a)
    audit(session, user, f"alert_{'ack' if state == 'acknowledged' else state}", f"alert:{a.id}",
          {"rule": a.rule, "key": a.key, "from": before, "to": state, "reason": reason,
           "until": until.isoformat() if until else None})
    session.commit()
    session.refresh(a)
    return a
