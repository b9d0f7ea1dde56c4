"""Attribution: which asset a leak most likely belongs to, with every candidate's likelihood."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .geometry import to_ecef


def attribute_assets(
    leaks: pd.DataFrame,
    assets: pd.DataFrame,
    votes: pd.DataFrame | None = None,
    site_sigma_m: float = 30.0,
    max_candidates: int = 3,
    min_p: float = 0.5,
) -> pd.DataFrame:
    """Most likely asset of each leak, with the alternatives.

    Likelihood of asset a for a leak at distance d: exp(-d²/2s²) with s² = radius² + site_sigma²
    (a site has extent), times 1 + the number of the leak's detections that name a (SCADA, monitors and
    OGI know their asset). Returns ``asset_id`` (only when the top candidate has p ≥ ``min_p``; a
    kilometre pixel over a field of pads names none) and ``asset_candidates`` (list of dicts) per leak.
    """
    out = pd.DataFrame(
        {"asset_id": [None] * len(leaks), "asset_candidates": [[] for _ in range(len(leaks))]}, index=leaks.index
    )
    if len(leaks) == 0 or assets is None or len(assets) == 0:
        return out
    axyz = to_ecef(assets["latitude"].to_numpy(float), assets["longitude"].to_numpy(float))
    lxyz = to_ecef(leaks["latitude"].to_numpy(float), leaks["longitude"].to_numpy(float))
    tree = cKDTree(axyz)
    ids = assets["asset_id"].astype(str).to_numpy()
    vote_map: dict = {}
    if votes is not None and len(votes):
        for (lk, a), n in votes.groupby(["label", "asset_id"]).size().items():
            vote_map.setdefault(lk, {})[a] = n
    pos = {a: i for i, a in enumerate(ids)}
    for row, (i, lk) in enumerate(zip(leaks.index, leaks.get("label", leaks.index), strict=True)):
        s = float(np.hypot(leaks["radius_m"].iloc[row], site_sigma_m))
        near = tree.query_ball_point(lxyz[row], max(4 * s, 300.0))
        cand = set(near) | {pos[a] for a in vote_map.get(lk, {}) if a in pos}
        if not cand:
            continue
        cand = np.fromiter(cand, int)
        d = np.linalg.norm(axyz[cand] - lxyz[row], axis=1)
        like = np.exp(-0.5 * (d / s) ** 2) * (1 + np.array([vote_map.get(lk, {}).get(ids[j], 0) for j in cand]))
        if like.sum() <= 0:
            like = np.exp(-(d - d.min()) / s)
        p = like / like.sum()
        order = np.argsort(-p)[:max_candidates]
        # name an asset only when the evidence points at one: a 5 km pixel over a field of pads does not
        out.at[i, "asset_id"] = ids[cand[order[0]]] if p[order[0]] >= min_p else None
        out.at[i, "asset_candidates"] = [
            {"asset_id": ids[cand[j]], "p": round(float(p[j]), 3), "distance_m": round(float(d[j]), 1)} for j in order
        ]
    return out
