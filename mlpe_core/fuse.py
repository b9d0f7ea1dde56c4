"""Fuse: group detections from every sensor into leaks, one leak per real emission source and event.

Why this shape (details and references in ``docs/fusion.md``):

* Positions go to Earth-centred metres (ECEF, via pyproj). Straight-line distance there is the chord,
  which differs from the geodesic by under a millimetre at 10 km, and it works for a basin or a
  worldwide plume list alike with no projection zone to choose.
* Only *precise* detections (1-sigma ≤ ``precise_sigma_m``) build leaks: HDBSCAN (the ``hdbscan``
  package; scikit-learn's is quadratic at basin sizes) finds their dense groups. A 200 m SCADA alarm
  or a 7 km TROPOMI pixel must never bridge two precise leaks, so coarse detections are attached
  afterwards to the leak they are statistically compatible with, or marked ambiguous when several fit.
* Time splits a group where the sightings stop for longer than ``time_gap_days``: a leak that ended
  and a new one at the same spot months later are separate events of one site.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

_TO_ECEF = Transformer.from_crs("EPSG:4326", "EPSG:4978", always_xy=True)
_FROM_ECEF = Transformer.from_crs("EPSG:4978", "EPSG:4326", always_xy=True)


def to_ecef(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """WGS84 degrees → Earth-centred metres, shape (n, 3)."""
    x, y, z = _TO_ECEF.transform(np.asarray(lon, float), np.asarray(lat, float), np.zeros(len(lat)))
    return np.column_stack([x, y, z])


def from_ecef(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earth-centred metres → (lat, lon) degrees; points off the surface are projected onto it."""
    lon, lat, _ = _FROM_ECEF.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    return np.asarray(lat), np.asarray(lon)


