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
* Site sensors (fence-line monitors, SCADA) report the site, not the component, so two sources on
  one pad are told apart by when and how much, not where: each sensor's stream at an asset is cut
  at silences its own cadence makes improbable and split where its measured log rates are two
  sources (one after the other, one inside the other's life, or both all along), and each segment
  joins the leak seen at that site during it at a compatible rate.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.special import gammaln

# Bumped whenever the grouping logic changes with the same settings: a store fused by another version is
# re-fused in full, never mixed with incremental results of this one (pipeline._stale_fusion).
FUSION_VERSION = 4

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
                self._attach(mid, xyz, sigma, t_days, None, labels, None, gate_rates=rates)
            rest = mid[labels[mid] < 0]
            if len(rest):
                base = int(labels.max()) + 1 if (labels >= 0).any() else 0
                rest_rates = rates[rest] if rates is not None else None  # plumes are gated among themselves too
                labels[rest] = base + self._cluster(xyz[rest], sigma[rest], t_days[rest], rest_rates)
            labels = self._merge_compatible(xyz, sigma, t_days, labels, rates)
        if len(coarse):
            leak_asset = self._leak_assets(xyz, sigma, labels, asset, assets)
            precise_labels = labels.copy()
            named = coarse[pd.notna(asset[coarse])]
            if len(named):
                lr, lr_sd = _log_rate_and_sd(X, rates)
                stream = _stream_names(X)
                self._attach_streams(named, xyz, sigma, t_days, asset, stream, labels, ambiguous, leak_asset, lr, lr_sd)
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
    def _cluster(self, xyz: np.ndarray, sigma: np.ndarray, t: np.ndarray, rates: np.ndarray | None = None
                 ) -> np.ndarray:
        """HDBSCAN, split in time, drop members inconsistent with their cluster, regroup the rest.

        With ``rates`` (the mid tier), a quantified member whose rate differs from the mean log-rate of its
        cluster's other quantified members by more than ``max_rate_ratio`` is dropped too, and the
        merge, attach and regrouping steps refuse pairs that far apart in rate.
        """
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
        if rates is not None and (lab >= 0).any():
            lab = self._drop_off_rate(lab, rates)
        lab = self._merge_compatible(xyz, sigma, t, lab, rates)
        noise = np.flatnonzero(lab < 0)
        if len(noise) and (lab >= 0).any():
            self._attach(noise, xyz, sigma, t, None, lab, None, gate_rates=rates)
        rest = np.flatnonzero(lab < 0)
        if len(rest):
            base = int(lab.max()) + 1 if (lab >= 0).any() else 0
            lab[rest] = base + _compatible_components(
                xyz[rest], sigma[rest], t[rest], self.attach_sigmas, self.time_gap_days,
                rates[rest] if rates is not None else None, np.log(self.max_rate_ratio),
            )
        return lab

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

    def _merge_compatible(self, xyz, sigma, t, lab, rates=None):
        """Join clusters whose centres agree within their errors and whose times overlap or touch (and,
        given ``rates``, whose measured rates are within ``max_rate_ratio`` of each other)."""
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
                gate_rates=None) -> None:
        """Give each point in ``pts`` the compatible leak it most likely belongs to (in place).

        Compatible: centre within ``attach_sigmas`` combined sigmas and time within the gap. A point
        that names an asset may only join leaks of that asset. With several candidates the Gaussian
        likelihood times the leak's size decides, and the point is marked ambiguous when asked to.
        With ``gate_rates``, a quantified point never joins a leak whose rate differs by more than
        ``max_rate_ratio``.
        """
        c, se = _centres(xyz, sigma, labels)
        valid = np.flatnonzero(np.isfinite(c).all(axis=1))
        if len(valid) == 0:
            return
        tmin, tmax = _time_bounds(labels, t, len(c))
        counts = np.bincount(labels[labels >= 0], minlength=len(c))
        log_rate = _log_rates(labels, rates, len(c)) if rates is not None else None
        gate_lr = _log_rates(labels, gate_rates, len(c)) if gate_rates is not None else None
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

    def _attach_streams(self, pts, xyz, sigma, t, asset, stream, labels, ambiguous, leak_asset, lr, lr_sd) -> None:
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
        segs = _stream_segments(pts, asset, stream, t, lr, lr_sd, self.silence_p, self.time_gap_days)
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
            cand = []
            for j in by_asset.get(a, ()):
                if ev_lo[j] > w1 or ev_hi[j] < w0 or fam in families.get(j, ()):
                    continue  # not seen at the time, or already holds a source this one was split from
                if np.isfinite(seg_mu[0]) and np.isfinite(mu[j]):
                    # a 1 kg/h monitor run is not the 500 kg/h plume a satellite saw there
                    zr = abs(seg_mu[0] - mu[j]) / np.sqrt(seg_var[0] + var[j] + slack2)
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
                v = lr_sd[idx][:, None] ** 2 + np.nan_to_num(var[cand], nan=0.0)[None, :] + slack2
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


