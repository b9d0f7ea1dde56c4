"""Site streams: a site sensor's alarms at one asset, cut at improbable silences and split where its
measured rates are two sources (one after the other, one inside the other's life, or both all along)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ..watch import watched_axis as _watched_axis


def _stream_names(X: pd.DataFrame) -> np.ndarray:
    """Which sensor each detection comes from (its feed name, else its type)."""
    for col in ("source_name", "source_type"):
        if col in X:
            return X[col].astype(str).to_numpy()
    return np.full(len(X), "", dtype=object)


def _silence_cuts(t: np.ndarray, log_p: float) -> list[int]:
    """Where to cut a sorted stream of sighting times: around quiet stretches its own cadence makes improbable.

    Sightings are taken as a Poisson process whose rate may drop in one stretch: between sightings i and j
    (i < j) the rate is m/L (m sightings strictly inside, over its length L), elsewhere the rest over the rest of
    the span. The stretch with the largest likelihood gain over one constant rate is tested: the gain, less
    the log of the number of stretches looked at (n(n-1)/2), must exceed -log_p. With nothing inside (m = 0)
    this is the longest silence tested against the others' cadence (before issue 14 the only case: its
    chance ((T-g)/T)**(n-2), times n-1); with a few sightings inside (a monitor's false alarms while the
    source was gone, 0.02-0.13 a day for the Stanford 2022 vendors) the silence is still found. The stream is
    cut at both ends of the stretch (its few inner sightings are a piece of their own) and the pieces tested
    again. Returns the indices where new pieces start."""
    cuts: set[int] = set()
    todo = [(0, len(t))]
    while todo:
        a, b = todo.pop()
        n = b - a
        if n < 3:
            continue
        x = np.asarray(t[a:b], float)
        span = float(x[-1] - x[0])
        if span <= 0:
            continue
        i, j = np.triu_indices(n, 1)
        length = x[j] - x[i]
        inner = (j - i - 1).astype(float)
        rest_l, rest_m = span - length, n - inner
        with np.errstate(divide="ignore", invalid="ignore"):
            f_in = np.where(inner > 0, inner * np.log(inner / np.where(length > 0, length, 1.0)), 0.0)
            f_out = np.where(rest_l > 0, rest_m * np.log(rest_m / np.where(rest_l > 0, rest_l, 1.0)), np.inf)
            gain = f_in + f_out - n * np.log(n / span)
            quieter = inner / np.where(length > 0, length, 1.0) < rest_m / np.where(rest_l > 0, rest_l, 1.0)
            gain = np.where((length > 0) & (rest_l > 0) & quieter, gain, -np.inf)
        k = int(np.argmax(gain))
        if not np.isfinite(gain[k]) or gain[k] - np.log(n * (n - 1) / 2) <= -log_p:
            continue
        lo, hi = a + int(i[k]) + 1, a + int(j[k])
        cuts.update({lo, hi})
        todo += [(a, lo), (lo, hi), (hi, b)] if hi > lo else [(a, lo), (hi, b)]
    return sorted(c for c in cuts if 0 < c < len(t))


def _silence_margin(n: int, span: float, log_p: float, cap: float) -> float:
    """The longest silence next to a segment of n reports over ``span`` days that the cut test would accept."""
    if n < 2 or span <= 0:
        return cap
    return float(min(cap, span * np.expm1((-log_p + np.log(n)) / (n - 1))))


def _burst_cuts(t: np.ndarray, log_p: float, clock=None) -> list[int]:
    """Where to cut a sorted stream of report times (days) at silences its own cadence makes improbable.

    Real monitors alarm in bursts: many reports in a day of emission, none at night or between episodes.
    Reports are first grouped by calendar day (a day with reports is one sighting, however many reports
    it holds), and the silences between those days are measured on the stream's watched clock (``clock``,
    from its coverage windows: offline or uncovered time is not silence; without coverage, calendar time).
    ``_silence_cuts`` then tests the day sightings. Returns the report indices where new pieces start."""
    if len(t) < 3:
        return []
    day = np.floor(t)
    first = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    last = np.r_[first[1:], len(t)] - 1
    w = t if clock is None else clock(t)
    gaps = np.maximum(w[first[1:]] - w[last[:-1]], 0.0)
    points = np.r_[0.0, np.cumsum(gaps)]  # one point per day with reports, separated by the watched silences
    return [int(first[k]) for k in _silence_cuts(points, log_p)]


def _stream_segments(
    pts, asset, stream, t, lr, lr_sd, p: float, cap: float, watched: dict | None = None, xyz: np.ndarray | None = None
) -> list[tuple[np.ndarray, float, float, int]]:
    """Cut each (asset, sensor) stream of ``pts`` into single-source segments: [(indices, window start, end,
    family)], where segments split from one piece by their rates share a family (they are different sources).

    First at significant silences (``_burst_cuts``: days with reports, silences counted while the sensor
    watched, from ``watched`` = {(asset, sensor): (window starts, window ends)} in days when its coverage is
    known), then each piece by its measured rates where they are two co-active sources (``_rate_split``).
    A segment's window is its time span widened by the silence it would itself tolerate, but never past the
    middle of the silence that cut it from its neighbour.

    A stream that gives the same point for every report (``xyz``: the site's registry point, or a vendor's
    one fixed location) does not localise: each of its readings is the site's total, and readings that
    alternate between rates are that total changing, never two co-active sources, so it is not split by rate.
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
        win = (watched or {}).get((asset[members[0]], stream[members[0]]))
        clock = _watched_axis(*win) if win is not None and len(win[0]) else None
        bounds = [0, *_burst_cuts(tt, log_p, clock), len(members)]
        for u, v in zip(bounds[:-1], bounds[1:], strict=True):
            lim0 = -np.inf if u == 0 else 0.5 * (float(tt[u - 1]) + float(tt[u]))
            lim1 = np.inf if v == len(members) else 0.5 * (float(tt[v - 1]) + float(tt[v]))
            piece = members[u:v]
            family = len(out)
            localises = xyz is None or float(np.ptp(xyz[piece], axis=0).max()) > 0.5
            for seg in (_rate_split(piece, t, lr, lr_sd, log_p) if localises else [piece]):
                first, last = float(t[seg].min()), float(t[seg].max())
                n_days = len(np.unique(np.floor(t[seg])))
                margin = _silence_margin(n_days, last - first, log_p, cap)
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
    if fits is None:
        return [idx]
    # the one-source model a split must beat: a rate that drifts, or one that changes between episodes
    # (a level for each run of reports, changes found by binary segmentation, each worth its own test)
    one = max(_one_source_ll(y, w, t[idx][rated]), _sequential_ll(y, w, -log_p / 2))
    if fits[1][0] - one <= -log_p:
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