class LeakFuser:
    """Group detections into leaks.

    Parameters
    ----------
    anchor_sigma_m : detections this precise (aircraft, OGI) are clustered first and anchor leaks.
    precise_sigma_m : detections up to this 1-sigma (satellites of 20-60 m pixels) join an anchor they
        agree with or build leaks of their own; coarser ones (site sensors, km pixels) only attach.
    min_cluster_size, min_samples : HDBSCAN settings.
    attach_sigmas : how many combined sigmas apart a detection may be from a leak centre to join it.
    time_gap_days : a silence longer than this splits a leak into separate events.
    site_sigma_m : extent of a site, for attributing leaks to assets.
    asset_attach_sigmas : looser limit when the detection and the leak name the same asset (a 2-D
        Gaussian lies beyond 3 sigma 1.1% of the time, beyond 4 sigma 0.03%).

    Attributes (after ``fit``)
    --------------------------
    labels_ : int array, the leak of each detection (0..n_leaks-1); every detection has one.
    ambiguous_ : bool array, coarse detections compatible with more than one precise leak.
    leaks_ : DataFrame, one row per leak: latitude, longitude, radius_m, n_detections, n_sources,
        source_types, first_seen, last_seen, n_ambiguous.
    """

    def __init__(
        self,
        anchor_sigma_m: float = 15.0,
        precise_sigma_m: float = 100.0,
        min_cluster_size: int = 2,
        min_samples: int = 1,
        attach_sigmas: float = 3.0,
        time_gap_days: float = 90.0,
        site_sigma_m: float = 30.0,
        asset_attach_sigmas: float = 4.0,
    ):
        self.anchor_sigma_m = anchor_sigma_m
        self.precise_sigma_m = precise_sigma_m
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.attach_sigmas = attach_sigmas
        self.time_gap_days = time_gap_days
        self.site_sigma_m = site_sigma_m
        self.asset_attach_sigmas = asset_attach_sigmas

    # ----------------------------------------------------------------------------------------- fit
    def fit(self, X: pd.DataFrame, assets: pd.DataFrame | None = None) -> LeakFuser:
        """X has latitude, longitude, location_uncertainty_m, observed_at; optional source_type, asset_id.

        ``assets`` (asset_id, latitude, longitude), when given, lets a site-level detection that names
        its asset join only leaks attributed to that asset.
        """
        n = len(X)
        xyz = to_ecef(X["latitude"].to_numpy(float), X["longitude"].to_numpy(float))
        sigma = np.maximum(X["location_uncertainty_m"].to_numpy(float), 1.0)
        t_days = _days(X["observed_at"])
        asset = (
            X["asset_id"].astype(object).where(X["asset_id"].notna(), None).to_numpy()
            if "asset_id" in X
            else np.full(n, None, dtype=object)
        )
        rates = X["rate_kg_h"].to_numpy(float) if "rate_kg_h" in X else None
        labels = np.full(n, -1, dtype=np.int64)
        ambiguous = np.zeros(n, dtype=bool)
        anchor = np.flatnonzero(sigma <= self.anchor_sigma_m)
        mid = np.flatnonzero((sigma > self.anchor_sigma_m) & (sigma <= self.precise_sigma_m))
        coarse = np.flatnonzero(sigma > self.precise_sigma_m)

        if len(anchor):
            labels[anchor] = self._cluster(xyz[anchor], sigma[anchor], t_days[anchor])
        if len(mid):
            if (labels >= 0).any():
                self._attach(mid, xyz, sigma, t_days, None, labels, None)
            rest = mid[labels[mid] < 0]
            if len(rest):
                base = int(labels.max()) + 1 if (labels >= 0).any() else 0
                labels[rest] = base + self._cluster(xyz[rest], sigma[rest], t_days[rest])
            labels = self._merge_compatible(xyz, sigma, t_days, labels)
        if len(coarse):
            leak_asset = self._leak_assets(xyz, sigma, labels, asset, assets)
            if (labels >= 0).any():
                self._attach(coarse, xyz, sigma, t_days, asset, labels, ambiguous, leak_asset, rates)
            self._group_leftovers(coarse[labels[coarse] < 0], xyz, sigma, t_days, asset, labels)
        labels = _relabel(labels)
        self.labels_ = labels
        self.ambiguous_ = ambiguous
        self.leaks_ = summarize(X, labels, ambiguous, xyz=xyz)
        return self

    def fit_predict(self, X: pd.DataFrame, assets: pd.DataFrame | None = None) -> np.ndarray:
        return self.fit(X, assets).labels_

    # ----------------------------------------------------------------------------------------- steps
    def _cluster(self, xyz: np.ndarray, sigma: np.ndarray, t: np.ndarray) -> np.ndarray:
        """HDBSCAN, split in time, drop members inconsistent with their cluster, regroup the rest."""
        n = len(xyz)
        if n >= 2:
            import hdbscan

            # subtract the mean so float precision is not lost at 6e6 m from the Earth's centre
            model = hdbscan.HDBSCAN(
                min_cluster_size=self.min_cluster_size, min_samples=self.min_samples, core_dist_n_jobs=1
            )
            lab = model.fit_predict(xyz - xyz.mean(axis=0))
        else:
            lab = np.full(n, -1)
        lab = _split_in_time(lab, t, self.time_gap_days)
        # HDBSCAN knows no uncertainties: two 3 m fixes 20 m apart are two sources, not one
        for _ in range(2):
            ok = lab >= 0
            if not ok.any():
                break
            # leave-one-out: each member against the centre of the others (for two points this is
            # their distance in combined sigmas), so one point cannot vouch for itself
            k = lab[ok]
            w = 1.0 / sigma[ok] ** 2
            m = int(k.max()) + 1
            sw = np.bincount(k, w, minlength=m)
            sx = np.column_stack([np.bincount(k, w * xyz[ok, d], minlength=m) for d in range(3)])
            rest_w = sw[k] - w
            with np.errstate(invalid="ignore", divide="ignore"):
                c_loo = (sx[k] - w[:, None] * xyz[ok]) / rest_w[:, None]
                z = np.linalg.norm(xyz[ok] - c_loo, axis=1) / np.sqrt(sigma[ok] ** 2 + 1.0 / rest_w)
            far = np.flatnonzero(ok)[np.nan_to_num(z, nan=0.0) > self.attach_sigmas]
            if len(far) == 0:
                break
            lab[far] = -1
            lab = _relabel_keep_noise(lab)
        lab = self._merge_compatible(xyz, sigma, t, lab)
        noise = np.flatnonzero(lab < 0)
        if len(noise) and (lab >= 0).any():
            self._attach(noise, xyz, sigma, t, None, lab, None)
        rest = np.flatnonzero(lab < 0)
        if len(rest):
            base = int(lab.max()) + 1 if (lab >= 0).any() else 0
            lab[rest] = base + _compatible_components(
                xyz[rest], sigma[rest], t[rest], self.attach_sigmas, self.time_gap_days
            )
        return lab

    def _merge_compatible(self, xyz, sigma, t, lab):
        """Join clusters whose centres agree within their errors and whose times overlap or touch."""
        if (lab >= 0).sum() == 0:
            return lab
        c, se = _centres(xyz, sigma, lab)
        ids = np.flatnonzero(np.isfinite(c).all(axis=1))
        if len(ids) < 2:
            return lab
        tmin, tmax = _time_bounds(lab, t, len(c))
        tree = cKDTree(c[ids])
        r = self.attach_sigmas * np.sqrt(2.0) * float(np.nanmax(se[ids]))
        pairs = tree.query_pairs(r, output_type="ndarray")
        if len(pairs) == 0:
            return lab
        a, b = ids[pairs[:, 0]], ids[pairs[:, 1]]
        d = np.linalg.norm(c[a] - c[b], axis=1)
        gap = np.maximum(tmin[a], tmin[b]) - np.minimum(tmax[a], tmax[b])
        keep = (d <= self.attach_sigmas * np.sqrt(se[a] ** 2 + se[b] ** 2)) & (gap <= self.time_gap_days)
        m = len(c)
        g = coo_matrix((np.ones(keep.sum()), (a[keep], b[keep])), shape=(m, m))
        _, comp = connected_components(g, directed=False)
        out = lab.copy()
        out[lab >= 0] = comp[lab[lab >= 0]]
        return _relabel_keep_noise(out)

    def _leak_assets(self, xyz, sigma, labels, asset, assets) -> dict[int, set]:
        """Assets each precise leak may belong to: those its detections name, and the likeliest nearby."""
        out: dict[int, set] = {}
        have = labels >= 0
        for i in np.flatnonzero(have & pd.notna(asset)):
            out.setdefault(int(labels[i]), set()).add(asset[i])
        if assets is None or len(assets) == 0 or not have.any():
            return out
        c, se = _centres(xyz, sigma, labels)
        ok = np.flatnonzero(np.isfinite(c).all(axis=1))
        axyz = to_ecef(assets["latitude"].to_numpy(float), assets["longitude"].to_numpy(float))
        ids = assets["asset_id"].astype(str).to_numpy()
        s = np.hypot(se[ok], self.site_sigma_m)
        dist, j = cKDTree(axyz).query(c[ok], k=1)
        near = dist <= self.attach_sigmas * s
        for leak, a in zip(ok[near], ids[j[near]], strict=True):
            out.setdefault(int(leak), set()).add(a)
        return out

    def _attach(self, pts, xyz, sigma, t, asset, labels, ambiguous, leak_asset=None, rates=None) -> None:
        """Give each point in ``pts`` the compatible leak it most likely belongs to (in place).

        Compatible: centre within ``attach_sigmas`` combined sigmas and time within the gap. A point
        that names an asset may only join leaks of that asset. With several candidates the Gaussian
        likelihood times the leak's size decides, and the point is marked ambiguous when asked to.
        """
        c, se = _centres(xyz, sigma, labels)
        valid = np.flatnonzero(np.isfinite(c).all(axis=1))
        if len(valid) == 0:
            return
        tmin, tmax = _time_bounds(labels, t, len(c))
        counts = np.bincount(labels[labels >= 0], minlength=len(c))
        log_rate = _log_rates(labels, rates, len(c)) if rates is not None else None
        tree = cKDTree(c[valid])
        k_max = max(self.attach_sigmas, self.asset_attach_sigmas)
        r = k_max * np.sqrt(sigma[pts] ** 2 + float(np.nanmax(se[valid])) ** 2)
        for i, near in zip(pts, tree.query_ball_point(xyz[pts], r), strict=True):
            cand = valid[near]
            if len(cand) == 0:
                continue
            cand = cand[(tmin[cand] - self.time_gap_days <= t[i]) & (t[i] <= tmax[cand] + self.time_gap_days)]
            k = self.attach_sigmas
            if asset is not None and asset[i] is not None and leak_asset is not None:
                cand = cand[[asset[i] in leak_asset.get(int(j), ()) for j in cand]] if len(cand) else cand
                # the detection and the leak name the same site: only a far outlier is refused
                k = self.asset_attach_sigmas
            if len(cand) == 0:
                continue
            z = np.linalg.norm(xyz[i] - c[cand], axis=1) / np.sqrt(sigma[i] ** 2 + se[cand] ** 2)
            ok = z <= k
            cand, z = cand[ok], z[ok]
            if len(cand) == 0:
                continue
            like = np.exp(-0.5 * z**2) * counts[cand]
            if log_rate is not None and np.isfinite(rates[i]) and rates[i] > 0:
                # a 5 km pixel that saw 5 t/h belongs to the leak that emits tonnes, not kilograms
                lr = log_rate[cand]
                like = like * np.where(np.isfinite(lr), np.exp(-0.5 * (np.log(rates[i]) - np.nan_to_num(lr)) ** 2), 0.3)
            labels[i] = cand[int(np.argmax(like))]
            if ambiguous is not None and len(cand) > 1:
                ambiguous[i] = True

    def _group_leftovers(self, rest, xyz, sigma, t, asset, labels) -> None:
        """Coarse detections with no precise leak: by named asset (split in time), else by compatibility."""
        if len(rest) == 0:
            return
        nxt = int(labels.max()) + 1 if (labels >= 0).any() else 0
        sub = np.full(len(rest), -1, dtype=np.int64)
        named = pd.notna(asset[rest])
        if named.any():
            codes, _ = pd.factorize(pd.Series(asset[rest][named], dtype=object))
            sub[named] = _split_in_time(codes, t[rest][named], self.time_gap_days)
        if (~named).any():
            base = sub.max() + 1 if named.any() else 0
            sub[~named] = base + _compatible_components(
                xyz[rest][~named], sigma[rest][~named], t[rest][~named], self.attach_sigmas, self.time_gap_days
            )
        labels[rest] = nxt + sub


