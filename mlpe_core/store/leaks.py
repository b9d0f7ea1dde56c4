"""Leaks: reads, fusion results (memberships and leaks in one transaction), scores and statuses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import select, update
from sqlmodel import Session

from .audit import audit, chain
from .common import _frame, _utc, upsert
from .models import Detection, FusionState, Leak, LeakEvent


class StaleFusion(RuntimeError):
    """Another fusion wrote after this fusion or scoring read the store: its result would undo that work."""


def fusion_generation(session: Session) -> int:
    """The fusion generation now: read it *before* the detections and leaks a fusion or scoring computes from."""
    g = session.execute(select(FusionState.generation).where(FusionState.id == 1)).scalar()
    return int(g or 0)


def _claim(session: Session, seen: int, bump: bool, user: str | None = None) -> None:
    """Compare-and-swap on the generation, as the transaction's first write (so it also takes the write lock:
    SQLite's database lock, PostgreSQL's row lock, held to commit). Raises :class:`StaleFusion` when another
    fusion wrote since ``seen`` was read."""
    values = ({"generation": seen + 1, "updated_at": pd.Timestamp.now(tz="UTC").to_pydatetime(), "updated_by": user}
              if bump else {"generation": FusionState.generation})
    done = session.execute(update(FusionState).where(FusionState.id == 1, FusionState.generation == seen)
                           .values(**values))
    if done.rowcount != 1:
        if session.get(FusionState, 1) is None and seen == 0:  # a store whose row is missing (hand-made): start it
            session.add(FusionState(id=1, generation=1 if bump else 0))
            session.flush()
            return
        raise StaleFusion("another fusion wrote to the store while this one was computing")


def leaks_frame(session: Session, active_only: bool = True) -> pd.DataFrame:
    stmt = select(Leak)
    if active_only:
        stmt = stmt.where(Leak.active == True)  # noqa: E712 - SQL expression
    df = _frame(session, stmt)
    df = _utc(df, ["first_seen", "last_seen", "due_by", "scored_at"])
    if "rank" in df:
        df["rank"] = df["rank"].astype("Int64")  # a rank is a whole number, blank when unranked
        df = df.sort_values(["rank", "leak_id"], na_position="last").reset_index(drop=True)
    return df


def save_fusion(
    session: Session,
    det_ids: np.ndarray,
    leak_ids: np.ndarray,
    ambiguous: np.ndarray,
    leaks: pd.DataFrame,
    retire: set | None = None,
    *,
    generation: int | None = None,
    user: str | None = None,
) -> None:
    """Write memberships and leaks in one transaction; leaks no longer produced become inactive.

    ``det_ids``/``leak_ids``/``ambiguous`` may be only the detections re-fused (an incremental fusion) and
    ``leaks`` only their leaks; then ``retire`` names the leaks to make inactive (those the re-fused
    detections belonged to that are produced no more). Without it, every leak not in ``leaks`` is retired.

    ``generation`` is the :func:`fusion_generation` read before the fusion read the detections: the write
    happens only if no other fusion wrote since (else :class:`StaleFusion`, nothing written), so a full
    fusion can never retire the leaks a concurrent fusion has just made. Every fusion passes it.
    """
    if generation is not None:
        _claim(session, generation, bump=True, user=user)
    memb = pd.DataFrame({"id": det_ids.astype(int), "leak_id": leak_ids, "ambiguous": ambiguous.astype(bool)})
    if len(memb):
        session.execute(update(Detection), memb.to_dict(orient="records"))
    keep = set(leaks["leak_id"])
    old = {r for r in session.execute(select(Leak.leak_id)).scalars()}
    gone = (old - keep) if retire is None else (set(retire) & old) - keep
    if gone:
        session.execute(update(Leak).where(Leak.leak_id.in_(gone)).values(active=False, rank=None))
    rows = leaks.astype(object).where(leaks.notna(), None).to_dict(orient="records")
    upsert(session, Leak, "leak_id", rows, old & keep)


def save_scores(session: Session, scored: pd.DataFrame, *, generation: int | None = None) -> None:
    """Write scores and ranks. With ``generation`` (read before the leaks were), only if no fusion wrote since:
    else :class:`StaleFusion` and nothing is written (ranks of retired leaks, none for new ones)."""
    if generation is not None:
        _claim(session, generation, bump=False)
    cols = [
        "leak_id",
        "p_real",
        "est_rate_kg_h",
        "rate_lo_kg_h",
        "rate_hi_kg_h",
        "rate_quantified",
        "priority_score",
        "risk_band",
        "rank",
        "top_reasons",
        "contributions",
        "model_version",
        "due_by",
        "due_rule",
        "scored_at",
    ]
    cols = [c for c in cols if c in scored]
    cols += [c for c in ("band_reason",) if c in scored]  # why the band is what it is (score.rank.band_reasons)
    df = scored[cols].astype(object).where(scored[cols].notna(), None)
    session.execute(update(Leak), df.to_dict(orient="records"))


def save_ranks(session: Session, ranks: dict[str, int], unranked: set[str]) -> None:
    """Set the rank of ranked leaks and clear it on the others (no commit)."""
    if ranks:
        session.execute(update(Leak), [{"leak_id": k, "rank": int(v)} for k, v in ranks.items()])
    if unranked:
        ids = sorted(unranked)
        for i in range(0, len(ids), 500):
            session.execute(update(Leak).where(Leak.leak_id.in_(ids[i:i + 500])).values(rank=None))


@dataclass
class LeakState:
    """What the lifecycle needs to know about one leak (a row of ``Leak``), and its queued transitions."""

    leak_id: str
    status: str = "open"
    status_at: pd.Timestamp | None = None
    repair_attempted_at: pd.Timestamp | None = None
    repaired_at: pd.Timestamp | None = None
    reopened_at: pd.Timestamp | None = None
    failed_repair: bool = False
    events: list[dict] = field(default_factory=list)  # transitions applied, not yet written


def as_time(v) -> pd.Timestamp | None:
    """A stored or given time as a UTC timestamp (None for a blank)."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def lock_states(session: Session, leak_ids) -> dict[str, LeakState]:
    """Current states of ``leak_ids``, read inside a write transaction.

    A no-op UPDATE on the leaks first takes the write lock (SQLite) or the row locks (other
    databases), so two processes recording visits to one leak at once apply their moves one after
    the other instead of both starting from the same stale status.
    """
    ids = sorted({str(i) for i in leak_ids})
    if not ids:
        return {}
    session.execute(update(Leak).where(Leak.leak_id.in_(ids)).values(status=Leak.status))
    rows = session.execute(select(Leak.leak_id, Leak.status, Leak.status_at, Leak.repair_attempted_at,
                                  Leak.repaired_at, Leak.reopened_at, Leak.failed_repair)
                           .where(Leak.leak_id.in_(ids))).all()
    return {r[0]: LeakState(r[0], r[1] or "open", as_time(r[2]), as_time(r[3]), as_time(r[4]), as_time(r[5]),
                            bool(r[6])) for r in rows}