# error scales tried around the stated spreads: up to 10x, as real monitors' episode-to-episode readings of one
# source spread far beyond what each reading states (Stanford 2022: stated ±2 sigma of 20 %, readings over 3
# orders of magnitude); like for like for the two-source model, so two tight groups far apart still split
_SCALE = np.exp(np.linspace(np.log(0.5), np.log(10.0), 31))[:, None]


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


MAX_CHANGES = 8  # level changes the sequential one-source model may use in one segment


def _sequential_ll(y: np.ndarray, w: np.ndarray, penalty: float) -> float:
    """Log-likelihood (as ``_em_phases``) of ONE source whose rate changes from episode to episode: time-sorted
    ``y`` as runs of constant level, the changes found by binary segmentation (``_best_change``), each kept
    only when it gains more than ``penalty`` in log-likelihood, at most ``MAX_CHANGES``.

    A site-level stream whose readings step 5 → 50 → 500 kg/h is one source changing its rate as far as the
    stream can tell; only readings of two rates *interleaved* in time (co-active sources) beat this model."""
    bounds = [0, len(y)]
    for _ in range(MAX_CHANGES):
        best = (0.0, -1, -1)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b - a < 2:
                continue
            k, gain = _best_change(y[a:b], w[a:b])
            if 0.5 * gain > best[0]:
                best = (0.5 * gain, a, a + k)
        if best[0] <= penalty:
            break
        bounds = sorted({*bounds, best[2]})
    ll = 0.0
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        m = float(np.sum(w[a:b] * y[a:b]) / np.sum(w[a:b]))
        ll -= 0.5 * float(np.sum(w[a:b] * (y[a:b] - m) ** 2))
    return ll


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
