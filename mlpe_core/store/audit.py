"""The audit trail: one append-only, hash-chained event per recorded action (who, what, on what, when, detail).

Tamper evidence (issue 16). Each event of ``auditevent`` and ``leakevent`` carries ``prev_hash`` (the hash of
the event before it in its table) and ``hash`` = SHA-256 over its own content and ``prev_hash``, so changing,
inserting or removing an old event breaks every link after it; :func:`verify_chain` finds the first broken
one (``mlpe audit verify``). The chain head (``ChainHead``: newest hash and count) shows when the newest
events are removed. Database triggers refuse UPDATE and DELETE on both tables (migration 0004).

Concurrency: a writer locks its chain's head row (a no-op UPDATE: the write lock in SQLite, a row lock in
PostgreSQL) before it reads the newest hash, and keeps the lock until it commits, so two processes appending
at once cannot both link to the same event. Within one transaction the head is read once and cached on the
session (dropped when the transaction ends).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import event, select, update

from ..errors import BadInput, NotFound
from ..lazy import lazy
from .common import _frame, _utc, now

if TYPE_CHECKING:
    import pandas as pd
    from sqlmodel import Session

    from . import models
    from .models import AuditEvent, LeakEvent
else:  # light: the package binds `store.audit` at import, and `mlpe status` must not load the table classes
    models = lazy("mlpe_core.store.models")

GENESIS = "0" * 64  # prev_hash of the first event of a chain
CHAIN_FIELDS: dict[str, tuple[str, ...]] = {
    "auditevent": ("at", "actor", "action", "target", "detail"),
    "leakevent": ("leak_id", "at", "event", "from_status", "to_status", "actor", "recorded_at", "source", "detail"),
}
CHAIN_MODELS = {"auditevent": "AuditEvent", "leakevent": "LeakEvent"}  # class names in store.models
_TIPS = "mlpe_chain_tips"  # session.info key: newest hash per chain, valid inside the current transaction


def jsonable(v: object) -> object:
    """``v`` as plain JSON values: NaN, infinities, NaT and pd.NA become None; numpy scalars and arrays their Python
    values; times, dates, paths, decimals and UUIDs their text (as ``default=str`` wrote them); tuples and sets
    lists. Anything else is refused (TypeError), so a detail that is stored and hashed is always valid JSON and
    reads back as it was written (a NaN, written as ``NaN``, broke the chain of an unmatched notice's event).

    numpy and pandas are looked up only when already imported: a value of theirs cannot exist otherwise."""
    if v is None or type(v) is str or type(v) is bool:
        return v
    if isinstance(v, str):  # numpy's str_ and other subclasses
        return str(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, dict):
        return {_key(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, set | frozenset):
        return sorted((jsonable(x) for x in v), key=lambda x: (str(type(x)), str(x)))
    pd, np = sys.modules.get("pandas"), sys.modules.get("numpy")
    if pd is not None and (v is pd.NaT or v is pd.NA):
        return None
    if np is not None:
        if isinstance(v, np.datetime64 | np.timedelta64):  # as pandas shows them (numpy's .item() can be an int)
            if np.isnat(v):
                return None
            return str(v if pd is None else pd.Timestamp(v) if isinstance(v, np.datetime64) else pd.Timedelta(v))
        if isinstance(v, np.generic):
            return jsonable(v.item())
        if isinstance(v, np.ndarray):
            return [jsonable(x) for x in v.tolist()]
    if isinstance(v, datetime | date | time | timedelta | PurePath | Decimal | UUID):
        if isinstance(v, Decimal) and not v.is_finite():
            return None
        return str(v)
    raise TypeError(f"cannot record a {type(v).__name__} in an event's detail: not a JSON value ({v!r:.80})")


def _key(k: object) -> object:
    """A dict key as json.dumps accepts it (str, int, float, bool, None; a numpy key becomes its Python value)."""
    k = jsonable(k)
    return k if k is None or isinstance(k, str | int | float | bool) else str(k)


def detail_json(detail: dict | None) -> str | None:
    """The text stored in an event's ``detail`` (None for no detail): strict JSON of :func:`jsonable`."""
    return json.dumps(jsonable(detail), allow_nan=False) if detail else None


def _missing(v: object) -> bool:
    """None, a float NaN, NaT or pd.NA: what a database stores as NULL."""
    if v is None:
        return True
    pd = sys.modules.get("pandas")
    if pd is not None and (v is pd.NaT or v is pd.NA):
        return True
    return isinstance(v, float) and math.isnan(v)


_TIME_FIELDS = ("at", "recorded_at")  # the datetime fields of the chained tables; the others are text


def _stored(field: str, v: object) -> object:
    """A chained field as the database will store it and give it back, so the hash written is the hash read: a
    missing value None (a NaN target was hashed as NaN and read back as NULL), text as ``str``, a time as a
    ``datetime``."""
    if _missing(v):
        return None
    if field in _TIME_FIELDS:
        return v.to_pydatetime() if hasattr(v, "to_pydatetime") else v
    if field == "detail" and isinstance(v, str):
        json.loads(v, parse_constant=_not_json)  # NaN and Infinity are not JSON: refuse them before they are hashed
    if field == "detail" and not isinstance(v, str):
        return detail_json(v)
    return v if type(v) is str else str(jsonable(v))


def _not_json(word: str) -> None:
    raise ValueError(f"an event's detail holds {word}, which is not JSON")


def _canon(v: object) -> object:
    """A field as the hash sees it: times as UTC ISO text with microseconds (as both databases store them)."""
    if isinstance(v, datetime):
        v = v.replace(tzinfo=UTC) if v.utcoffset() is None else v.astimezone(UTC)
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return v


def event_hash(table: str, values: dict, prev_hash: str) -> str:
    """SHA-256 (hex) of one event of ``table``: its fields in a fixed order, then ``prev_hash``."""
    body = [table, *(_canon(values.get(k)) for k in CHAIN_FIELDS[table]), prev_hash]
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _legacy_hash(table: str, row, prev_hash: str) -> str | None:
    """The hash an event written before 2026-12-06 got when a field of it was NaN (an unmatched notification's
    target): it was hashed as NaN and stored as NULL (SQLite) or as the text 'NaN' (PostgreSQL), so recomputing from
    the stored value cannot match. Recomputed here with NaN in place of each such field, the one way that event was
    hashed; only an exact match counts, so a changed event still breaks the chain. Returns that hash when it matches
    the stored one, else None."""
    nulls = [k for k in CHAIN_FIELDS[table] if row[k] is None or row[k] == "NaN"]  # SQLite: NULL; PostgreSQL: 'NaN'
    for size in range(1, min(len(nulls), 4) + 1):  # which of them were NaN is not known: each combination
        for nan in itertools.combinations(nulls, size):
            body = [table, *(float("nan") if k in nan else _canon(row[k]) for k in CHAIN_FIELDS[table]), prev_hash]
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
            if (h := hashlib.sha256(text.encode("utf-8")).hexdigest()) == row["hash"]:
                return h
    return None


def _forget_tips(session: Session, transaction) -> None:
    """The cached head is good only while the lock is held: forget it at commit, rollback or a savepoint's end
    (not at the end of the sub-transaction every flush opens)."""
    if transaction.parent is None or transaction.nested:
        session.info.pop(_TIPS, None)


_LISTENING = threading.Lock()
_listening = False  # set once the listener is registered (then _listen costs one test)


def _listen() -> None:
    """Register :func:`_forget_tips` on every ORM session, once, before the first head is cached (only ``_tip`` and
    ``chain`` cache one, so no transaction holds a head the listener would miss). Not at import: importing
    ``sqlalchemy.orm`` costs a command a twentieth of a second, and ``mlpe status`` binds this module without
    using a session."""
    global _listening
    if _listening:
        return
    with _LISTENING:
        from sqlalchemy.orm import Session as OrmSession

        if not event.contains(OrmSession, "after_transaction_end", _forget_tips):
            event.listen(OrmSession, "after_transaction_end", _forget_tips)
        _listening = True


def _tip(session: Session, table: str) -> str:
    """The newest hash of ``table``'s chain, after taking the lock that serialises appenders."""
    _listen()
    tips = session.info.setdefault(_TIPS, {})
    if table not in tips:
        locked = session.execute(
            update(models.ChainHead).where(models.ChainHead.name == table).values(n=models.ChainHead.n)
        )
        if locked.rowcount == 0:  # a store whose head row is missing (hand-made): start it
            session.add(models.ChainHead(name=table, hash=GENESIS, n=0))
            session.flush()
        tips[table] = session.execute(select(models.ChainHead.hash).where(models.ChainHead.name == table)).scalar_one()
    return tips[table]


def chain(session: Session, row: AuditEvent | LeakEvent) -> AuditEvent | LeakEvent:
    """Link ``row`` to its chain (sets ``prev_hash`` and ``hash``), move the head, and add it to the session.

    Every event of a chained table is written through here (no commit: the caller's transaction)."""
    table = row.__tablename__
    vals = {k: _stored(k, getattr(row, k)) for k in CHAIN_FIELDS[table]}
    for k, v in vals.items():
        setattr(row, k, v)
    prev = _tip(session, table)
    row.prev_hash, row.hash = prev, event_hash(table, vals, prev)
    session.add(row)
    session.execute(
        update(models.ChainHead).where(models.ChainHead.name == table).values(hash=row.hash, n=models.ChainHead.n + 1)
    )
    session.info.setdefault(_TIPS, {})[table] = row.hash
    return row


def audit(session: Session, actor: str, action: str, target: str | None = None, detail: dict | None = None) -> None:
    """Append one audit event (committed with the caller's transaction)."""
    chain(
        session,
        models.AuditEvent(
            at=now(),
            actor=actor,
            action=action,
            target=target,
            detail=detail_json(detail),
        ),
    )


@dataclass
class ChainReport:
    """What :func:`verify_chain` found in one table: ``ok``, how many events it checked, and the first break."""

    table: str
    ok: bool
    n: int
    head: str
    broken_id: int | None = None
    reason: str = ""

    def line(self) -> str:
        if self.ok:
            return f"{self.table}: {self.n:,} events, chain intact (head {self.head[:16]})"
        where = f"event {self.broken_id}" if self.broken_id is not None else "chain head"
        return f"{self.table}: chain broken at {where}: {self.reason}"


def verify_chain(session: Session, table: str, batch: int = 5000) -> ChainReport:
    """Recompute ``table``'s chain in id order; the first event whose link or hash is wrong, else ok.

    Reads in batches of ``batch`` events, so memory stays flat on a long trail.
    """
    model = getattr(models, CHAIN_MODELS[table])
    cols = [model.id, model.prev_hash, model.hash, *(getattr(model, k) for k in CHAIN_FIELDS[table])]
    prev, n, last_id = GENESIS, 0, -1
    while True:
        rows = session.execute(select(*cols).where(model.id > last_id).order_by(model.id).limit(batch)).all()
        if not rows:
            break
        for r in rows:
            m = r._mapping
            if m["prev_hash"] != prev:
                return ChainReport(
                    table,
                    False,
                    n,
                    prev,
                    m["id"],
                    "its prev_hash does not match the event before it (an event was removed, inserted or changed)",
                )
            want = event_hash(table, {k: m[k] for k in CHAIN_FIELDS[table]}, prev)
            if m["hash"] != want:
                want = _legacy_hash(table, m, prev) or want
            if m["hash"] != want:
                return ChainReport(
                    table,
                    False,
                    n,
                    prev,
                    m["id"],
                    "its content does not match its hash (the event was changed after it was written)",
                )
            prev, n, last_id = want, n + 1, m["id"]
    head = session.execute(
        select(models.ChainHead.hash, models.ChainHead.n).where(models.ChainHead.name == table)
    ).first()
    if head is None:
        return ChainReport(table, False, n, prev, None, "the chain head is missing")
    if head.hash != prev or head.n != n:
        return ChainReport(
            table,
            False,
            n,
            prev,
            None,
            f"the head records {head.n:,} events ending in "
            f"{head.hash[:16]} but the table holds {n:,} ending in {prev[:16]} "
            "(the newest events were removed or the head was changed)",
        )
    return ChainReport(table, True, n, prev)


def verify_all(session: Session) -> list[ChainReport]:
    """:func:`verify_chain` of every chained table."""
    return [verify_chain(session, t) for t in CHAIN_FIELDS]


def audit_frame(session: Session, target: str | None = None) -> pd.DataFrame:
    stmt = select(
        models.AuditEvent.id,
        models.AuditEvent.at,
        models.AuditEvent.actor,
        models.AuditEvent.action,
        models.AuditEvent.target,
        models.AuditEvent.detail,
    ).order_by(models.AuditEvent.id.desc())
    if target:
        stmt = stmt.where(models.AuditEvent.target == target)
    return _utc(_frame(session, stmt), ["at"])


def add_note(session: Session, user: str, leak_id: str, text: str) -> int:
    """An analyst's note on a leak, kept in the append-only audit trail; returns the event id (the caller
    checks the role)."""
    text = (text or "").strip()
    if not text:
        raise BadInput("a note needs some text")
    if session.get(models.Leak, leak_id) is None:
        raise NotFound(f"no leak '{leak_id}'")
    ev = chain(
        session,
        models.AuditEvent(
            at=now(), actor=user, action="note", target=leak_id, detail=detail_json({"note": text[:4000]})
        ),
    )
    session.commit()
    return int(ev.id)


def audit_events(
    session: Session,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
) -> pd.DataFrame:
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
    df = pd.DataFrame(
        [a.model_dump() for a in session.execute(q).scalars()],
        columns=["id", "at", "actor", "action", "target", "detail"],
    )
    df["at"] = pd.to_datetime(df["at"], utc=True)
    return df


def audit_by_actions(session: Session, actions: list[str]) -> pd.DataFrame:
    """Every audit event of ``actions``, oldest first, with its chain hash (what a report cites)."""
    ev = models.AuditEvent
    stmt = select(ev.id, ev.at, ev.actor, ev.action, ev.target, ev.detail, ev.hash).where(
        ev.action.in_(actions)).order_by(ev.id)
    return _utc(_frame(session, stmt), ["at"])


def chain_heads(session: Session) -> dict[str, dict]:
    """Each chain's newest hash and length (``chainhead``): a report states them so a reader can check later that
    the trail it was built from is still intact (``mlpe audit verify``)."""
    return {h.name: {"hash": h.hash, "n": h.n} for h in session.execute(select(models.ChainHead)).scalars()}


def latest_audit(session: Session, action: str) -> AuditEvent | None:
    """The newest audit event of ``action`` (None when there is none)."""
    return (
        session.execute(
            select(models.AuditEvent)
            .where(models.AuditEvent.action == action)
            .order_by(models.AuditEvent.id.desc())
            .limit(1)
        )
        .scalars()
        .first()
    )
