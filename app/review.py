"""The supervisor's review: rank overrides, the last reviewed ranking and what changed since, model comparison.

Overrides and reviews are audit events (append-only, with who and when), so they need no table of their own:
``rank_override`` (target the leak; detail before, after, reason) and ``ranking_reviewed`` (target ``ranking``;
detail the effective ranks then).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from app import common as c
from mlpe_core import learn, review, store
from mlpe_core.comply import deadlines, load_rules
from mlpe_core.score import leak_features, model_rates, obligation_bands, priority
from mlpe_core.store.models import ModelVersion


@st.cache_data(show_spinner=False, max_entries=8)
def _events(action: str, ver: tuple) -> pd.DataFrame:
    with c.session() as s:
        return store.audit_events(s, action=action)


def overrides(ver: tuple) -> pd.DataFrame:
    """The latest override of each leak still in force: leak_id, override (rank), reason, by, at."""
    with c.session() as s:
        return review.rank_overrides(s)


def ranked(leaks: pd.DataFrame, ver: tuple) -> pd.DataFrame:
    """Ranked leaks in the order the supervisor sees (``mlpe_core.review.effective_ranking``)."""
    return review.effective_ranking(leaks, overrides(ver))


def record_override(s, user: str, row: pd.Series, after: int | None, reason: str) -> str:
    """Audit a rank override (``after`` None clears it); the reason is required. Returns what happened."""
    if not reason.strip():
        raise ValueError("give the reason for the override: it is evidence for the regulator")
    if after is not None and after == int(row["eff_rank"]):
        raise ValueError(f"{row['leak_id']} is already at rank {after}")
    if after is None and pd.isna(row["override"]):
        raise ValueError(f"{row['leak_id']} has no override to clear")
    review.record_override(s, user, row["leak_id"], int(row["eff_rank"]), int(row["rank"]), after, reason)
    lid = row["leak_id"]
    return f"{lid}: override cleared." if after is None else f"{lid} moved from #{row['eff_rank']} to #{after}."


def last_review(ver: tuple) -> dict | None:
    """The newest ``ranking_reviewed`` event: at, by, ranks {leak_id: rank}."""
    ev = _events("ranking_reviewed", ver)
    if ev.empty:
        return None
    e = ev.sort_values("id").iloc[-1]
    return {"at": e["at"], "by": e["actor"], "ranks": json.loads(e["detail"] or "{}").get("ranks", {})}


def mark_reviewed(s, user: str, ranking: pd.DataFrame) -> str:
    ranks = dict(zip(ranking["leak_id"], ranking["eff_rank"].astype(int).tolist(), strict=True))
    store.audit(s, user, "ranking_reviewed", "ranking", {"n": len(ranks), "ranks": ranks})
    s.commit()
    return f"Ranking of {len(ranks):,} leaks marked as reviewed."


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


@st.cache_data(show_spinner=False, max_entries=8)
def rank_with(model_id: int, ver: tuple) -> pd.DataFrame:
    """Every open leak scored by stored model version ``model_id`` on today's features (as ``pipeline.score_frame``
    does with the live one, without reasons): leak_id, p_real, est_rate_kg_h, priority_score, risk_band, rank."""
    with c.session() as s:
        leaks, dets = store.leaks_frame(s), store.detections_frame(s)
        vals, mv = store.validations_frame(s), s.get(ModelVersion, int(model_id))
        notes = store.notifications_frame(s)
        model = learn.loads(mv.blob) if mv is not None and mv.blob else learn.default_model()
    dets = dets[dets["leak_id"].isin(leaks["leak_id"])]
    if dets.empty:
        return pd.DataFrame(columns=["leak_id", "p_real", "est_rate_kg_h", "priority_score", "risk_band", "rank"])
    as_of = dets["observed_at"].max()
    X = leak_features(dets, leaks, as_of)
    dl = deadlines(dets, vals, load_rules(), as_of, leaks=leaks, notifications=notes).reindex(X.index)
    urg = dl["urgency"].fillna(0.0).to_numpy(float)
    out = pd.DataFrame(index=X.index)
    out["p_real"] = model.predict_proba(X)[:, 1]
    out["est_rate_kg_h"] = model_rates(model, X)["est_rate_kg_h"].to_numpy(float)
    out["priority_score"] = priority(out["p_real"].to_numpy(), out["est_rate_kg_h"].to_numpy(), urg)
    out["risk_band"] = obligation_bands(out["p_real"].to_numpy(), out["est_rate_kg_h"].to_numpy(), dl)[0]
    is_open = leaks.set_index("leak_id")["status"].reindex(X.index).isin(c.OPEN)
    out = out[is_open].sort_values(["priority_score", "p_real"], ascending=False)
    out["rank"] = np.arange(1, len(out) + 1)
    return out.rename_axis("leak_id").reset_index()


def compare(a: pd.DataFrame, b: pd.DataFrame, top: int) -> tuple[pd.DataFrame, dict]:
    """Side by side (suffixes _a, _b) with the rank change, and summary numbers: shared share of both top ``top``
    lists and the Spearman rank correlation."""
    m = a.merge(b, on="leak_id", suffixes=("_a", "_b"))
    m["change"] = m["rank_a"] - m["rank_b"]
    ta, tb = set(a.nsmallest(top, "rank")["leak_id"]), set(b.nsmallest(top, "rank")["leak_id"])
    rho = float(m["rank_a"].corr(m["rank_b"], method="spearman")) if len(m) > 2 else float("nan")
    return m.sort_values("rank_b").reset_index(drop=True), {"overlap": len(ta & tb), "top": top, "spearman": rho}