def save_states(session: Session, states: dict[str, LeakState], now: datetime | None = None) -> int:
    """Write the leaks' new statuses and their queued events (no commit: the caller's transaction)."""
    now = now or pd.Timestamp.now(tz="UTC").to_pydatetime()
    n = 0
    for st in states.values():
        if not st.events:
            continue
        py = {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)
              for k, v in (("status_at", st.status_at), ("repair_attempted_at", st.repair_attempted_at),
                           ("repaired_at", st.repaired_at), ("reopened_at", st.reopened_at))}
        session.execute(update(Leak).where(Leak.leak_id == st.leak_id)
                        .values(status=st.status, failed_repair=st.failed_repair, **py))
        for e in st.events:
            chain(session, LeakEvent(leak_id=e["leak_id"], at=e["at"].to_pydatetime(), event=e["event"],
                                     from_status=e["from_status"], to_status=e["to_status"], actor=e["actor"],
                                     recorded_at=now, source=e["source"],
                                     detail=json.dumps(e["detail"], default=str) if e["detail"] else None))
            audit(session, e["actor"], f"lifecycle_{e['event']}", e["leak_id"],
                  {"from": e["from_status"], "to": e["to_status"], **(e["detail"] or {})})
            n += 1
        st.events = []
    return n


def leak_events_frame(session: Session, leak_id: str) -> pd.DataFrame:
    """The lifecycle events of a leak in the order they were applied."""
    df = _frame(session, select(LeakEvent).where(LeakEvent.leak_id == leak_id).order_by(LeakEvent.id))
    return _utc(df.drop(columns=["prev_hash", "hash"], errors="ignore"), ["at", "recorded_at"])


def leak_events_of(session: Session, leak_ids=None) -> pd.DataFrame:
    """The lifecycle events of many leaks (all when ``leak_ids`` is None), in the order they were applied, with their
    chain hash (a report cites each event by id and hash)."""
    stmt = select(LeakEvent).order_by(LeakEvent.id)
    if leak_ids is not None:
        stmt = stmt.where(LeakEvent.leak_id.in_(sorted(set(leak_ids))))
    return _utc(_frame(session, stmt).drop(columns=["prev_hash"], errors="ignore"), ["at", "recorded_at"])


def leak_ids(session: Session, active_only: bool = False) -> set[str]:
    """Every stored leak id (a validation may name a leak that a later fusion retired)."""
    stmt = select(Leak.leak_id)
    if active_only:
        stmt = stmt.where(Leak.active == True)  # noqa: E712 - SQL expression
    return set(session.execute(stmt).scalars())