# --------------------------------------------------------------------------------------------- helpers


def _days(s: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(s, utc=True)
    return (ts - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds().to_numpy() / 86400.0


def _time_bounds(lab: np.ndarray, t: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    tmin = np.full(m, np.inf)
    tmax = np.full(m, -np.inf)
    ok = lab >= 0
    np.minimum.at(tmin, lab[ok], t[ok])
    np.maximum.at(tmax, lab[ok], t[ok])
    return tmin, tmax


def _split_in_time(lab: np.ndarray, t: np.ndarray, gap_days: float) -> np.ndarray:
    """Give each run of a label separated by more than ``gap_days`` of silence its own label."""
    lab = np.asarray(lab)
    out = np.full(len(lab), -1, dtype=np.int64)
    ok = np.flatnonzero(lab >= 0)
    if len(ok) == 0:
        return out
    order = ok[np.lexsort((t[ok], lab[ok]))]
    lo, to = lab[order], t[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (lo[1:] != lo[:-1]) | (np.diff(to) > gap_days)
    out[order] = np.cumsum(new) - 1
    return out


def _compatible_components(xyz, sigma, t, k, gap_days) -> np.ndarray:
    """Connected components of 'within k combined sigmas and within the time gap' (for leftovers)."""
    n = len(xyz)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tree = cKDTree(xyz)
    pairs = tree.query_pairs(k * np.sqrt(2.0) * float(sigma.max()), output_type="ndarray")
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        d = np.linalg.norm(xyz[a] - xyz[b], axis=1)
        keep = (d <= k * np.sqrt(sigma[a] ** 2 + sigma[b] ** 2)) & (np.abs(t[a] - t[b]) <= gap_days)
        a, b = a[keep], b[keep]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    return comp.astype(np.int64)


def _centres(xyz: np.ndarray, sigma: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance centre and its 1-sigma for each label (noise, -1, ignored)."""
    ok = lab >= 0
    k = lab[ok]
    w = 1.0 / sigma[ok] ** 2
    m = int(k.max()) + 1 if ok.any() else 0
    sw = np.bincount(k, w, minlength=m)
    c = np.column_stack([np.bincount(k, w * xyz[ok, d], minlength=m) for d in range(3)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return c / sw[:, None], 1.0 / np.sqrt(sw)


def _log_rates(lab: np.ndarray, rates: np.ndarray, m: int) -> np.ndarray:
    """Mean log rate of each label's quantified members (NaN where none is quantified)."""
    ok = (lab >= 0) & np.isfinite(rates) & (rates > 0)
    n = np.bincount(lab[ok], minlength=m).astype(float)
    s = np.bincount(lab[ok], np.log(rates[ok]), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan)


def _relabel_keep_noise(lab: np.ndarray) -> np.ndarray:
    out = np.full(len(lab), -1, dtype=np.int64)
    ok = lab >= 0
    if ok.any():
        out[ok] = np.unique(lab[ok], return_inverse=True)[1]
    return out


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inv = np.unique(labels, return_inverse=True)
    return inv.astype(np.int64)


def summarize(
    X: pd.DataFrame, labels: np.ndarray, ambiguous: np.ndarray, xyz: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per leak: uncertainty-weighted centre, radius (its 1-sigma), counts, sources, times."""
    if xyz is None:
        xyz = to_ecef(X["latitude"].to_numpy(float), X["longitude"].to_numpy(float))
    sigma = np.maximum(X["location_uncertainty_m"].to_numpy(float), 1.0)
    # ambiguous coarse detections say little about where the leak is: they do not pull the centre
    w = np.where(ambiguous, 0.0, 1.0 / sigma**2)
    m = int(labels.max()) + 1 if len(labels) else 0
    sw = np.bincount(labels, w, minlength=m)
    c = np.column_stack([np.bincount(labels, w * xyz[:, d], minlength=m) for d in range(3)])
    c = c / np.where(sw > 0, sw, 1.0)[:, None]
    lat, lon = from_ecef(c)
    radius = 1.0 / np.sqrt(np.where(sw > 0, sw, np.nan))
    df = pd.DataFrame(
        {
            "label": labels,
            "observed_at": pd.to_datetime(X["observed_at"], utc=True).to_numpy(),
            "source_type": X["source_type"].to_numpy() if "source_type" in X else "unknown",
            "source_name": X["source_name"].to_numpy() if "source_name" in X else "unknown",
            "ambiguous": ambiguous,
        }
    )
    g = df.groupby("label", sort=True)
    out = pd.DataFrame(
        {
            "latitude": lat,
            "longitude": lon,
            "radius_m": radius,
            "n_detections": g.size().reindex(range(m), fill_value=0).to_numpy(),
            "n_sources": g["source_name"].nunique().reindex(range(m)).to_numpy(),
            "source_types": g["source_type"].agg(lambda s: ",".join(sorted(set(s)))).reindex(range(m)).to_numpy(),
            "first_seen": g["observed_at"].min().reindex(range(m)).to_numpy(),
            "last_seen": g["observed_at"].max().reindex(range(m)).to_numpy(),
            "n_ambiguous": g["ambiguous"].sum().reindex(range(m)).astype(int).to_numpy(),
        }
    )
    # a leak made only of ambiguous detections has no weight: fall back to its plain mean and sigma
    empty = ~np.isfinite(out["radius_m"].to_numpy())
    if empty.any():
        for k in np.flatnonzero(empty):
            sel = labels == k
            cc = xyz[sel].mean(axis=0, keepdims=True)
            la, lo = from_ecef(cc)
            out.loc[k, ["latitude", "longitude", "radius_m"]] = [la[0], lo[0], float(sigma[sel].min())]
    out["first_seen"] = pd.to_datetime(out["first_seen"], utc=True)
    out["last_seen"] = pd.to_datetime(out["last_seen"], utc=True)
    return out


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


def carry_ids(old_members: pd.Series, new_labels: pd.Series, existing_ids: set[str], prefix: str = "L") -> dict:
    """Map new labels to leak ids, keeping an old id wherever its detections mostly stayed together.

    ``old_members``: detection key → previous leak id (NaN when new). ``new_labels``: the same keys →
    new label. Greedy by overlap, so each old id goes to at most one new leak.
    """
    df = pd.DataFrame({"old": old_members, "new": new_labels}).dropna(subset=["new"])
    pairs = df.dropna(subset=["old"]).groupby(["new", "old"]).size().sort_values(ascending=False)
    mapping: dict = {}
    used: set = set()
    for (new, old), _ in pairs.items():
        if new in mapping or old in used:
            continue
        mapping[new] = old
        used.add(old)
    nums = [int(s[len(prefix) :]) for s in existing_ids if s.startswith(prefix) and s[len(prefix) :].isdigit()]
    nxt = max(nums, default=0) + 1
    for new in sorted(df["new"].unique()):
        if new not in mapping:
            mapping[new] = f"{prefix}{nxt:06d}"
            nxt += 1
    return mapping