def _stream_names(X: pd.DataFrame) -> np.ndarray:
    """Which sensor each detection comes from (its feed name, else its type)."""
    for col in ("source_name", "source_type"):
        if col in X:
            return X[col].astype(str).to_numpy()
    return np.full(len(X), "", dtype=object)


def _silence_cuts(t: np.ndarray, log_p: float) -> list[int]:
    """Where to cut a sorted stream of times: at silences its own cadence makes improbable.

    Gaps between a stream's reports are taken as exponential with an unknown rate. The longest gap g
    of n reports spanning T is tested against the other n-2 gaps (total T-g): the chance that one gap
    is at least g is ((T-g)/T)**(n-2) (the exponential's predictive with the rate unknown, which is
    wary of short streams), times n-1 for having looked at every gap. Below ``exp(log_p)`` the stream is
    cut there and both sides are tested again.
    """
    cuts: list[int] = []
    todo = [(0, len(t))]
    while todo:
        a, b = todo.pop()
        n = b - a
        if n < 3:
            continue
        gaps = np.diff(t[a:b])
        i = int(np.argmax(gaps))
        g, span = float(gaps[i]), float(t[b - 1] - t[a])
        if span <= 0 or g >= span:
            continue
        if (n - 2) * np.log((span - g) / span) + np.log(n - 1) < log_p:
            cuts.append(a + i + 1)
            todo += [(a, a + i + 1), (a + i + 1, b)]
    return sorted(cuts)


def _silence_margin(n: int, span: float, log_p: float, cap: float) -> float:
    """The longest silence next to a segment of n reports over ``span`` days that the cut test would accept."""
    if n < 2 or span <= 0:
        return cap
    return float(min(cap, span * np.expm1((-log_p + np.log(n)) / (n - 1))))


def _stream_segments(
    pts, asset, stream, t, lr, lr_sd, p: float, cap: float
) -> list[tuple[np.ndarray, float, float, int]]:
    """Cut each (asset, sensor) stream of ``pts`` into single-source segments: [(indices, window start, end,
    family)], where segments split from one piece by their rates share a family (they are different sources).

    First at significant silences (``_silence_cuts``), then each piece by its measured rates where they
    are two sources (``_rate_split``). A segment's window is its time span widened by the silence it
    would itself tolerate, but never past the middle of the silence that cut it from its neighbour.
    """
    key = pd.factorize(pd.Series(list(zip(asset[pts], stream[pts], strict=True)), dtype=object))[0]
    srt = np.lexsort((np.nan_to_num(lr[pts], nan=np.inf), t[pts], key))  # reports at one time: by rate
    order, sk = pts[srt], key[srt]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    ends = np.r_[starts[1:], len(order)]
    log_p = float(np.log(p))
    out: list[tuple[np.ndarray, float, float]] = []
    for a, b in zip(starts, ends, strict=True):
        members = order[a:b]
        tt = t[members]
        bounds = [0, *_silence_cuts(tt, log_p), len(members)]
        for u, v in zip(bounds[:-1], bounds[1:], strict=True):
            lim0 = -np.inf if u == 0 else 0.5 * (float(tt[u - 1]) + float(tt[u]))
            lim1 = np.inf if v == len(members) else 0.5 * (float(tt[v - 1]) + float(tt[v]))
            piece = members[u:v]
            family = len(out)
            for seg in _rate_split(piece, t, lr, lr_sd, log_p):
                first, last = float(t[seg].min()), float(t[seg].max())
                margin = _silence_margin(len(seg), last - first, log_p, cap)
                out.append((seg, max(first - margin, lim0), min(last + margin, lim1), family))
    return out


