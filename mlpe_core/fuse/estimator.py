"""LeakFuser: the estimator that groups detections into leaks (fit, labels_, leaks_), and the leak summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .geometry import (
    _centres,
    _compatible_components,
    _days,
    _log_rate_and_sd,
    _log_rate_stats,
    _log_rates,
    _relabel,
    _relabel_keep_noise,
    _split_in_time,
    _time_bounds,
    from_ecef,
    link_components,
    local_hdbscan,
    to_ecef,
)
from .streams import _stream_names, _stream_segments

# Bumped whenever the grouping logic changes with the same settings: a store fused by another version is
# re-fused in full, never mixed with incremental results of this one (pipeline._stale_fusion).
FUSION_VERSION = 6  # 6: precise leaks built per link_m component (HDBSCAN local)


class LeakFuser:
    """Group detections into leaks.

    Parameters
    ----------
    anchor_sigma_m : detections this precise (aircraft, OGI) are clustered first and anchor leaks.
    precise_sigma_m : detections up to this 1-sigma (satellites of 20-60 m pixels) join an anchor they
        agree with or build leaks of their own; coarser ones (site sensors, km pixels) only attach.
    min_cluster_size, min_samples : HDBSCAN settings.
    link_m : precise detections are grouped within components of 'a chain of precise detections each closer
        than ``link_m`` to the next': HDBSCAN runs on each component on its own (``geometry.local_hdbscan``),
        and no later step (merge, attach, regrouping) joins precise detections of two components. So a
        precise leak depends only on its own component, and an incremental fusion needs only the components
        new detections touch, not every precise detection of the store. Default (None): the farthest two
        precise detections can be and still be compatible, ``attach_sigmas`` · √2 · ``precise_sigma_m``
        (424 m with the defaults: two 100 m fixes 3 combined sigmas apart), so two detections that any step
        could put in one leak by their own positions are always in one component. With ``min_samples`` > 1
        HDBSCAN's core distances are not local: each component is then clustered by its own ``hdbscan``
        run (slower; same locality).
    attach_sigmas : how many combined sigmas apart a detection may be from a leak centre to join it.
    time_gap_days : a silence longer than this splits a leak into separate events.
    site_sigma_m : extent of a site, for attributing leaks to assets.
    asset_attach_sigmas : looser limit when the detection and the leak name the same asset (a 2-D
        Gaussian lies beyond 3 sigma 1.1% of the time, beyond 4 sigma 0.03%).
    silence_p : a site sensor's stream (one asset, one sensor) is cut where it falls silent for longer
        than its own cadence makes this improbable (p below ``silence_p``): the source stopped, and
        what the sensor reports afterwards is another source. The same level decides whether a segment's
        measured rates are one source or two (a two-source log-rate model with phases, see ``_rate_split``).
    rate_slack_log : spread allowed between two sensors' log-rate scales when a site stream's segment is
        matched to a precise leak (on top of both measurement errors).
    max_rate_ratio : a satellite plume (mid tier) does not join, or merge with, a leak whose measured rate
        differs from its own by more than this factor. Two readings of one steady source differ by a
        factor 2 at 1 sigma at most (satellite and aircraft retrievals: 30-50 % 1-sigma, e.g. Carbon
        Mapper's 52 % median in the Stanford 2022 blind test, El Abbadi et al. 2024), so 20 is over
        4 sigma: what is left is another source at the same spot (a 24 kg/h aircraft fix in June and a
        2.8 t/h plume in September are two events, not one). Among plumes clustered with each other, a
        plume this far from the mean log-rate of its cluster's other plumes is taken out and regrouped
        under the same gate. The gate is pairwise (leak to leak, plume to leak), so merges stay
        transitive: an unquantified plume can still link two leaks far apart in rate. Aircraft and
        OGI fixes (anchor tier) are not gated among themselves.

    Attributes (after ``fit``)
    --------------------------
    labels_ : int array, the leak of each detection (0..n_leaks-1); every detection has one.
    ambiguous_ : bool array, coarse detections compatible with more than one leak (for a site's alarm:
        more than one leak of its site active at its time).
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
        silence_p: float = 1e-6,
        rate_slack_log: float = 0.5,
        max_rate_ratio: float = 20.0,
        link_m: float | None = None,
    ):
        self.anchor_sigma_m = anchor_sigma_m
        self.precise_sigma_m = precise_sigma_m
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.attach_sigmas = attach_sigmas
        self.time_gap_days = time_gap_days
        self.site_sigma_m = site_sigma_m
        self.asset_attach_sigmas = asset_attach_sigmas
        self.silence_p = silence_p
        self.rate_slack_log = rate_slack_log
        self.max_rate_ratio = max_rate_ratio
        self.link_m = link_m

    def link_distance(self) -> float:
        """``link_m``, or its default: ``attach_sigmas`` · √2 · ``precise_sigma_m``."""
        if self.link_m is not None:
            return float(self.link_m)
        return self.attach_sigmas * np.sqrt(2.0) * self.precise_sigma_m

    # ----------------------------------------------------------------------------------------- fit
    def fit(self, X: pd.DataFrame, assets: pd.DataFrame | None = None, coverage: pd.DataFrame | None = None
            ) -> LeakFuser:
        """X has latitude, longitude, location_uncertainty_m, observed_at; optional source_type, asset_id.

        ``assets`` (asset_id, latitude, longitude), when given, lets a site-level detection that names
        its asset join only leaks attributed to that asset. ``coverage`` (the store's ``MonitorCoverage``
        windows: source_name, asset_id, start_at, end_at, state), when given, says when each site sensor
        watched: its silences are counted only then (offline and unreported time is not silence).
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
        # the precise detections' link components: no precise leak spans two (see ``link_m``)
        group = np.full(n, -1, dtype=np.int64)
        precise = np.flatnonzero(sigma <= self.precise_sigma_m)
        if len(precise):
            group[precise] = link_components(xyz[precise], self.link_distance())  # raw: see local_hdbscan

        if len(anchor):
            labels[anchor] = self._cluster(xyz[anchor], sigma[anchor], t_days[anchor], group=group[anchor])
        if len(mid):
            if (labels >= 0).any():
                self._attach(mid, xyz, sigma, t_days, None, labels, None, gate_rates=rates, group=group)
            rest = mid[labels[mid] < 0]
            if len(rest):
                base = int(labels.max()) + 1 if (labels >= 0).any() else 0
                rest_rates = rates[rest] if rates is not None else None  # plumes are gated among themselves too
                labels[rest] = base + self._cluster(xyz[rest], sigma[rest], t_days[rest], rest_rates,
                                                    group=group[rest])
            labels = self._merge_compatible(xyz, sigma, t_days, labels, rates, group=group)
        if len(coarse):
            leak_asset = self._leak_assets(xyz, sigma, labels, asset, assets)
            precise_labels = labels.copy()
            named = coarse[pd.notna(asset[coarse])]
            if len(named):
                lr, lr_sd = _log_rate_and_sd(X, rates)
                lr, cal = _calibrated(X, lr)
                stream = _stream_names(X)
                self._attach_streams(named, xyz, sigma, t_days, asset, stream, labels, ambiguous, leak_asset, lr, lr_sd,
                                     _watched_windows(coverage), cal)
            rest = coarse[labels[coarse] < 0]
            if len(rest) and (precise_labels >= 0).any():
                # the rest (unnamed, or far from their asset's leaks) attach on precise evidence only, as
                # coarse detections never build or bridge precise leaks
                self._attach(rest, xyz, sigma, t_days, asset, precise_labels, ambiguous, leak_asset, rates)
                labels[rest] = precise_labels[rest]
            self._group_leftovers(coarse[labels[coarse] < 0], xyz, sigma, t_days, asset, labels)
        labels = _relabel(labels)
        self.labels_ = labels
        self.ambiguous_ = ambiguous
        self.leaks_ = summarize(X, labels, ambiguous, xyz=xyz)
        return self

    def fit_predict(self, X: pd.DataFrame, assets: pd.DataFrame | None = None) -> np.ndarray:
        return self.fit(X, assets).labels_

    # ----------------------------------------------------------------------------------------- steps
    def _cluster(self, xyz: np.ndarray, sigma: np.ndarray, t: np.ndarray, rates: np.ndarray | None = None,
                 group: np.ndarray | None = None) -> np.ndarray:
        """HDBSCAN per link component, split in time, drop members inconsistent with their cluster, regroup the rest.

        With ``rates`` (the mid tier), a quantified member whose rate differs from the mean log-rate of its
        cluster's other quantified members by more than ``max_rate_ratio`` is dropped too, and the
        merge, attach and regrouping steps refuse pairs that far apart in rate. ``group``: the points'
        precise link components (``link_m``); merges and attachments stay within one.
        """
        n = len(xyz)
        lab = self._hdbscan(xyz) if n >= 2 else np.full(n, -1)
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
        if rates is not None and (lab >= 0).any():
            lab = self._drop_off_rate(lab, rates)
        lab = self._merge_compatible(xyz, sigma, t, lab, rates, group=group)
        noise = np.flatnonzero(lab < 0)
        if len(noise) and (lab >= 0).any():
            self._attach(noise, xyz, sigma, t, None, lab, None, gate_rates=rates, group=group)
        rest = np.flatnonzero(lab < 0)
        if len(rest):
            base = int(lab.max()) + 1 if (lab >= 0).any() else 0
            lab[rest] = base + _compatible_components(
                xyz[rest], sigma[rest], t[rest], self.attach_sigmas, self.time_gap_days,
                rates[rest] if rates is not None else None, np.log(self.max_rate_ratio),
                group=group[rest] if group is not None else None,
            )
        return lab

    def _hdbscan(self, xyz: np.ndarray) -> np.ndarray:
        """HDBSCAN labels (-1 noise), run on each ``link_m`` component on its own (``geometry.local_hdbscan``)."""
        link = self.link_distance()
        if self.min_samples == 1:
            return local_hdbscan(xyz, link, self.min_cluster_size)
        import hdbscan

        # subtract the mean so float precision is not lost at 6e6 m from the Earth's centre
        x = xyz - xyz.mean(axis=0)
        comp = link_components(x, link)
        out = np.full(len(x), -1, dtype=np.int64)
        base = 0
        for idx in pd.Series(np.arange(len(x))).groupby(comp).indices.values():
            if len(idx) <= self.min_samples or len(idx) < self.min_cluster_size:
                continue
            lab = hdbscan.HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                                  allow_single_cluster=True, core_dist_n_jobs=1).fit_predict(x[idx])
            out[idx[lab >= 0]] = base + lab[lab >= 0]
            base += int(lab.max()) + 1 if (lab >= 0).any() else 0
        return out

    def _drop_off_rate(self, lab: np.ndarray, rates: np.ndarray) -> np.ndarray:
        """Members whose rate is over ``max_rate_ratio`` from the mean log-rate of the rest of their cluster
        become noise (leave-one-out, as for position: of a 24 kg/h and a 2.8 t/h plume, neither vouches)."""
        q = (lab >= 0) & np.isfinite(rates) & (rates > 0)
        if not q.any():
            return lab
        m = int(lab.max()) + 1
        lr = np.log(np.where(q, rates, 1.0))
        n = np.bincount(lab[q], minlength=m).astype(float)
        sl = np.bincount(lab[q], lr[q], minlength=m)
        k = lab[q]
        with np.errstate(invalid="ignore", divide="ignore"):
            others = (sl[k] - lr[q]) / (n[k] - 1)
        off = np.flatnonzero(q)[(n[k] > 1) & (np.abs(lr[q] - others) > np.log(self.max_rate_ratio))]
        if len(off) == 0:
            return lab
        lab = lab.copy()
        lab[off] = -1
        return _relabel_keep_noise(lab)

    def _merge_compatible(self, xyz, sigma, t, lab, rates=None, group=None):
        """Join clusters whose centres agree within their errors and whose times overlap or touch (and,
        given ``rates``, whose measured rates are within ``max_rate_ratio`` of each other; given ``group``,
        that are in one link component)."""
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
        if rates is not None:
            lr = _log_rates(lab, rates, len(c))
            keep &= ~(np.abs(lr[a] - lr[b]) > np.log(self.max_rate_ratio))  # NaN (unquantified) never refuses
        if group is not None:
            lg = _label_groups(lab, group, len(c))
            keep &= lg[a] == lg[b]
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

    def _attach(self, pts, xyz, sigma, t, asset, labels, ambiguous, leak_asset=None, rates=None,
                gate_rates=None, group=None) -> None:
        """Give each point in ``pts`` the compatible leak it most likely belongs to (in place).

        Compatible: centre within ``attach_sigmas`` combined sigmas and time within the gap. A point
        that names an asset may only join leaks of that asset. With several candidates the Gaussian
        likelihood times the leak's size decides, and the point is marked ambiguous when asked to.
        With ``gate_rates``, a quantified point never joins a leak whose rate differs by more than
        ``max_rate_ratio``. With ``group`` (precise points' link components), only leaks of the point's own.
        """
        c, se = _centres(xyz, sigma, labels)
        valid = np.flatnonzero(np.isfinite(c).all(axis=1))
        if len(valid) == 0:
            return
        tmin, tmax = _time_bounds(labels, t, len(c))
        counts = np.bincount(labels[labels >= 0], minlength=len(c))
        log_rate = _log_rates(labels, rates, len(c)) if rates is not None else None
        gate_lr = _log_rates(labels, gate_rates, len(c)) if gate_rates is not None else None
        lg = _label_groups(labels, group, len(c)) if group is not None else None
        tree = cKDTree(c[valid])
        k_max = max(self.attach_sigmas, self.asset_attach_sigmas)
        r = k_max * np.sqrt(sigma[pts] ** 2 + float(np.nanmax(se[valid])) ** 2)
        for i, near in zip(pts, tree.query_ball_point(xyz[pts], r), strict=True):
            cand = valid[near]
            if len(cand) == 0:
                continue
            cand = cand[(tmin[cand] - self.time_gap_days <= t[i]) & (t[i] <= tmax[cand] + self.time_gap_days)]
            if lg is not None:
                cand = cand[lg[cand] == group[i]]
            k = self.attach_sigmas
            if asset is not None and asset[i] is not None and leak_asset is not None:
                cand = cand[[asset[i] in leak_asset.get(int(j), ()) for j in cand]] if len(cand) else cand
                # the detection and the leak name the same site: only a far outlier is refused
                k = self.asset_attach_sigmas
            if gate_lr is not None and len(cand) and np.isfinite(gate_rates[i]) and gate_rates[i] > 0:
                cand = cand[~(np.abs(np.log(gate_rates[i]) - gate_lr[cand]) > np.log(self.max_rate_ratio))]
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

    def _attach_streams(self, pts, xyz, sigma, t, asset, stream, labels, ambiguous, leak_asset, lr, lr_sd,
                        watched=None, cal=None) -> None:
        """Site-level detections that name an asset, handled per stream (one asset, one sensor) (in place).

        Each stream is cut at its significant silences and, where its measured rates are two sources,
        into those two (``_stream_segments``); a segment is one source's run as that sensor saw it.
        Largest segments first, a segment joins the leak of its asset that was seen during the segment
        (give or take the silence the segment itself would tolerate) at a compatible rate, and never one
        that already holds a segment it was split from by rate (those are different sources). With no such
        leak it becomes a leak of its own; with several, each detection goes to the leak active at its
        time (nearest in time), then the likeliest (as ``_attach``), unless the segment has rates and one
        leak's measured rate explains all of it clearly better than that sharing-out does.
        """
        have = labels >= 0
        c, se = _centres(xyz, sigma, labels)
        m0 = len(c)
        segs = _stream_segments(pts, asset, stream, t, lr, lr_sd, self.silence_p, self.time_gap_days, watched, xyz)
        # per leak, with room for one new leak per segment: activity span (every member) decides,
        # detection by detection, which leak was active; evidence span (precise sightings, or the founding
        # segment) decides which segment joins which leak
        room = m0 + len(segs)

        def grown(a: np.ndarray, fill: float) -> np.ndarray:
            return np.r_[a.astype(float), np.full(room - len(a), fill)]

        lo, hi = (grown(b, np.nan) for b in _time_bounds(labels, t, m0))
        ev_lo, ev_hi = lo.copy(), hi.copy()
        counts = grown(np.bincount(labels[have], minlength=m0), 0.0)
        mu, var = (grown(b, np.nan) for b in _log_rate_stats(labels, lr, lr_sd, m0))
        m = m0
        by_asset: dict = {}
        for j, names in leak_asset.items():
            if j < m0 and np.isfinite(c[j]).all():
                for a in names:
                    by_asset.setdefault(a, []).append(j)
        k = self.asset_attach_sigmas
        slack2 = self.rate_slack_log**2
        log_p = float(np.log(self.silence_p))
        families: dict[int, set] = {}  # leak -> families of the segments that joined it
        # largest first; ties by first report time, then asset and sensor, so row order does not matter
        order = sorted(segs, key=lambda s: (-len(s[0]), float(t[s[0]].min()), str(asset[s[0][0]]),
                                            str(stream[s[0][0]]), float(np.nansum(lr[s[0]]))))
        for idx, w0, w1, fam in order:
            a = asset[idx[0]]
            seg_mu, seg_var = _log_rate_stats(np.zeros(len(idx), dtype=np.int64), lr[idx], lr_sd[idx], 1)
            seg_cal2 = float(np.nanmax(cal[idx]) ** 2) if cal is not None and np.isfinite(cal[idx]).any() else 0.0
            cand = []
            for j in by_asset.get(a, ()):
                if ev_lo[j] > w1 or ev_hi[j] < w0 or fam in families.get(j, ()):
                    continue  # not seen at the time, or already holds a source this one was split from
                if j >= m0:
                    # a leak built from the site's own streams: another sensor reporting the same site at the same
                    # time is the same leak, whatever its scale (monitors' calibrations differ by factors of 5,
                    # Stanford 2022); only position, or co-active rates within one stream, separate sources
                    cand.append(j)
                    continue
                if np.isfinite(seg_mu[0]) and np.isfinite(mu[j]):
                    # a 1 kg/h monitor run is not the 500 kg/h plume a satellite saw there
                    # both rates calibrated by their instruments' measured bias; a monitor's calibration is
                    # uncertain by its platform's spread between units (``rate_bias_log_sd``)
                    zr = abs(seg_mu[0] - mu[j]) / np.sqrt(seg_var[0] + var[j] + slack2 + seg_cal2)
                    if zr > self.attach_sigmas:
                        continue
                cand.append(j)
            if not cand:
                j, m = m, m + 1
                labels[idx] = j
                lo[j] = ev_lo[j] = float(t[idx].min())
                hi[j] = ev_hi[j] = float(t[idx].max())
                counts[j] = float(len(idx))
                mu[j], var[j] = float(seg_mu[0]), float(seg_var[0])
                by_asset.setdefault(a, []).append(j)
                leak_asset.setdefault(j, set()).add(a)
                families[j] = {fam}
                continue
            cand = np.asarray(cand)
            # precise leaks have a centre to be compatible with; a leak built from the site's own
            # streams has none (naming the same asset is the whole evidence)
            precise = cand < m0
            z = np.zeros((len(idx), len(cand)))
            if precise.any():
                cp = cand[precise]
                d = np.linalg.norm(xyz[idx][:, None, :] - c[cp][None, :, :], axis=2)
                z[:, precise] = d / np.sqrt(sigma[idx][:, None] ** 2 + se[cp][None, :] ** 2)
            ok = z <= k
            ti = t[idx][:, None]
            d_out = np.maximum(np.maximum(lo[cand][None, :] - ti, ti - hi[cand][None, :]), 0.0)
            d_out = np.where(ok, d_out, np.inf)
            tied = ok & (d_out <= d_out.min(axis=1)[:, None])
            like = np.exp(-0.5 * z**2) * counts[cand][None, :]
            cmu = mu[cand]
            has = np.isfinite(lr[idx])
            if has.any():
                # a monitor reading tonnes belongs to the leak emitting tonnes (log-rate agreement)
                fac = np.where(
                    np.isfinite(cmu)[None, :], np.exp(-0.5 * (lr[idx][:, None] - np.nan_to_num(cmu)[None, :]) ** 2), 0.3
                )
                like = np.where(has[:, None], like * fac, like)
            col = np.argmax(np.where(tied, like, -1.0), axis=1)
            pick = cand[col]
            if has.sum() >= 6 and len(cand) > 1 and len(np.unique(pick[tied.any(axis=1)])) > 1:
                # shared out by date between leaks of the pad; but the rates could have split this segment
                # and did not. Keep it whole with the one leak whose measured rate explains it best when that
                # is clearly likelier than the shared-out version (by half the split threshold; Gaussian in
                # log rate, with both measurement errors and the sensors' scale slack). When the leaks' rates
                # cannot tell (alike, or unmeasured), the dates decide, as for a stream without rates
                v = lr_sd[idx][:, None] ** 2 + np.nan_to_num(var[cand], nan=0.0)[None, :] + slack2 + seg_cal2
                fit = -0.5 * z**2 - 0.5 * np.where(
                    np.isfinite(cmu)[None, :], (lr[idx][:, None] - np.nan_to_num(cmu)[None, :]) ** 2 / v, 1.0
                )  # a leak with no measured rate: the mean penalty of one that agrees (chi-square, 1 df)
                fit = np.where(has[:, None], fit, -0.5 * z**2)
                fit = np.where(ok, fit, -0.5 * k**2)
                whole = int(np.argmax(fit.sum(axis=0)))
                if fit[:, whole].sum() - fit[np.arange(len(idx)), col].sum() > -log_p / 2:
                    tied = ok & (np.arange(len(cand)) == whole)[None, :]
                    pick = cand[np.argmax(np.where(tied, like, -1.0), axis=1)]
            got = tied.any(axis=1)
            labels[idx[got]] = pick[got]
            if len(cand) > 1:
                ambiguous[idx[got]] = tied[got].sum(axis=1) > 1
            for j in np.unique(pick[got]):
                families.setdefault(int(j), set()).add(fam)
                mine = idx[got][pick[got] == j]
                lo[j] = min(lo[j], float(t[mine].min()))
                hi[j] = max(hi[j], float(t[mine].max()))
                counts[j] += len(mine)

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


def _label_groups(lab: np.ndarray, group: np.ndarray, m: int) -> np.ndarray:
    """The link component of each label's members (all one: leaks never span two), -1 for none."""
    out = np.full(m, -1, dtype=np.int64)
    ok = lab >= 0
    out[lab[ok]] = group[ok]
    return out


def _calibrated(X: pd.DataFrame, lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log rates divided by each instrument's measured quantification bias (``rate_bias`` of
    ``config/instruments.yaml``: a continuous monitor reads about 0.18 of the metered rate), and that
    calibration's log-sd for one unit (``rate_bias_log_sd``; 0 where none is given)."""
    from ..ingest.instruments import instrument_defaults

    n = len(X)
    if n == 0 or not np.isfinite(lr).any():
        return lr, np.zeros(n)
    names = X["source_name"].astype(str) if "source_name" in X else pd.Series([""] * n, index=X.index)
    types = X["source_type"].astype(str) if "source_type" in X else pd.Series([""] * n, index=X.index)
    bias = instrument_defaults(names, types, "rate_bias").to_numpy(float)
    cal = instrument_defaults(names, types, "rate_bias_log_sd").to_numpy(float)
    bias = np.where(np.isfinite(bias) & (bias > 0), bias, 1.0)
    return lr - np.log(bias), np.where(np.isfinite(cal), cal, 0.0)


def _watched_windows(coverage: pd.DataFrame | None) -> dict | None:
    """{(asset_id, source_name): (start days, end days)} of the windows each site sensor watched (it reported
    something, or that it saw nothing); offline windows left out."""
    if coverage is None or len(coverage) == 0:
        return None
    c = coverage[coverage["state"].isin(["watching", "detected"])]
    if c.empty:
        return None
    s, e = _days(c["start_at"]), _days(c["end_at"])
    out: dict = {}
    for key, idx in c.groupby([c["asset_id"].astype(str), c["source_name"].astype(str)], sort=False).indices.items():
        out[key] = (s[idx], e[idx])
    return out


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
