"""Incremental fusion: re-fuse only the area new detections can change, with the same result as a full fusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .estimator import LeakFuser, summarize
from .geometry import _centres, _days, _time_bounds, ball_pairs, to_ecef


class IncrementalFuser:
    """Fuse the detections that arrived since the last fusion by re-fusing only the area they can change.

    ``X`` is the whole store: every detection with its stored ``leak_id`` (empty for a detection not yet
    fused) and ``ambiguous`` flag. The result is meant to be exactly what ``LeakFuser`` would give on all
    of ``X``, for the rows it rewrites (``region_``) and for the rows it leaves alone. Design:

    1. **Seeds.** The new detections (no ``leak_id``), and every stored detection within the interaction
       distance of a new one. Two detections *i*, *j* interact directly only when some step of
       ``LeakFuser`` could compare them: HDBSCAN's leave-one-out check, the mid-tier and coarse attach and
       the leftover grouping all accept a pair within k·√(σᵢ² + σⱼ²), k = max(``attach_sigmas``,
       ``asset_attach_sigmas``) (4 by default: a few sigma of the larger uncertainty, since
       √(σᵢ² + σⱼ²) ≤ √2·max σ). Only precise and unnamed coarse detections are compared by position;
       a coarse detection that names its asset joins only leaks of that asset (rule 2). Pairs further
       apart in time than ``time_gap_days`` are left to the checks (4), as are HDBSCAN's longer links.
       The detections naming a site near a new precise fix are seeds too (its leak may be that site's),
       and so is every stored precise leak attributable to an asset a seed names (check 4, last item).
    2. **Closure.** Every detection naming an asset named by a region detection (site streams are per
       asset, and a stream's segments are matched against each other's leaks), and every detection of a
       leak touched so far (its summary and its id by overlap need all of it); repeated until it stops
       growing.
    3. **Context.** The region is fused together with the precise detections (1-sigma ≤ ``precise_sigma_m``)
       of every link component (``LeakFuser.link_m``) it touches: the components of its precise detections,
       and those of the stored precise leaks its coarse detections could join (centre within
       k·√(σ² + se²)). Precise leaks are built from precise detections alone and never span two components,
       and HDBSCAN runs on each component on its own, so a component's leaks depend on its own detections
       only: fitted whole, they come out exactly as in a full fusion, and the leaks of the components left
       out are the stored ones (a component no new detection touches is unchanged). Until FUSION_VERSION 6
       the context was every precise detection of the store (HDBSCAN's cluster choice was global): at
       1,000,000 detections that was ~667k, a near-full fit (52 s of clustering) for every update.
    4. **Checks**, after each fit; any failure adds the named detections (with rule 2) and fits again:
       a region leak that took a precise detection from outside; precise detections outside grouped
       differently than before; a coarse detection outside, unnamed, within k·√(σ² + se²) of a region
       precise leak's centre, old or new (it could now choose or doubt another leak); unnamed coarse
       leftovers outside within k·√(σᵢ² + σⱼ²) of a region leftover (leftovers group transitively);
       detections naming an asset that a region precise leak, old or new, can be attributed to (its
       named assets and every asset within ``attach_sigmas``·√(se² + ``site_sigma_m``²)); precise
       leaks, outside the region or context, attributable so to an asset a region detection names (a
       stream picks among its asset's leaks by their activity spans, which other sites' streams that
       joined the same leak extend; with the leak in the region the closure brings those streams in).
       When no check fails, no leak outside the region can change and no detection outside can change
       a region leak, so the region's result is the full fusion's (same detections in the same order,
       so even the floating-point sums agree).

    A region larger than ``max_share`` of the store (checked as it grows), or one that has not settled
    after ``max_rounds`` fits, is not worth it: the whole store is fused (``full_`` is True, ``reason_``
    says why). So is a store never fused before, or when ``full`` is set.

    Parameters
    ----------
    fuser : the LeakFuser whose settings are used (default settings when None). It must be the one the
        stored leaks came from: after changing settings, fuse with ``full=True``.
    max_share : fuse everything when the affected area exceeds this share of the store.
    max_rounds : most fits before giving up and fusing everything.
    full : always fuse everything.
    memory : a dict a long-running caller keeps between fits on a growing store (``store.DetectionMemory.derived``):
        each detection's position, uncertainty and time and the KD-trees over them are kept there, and a fit
        computes them only for the rows added since (the rows before must be the same rows in the same order:
        checked by their ids). Like scikit-learn's ``memory``: it changes the time taken, never the result.

    Attributes (after ``fit``)
    --------------------------
    region_ : bool array, the detections re-fused (all when ``full_``); only these need writing.
    labels_ : int array, the leak (0..len(leaks_)-1) of each region detection, -1 outside.
    ambiguous_ : bool array for every detection: new flags in the region, the stored ones outside.
    leaks_ : DataFrame, one row per region leak (as ``LeakFuser.leaks_``).
    full_ : whether everything was fused; ``reason_`` why (or how the region was settled).
    n_new_ : detections without a leak; ``rounds_`` : fits made.
    """

    def __init__(self, fuser: LeakFuser | None = None, max_share: float = 0.5, max_rounds: int = 8, full: bool = False,
                 memory: dict | None = None):
        self.fuser = fuser
        self.max_share = max_share
        self.max_rounds = max_rounds
        self.full = full
        self.memory = memory

    def fit(self, X: pd.DataFrame, assets: pd.DataFrame | None = None, coverage: pd.DataFrame | None = None
            ) -> IncrementalFuser:
        """``coverage``: the sensors' watched windows, handed to ``LeakFuser.fit`` (a region's streams are whole)."""
        import copy

        fuser = copy.copy(self.fuser) if self.fuser is not None else LeakFuser()
        n = len(X)
        old = X["leak_id"] if "leak_id" in X else pd.Series([None] * n)  # (blank: not fused yet)
        new = old.isna().to_numpy()
        stored_amb = X["ambiguous"].fillna(False).astype(bool).to_numpy() if "ambiguous" in X else np.zeros(n, bool)
        self.n_new_ = int(new.sum())
        self.rounds_ = 0
        if self.full or (n and new.all()):
            return self._fit_all(fuser, X, assets, "asked for" if self.full else "no previous fusion", coverage)
        if not new.any():
            empty = summarize(X.iloc[0:0], np.zeros(0, np.int64), np.zeros(0, bool))
            self._set(np.zeros(n, bool), np.full(n, -1, np.int64), stored_amb, empty)
            self.full_, self.reason_ = False, "nothing new"
            return self
        g = _StoreGeometry(X, old, fuser, assets, self.memory)
        limit = self.max_share * n

        def too_large(r: np.ndarray) -> IncrementalFuser | None:
            # checked as the region grows, so a region bound to exceed the share stops early
            if r.sum() <= limit:
                return None
            why = f"affected area {r.sum():,} of {n:,} detections (> {self.max_share:.0%})"
            return self._fit_all(fuser, X, assets, why, coverage)

        region = g.closure(new | g.near(new), limit)
        seen = np.zeros(n, dtype=bool)  # region rows whose stored leaks' reach is already added
        for rounds in range(1, self.max_rounds + 1):
            # the old leaks' reach first (cheap, no fit), then fit and check the new ones'. A leak's reach
            # does not depend on the rest of the region, so each pass adds only the leaks added since
            # the last one (closure keeps leaks whole).
            while (stop := too_large(region)) is None:
                fresh, seen = region & ~seen, region
                grown = g.closure(region | g.reach_old(region, fresh) | g.leaks_of_region_assets(region), limit)
                if grown.sum() == region.sum():
                    break
                region = grown
            if stop is not None:
                return stop
            rows = np.flatnonzero(region | g.context(region))
            f = fuser.fit(X.iloc[rows], assets, coverage)
            self.rounds_ = rounds
            more = g.closure(region | g.reach_new(rows, region[rows], f.labels_), limit)
            if more.sum() == region.sum():
                break
            region = more
        else:
            return self._fit_all(fuser, X, assets, f"affected area not settled after {self.max_rounds} fits", coverage)
        in_r = region[rows]
        uniq, lab = np.unique(f.labels_[in_r], return_inverse=True)
        labels = np.full(n, -1, dtype=np.int64)
        labels[region] = lab
        amb = stored_amb.copy()
        amb[region] = f.ambiguous_[in_r]
        self._set(region, labels, amb, f.leaks_.iloc[uniq].reset_index(drop=True))
        self.full_, self.reason_ = False, f"{region.sum():,} of {n:,} detections re-fused"
        return self

    def remember(self, X: pd.DataFrame) -> IncrementalFuser:
        """Compute into ``memory`` what a fit derives from every row of ``X`` (positions, KD-trees), so the first
        fit after it is as quick as the later ones (a watcher does this when it starts). Returns self."""
        if self.memory is not None and len(X):
            fuser = self.fuser or LeakFuser()
            old = X["leak_id"] if "leak_id" in X else pd.Series([None] * len(X))
            g = _StoreGeometry(X, old, fuser, None, self.memory)
            g._bands("positioned")
            g._bands("loose")
        return self

    def _fit_all(self, fuser: LeakFuser, X: pd.DataFrame, assets, reason: str, coverage=None) -> IncrementalFuser:
        f = fuser.fit(X, assets, coverage)
        self.rounds_ += 1
        self._set(np.ones(len(X), bool), f.labels_, f.ambiguous_, f.leaks_)
        self.full_, self.reason_ = True, reason
        return self

    def _set(self, region, labels, ambiguous, leaks) -> None:
        self.region_, self.labels_, self.ambiguous_, self.leaks_ = region, labels, ambiguous, leaks


class _StoreGeometry:
    """Positions, tiers, assets and stored leaks of a fused store, for growing an incremental fusion's region."""

    def __init__(self, X: pd.DataFrame, old: pd.Series, fuser: LeakFuser, assets: pd.DataFrame | None,
                 memory: dict | None = None):
        self.f = fuser
        self.n = len(X)
        kept = self._kept(X, memory)
        m = kept["n"] if kept else 0
        tail = X.iloc[m:]
        self.xyz = to_ecef(tail["latitude"].to_numpy(float), tail["longitude"].to_numpy(float))
        self.sigma = np.maximum(tail["location_uncertainty_m"].to_numpy(float), 1.0)
        self.t = _days(tail["observed_at"])
        if kept:
            self.xyz = np.concatenate([kept["xyz"], self.xyz])
            self.sigma = np.concatenate([kept["sigma"], self.sigma])
            self.t = np.concatenate([kept["t"], self.t])
        self.precise = self.sigma <= fuser.precise_sigma_m
        self.gap = fuser.time_gap_days
        a = X["asset_id"] if "asset_id" in X else pd.Series([None] * self.n)
        self.named = a.notna().to_numpy()
        if not isinstance(a.dtype, pd.StringDtype):  # text already (the store's column): no Python object per row
            a = a.astype(object).where(a.notna(), None).map(lambda v: None if v is None else str(v))
        self.asset_code, asset_names = pd.factorize(a)
        self.asset_names = asset_names
        self.asset_pos = dict(zip(asset_names.tolist(), range(len(asset_names)), strict=True))
        self.leak_code, _ = pd.factorize(old)
        self.k = max(fuser.attach_sigmas, fuser.asset_attach_sigmas)
        self.link = fuser.link_distance()
        self._band_cache: dict = dict(kept["bands"]) if kept else {}
        self._stored_precise_leaks = None
        self.loose = ~self.precise & ~self.named  # unnamed coarse: they attach and group by position
        self.assets = None
        if assets is not None and len(assets):
            self.assets = (
                to_ecef(assets["latitude"].to_numpy(float), assets["longitude"].to_numpy(float)),
                assets["asset_id"].astype(str).to_numpy(),
            )
            self.asset_tree = cKDTree(self.assets[0])
        if memory is not None:
            self._keep(X, memory)

    def _kept(self, X: pd.DataFrame, memory: dict | None) -> dict | None:
        """What ``memory`` holds for the first rows of ``X``, if they are the rows it was computed from."""
        kept = memory.get("store_geometry") if memory is not None else None
        if not kept or kept["precise_sigma_m"] != self.f.precise_sigma_m or kept["n"] > self.n or "id" not in X:
            return None
        if not np.array_equal(X["id"].to_numpy()[:kept["n"]], kept["ids"]):
            return None
        return kept

    def _keep(self, X: pd.DataFrame, memory: dict) -> None:
        """Hold the row-wise arrays (and, as they are built, the KD-tree bands) for the next fit."""
        if "id" not in X:
            return
        memory["store_geometry"] = {"n": self.n, "ids": X["id"].to_numpy().copy(), "xyz": self.xyz,
                                    "sigma": self.sigma, "t": self.t, "bands": self._band_cache,
                                    "precise_sigma_m": self.f.precise_sigma_m}

    def context(self, region: np.ndarray) -> np.ndarray:
        """The precise detections of every link component the fit of ``region`` needs (class doc, 3).

        Grown breadth-first from the region's precise detections and the members of the stored precise leaks
        its coarse detections may join, through precise detections closer than ``link`` to one found:
        whole components, so each component in the fit is the one a full fusion sees.
        """
        ctx = np.zeros(self.n, dtype=bool)
        front = [np.flatnonzero(region & self.precise)]
        coarse = np.flatnonzero(region & ~self.precise)
        if len(coarse):
            front.append(self._stored_precise_leaks_near(coarse))
        front = np.unique(np.concatenate(front))
        ctx[front] = True
        # only bands holding precise detections can extend a component; the pairs within ``link`` of the front come
        # from one dual-tree search per band (in C), not a Python list per front point (thousands at a busy pad)
        bands = [(rows, tree) for rows, tree, _ in self._bands("positioned") if self.precise[rows].any()]
        while len(front):
            hits = []
            near = cKDTree(self.xyz[front])
            for rows, tree in bands:
                pairs = near.sparse_distance_matrix(tree, self.link, output_type="ndarray")
                if not len(pairs):
                    continue
                fi, j = front[pairs["i"]], rows[pairs["j"]]
                keep = self.precise[j] & ~ctx[j]
                j, fi = j[keep], fi[keep]
                hits.append(j[np.linalg.norm(self.xyz[j] - self.xyz[fi], axis=1) < self.link])
            front = np.unique(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.int64)
            ctx[front] = True
        return ctx

    def _stored_precise_leaks_near(self, pts: np.ndarray) -> np.ndarray:
        """Members of the stored precise leaks whose centre is within k·√(σ² + se²) of a point of ``pts``
        (the leaks a coarse detection may attach to; centres computed once)."""
        rows, inv, ids, c, se, tree = self._stored_centres()
        if tree is None or len(pts) == 0:
            return np.zeros(0, dtype=np.int64)
        pi, j = ball_pairs(tree.query_ball_point(self.xyz[pts], self.k * np.hypot(self.sigma[pts], float(se.max())),
                                                 return_sorted=False))
        if len(j) == 0:
            return np.zeros(0, dtype=np.int64)
        pi = pts[pi]
        near = np.linalg.norm(self.xyz[pi] - c[j], axis=1) <= self.k * np.hypot(self.sigma[pi], se[j])
        hit = np.zeros(int(inv.max()) + 1, dtype=bool)
        hit[ids[j[near]]] = True
        return rows[hit[inv]]

    def _stored_centres(self):
        """The stored precise leaks (computed once): their member rows, each row's leak index, then for the leaks
        with a finite centre their index, centre, standard error and a KD-tree of the centres."""
        if self._stored_precise_leaks is None:
            rows = np.flatnonzero(self.precise & (self.leak_code >= 0))
            keys, inv = np.unique(self.leak_code[rows], return_inverse=True)
            c, se = _centres(self.xyz[rows], self.sigma[rows], inv)
            ok = np.isfinite(c).all(axis=1)
            tree = cKDTree(c[ok]) if ok.any() else None
            self._stored_precise_leaks = (rows, inv, np.flatnonzero(ok), c[ok], se[ok], tree)
        return self._stored_precise_leaks

    def _stored_leaks_of_assets(self, codes: np.ndarray) -> np.ndarray:
        """Members of the stored precise leaks attributable to one of the asset ``codes``: a member names it, or the
        leak's centre is within ``attach_sigmas``·√(se² + ``site_sigma_m``²) of its registered position.

        Searched from the few assets (the leaks' centres are in a KD-tree), not from every stored leak: the same
        pairs as :meth:`_leak_asset_pairs` over every stored leak (1 s at 100,000 leaks; the distance is symmetric).
        """
        out = np.zeros(self.n, dtype=bool)
        rows, inv, ids, c, se, tree = self._stored_centres()
        if len(rows) == 0:
            return out
        wanted = np.zeros(len(self.asset_names) + 1, dtype=bool)
        wanted[codes + 1] = True  # (index 0: code -1, no asset)
        hit = np.zeros(int(inv.max()) + 1, dtype=bool)
        hit[inv[wanted[self.asset_code[rows] + 1]]] = True
        if self.assets is not None and tree is not None:
            at = np.flatnonzero(pd.Index(self.assets[1]).isin(self.asset_names[codes]))
            if len(at):
                pts = self.assets[0][at]
                reach = self.f.attach_sigmas * np.hypot(float(se.max()), self.f.site_sigma_m)
                pi, j = ball_pairs(tree.query_ball_point(pts, reach, return_sorted=False))
                near = np.linalg.norm(c[j] - pts[pi], axis=1) <= self.f.attach_sigmas * np.hypot(
                    se[j], self.f.site_sigma_m)
                hit[ids[j[near]]] = True
        out[rows[hit[inv]]] = True
        return out

    def closure(self, region: np.ndarray, limit: float = np.inf) -> np.ndarray:
        """Add every detection naming an asset of the region and every detection of a leak of the region
        (stopping early, incomplete, once the region holds more than ``limit`` detections)."""
        region = region.copy()
        while True:
            size = int(region.sum())
            for code in (self.asset_code, self.leak_code):
                hit = np.zeros(int(code.max()) + 2, dtype=bool)
                hit[code[region] + 1] = True
                hit[0] = False  # code -1: no asset / not fused yet
                region |= hit[code + 1]
            grown = int(region.sum())
            if grown == size or grown > limit:
                return region

    def near(self, seeds: np.ndarray) -> np.ndarray:
        """Stored precise or unnamed coarse detections within k·√(σᵢ² + σⱼ²) and the time gap of a seed of the
        same kinds, and detections naming a site that a new precise fix's leak may be attributed to."""
        out = np.zeros(self.n, dtype=bool)
        src = np.flatnonzero(seeds & (self.precise | self.loose))
        if len(src) == 0:
            return out
        out[self._within(self.xyz[src], self.sigma[src], self.t[src], self.t[src], "positioned", ~seeds)] = True
        # the sites a new precise fix's leak may be attributed to: their streams may join it
        p = src[self.precise[src]]
        out |= self._naming_assets_near(self.xyz[p], self.sigma[p])
        return out | self.leaks_of_region_assets(seeds | out)

    def _bands(self, kind: str) -> list[tuple[np.ndarray, cKDTree, float]]:
        """KD-trees of the detections of ``kind`` ("positioned": precise or unnamed coarse; "loose": unnamed
        coarse), one per decade of sigma, each with its own largest sigma (built once, cached).

        One tree with the largest sigma of all would let one stored 5 km pixel make every 5 m fix search
        20 km around; per band, a fix searches the 5 m band a few tens of metres around and the 1-10 km
        band (a few rows) 20 km around.
        """
        cache = self._band_cache
        have = cache.get(kind)
        if have is not None and have[0] == self.n:
            return have[1]
        wanted = (self.precise | self.loose) if kind == "positioned" else self.loose
        start, bands = (have[0], list(have[1])) if have is not None else (0, [])
        if have is not None and (len(bands) > 24 or (self.n - start) * 10 > max(start, 1)):
            start, bands = 0, []  # many small bands from earlier fits, or a large addition: build afresh
        rows = start + np.flatnonzero(wanted[start:])  # (kept bands cover the rows before ``start``)
        decade = np.floor(np.log10(self.sigma[rows])).astype(np.int64)
        bands += [(r, cKDTree(self.xyz[r]), float(self.sigma[r].max()))
                  for r in (rows[decade == b] for b in np.unique(decade))]
        cache[kind] = (self.n, bands)
        return bands

    def _within(self, centres, spread, t0, t1, kind: str, allowed: np.ndarray) -> np.ndarray:
        """Rows of ``kind`` (see ``_bands``) with ``allowed`` set, within k·√(σ² + spread²) of a centre and
        seen within the time gap of [t0, t1]."""
        hits = []
        if len(centres) == 0:
            return np.zeros(0, dtype=np.int64)
        for rows, tree, smax in self._bands(kind):
            ci, j = ball_pairs(tree.query_ball_point(centres, self.k * np.hypot(spread, smax), return_sorted=False))
            if len(j) == 0:
                continue
            j = rows[j]
            keep = allowed[j] & (self.t[j] >= t0[ci] - self.gap) & (self.t[j] <= t1[ci] + self.gap)
            j, ci = j[keep], ci[keep]
            d = np.linalg.norm(self.xyz[j] - centres[ci], axis=1)
            hits.append(j[d <= self.k * np.hypot(self.sigma[j], spread[ci])])
        return np.unique(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.int64)

    def _naming_assets_near(self, centres: np.ndarray, se: np.ndarray) -> np.ndarray:
        """Detections naming a registered asset that a leak centred here may be attributed to."""
        hit = np.zeros(len(self.asset_pos) + 1, dtype=bool)
        if self.assets is not None and len(centres):
            r = self.f.attach_sigmas * np.hypot(se, self.f.site_sigma_m)
            for near in self.asset_tree.query_ball_point(centres, r):
                for name in self.assets[1][near]:
                    code = self.asset_pos.get(name)
                    if code is not None:
                        hit[code + 1] = True
        return hit[self.asset_code + 1]

    def leaks_of_region_assets(self, region: np.ndarray, rows=None, lab=None) -> np.ndarray:
        """Every precise leak, outside the region too, attributable to an asset named in the region.

        A site stream chooses among its asset's leaks by their activity spans and sizes, which the other
        streams that joined the same leak change: a leak a region stream may join must be in the region,
        so that the closure brings in its other streams. Attributable (as ``LeakFuser._leak_assets``,
        loosened to every asset in range): a member names the asset, or its centre is within
        ``attach_sigmas``·√(se² + ``site_sigma_m``²) of it. ``rows``/``lab``: the precise detections and
        their leaks (default: the stored precise detections and their stored leaks).
        """
        out = np.zeros(self.n, dtype=bool)
        codes = np.unique(self.asset_code[region & self.named])
        if len(codes) == 0:
            return out
        if rows is None:
            return self._stored_leaks_of_assets(codes) & ~region
        keep = self.precise[rows]
        rows, inv, pair_leak, pair_code = self._leak_asset_pairs(rows[keep], lab[keep])
        if len(pair_leak) == 0:
            return out
        in_codes = np.zeros(int(self.asset_code.max()) + 1, dtype=bool)
        in_codes[codes] = True
        hit = np.zeros(int(inv.max()) + 1, dtype=bool)
        hit[pair_leak[in_codes[pair_code]]] = True
        out[rows[hit[inv]]] = True
        return out & ~region

    def _leak_asset_pairs(self, rows: np.ndarray, lab: np.ndarray):
        """(rows, leak index of each row, then pairs leak index, asset code): the named assets each precise
        leak may be attributed to."""
        empty = np.zeros(0, dtype=np.int64)
        if len(rows) == 0:
            return rows, empty, empty, empty
        keys, inv = np.unique(lab, return_inverse=True)
        named = self.asset_code[rows] >= 0
        pl, pc = [inv[named]], [self.asset_code[rows][named]]
        if self.assets is not None:
            c, se = _centres(self.xyz[rows], self.sigma[rows], inv)
            ok = np.flatnonzero(np.isfinite(c).all(axis=1))
            if len(ok):
                r = self.f.attach_sigmas * np.hypot(se[ok], self.f.site_sigma_m)
                for leak, near in zip(ok, self.asset_tree.query_ball_point(c[ok], r), strict=True):
                    got = [self.asset_pos[a] for a in self.assets[1][near] if a in self.asset_pos]
                    if got:
                        pl.append(np.full(len(got), leak, dtype=np.int64))
                        pc.append(np.asarray(got, dtype=np.int64))
        return rows, inv, np.concatenate(pl).astype(np.int64), np.concatenate(pc).astype(np.int64)

    def _reach(self, region: np.ndarray, rows: np.ndarray, lab: np.ndarray) -> np.ndarray:
        """What the leaks ``lab`` of region ``rows`` can reach outside the region (checks 3-5 of the class doc)."""
        out = np.zeros(self.n, dtype=bool)
        outside = ~region
        p = self.precise[rows]
        if p.any():
            keys, inv = np.unique(lab[p], return_inverse=True)
            c, se = _centres(self.xyz[rows[p]], self.sigma[rows[p]], inv)
            lo, hi = _time_bounds(inv, self.t[rows[p]], len(keys))
            out[self._within(c, se, lo, hi, "loose", outside)] = True
            out |= self._naming_assets_near(c, se)
            has_precise = np.isin(lab, keys)
        else:
            has_precise = np.zeros(len(rows), dtype=bool)
        left = rows[self.loose[rows] & ~has_precise]  # leftovers: coarse leaks with no precise member
        if len(left):
            out[self._within(self.xyz[left], self.sigma[left], self.t[left], self.t[left], "loose", outside)] = True
        return out & ~region

    def reach_old(self, region: np.ndarray, fresh: np.ndarray | None = None) -> np.ndarray:
        """What the stored leaks of the ``fresh`` rows of the region (default: all of it) can reach outside it."""
        rows = np.flatnonzero((region if fresh is None else fresh) & (self.leak_code >= 0))
        return self._reach(region, rows, self.leak_code[rows])

    def reach_new(self, rows: np.ndarray, in_region: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """After a fit of ``rows`` (region and precise context): all that the fit says the region must hold."""
        region = np.zeros(self.n, dtype=bool)
        region[rows[in_region]] = True
        out = self._reach(region, rows[in_region], labels[in_region])
        # the precise leaks (context included) a region stream may join, with their other streams (closure)
        out |= self.leaks_of_region_assets(region, rows, labels)
        ctx = ~in_region
        if ctx.any():
            # a region leak holding an outside precise detection: that detection's leak joins the region
            mixed = np.intersect1d(labels[in_region], labels[ctx])
            bad = ctx & np.isin(labels, mixed)
            # outside precise detections grouped otherwise than before: their leaks join the region
            old = self.leak_code[rows[ctx]]
            pairs = pd.DataFrame({"new": labels[ctx], "old": old}).drop_duplicates()
            split_new = pairs["new"].duplicated(keep=False).to_numpy()
            split_old = pairs["old"].duplicated(keep=False).to_numpy()
            bad_old = set(pairs["old"][split_new | split_old])
            bad[np.flatnonzero(ctx)[np.isin(old, list(bad_old))]] = True
            out[rows[bad]] = True
        return out