def _rate_split(idx: np.ndarray, t: np.ndarray, lr: np.ndarray, lr_sd: np.ndarray, log_p: float,
                depth: int = 2) -> list[np.ndarray]:
    """One stream segment's detections (sorted in time) as one source or two, by their measured log rates.

    A sensor's log-rate errors are Gaussian with a known spread (from ``rate_uncertainty_kg_h``), so a
    single source gives one Gaussian. Two sources give a two-component mixture whose components need
    not both be active all along: ``_two_sources`` fits phases (first one source, then both, then one)
    with the spreads fixed, which covers a second source starting or stopping inside the first's life,
    one source replacing another, and two all along. Split only when the two-source model is far
    likelier (log-likelihood gain above -``log_p``) than one source whose rate drifts by up to a factor
    3 over the segment (``_one_source_ll``); when it still is with errors heavier-tailed or wider than
    stated, for both models alike (``_heavy_tailed_ll``); and when, by its own posteriors, splitting is
    expected to put fewer pairs of detections in the wrong grouping than keeping them together. Each
    part is tested again (``depth`` times), for a third source, and parts that turn out to be one
    source together are rejoined. Detections without a rate go with the source active at their time
    (where both are, the likelier by the mixture weight).
    """
    y, s = lr[idx], lr_sd[idx]
    rated = np.isfinite(y) & np.isfinite(s) & (s > 0)
    if rated.sum() < 6:
        return [idx]
    y, w = y[rated], 1.0 / s[rated] ** 2
    n = len(y)
    if _split_evidence(y, w) <= -log_p / 2:
        return [idx]
    fits = _two_sources(y, w)
    if fits is None or fits[1][0] - _one_source_ll(y, w, t[idx][rated]) <= -log_p:
        return [idx]
    plain, fit = fits
    if fit[0] - plain[0] <= -log_p / 2:
        fit = plain  # two sources, but their times tell nothing beyond their rates: both all along
    if _heavy_tailed_ll(y, w, fit) - _heavy_tailed_ll(y, w) <= -log_p:
        return [idx]  # with errors wider or heavier-tailed than stated, one source would do
    r = _phase_posterior(y, w, fit)
    up = r > 0.5
    if up.all() or not up.any():
        return [idx]
    # expected pairs in the wrong grouping: kept together, every pair from different sources; split,
    # pairs from different sources within a part plus pairs of one source across the parts
    q = 1.0 - r

    def within(sel):
        return r[sel].sum() * q[sel].sum() - np.sum(r[sel] * q[sel])

    keep = within(np.ones(n, dtype=bool))
    split = within(up) + within(~up) + r[up].sum() * r[~up].sum() + q[up].sum() * q[~up].sum()
    if split >= keep:
        return [idx]
    upper = np.zeros(len(idx), dtype=bool)
    upper[np.flatnonzero(rated)[up]] = True
    if not rated.all():
        # unrated detections go with the source active at their time: phase boundaries half-way
        # between the rated detections on either side
        _, _, _, _, c1, c2, x, y_last = fit
        tr = t[idx][rated]
        b1 = -np.inf if c1 == 0 else (np.inf if c1 == n else 0.5 * (tr[c1 - 1] + tr[c1]))
        b2 = -np.inf if c2 == 0 else (np.inf if c2 == n else 0.5 * (tr[c2 - 1] + tr[c2]))
        tu = t[idx][~rated]
        upper[~rated] = np.where(tu < b1, x == 1, np.where(tu >= b2, y_last == 1, fit[3] > 0.5))
    parts = [idx[~upper], idx[upper]]
    if depth <= 0:
        return parts
    # a first cut through the middle of a third source leaves that source on both sides, each side then
    # split again: rejoin any two leaves that are one source together
    leaves = [p for part in parts for p in _rate_split(part, t, lr, lr_sd, log_p, depth - 1)]
    while len(leaves) > 2:
        for i, j in itertools.combinations(range(len(leaves)), 2):
            both = np.concatenate([leaves[i], leaves[j]])
            both = both[np.argsort(t[both], kind="stable")]
            if len(_rate_split(both, t, lr, lr_sd, log_p, 0)) == 1:
                leaves[i] = both
                del leaves[j]
                break
        else:
            break  # no two leaves are one source
    return leaves


