"""Leaks: reads, fusion results (memberships and leaks in one transaction), scores and statuses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, cast, delete, func, insert, select, update
from sqlalchemy import text as sql_text
from sqlmodel import Session

from ..schema import number_after
from .audit import audit, chain, detail_json
from .common import IN_CHUNK as _IN_CHUNK
from .common import _execute_many, _frame, _utc, read_frame, read_frame_in, update_frame, upsert_frame
from .models import Detection, FusionState, Leak, LeakEvent, LeakRank


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

SCORE_COLUMNS = ("leak_id", "p_real", "est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h", "rate_quantified",
                 "priority_score", "risk_band", "rank", "top_reasons", "contributions", "model_version", "due_by",
                 "due_rule", "scored_at", "band_reason")  # band_reason: why the band is what it is (score.rank)
_TIMES = ["first_seen", "last_seen", "due_by", "scored_at"]  # always UTC timestamps, even when all blank


def leaks_frame(session: Session, active_only: bool = True, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Leaks (active only by default), ranked first in rank order, then by id; every column, or ``columns`` and
    ``leak_id`` and ``rank`` (they set the order). ``rank`` is the model's, from ``leak_rank`` (blank: unranked)."""
    if columns is None:
        cols = None
    else:
        cols = [c for c in dict.fromkeys(["leak_id", *columns]) if c != "rank"]
    df = read_frame(session, Leak, cols, Leak.active == True if active_only else None)  # noqa: E712 - SQL
    df = _utc(df, _TIMES)
    ranks = read_frame(session, LeakRank, ["leak_id", "rank"])
    at = pd.Index(ranks["leak_id"]).get_indexer(df["leak_id"])
    rank = pd.array(ranks["rank"].to_numpy(dtype="int64")[at], dtype="Int64") if len(ranks) else \
        pd.array(np.zeros(len(df), dtype="int64"), dtype="Int64")
    rank[at < 0] = pd.NA  # a whole number, blank when unranked
    # after the id; with every column, where it stood among the score columns (after the band)
    pos = df.columns.get_loc("leak_id" if cols is not None else "risk_band") + 1
    df.insert(pos, "rank", rank)
    if df["leak_id"].is_monotonic_increasing:  # rows come in insertion order, which is mostly id order: then a
        # stable sort by rank alone gives the same order as by (rank, leak_id), without sorting 100,000 strings
        key = rank.to_numpy(dtype="float64", na_value=np.inf)
        return df.take(np.argsort(key, kind="stable")).reset_index(drop=True)
    return df.sort_values(["rank", "leak_id"], na_position="last").reset_index(drop=True)


def rank_of(session: Session, leak_id: str) -> int | None:
    """The model's rank of one leak (None: unranked)."""
    return session.execute(select(LeakRank.rank).where(LeakRank.leak_id == leak_id)).scalar()


def _drop_ranks(session: Session, leak_ids: Iterable[str]) -> None:
    ids = sorted(leak_ids)
    for i in range(0, len(ids), _IN_CHUNK):
        session.execute(delete(LeakRank).where(LeakRank.leak_id.in_(ids[i:i + _IN_CHUNK])))


def _unchanged(new: pd.DataFrame, stored: pd.DataFrame, key: str) -> np.ndarray:
    """For each row of ``new``: is it stored (``stored``, same key) with exactly these values in every column?"""
    st = stored.drop_duplicates(key).set_index(key).reindex(new[key])
    same = new[key].isin(stored[key]).to_numpy().copy()
    for c in new.columns:
        if c == key or not same.any():
            continue
        a, b = new[c], st[c]
        if isinstance(a.dtype, pd.DatetimeTZDtype) or isinstance(b.dtype, pd.DatetimeTZDtype):
            a, b = pd.to_datetime(a, utc=True), pd.to_datetime(b, utc=True)
        na_a, na_b = a.isna().to_numpy(), b.isna().to_numpy()
        eq = a.to_numpy(dtype=object) == b.to_numpy(dtype=object)
        same &= np.where(na_a | na_b, na_a & na_b, eq)
    return same


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
    stored_leak_ids: np.ndarray | None = None,
    stored_ambiguous: np.ndarray | None = None,
) -> dict[str, int]:
    """Write memberships and leaks in one transaction; leaks no longer produced become inactive.

    ``det_ids``/``leak_ids``/``ambiguous`` may be only the detections re-fused (an incremental fusion) and
    ``leaks`` only their leaks; then ``retire`` names the leaks to make inactive (those the re-fused
    detections belonged to that are produced no more). Without it, every leak not in ``leaks`` is retired.

    ``generation`` is the :func:`fusion_generation` read before the fusion read the detections: the write
    happens only if no other fusion wrote since (else :class:`StaleFusion`, nothing written), so a full
    fusion can never retire the leaks a concurrent fusion has just made. Every fusion passes it.

    Only what changed is written: a detection whose leak and ambiguous flag are already stored as given
    (``stored_leak_ids``/``stored_ambiguous``, aligned with ``det_ids``, when the caller has them) and a leak
    stored with exactly these values are left alone, so re-fusing an unchanged basin writes nothing. Leaks go in
    with one ``INSERT ... ON CONFLICT DO UPDATE`` (``common.upsert_frame``), memberships with one UPDATE by id
    (``common.update_frame``). Returns how many memberships and leaks were written and leaks retired.
    """
    if generation is not None:
        _claim(session, generation, bump=True, user=user)
    memb = pd.DataFrame({"id": det_ids.astype(int), "leak_id": leak_ids, "ambiguous": ambiguous.astype(bool)})
    if stored_leak_ids is not None and stored_ambiguous is not None and len(memb):
        before = pd.Series(stored_leak_ids, dtype=object).where(pd.notna(stored_leak_ids), None)
        differ = (before.to_numpy() != memb["leak_id"].astype(object).to_numpy()) | (
            np.asarray(stored_ambiguous, bool) != memb["ambiguous"].to_numpy())
        memb = memb[differ]
    update_frame(session, Detection, "id", memb)
    keep = set(leaks["leak_id"])
    # the stored ids this write concerns: every one for a full fusion (the others are retired), else only those it
    # writes or retires (an indexed read of ~1,000 ids, not 100,000)
    old = set(session.execute(select(Leak.leak_id)).scalars()) if retire is None \
        else present_leak_ids(session, keep | set(retire))
    gone = sorted((old - keep) if retire is None else (set(retire) & old) - keep)
    for i in range(0, len(gone), _IN_CHUNK):
        session.execute(update(Leak).where(Leak.leak_id.in_(gone[i:i + _IN_CHUNK])).values(active=False))
    _drop_ranks(session, gone)
    if old & keep:  # compare with what is stored: unchanged leaks are not written again
        # the stored rows of these leaks only (an incremental fusion writes ~1,000 of 100,000: reading every leak
        # to compare took 0.4 s and the comparison 0.5 s at 1M detections)
        stored = read_frame_in(session, Leak, list(leaks.columns), Leak.leak_id, sorted(old & keep))
        leaks = leaks[~_unchanged(leaks, stored, "leak_id")]
    upsert_frame(session, Leak, "leak_id", leaks, old)
    return {"memberships": len(memb), "leaks": len(leaks), "retired": len(gone)}


