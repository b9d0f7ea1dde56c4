"""Supervisor review: rank overrides with their reasons, and the ranking they produce.

An override is evidence a regulator may ask for, so it lives in the append-only audit trail
(action ``rank_override``: before, after, model rank, reason) rather than in a mutable column. The
effective ranking puts an overridden leak at its chosen rank and keeps the model's order around it;
the dispatch list and its exports follow the effective ranking.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlmodel import Session

from .auth import require
from .errors import BadInput
from .store import audit, audit_events, latest_audit

OVERRIDE_COLUMNS = ["leak_id", "override", "reason", "by", "at"]


def rank_overrides(session: Session) -> pd.DataFrame:
    """The latest override of each leak still in force (a cleared override has ``after`` None)."""
    ev = audit_events(session, action="rank_override")
    if ev.empty:
        return pd.DataFrame(columns=OVERRIDE_COLUMNS)
    ev = ev.sort_values("id", ascending=False).drop_duplicates("target")
    d = ev["detail"].map(lambda x: json.loads(x) if x else {})
    out = pd.DataFrame(
        {
            "leak_id": ev["target"],
            "override": d.map(lambda x: x.get("after")),
            "reason": d.map(lambda x: x.get("reason")),
            "by": ev["actor"],
            "at": ev["at"],
        }
    )
    return out[out["override"].notna()].astype({"override": int})[OVERRIDE_COLUMNS].reset_index(drop=True)


def effective_ranking(leaks: pd.DataFrame, overrides: pd.DataFrame) -> pd.DataFrame:
    """Ranked leaks in the supervisor's order, with ``override``, ``override_reason`` and ``eff_rank`` (1..n).

    Each overridden leak takes the rank it was moved to, and the others fill the ranks left in the model's order.
    Two leaks moved to one rank: the later move takes it and the earlier one follows (what a supervisor who just
    moved a leak to #2 expects to see). A move past the end puts the leak last. A supervisor's "move L to #2" must
    mean #2 whatever other leaks were moved before: interleaving the moved leaks' targets with the model's ranks
    (the former rule) left a leak moved to #2 at #3 once another leak had been moved to #1."""
    lk = leaks[leaks["rank"].notna()].copy()
    ov = overrides.set_index("leak_id")
    lk["override"] = lk["leak_id"].map(ov["override"]).astype("Int64")
    lk["override_reason"] = lk["leak_id"].map(ov["reason"])
    moved = lk["override"].notna().to_numpy()
    if not moved.any():
        lk = lk.sort_values("rank", kind="stable")
        lk["eff_rank"] = np.arange(1, len(lk) + 1)
        return lk
    when = lk["leak_id"].map(pd.to_datetime(ov["at"], utc=True)) if "at" in ov else pd.Series(pd.NaT, index=lk.index)
    free = lk[~moved].sort_values("rank", kind="stable")
    pinned = lk[moved].assign(_at=when[moved]).sort_values(["override", "_at", "rank"], ascending=[True, False, True],
                                                            kind="stable").drop(columns="_at")
    target = pinned["override"].to_numpy(dtype=np.int64)
    take, f, m, n_free = [], 0, 0, len(free)
    while f < n_free or m < len(pinned):  # rank len(take) + 1: a leak moved there, else the model's next
        if m < len(pinned) and (target[m] <= len(take) + 1 or f == n_free):
            take.append(n_free + m)
            m += 1
        else:
            take.append(f)
            f += 1
    lk = pd.concat([free, pinned]).iloc[take]
    lk["eff_rank"] = np.arange(1, len(lk) + 1)
    return lk


def record_override(
    session: Session, user: str, leak_id: str, before: int, model_rank: int, after: int | None, reason: str
) -> None:
    """Record (``after`` a rank) or clear (``after`` None) an override; a reason is required."""
    require(session, user, "override_rank")
    if not (reason or "").strip():
        raise BadInput("give the reason for the override: it is evidence for the regulator")
    if after is not None and int(after) < 1:
        raise BadInput("an overridden rank is a whole number ≥ 1")
    audit(
        session,
        user,
        "rank_override",
        leak_id,
        {
            "before": int(before),
            "after": None if after is None else int(after),
            "model_rank": int(model_rank),
            "reason": reason.strip(),
        },
    )
    session.commit()


def last_review(session: Session) -> dict | None:
    """The newest ``ranking_reviewed`` event: at, by, ranks {leak_id: rank}."""
    ev = latest_audit(session, "ranking_reviewed")
    if ev is None:
        return None
    at = pd.Timestamp(ev.at)
    return {"at": at.tz_localize("UTC") if at.tzinfo is None else at, "by": ev.actor,
            "ranks": json.loads(ev.detail or "{}").get("ranks", {})}


def mark_reviewed(session: Session, user: str, ranking: pd.DataFrame) -> int:
    """Record the effective ranking as reviewed by ``user`` (a supervisor): the reference for "what changed"."""
    require(session, user, "review_ranking")
    ranks = dict(zip(ranking["leak_id"], ranking["eff_rank"].astype(int).tolist(), strict=True))
    audit(session, user, "ranking_reviewed", "ranking", {"n": len(ranks), "ranks": ranks})
    session.commit()
    return len(ranks)


def changes(before: dict[str, int], ranking: pd.DataFrame, leaks: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """New to the ranking, moved up, moved down, and dropped out of it (with the status that took it out)."""
    now = ranking.set_index("leak_id")["eff_rank"]
    was = pd.Series(before, dtype=float)
    both = now.index.intersection(was.index)
    move = pd.DataFrame({"leak_id": both, "was": was[both].astype(int).to_numpy(), "now": now[both].to_numpy()})
    move["moved"] = move["was"] - move["now"]
    new = ranking[~ranking["leak_id"].isin(was.index)][["leak_id", "eff_rank", "risk_band", "priority_score"]]
    gone = [i for i in was.index if i not in now.index]
    status = leaks.set_index("leak_id")["status"]
    dropped = pd.DataFrame({"leak_id": gone, "was": was[gone].astype(int).to_numpy(),
                            "status now": [status.get(i, "retired (fused away)") for i in gone]})
    return {"new": new.rename(columns={"eff_rank": "now"}).reset_index(drop=True),
            "up": move[move["moved"] > 0].sort_values("now").reset_index(drop=True),
            "down": move[move["moved"] < 0].sort_values("now").reset_index(drop=True),
            "dropped": dropped.sort_values("was").reset_index(drop=True)}


def compare(a: pd.DataFrame, b: pd.DataFrame, top: int) -> tuple[pd.DataFrame, dict]:
    """Two rankings side by side (suffixes _a, _b) with the rank change, and summary numbers: shared share of
    both top ``top`` lists and the Spearman rank correlation."""
    m = a.merge(b, on="leak_id", suffixes=("_a", "_b"))
    m["change"] = m["rank_a"] - m["rank_b"]
    ta, tb = set(a.nsmallest(top, "rank")["leak_id"]), set(b.nsmallest(top, "rank")["leak_id"])
    rho = float(m["rank_a"].corr(m["rank_b"], method="spearman")) if len(m) > 2 else float("nan")
    return m.sort_values("rank_b").reset_index(drop=True), {"overlap": len(ta & tb), "top": top, "spearman": rho}