_NU = (1.0, 2.0, 3.0, 5.0, 8.0, 15.0, 30.0, 1000.0)
_SCALE = np.exp(np.linspace(np.log(0.5), np.log(3.0), 25))[:, None]


def _heavy_tailed_ll(y: np.ndarray, w: np.ndarray, fit: tuple | None = None) -> float:
    """Log-likelihood (same constant as ``_em_phases``) with Student-t errors around the stated spreads,
    their scale (0.5-3x) and tail (1-1000 degrees of freedom) fitted on a grid: of one source (at the
    median) or, given a ``_two_sources`` fit, of its two sources with the fit's means, phases and weight.

    Comparing the two lets a split stand only if it holds when the errors may be wider or heavier-tailed
    than stated, like for like (a wide Cauchy explains three sources far apart better than a two-Gaussian
    fit does, but not better than a two-source fit with the same Cauchy errors).
    """
    z = ((y - float(np.median(y))) if fit is None else (y - np.array([[fit[1]], [fit[2]]]))) * np.sqrt(w)
    best = -np.inf
    for nu in _NU:
        const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) + 0.5 * np.log(2 * np.pi)
        if fit is None:
            ll = (const - np.log(_SCALE) - (nu + 1) / 2 * np.log1p((z / _SCALE) ** 2 / nu)).sum(axis=1)
        else:
            _, _, _, pi, c1, c2, x, yl = fit
            l0, l1 = (const - np.log(_SCALE) - (nu + 1) / 2 * np.log1p((z[k] / _SCALE) ** 2 / nu) for k in (0, 1))
            both = np.logaddexp(np.log1p(-pi) + l0[:, c1:c2], np.log(pi) + l1[:, c1:c2]).sum(axis=1)
            ll = (l1 if x else l0)[:, :c1].sum(axis=1) + both + (l1 if yl else l0)[:, c2:].sum(axis=1)
        best = max(best, float(ll.max()))
    return best


MAX_DRIFT = np.log(3.0)  # how far one source's log rate may drift over a segment (a factor 3)


def _one_source_ll(y: np.ndarray, w: np.ndarray, t: np.ndarray) -> float:
    """Log-likelihood (without the constant, as ``_em_phases``) of one source whose log rate may drift
    linearly in time ``t`` by up to a factor 3 over the segment: weighted least squares, the slope
    clipped. A source whose rate creeps from 5 to 10 kg/h over months is one source, not two phases;
    a rate that climbs 2, 20, 200, 2000 kg/h is not a drift."""
    tc = t - float(np.sum(w * t) / np.sum(w))
    mean = float(np.sum(w * y) / np.sum(w))
    stt, span = float(np.sum(w * tc * tc)), float(t.max() - t.min())
    slope = float(np.sum(w * tc * (y - mean))) / stt if stt > 0 and span > 0 else 0.0
    if span > 0:
        slope = float(np.clip(slope, -MAX_DRIFT / span, MAX_DRIFT / span))
    return -0.5 * float(np.sum(w * (y - mean - slope * tc) ** 2))