def save_scores(session: Session, scored: pd.DataFrame, *, generation: int | None = None) -> None:
    """Write the score columns present in ``scored`` (one row per leak_id), one UPDATE per chunk (no commit).

    With ``generation`` (read before the leaks were), only if no fusion wrote since: else :class:`StaleFusion` and
    nothing is written (ranks of retired leaks, none for new ones)."""
    if generation is not None:
        _claim(session, generation, bump=False)
    cols = [c for c in SCORE_COLUMNS if c in scored and c != "rank"]
    update_frame(session, Leak, "leak_id", scored[cols])
    if "rank" in scored:
        rk = scored["rank"]
        has = rk.notna().to_numpy()
        save_ranks(session, dict(zip(scored["leak_id"][has].tolist(), rk[has].astype(int).tolist(), strict=True)),
                   set(scored["leak_id"][~has].tolist()))


def save_ranks(session: Session, ranks: dict[str, int], unranked: Iterable[str] = (), *, complete: bool = False
               ) -> None:
    """Set the rank of the leaks in ``ranks`` and clear it on ``unranked`` (no commit). ``complete``: ``ranks`` is the
    whole ranking, every other leak loses its rank.

    Rows are deleted and inserted, not updated: a whole ranking of 107,000 leaks is one DELETE and one INSERT of
    two-column rows (0.2 s), where updating the moved ranks by key cost as much again in lookups.
    """
    dialect = session.connection().dialect.name
    if complete:
        if dialect == "postgresql":
            # one whole re-ranking at a time: a second one's DELETE would not see the rows a first one inserted and
            # has not committed yet, and would leave them (SQLite's write lock already serialises writers)
            session.execute(sql_text("LOCK TABLE leak_rank IN SHARE ROW EXCLUSIVE MODE"))
        session.execute(delete(LeakRank))
    else:
        _drop_ranks(session, set(ranks) | set(unranked))
    if not ranks:
        return
    cols = {"leak_id": list(ranks), "rank": [int(v) for v in ranks.values()]}
    if dialect == "sqlite":  # one writer at a time (the database's write lock)
        _execute_many(session, insert(LeakRank.__table__), cols)
    else:  # a concurrent re-rank may have inserted some of these since our DELETE: the later one's rank stands
        upsert_frame(session, LeakRank, "leak_id", pd.DataFrame(cols, dtype=object), existing=set())


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
                                     detail=detail_json(e["detail"])))
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


def present_leak_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are stored leaks, active or not (an indexed read of those ids only, not of every leak)."""
    got = read_frame_in(session, Leak, ["leak_id"], Leak.leak_id, sorted(set(ids)))
    return set(got["leak_id"].tolist())


def next_leak_number(session: Session, prefix: str = "L") -> int:
    """One more than the largest number of a stored leak id ``<prefix><digits>`` (1 when there is none): a new
    leak's number, so no id is ever reused. Computed by the database on SQLite and PostgreSQL (reading 100,000
    ids to find it took 0.2 s a fusion), by reading every id elsewhere."""
    conn = session.connection()
    n = len(prefix)
    digits = func.substr(Leak.leak_id, n + 1)
    if conn.dialect.name == "sqlite":
        ok = [Leak.leak_id.op("GLOB")(_glob_literal(prefix) + "[0-9]*"), digits.op("NOT GLOB")("*[^0-9]*")]
    elif conn.dialect.name == "postgresql":
        ok = [Leak.leak_id.op("~")("^" + re.escape(prefix) + "[0-9]+$")]
    else:
        return number_after(leak_ids(session), prefix)
    top = session.execute(select(func.max(cast(digits, BigInteger))).where(*ok)).scalar()
    return int(top or 0) + 1


def _glob_literal(text: str) -> str:
    """``text`` matched literally by SQLite's GLOB (its special characters each in a bracket)."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def leak_ids(session: Session, active_only: bool = False) -> set[str]:
    """Every stored leak id (a validation may name a leak that a later fusion retired)."""
    stmt = select(Leak.leak_id)
    if active_only:
        stmt = stmt.where(Leak.active == True)  # noqa: E712 - SQL expression
    return set(session.execute(stmt).scalars())
