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
from .store import audit, audit_events

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
    """Ranked leaks in the supervisor's order, with ``override``, ``override_reason`` and ``eff_rank`` (1..n)."""
    lk = leaks[leaks["rank"].notna()].copy()
    ov = overrides.set_index("leak_id")
    lk["override"] = lk["leak_id"].map(ov["override"]).astype("Int64")
    lk["override_reason"] = lk["leak_id"].map(ov["reason"])
    ovr = lk["override"].to_numpy(dtype=float, na_value=np.nan)
    lk["_k"] = np.where(np.isnan(ovr), lk["rank"].to_numpy(dtype=float), ovr - 0.5)
    lk = lk.sort_values(["_k", "rank"]).drop(columns="_k")
    lk["eff_rank"] = np.arange(1, len(lk) + 1)
    return lk


def record_override(
    session: Session, user: str, leak_id: str, before: int, model_rank: int, after: int | None, reason: str
) -> None:
    """Record (``after`` a rank) or clear (``after`` None) an override; a reason is required."""
    require(session, user, "override_rank")
    if not (reason or "").strip():
        raise ValueError("give the reason for the override: it is evidence for the regulator")
    if after is not None and int(after) < 1:
        raise ValueError("an overridden rank is a whole number ≥ 1")
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