def _split_evidence(y: np.ndarray, w: np.ndarray, grid: int = 32) -> float:
    """A quick look for a second source in time-sorted log rates, in log-likelihood units: the largest of
    the spread beyond measurement error (half the chi-square excess), the gain of one change in mean
    (exact, by cumulative sums), and the gain of a shifted window (on a grid of ``grid`` cut points).

    ``_rate_split`` fits the two-source models only when this reaches half its threshold. On 5,373
    fence-line segments of 20 simulated basins, 5% pass at the default ``silence_p``, and every one of
    the 40 segments the full test splits has at least twice that (the smallest, 14.4).
    """
    n = len(y)
    sw = float(np.sum(w))
    dev = y - float(np.sum(w * y)) / sw
    chi2 = float(np.sum(w * dev**2))
    cw, cd = np.cumsum(w), np.cumsum(w * dev)
    one_change = _best_change(y, w)[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.unique(np.linspace(0, n, grid + 1).round().astype(int))
        d_s = np.r_[0.0, cd][g][None, :] - np.r_[0.0, cd][g][:, None]
        d_w = np.r_[0.0, cw][g][None, :] - np.r_[0.0, cw][g][:, None]
        window = np.max(np.where(d_w > 0, d_s**2 / np.where(d_w > 0, d_w, 1.0), 0.0))
    return 0.5 * max(chi2 - (n - 1), one_change, float(window))


def _best_change(y: np.ndarray, w: np.ndarray) -> tuple[int, float]:
    """The one change in mean that most reduces the weighted squared deviations of time-sorted ``y``:
    (how many values come before it, the reduction). Exact, by cumulative sums; (0, 0.0) under two values."""
    if len(y) < 2:
        return 0, 0.0
    sw = float(np.sum(w))
    cw, cd = np.cumsum(w)[:-1], np.cumsum(w * (y - float(np.sum(w * y)) / sw))[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.nan_to_num(cd**2 * sw / (cw * (sw - cw)))
    k = int(np.argmax(gain))
    return k + 1, float(gain[k])


def _two_sources(y: np.ndarray, w: np.ndarray, iters: int = 300) -> tuple[tuple, tuple] | None:
    """Two-source fits of time-sorted log rates ``y`` (precisions ``w``): (plain, phased), each
    (log-likelihood, m0, m1, pi, c1, c2, x, y_last).

    In a fit, the detections before index c1 are all from source x (0: mean m0, 1: mean m1), those from
    c2 on all from source y_last, and those in between from either (the upper with probability pi). The
    plain fit has both sources all along (c1 = 0, c2 = n): a two-component mixture by EM. The phased fit
    alternates EM for (m0, m1, pi) with the phases fixed and an exact search over the phases (x, y_last,
    c1 <= c2) with the means fixed (``_best_phases``), started from the plain fit and from the best
    single change in the mean; it is never worse than the plain one. None when the data cannot hold
    two sources.
    """
    n = len(y)
    ys = np.sort(y)
    lo, hi = float(ys[n // 5]), float(ys[(4 * n) // 5])
    if hi <= lo:  # readings quantised to a few values: start from the extremes instead
        lo, hi = float(ys[0]), float(ys[-1])
        if hi <= lo:
            return None
    plain = _em_phases(y, w, (lo, hi, 0.5, 0, n, 0, 1), False, iters)
    if plain is None:
        return None
    starts = [plain[1:]]
    c, _ = _best_change(y, w)
    m_left, m_right = float(np.average(y[:c], weights=w[:c])), float(np.average(y[c:], weights=w[c:]))
    if m_left != m_right:
        x = int(m_left > m_right)
        starts.append((min(m_left, m_right), max(m_left, m_right), 0.5, c, c, x, 1 - x))
    phased = plain
    for start in starts:
        fit = _em_phases(y, w, start, True, iters)
        if fit is not None and fit[0] > phased[0]:
            phased = fit
    return plain, phased


def _em_phases(y: np.ndarray, w: np.ndarray, start: tuple, phased: bool, iters: int) -> tuple | None:
    """EM from ``start`` (m0, m1, pi, c1, c2, x, y_last); with ``phased``, the phases are re-searched
    after each step. The fit as ``_two_sources`` gives it, or None if one source takes everything.
    Log-likelihoods leave out the constant sum(log(w / 2 pi)) / 2, the same for every model of ``y``."""
    n = len(y)
    wy = w * y
    sw, swy = float(w.sum()), float(wy.sum())
    m0, m1, pi, c1, c2, x, yl = start
    ll = -np.inf
    r = np.empty(n)
    for _ in range(iters):
        _phase_posterior(y, w, (ll, m0, m1, pi, c1, c2, x, yl), out=r)
        mass = float(r.sum())
        if mass < 1e-6 or n - mass < 1e-6:
            return None  # one source took everything
        s1, s1y = float(r @ w), float(r @ wy)
        s0 = sw - s1
        if s0 <= 0 or s1 <= 0:
            return None
        m0, m1 = (swy - s1y) / s0, s1y / s1
        if c2 > c1:
            pi = min(max(float(r[c1:c2].mean()), 1e-6), 1.0 - 1e-6)
        l0, l1 = -0.5 * w * (y - m0) ** 2, -0.5 * w * (y - m1) ** 2
        lm = np.logaddexp(np.log1p(-pi) + l0, np.log(pi) + l1)
        new = _best_phases(l0, l1, lm) if phased else (float(lm.sum()), 0, n, 0, 1)
        done = new[0] - ll < 1e-3
        ll, c1, c2, x, yl = new
        if done:
            break
    return (ll, m0, m1, pi, c1, c2, x, yl)


def _best_phases(l0: np.ndarray, l1: np.ndarray, lm: np.ndarray) -> tuple[float, int, int, int, int]:
    """The phases (x, y_last, c1 <= c2) that maximise sum(l_x[:c1]) + sum(lm[c1:c2]) + sum(l_y[c2:]).

    ``l0``, ``l1``: each detection's log-likelihood under source 0 or 1 alone; ``lm``: under the mixture.
    Exact in O(n): for each c2 the best c1 is the running maximum of the prefix term.
    """
    n = len(l0)
    cum = np.zeros((2, n + 1))
    np.cumsum(l0, out=cum[0, 1:])
    np.cumsum(l1, out=cum[1, 1:])
    cm = np.r_[0.0, np.cumsum(lm)]
    head = cum - cm  # [x, c1]
    run = np.maximum.accumulate(head, axis=1)
    total = cm + (cum[:, -1:] - cum)[None, :, :] + run[:, None, :]  # [x, y_last, c2]
    x, yl, c2 = np.unravel_index(int(np.argmax(total)), total.shape)
    return float(total[x, yl, c2]), int(np.argmax(head[x, : c2 + 1])), int(c2), int(x), int(yl)


def _phase_posterior(y: np.ndarray, w: np.ndarray, fit: tuple, out: np.ndarray | None = None) -> np.ndarray:
    """P(upper source) of each detection under a ``_two_sources`` fit (into ``out`` when given)."""
    _, m0, m1, pi, c1, c2, x, yl = fit
    r = np.empty(len(y)) if out is None else out
    r[:c1] = x
    r[c2:] = yl
    if c2 > c1:
        e = np.log1p(-pi) - np.log(pi) + 0.5 * w[c1:c2] * ((y[c1:c2] - m1) ** 2 - (y[c1:c2] - m0) ** 2)
        r[c1:c2] = 1.0 / (1.0 + np.exp(np.clip(e, -700, 700)))
    return r


def _log_rate_and_sd(X: pd.DataFrame, rates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's log rate and its 1-sigma in log space (from the rate's stated uncertainty).

    A lognormal error with coefficient of variation cv has log-space sigma sqrt(log(1 + cv²)); where no
    uncertainty is stated, 0.5 (a factor of 1.6) is assumed. No rate is taken as better than 1 %
    (sigma 0.01): a stated 0.0001 kg/h on 100 kg/h would otherwise outweigh every other reading.
    """
    n = len(X)
    if rates is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        lr = np.where(np.isfinite(rates) & (rates > 0), np.log(np.where(rates > 0, rates, 1.0)), np.nan)
        unc = X["rate_uncertainty_kg_h"].to_numpy(float) if "rate_uncertainty_kg_h" in X else np.full(n, np.nan)
        cv = unc / rates
        sd = np.where(np.isfinite(cv) & (cv > 0), np.maximum(np.sqrt(np.log1p(cv**2)), 0.01), 0.5)
    return lr, np.where(np.isfinite(lr), sd, np.nan)


def _log_rate_stats(lab, lr, lr_sd, m) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance mean log rate of each label and that mean's variance (NaN where none is rated)."""
    ok = (lab >= 0) & np.isfinite(lr) & np.isfinite(lr_sd) & (lr_sd > 0)
    w = 1.0 / lr_sd[ok] ** 2
    sw = np.bincount(lab[ok], w, minlength=m)
    sy = np.bincount(lab[ok], w * lr[ok], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sw > 0, sy / sw, np.nan), np.where(sw > 0, 1.0 / sw, np.nan)


def _compatible_components(xyz, sigma, t, k, gap_days, rates=None, max_log_ratio=np.inf) -> np.ndarray:
    """Connected components of 'within k combined sigmas and within the time gap' (for leftovers); given
    ``rates``, pairs both quantified and more than ``max_log_ratio`` apart in log-rate are not linked."""
    n = len(xyz)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tree = cKDTree(xyz)
    pairs = tree.query_pairs(k * np.sqrt(2.0) * float(sigma.max()), output_type="ndarray")
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        d = np.linalg.norm(xyz[a] - xyz[b], axis=1)
        keep = (d <= k * np.sqrt(sigma[a] ** 2 + sigma[b] ** 2)) & (np.abs(t[a] - t[b]) <= gap_days)
        if rates is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                lr = np.log(np.where(rates > 0, rates, np.nan))
            keep &= ~(np.abs(lr[a] - lr[b]) > max_log_ratio)  # NaN (unquantified) never refuses
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


# --------------------------------------------------------------------------------------------- incremental


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
    3. **Context.** The region is fused together with *every* precise detection of the store (1-sigma ≤
       ``precise_sigma_m``; a few % of a basin, HDBSCAN on them takes a fraction of a second). Precise
       leaks are built from precise detections alone, so they come out exactly as in a full fusion, and
       HDBSCAN's choice of clusters, which depends on the whole tree and not only on a neighbourhood,
       is no approximation.
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

    Attributes (after ``fit``)
    --------------------------
    region_ : bool array, the detections re-fused (all when ``full_``); only these need writing.
    labels_ : int array, the leak (0..len(leaks_)-1) of each region detection, -1 outside.
    ambiguous_ : bool array for every detection: new flags in the region, the stored ones outside.
    leaks_ : DataFrame, one row per region leak (as ``LeakFuser.leaks_``).
    full_ : whether everything was fused; ``reason_`` why (or how the region was settled).
    n_new_ : detections without a leak; ``rounds_`` : fits made.
    """

    def __init__(self, fuser: LeakFuser | None = None, max_share: float = 0.5, max_rounds: int = 8, full: bool = False):
        self.fuser = fuser
        self.max_share = max_share
        self.max_rounds = max_rounds
        self.full = full

    def fit(self, X: pd.DataFrame, assets: pd.DataFrame | None = None) -> IncrementalFuser:
        import copy

        fuser = copy.copy(self.fuser) if self.fuser is not None else LeakFuser()
        n = len(X)
        old = X["leak_id"].astype(object).where(X["leak_id"].notna(), None) if "leak_id" in X else pd.Series([None] * n)
        new = old.isna().to_numpy()
        stored_amb = X["ambiguous"].fillna(False).astype(bool).to_numpy() if "ambiguous" in X else np.zeros(n, bool)
        self.n_new_ = int(new.sum())
        self.rounds_ = 0
        if self.full or (n and new.all()):
            return self._fit_all(fuser, X, assets, "asked for" if self.full else "no previous fusion")
        if not new.any():
            empty = summarize(X.iloc[0:0], np.zeros(0, np.int64), np.zeros(0, bool))
            self._set(np.zeros(n, bool), np.full(n, -1, np.int64), stored_amb, empty)
            self.full_, self.reason_ = False, "nothing new"
            return self
        g = _StoreGeometry(X, old, fuser, assets)
        limit = self.max_share * n

        def too_large(r: np.ndarray) -> IncrementalFuser | None:
            # checked as the region grows, so a region bound to exceed the share stops early
            if r.sum() <= limit:
                return None
            why = f"affected area {r.sum():,} of {n:,} detections (> {self.max_share:.0%})"
            return self._fit_all(fuser, X, assets, why)

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
            rows = np.flatnonzero(region | g.precise)
            f = fuser.fit(X.iloc[rows], assets)
            self.rounds_ = rounds
            more = g.closure(region | g.reach_new(rows, region[rows], f.labels_), limit)
            if more.sum() == region.sum():
                break
            region = more
        else:
            return self._fit_all(fuser, X, assets, f"affected area not settled after {self.max_rounds} fits")
        in_r = region[rows]
        uniq, lab = np.unique(f.labels_[in_r], return_inverse=True)
        labels = np.full(n, -1, dtype=np.int64)
        labels[region] = lab
        amb = stored_amb.copy()
        amb[region] = f.ambiguous_[in_r]
        self._set(region, labels, amb, f.leaks_.iloc[uniq].reset_index(drop=True))
        self.full_, self.reason_ = False, f"{region.sum():,} of {n:,} detections re-fused"
        return self

    def _fit_all(self, fuser: LeakFuser, X: pd.DataFrame, assets, reason: str) -> IncrementalFuser:
        f = fuser.fit(X, assets)
        self.rounds_ += 1
        self._set(np.ones(len(X), bool), f.labels_, f.ambiguous_, f.leaks_)
        self.full_, self.reason_ = True, reason
        return self

    def _set(self, region, labels, ambiguous, leaks) -> None:
        self.region_, self.labels_, self.ambiguous_, self.leaks_ = region, labels, ambiguous, leaks


class _StoreGeometry:
    """Positions, tiers, assets and stored leaks of a fused store, for growing an incremental fusion's region."""

    def __init__(self, X: pd.DataFrame, old: pd.Series, fuser: LeakFuser, assets: pd.DataFrame | None):
        self.f = fuser
        self.n = len(X)
        self.xyz = to_ecef(X["latitude"].to_numpy(float), X["longitude"].to_numpy(float))
        self.sigma = np.maximum(X["location_uncertainty_m"].to_numpy(float), 1.0)
        self.precise = self.sigma <= fuser.precise_sigma_m
        self.t = _days(X["observed_at"])
        self.gap = fuser.time_gap_days
        a = X["asset_id"] if "asset_id" in X else pd.Series([None] * self.n)
        self.named = a.notna().to_numpy()
        self.asset_code, asset_names = pd.factorize(
            a.astype(object).where(a.notna(), None).map(lambda v: None if v is None else str(v))
        )
        self.asset_pos = {name: i for i, name in enumerate(asset_names)}
        self.leak_code, _ = pd.factorize(old)
        self.k = max(fuser.attach_sigmas, fuser.asset_attach_sigmas)
        self._band_cache: dict = {}
        self._stored_leak_assets = None
        self.loose = ~self.precise & ~self.named  # unnamed coarse: they attach and group by position
        self.assets = None
        if assets is not None and len(assets):
            self.assets = (
                to_ecef(assets["latitude"].to_numpy(float), assets["longitude"].to_numpy(float)),
                assets["asset_id"].astype(str).to_numpy(),
            )
            self.asset_tree = cKDTree(self.assets[0])

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
        if kind not in cache:
            rows = np.flatnonzero((self.precise | self.loose) if kind == "positioned" else self.loose)
            decade = np.floor(np.log10(self.sigma[rows])).astype(np.int64)
            cache[kind] = [
                (r, cKDTree(self.xyz[r]), float(self.sigma[r].max()))
                for r in (rows[decade == b] for b in np.unique(decade))
            ]
        return cache[kind]

    def _within(self, centres, spread, t0, t1, kind: str, allowed: np.ndarray) -> np.ndarray:
        """Rows of ``kind`` (see ``_bands``) with ``allowed`` set, within k·√(σ² + spread²) of a centre and
        seen within the time gap of [t0, t1]."""
        hits = []
        if len(centres) == 0:
            return np.zeros(0, dtype=np.int64)
        for rows, tree, smax in self._bands(kind):
            res = tree.query_ball_point(centres, self.k * np.hypot(spread, smax), return_sorted=False)
            lens = np.fromiter(map(len, res), dtype=np.int64, count=len(res))
            if lens.sum() == 0:
                continue
            ci = np.repeat(np.arange(len(centres)), lens)
            j = rows[np.concatenate([np.asarray(r, dtype=np.int64) for r in res if len(r)])]
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
            if self._stored_leak_assets is None:  # the stored leaks' assets: computed once
                rows = np.flatnonzero(self.precise & (self.leak_code >= 0))
                self._stored_leak_assets = self._leak_asset_pairs(rows, self.leak_code[rows])
            rows, inv, pair_leak, pair_code = self._stored_leak_assets
        else:
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
