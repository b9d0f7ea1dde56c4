"""Attribution: which asset a leak most likely belongs to, with every candidate's likelihood."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .geometry import ball_pairs, to_ecef


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
    OGI know their asset). The candidates are the assets within max(4s, 300 m) and those named. Returns
    ``asset_id`` (only when the top candidate has p ≥ ``min_p``; a kilometre pixel over a field of pads
    names none) and ``asset_candidates`` (list of dicts, most likely first, ties in asset order) per leak.

    Every leak is done at once: one KD-tree over the assets, one ball query for all leaks, and the
    likelihoods, totals and top candidates as array operations (a basin's 100k leaks in a second instead
    of a Python loop per leak).
    """
    n = len(leaks)
    out = pd.DataFrame({"asset_id": [None] * n, "asset_candidates": [[] for _ in range(n)]}, index=leaks.index)
    if n == 0 or assets is None or len(assets) == 0:
        return out
    axyz = to_ecef(assets["latitude"].to_numpy(float), assets["longitude"].to_numpy(float))
    lxyz = to_ecef(leaks["latitude"].to_numpy(float), leaks["longitude"].to_numpy(float))
    ids = assets["asset_id"].astype(str).to_numpy()
    s = np.hypot(leaks["radius_m"].to_numpy(float), site_sigma_m)

    # candidates by distance: one query for every leak, flattened into (leak row, asset index) pairs
    rows, cols = ball_pairs(cKDTree(axyz).query_ball_point(lxyz, np.maximum(4 * s, 300.0), return_sorted=False))

    # named assets: a leak's detections that name an asset make it a candidate and multiply its likelihood
    nv = np.zeros(len(rows))
    if votes is not None and len(votes):
        pos = pd.Series(np.arange(len(ids)), index=ids)
        pos = pos[~pos.index.duplicated(keep="last")]  # an id names one asset (the last of duplicates)
        canon = pos.reindex(ids).to_numpy(np.int64)  # each asset's index under its id
        label = leaks["label"] if "label" in leaks else pd.Series(leaks.index, index=leaks.index)
        v = votes.groupby(["label", "asset_id"]).size().rename("n").reset_index()
        v = v.merge(pd.DataFrame({"label": label.to_numpy(), "row": np.arange(n)}), on="label")
        v["col"] = v["asset_id"].astype(str).map(pos)
        v = v.dropna(subset=["col"])
        vkey = v["row"].to_numpy(np.int64) * len(ids) + v["col"].to_numpy(np.int64)
        vn = pd.Series(v["n"].to_numpy(float)).groupby(vkey).sum()
        rows = np.concatenate([rows, v["row"].to_numpy(np.int64)])
        cols = np.concatenate([cols, v["col"].to_numpy(np.int64)])
        _, first = np.unique(rows * len(ids) + cols, return_index=True)  # each pair once, by leak then asset
        rows, cols = rows[first], cols[first]
        nv = vn.reindex(rows * len(ids) + canon[cols]).fillna(0.0).to_numpy(float)
    else:
        order = np.lexsort((cols, rows))
        rows, cols = rows[order], cols[order]
    if not len(rows):
        return out

    d = np.linalg.norm(axyz[cols] - lxyz[rows], axis=1)
    like = np.exp(-0.5 * (d / s[rows]) ** 2) * (1 + nv)
    tot = np.bincount(rows, like, minlength=n)
    flat = np.flatnonzero((tot <= 0) & (np.bincount(rows, minlength=n) > 0))
    if len(flat):  # every likelihood underflowed (far candidates only): fall back to exp(-(d - d_min) / s)
        starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        dmin = np.full(n, np.inf)
        dmin[rows[starts]] = np.minimum.reduceat(d, starts)
        fix = np.isin(rows, flat)
        like[fix] = np.exp(-(d[fix] - dmin[rows[fix]]) / s[rows[fix]])
        tot = np.bincount(rows, like, minlength=n)
    p = like / tot[rows]

    order = np.lexsort((cols, -p, rows))  # per leak: most likely first, ties in asset order
    rows, cols, p, d = rows[order], cols[order], p[order], d[order]
    starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    top = rank < max_candidates
    rows, cols, p, d, rank = rows[top], cols[top], p[top], d[top], rank[top]

    asset_id = np.full(n, None, dtype=object)
    first = rank == 0
    best = first & (p >= min_p)  # name an asset only when the evidence points at one
    asset_id[rows[best]] = ids[cols[best]]
    cands: list[list] = [[] for _ in range(n)]
    for r, a, pp, dd in zip(rows.tolist(), ids[cols].tolist(), p.tolist(), d.tolist(), strict=True):
        cands[r].append({"asset_id": a, "p": round(pp, 3), "distance_m": round(dd, 1)})
    out["asset_id"] = pd.Series(asset_id, index=out.index, dtype=object)  # None stays None (no string dtype)
    out["asset_candidates"] = pd.Series(cands, index=out.index, dtype=object)
    return out
