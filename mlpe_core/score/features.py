"""Features: one row per leak of what its detections say (sensors, counts, recency, silence, repair clock),
the inputs of every scoring model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import betaln

from ..frames import isin
from ..schema import SOURCE_TYPES
from ..watch import watched_axis
from .rates import DETECTION_SLOPE, estimate_rates, p_detect, sensor_default, visit_posterior

FEATURES: list[str] = [
    "n_detections",
    "n_sources",
    "n_source_types",
    *[f"n_{t}" for t in SOURCE_TYPES],
    *[f"sensors_{t}" for t in SOURCE_TYPES],
    "mean_confidence",
    "max_confidence",
    "days_since_last",
    "span_days",
    "n_days_seen",
    "n_quantified",
    "log_rate",
    "rate_rel_unc",
    "radius_m",
    "ambiguous_share",
    "missed_looks",
    "log_p_silence",
    "log_p_silence_before",
    "confidence_evidence",
    "log_lr_isolated",
    "log_p_unrepaired",
]


# Persistence: how a sensor's silence since it last saw a leak is counted in looks.
# "revisit": a sensor that keeps looking (an imager on its orbit, a site monitor or SCADA system): looks are
#   the days elapsed divided by the feed's revisit (the lower quartile of the gaps between days it reported
#   anything), up to the last day the feed reported. "campaign": an aircraft flies an area for a few days:
#   looks are the days it reported anything within CAMPAIGN_CELL_DEG of the leak. None: OGI crews report only
#   what they find and do not come back, so their silence says nothing.
LOOK_MODE: dict[str, str | None] = {"satellite": "revisit", "aerial": "campaign", "continuous_monitor": "revisit",
                                    "scada": "revisit", "ogi": None}


CAMPAIGN_CELL_DEG = 0.02


LOOK_PRIOR_STRENGTH = 2.0  # pseudo-looks behind the prior of a leak's per-look sighting probability


SENSOR_OUTAGE = 0.05  # P(a sensor misses a still-emitting leak for reasons outside the model: outage, data gap)


# A leak an OGI (LDAR) survey found is under a repair clock: OOOOb requires the first repair attempt within
# 30 days of the survey (40 CFR 60.5397b(h); the same 30 days as OOOOa and most state LDAR rules). With no
# repair record in the store, the repair time is taken as uniform over that window, and a share of found
# leaks is still emitting after it (repair delayed, attempt failed, re-leak): ``REPAIR_MISS``.
REPAIR_CLOCK_DAYS = 30.0


REPAIR_MISS = 0.1


CONFIDENCE_MAX_N = 10  # repeats of one leak are correlated: at most this many count as independent


_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")

PERSISTENCE_DAYS = 180.0  # mean remaining life of a leak that nothing has contradicted (prior survival)


LARGE_EVENT_KG_H, LARGE_EVENT_DAYS = (100.0, 1000.0), 30.0  # large emissions are short events (persistence_days)


def _cell_keys(lat: np.ndarray, lon: np.ndarray, cell: float) -> np.ndarray:
    """Integer key of the look cell of each point."""
    iy = np.floor((np.asarray(lat, float) + 90.0) / cell).astype(np.int64)
    ix = np.floor((np.asarray(lon, float) + 180.0) / cell).astype(np.int64)
    return iy * 1_000_000 + ix


def _fit_sensor(hits: np.ndarray, looks: np.ndarray, rate: np.ndarray, limit: float,
                slope: float = DETECTION_SLOPE) -> tuple[float, float]:
    """Look efficiency c and detection limit L of one sensor from the leaks it saw on ≥ 2 days.

    Maximum likelihood of ``hits`` re-sightings in ``looks`` looks with P(sighting) = c·p_detect(rate, L),
    on a grid (L from limit/100 to limit×10). The feed measures itself: no field outcome is used.
    """
    Ls = limit * 10.0 ** np.linspace(-2, 1, 31)
    cs = np.linspace(0.02, 1.0, 50)
    pdet = p_detect(rate[None, :], Ls[:, None], slope)  # (L, pair)
    miss = looks - hits
    ll = np.empty((len(cs), len(Ls)))
    for a in range(0, len(cs), 5):  # a few c at a time: the same sums, in far less memory
        q = np.clip(cs[a:a + 5, None, None] * pdet[None], 1e-6, 1 - 1e-6)  # (c, L, pair)
        ll[a:a + 5] = (hits * np.log(q) + miss * np.log1p(-q)).sum(axis=-1)
    i, j = np.unravel_index(int(np.argmax(ll)), ll.shape)
    return float(cs[i]), float(Ls[j])


def fits_cover(dets: pd.DataFrame, fits: dict | None) -> bool:
    """Whether ``fits`` (recorded sensor fits, {sensor: (c, L)}) names every sensor of ``dets``: then nothing needs
    fitting, and a scoring of some leaks needs only their rows and the sensors' clocks (:func:`leak_features`)."""
    return fits is not None and set(map(str, dets["source_name"].unique())) <= set(fits)


def look_stats(dets: pd.DataFrame, centres: pd.DataFrame, log_rate: pd.Series, as_of: pd.Timestamp,
               coverage: pd.DataFrame | None = None, fits: dict | None = None,
               only: set[str] | None = None, visit_post: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per leak: how often its sensors looked since it was last seen, and how likely that silence is if it
    still emits.

    For each (leak, sensor) pair: n = days the sensor saw the leak, A = looks from its first to its last
    sighting, k_b = looks from its last sighting to the leak's last sighting (by any sensor) and k = looks
    since the leak's last sighting (see ``LOOK_MODE``). Silence before the leak's last sighting is no evidence
    that it stopped (another sensor saw it emit after); it is evidence that this sensor's detections were
    false (``log_p_silence_before``), and only the silence since (``log_p_silence``) weighs emitting against
    stopped. With ``coverage`` (the sensors' watched windows at the
    leak's site), looks are counted only while the sensor watched: a monitor's offline or unreported time and
    the weeks an aircraft did not fly are not silence. The per-look sighting probability q has a Beta prior
    of strength ``LOOK_PRIOR_STRENGTH`` centred on c·p_detect(rate, L), where the sensor's look efficiency c
    (clouds, wind, alert caps) and detection limit L are fitted to how often it re-saw the leaks it saw at
    least twice (:func:`_fit_sensor`; the instrument table's limit, slope and look efficiency when it saw
    fewer than 5), and the leak's own history (n − 1 sightings in A − 1 looks) updates it. P(k silent looks |
    emitting) is the beta-binomial E[(1 − q)^k], floored by a sensor outage probability ``SENSOR_OUTAGE``.
    Returns ``n_days_seen``, ``missed_looks`` (expected sightings missed since the leak's last sighting),
    ``log_p_silence`` (Σ over sensors of ln P(silence since the leak's last sighting | still emitting)) and
    ``log_p_silence_before`` (Σ ln P(each sensor's silence before it | real)). With ``visit_post`` (the posterior
    of ln rate per leak, :func:`rates.visit_posterior`) also ``log_silence_rate``: how much the same silence
    lowers the rate a visit finds if the leak still emits (:func:`_silence_rate`).

    ``fits`` ({sensor: (c, L)}, as a scoring stored them: ``attrs["sensor_fits"]`` of the result, one entry per
    sensor with the c and L it used, fitted or from the table): those sensors are not fitted again. With
    ``fits`` naming every sensor, ``only`` (leak ids) gives the rows of those leaks alone, and ``log_rate`` need
    hold only theirs; a sensor's feed-wide clock (its revisit, when it began and stopped, an aircraft's flown
    cells and days) is still read from every detection in ``dets``.
    """
    cols = ["n_days_seen", "missed_looks", "log_p_silence", "log_p_silence_before", "log_lr_isolated"]
    leaks = pd.Index(dets["leak_id"].unique())
    if dets.empty:
        return pd.DataFrame(columns=cols, index=leaks, dtype=float)
    day = np.floor((pd.to_datetime(dets["observed_at"], utc=True) - _EPOCH).dt.total_seconds().to_numpy() / 86400.0)
    day = day.astype(np.int64)
    asof_day = int(math.floor((pd.Timestamp(as_of) - _EPOCH).total_seconds() / 86400.0))
    tday = (pd.to_datetime(dets["observed_at"], utc=True) - _EPOCH).dt.total_seconds().to_numpy() / 86400.0
    asof_t = (pd.Timestamp(as_of) - _EPOCH).total_seconds() / 86400.0
    # (the columns' own arrays: a text column through NumPy objects and back cost ~0.4 s at 1M rows)
    d = pd.DataFrame({"leak_id": dets["leak_id"].array, "source_name": dets["source_name"].astype(str).array,
                      "source_type": dets["source_type"].array, "day": day, "t": tday,
                      "asset_id": dets["asset_id"].array if "asset_id" in dets else None})
    if only is not None and fits_cover(d, fits):
        ds = d[isin(d["leak_id"], only)]
        leaks = pd.Index(ds["leak_id"].unique())
    else:
        ds = d
    seen = ds.groupby("leak_id")["day"].nunique()
    pairs = ds.groupby(["leak_id", "source_name"], sort=False).agg(
        source_type=("source_type", "first"), n=("day", "nunique"), first=("day", "min"), last=("day", "max"),
        first_t=("t", "min"), last_t=("t", "max")).reset_index()
    # the leak's last sighting by any sensor: it was emitting then, whatever each sensor saw before
    leak_last = pairs.groupby("leak_id")["last"].transform("max").to_numpy(float)
    leak_last_t = ds.groupby("leak_id")["t"].max().reindex(pairs["leak_id"]).to_numpy(float)
    cen = centres.reindex(pairs["leak_id"])
    lat, lon = cen["latitude"].to_numpy(float), cen["longitude"].to_numpy(float)
    n = pairs["n"].to_numpy(float)
    first, last = pairs["first"].to_numpy(float), pairs["last"].to_numpy(float)
    A = n.copy()
    k = np.zeros(len(pairs))  # looks since the leak's last sighting (by any sensor)
    k_b = np.zeros(len(pairs))  # looks between this sensor's last sighting and the leak's
    k_pre = np.zeros(len(pairs))  # looks before the first sighting, since the feed began
    pre_days = np.zeros(len(pairs))
    informative = np.zeros(len(pairs), bool)
    nan = np.full(len(dets), np.nan)
    lat_d = dets["latitude"].to_numpy(float) if "latitude" in dets else nan
    lon_d = dets["longitude"].to_numpy(float) if "longitude" in dets else nan
    name_code, name_list = pd.factorize(d["source_name"])
    code_of = dict(zip(name_list.tolist(), range(len(name_list)), strict=True))
    cov = _coverage_by_sensor(coverage)
    sites_of = _pair_sites(ds, cov) if cov else {}
    for name, idx in pairs.groupby("source_name", sort=False).groups.items():
        idx = np.asarray(idx)
        mode = LOOK_MODE.get(pairs["source_type"].iloc[idx[0]])
        mine = name_code == code_of[name]
        windows = cov.get(name)
        active = np.unique(day[mine]) if windows is None else np.union1d(day[mine], windows[2])
        if mode is None or len(active) < 2:
            continue
        if mode == "revisit":
            gaps = np.diff(active)
            revisit = max(1.0, float(np.quantile(gaps, 0.25)))
            end = min(asof_day, int(active[-1] + gaps.max()))  # a feed silent longer than ever before has stopped
            A[idx] = (last[idx] - first[idx]) / revisit + 1
            k_b[idx] = np.maximum(np.minimum(leak_last[idx], end) - last[idx], 0) / revisit
            k[idx] = np.maximum(end - leak_last[idx], 0) / revisit
            k_pre[idx] = np.maximum(first[idx] - active[0], 0) / revisit
            if windows is not None:  # looks only while it watched the leak's site
                for i in idx:
                    clock = _site_clock(windows, sites_of.get((pairs["leak_id"].iloc[i], name)))
                    if clock is None:
                        continue
                    w_first, w_own, w_last, w_now = clock(np.array([pairs["first_t"].iloc[i], pairs["last_t"].iloc[i],
                                                                    leak_last_t[i], asof_t]))
                    A[i] = (w_own - w_first) / revisit + 1
                    k_b[i] = max(w_last - w_own, 0.0) / revisit
                    k[i] = max(w_now - w_last, 0.0) / revisit
        else:
            where = mine & np.isfinite(lat_d) & np.isfinite(lon_d)
            idx = idx[np.isfinite(lat[idx]) & np.isfinite(lon[idx])]
            if not where.any() or len(idx) == 0:
                continue
            act = _cell_keys(lat_d[where], lon_d[where], CAMPAIGN_CELL_DEG) * 100_000 + day[where]
            key = _cell_keys(lat[idx], lon[idx], CAMPAIGN_CELL_DEG) * 100_000
            if windows is not None:  # days it flew over the leak's site and saw nothing count as looks too
                extra = [key[j] + np.floor(w).astype(np.int64) for j, i in enumerate(idx)
                         if (w := _site_days(windows, sites_of.get((pairs["leak_id"].iloc[i], name)))) is not None]
                act = np.concatenate([act, *extra]) if extra else act
            act = np.unique(act)
            at_own = np.searchsorted(act, key + last[idx], "right")
            at_last = np.searchsorted(act, key + leak_last[idx], "right")
            A[idx] = at_own - np.searchsorted(act, key + first[idx], "left")
            k_b[idx] = at_last - at_own
            k[idx] = np.searchsorted(act, key + asof_day, "right") - at_last
            k_pre[idx] = np.searchsorted(act, key + first[idx], "left") - np.searchsorted(act, key, "left")
        pre_days[idx] = np.maximum(first[idx] - active[0], 0)
        informative[idx] = True
    A = np.maximum(A, n)
    limit = sensor_default(pairs["source_name"], pairs["source_type"], "detection_limit_kg_h")
    limit = np.where(np.isfinite(limit), limit, 1.0)
    slope = sensor_default(pairs["source_name"], pairs["source_type"], "detection_slope")
    slope = np.where(np.isfinite(slope), slope, DETECTION_SLOPE)
    eff = sensor_default(pairs["source_name"], pairs["source_type"], "look_efficiency")
    eff = np.where(np.isfinite(eff), eff, 0.5)
    rate = np.exp(log_rate.reindex(pairs["leak_id"]).fillna(0.0).to_numpy(float))
    m = np.zeros(len(pairs))
    c_pair, lim_pair, slope_pair = np.zeros(len(pairs)), np.ones(len(pairs)), np.full(len(pairs), DETECTION_SLOPE)
    used: dict[str, tuple[float, float]] = {}
    for name, idx in pairs.groupby("source_name", sort=False).groups.items():
        idx = np.asarray(idx)
        rep = idx[informative[idx] & (n[idx] >= 2)]
        c, lim, k_ = float(eff[idx[0]]), float(limit[idx[0]]), float(slope[idx[0]])
        if fits is not None and name in fits:
            c, lim = (float(v) for v in fits[name])
        elif len(rep) >= 5:
            c, lim = _fit_sensor(n[rep] - 1, A[rep] - 1, rate[rep], lim, k_)
        used[str(name)] = (c, lim)
        m[idx] = c * p_detect(rate[idx], lim, k_)
        c_pair[idx], lim_pair[idx], slope_pair[idx] = c, lim, k_
    m = np.clip(m, 1e-3, 1 - 1e-3)
    a = LOOK_PRIOR_STRENGTH * m + (n - 1)
    b = LOOK_PRIOR_STRENGTH * (1 - m) + np.maximum(A - n, 0)
    # the silence before the leak's last sighting (another sensor saw it emit after) and the silence since, each
    # beta-binomial given what came before it, each floored by an outage
    p0_b = np.where(informative & (k_b > 0), np.exp(betaln(a, b + k_b) - betaln(a, b)), 1.0)
    p0 = np.where(informative & (k > 0), np.exp(betaln(a, b + k_b + k) - betaln(a, b + k_b)), 1.0)
    logp = np.log(SENSOR_OUTAGE + (1 - SENSOR_OUTAGE) * p0)
    logp_b = np.log(SENSOR_OUTAGE + (1 - SENSOR_OUTAGE) * p0_b)
    missed = np.where(informative, k * a / (a + b + k_b), 0.0)
    # an imager's one-off: would a real source of this size have been seen before? Its age is exponential
    # with the mean life of its size (persistence_days), looks come at k_pre / pre_days a day, each seeing it
    # with probability m; a false plume is a one-off whatever the looks. Likelihood ratio real : false.
    n_leak = ds.groupby("leak_id").size().reindex(pairs["leak_id"]).to_numpy()
    lone = informative & (n_leak == 1) & pairs["source_type"].isin(["satellite", "aerial"]).to_numpy()
    inv_tau = 1.0 / persistence_days(rate)
    lam = -np.log1p(-m) * k_pre / np.maximum(pre_days, 1.0)
    e = np.exp(-pre_days * (inv_tau + lam))
    lr = inv_tau / (inv_tau + lam) * (1 - e) + e
    log_lr = np.where(lone, np.log(np.maximum(lr, 1e-12)), 0.0)
    out = pd.DataFrame({"leak_id": pairs["leak_id"], "missed_looks": missed, "log_p_silence": logp,
                        "log_p_silence_before": logp_b, "log_lr_isolated": log_lr})
    out = out.groupby("leak_id")[["missed_looks", "log_p_silence", "log_p_silence_before", "log_lr_isolated"]].sum()
    out["n_days_seen"] = seen
    out = out.reindex(leaks)[cols]
    if visit_post is not None:
        silent = informative & (k > 0)
        looks = (c_pair, lim_pair, slope_pair, n, A, k_b, k)
        out["log_silence_rate"] = _silence_rate(pairs["leak_id"], silent, looks, visit_post).reindex(leaks).fillna(0.0)
    out.attrs["sensor_fits"] = used
    return out


_Z, _WZ = np.polynomial.hermite_e.hermegauss(15)  # nodes and weights of a standard normal
_WZ = _WZ / _WZ.sum()


def _silence_rate(leak_id: pd.Series, silent: np.ndarray, looks: tuple, post: pd.DataFrame) -> pd.Series:
    """Per leak: ln(E[rate | still emitting, its sensors' silence since its last sighting] / E[rate | emitting]).

    Why: the silence since the last sighting already lowers P(still emitting) (``log_p_silence``), computed at
    the rate estimate. But a leak that still emits and was not seen again on k looks is more likely one of the
    smaller rates its posterior allows, the ones the sensors miss: by Bayes, the posterior of its rate given
    emitting is the visit posterior (``post``: mean and variance of ln rate, :func:`rates.visit_posterior`)
    times the same silence likelihood evaluated at each rate: per sensor the beta-binomial P(k silent looks |
    rate) with the per-look sighting probability centred on c·p_detect(rate, L) and updated by the leak's own
    sightings, floored by an outage, exactly as ``log_p_silence`` at the estimate. Integrated on 15
    Gauss-Hermite nodes of the posterior. A leak seen recently, or whose silence a smaller rate does not
    explain better (far above every sensor's limit: only an outage or a stop explains it), keeps its rate.
    ``looks`` = per (leak, sensor) pair (c, L, slope, n, A, k_b, k) as in :func:`look_stats`."""
    sel = np.flatnonzero(silent)
    if len(sel) == 0:
        return pd.Series(dtype=float)
    c, lim, slope, n, A, k_b, k = (np.asarray(v, float)[sel, None] for v in looks)
    ids = leak_id.to_numpy()[sel]
    pm = post.reindex(ids)
    mu, sd = pm["mu"].to_numpy(float), np.sqrt(np.maximum(pm["var"].to_numpy(float), 0.0))
    ok = np.isfinite(mu) & np.isfinite(sd)
    mu, sd = np.where(ok, mu, 0.0), np.where(ok, sd, 0.0)
    m = np.clip(c * p_detect(np.exp(mu[:, None] + sd[:, None] * _Z[None, :]), lim, slope), 1e-3, 1 - 1e-3)
    a = LOOK_PRIOR_STRENGTH * m + (n - 1)
    b = LOOK_PRIOR_STRENGTH * (1 - m) + np.maximum(A - n, 0)
    p0 = np.exp(betaln(a, b + k_b + k) - betaln(a, b + k_b))
    ll = pd.DataFrame(np.log(SENSOR_OUTAGE + (1 - SENSOR_OUTAGE) * p0)).groupby(ids, sort=False).sum()
    first = pd.Series(np.arange(len(ids)), index=ids).groupby(level=0, sort=False).first().reindex(ll.index)
    sd = sd[first.to_numpy()]
    lv = ll.to_numpy()
    w = _WZ[None, :] * np.exp(lv - lv.max(axis=1, keepdims=True))
    shift = np.log((w * np.exp(sd[:, None] * _Z[None, :])).sum(axis=1) / w.sum(axis=1)) - 0.5 * sd**2
    return pd.Series(np.minimum(np.where(np.isfinite(shift), shift, 0.0), 0.0), index=ll.index)


def _coverage_by_sensor(coverage: pd.DataFrame | None) -> dict:
    """{sensor: (asset ids, watched windows [start, end] in days, days it reported anything)} from the
    coverage windows in which it watched (``detected`` and ``watching``; offline windows left out)."""
    if coverage is None or len(coverage) == 0:
        return {}
    c = coverage[coverage["state"].isin(["detected", "watching"])]
    out = {}
    for name, g in c.groupby(c["source_name"].astype(str), sort=False):
        s = (pd.to_datetime(g["start_at"], utc=True) - _EPOCH).dt.total_seconds().to_numpy() / 86400.0
        e = (pd.to_datetime(g["end_at"], utc=True) - _EPOCH).dt.total_seconds().to_numpy() / 86400.0
        out[name] = (g["asset_id"].astype(str).to_numpy(), np.column_stack([s, e]), np.unique(np.floor(s)).astype(int))
    return out


def _pair_sites(d: pd.DataFrame, names) -> dict[tuple[str, str], set[str]]:
    """{(leak, sensor): the sites its detections name}, for the sensors in ``names``: one pass over the rows, not
    one per pair (a pass per pair made re-scoring one visited leak scan every detection ~300 times)."""
    sub = d.loc[d["source_name"].isin(list(names)) & d["asset_id"].notna(), ["leak_id", "source_name", "asset_id"]]
    out: dict[tuple[str, str], set[str]] = {}
    for leak, name, site in sub.astype({"asset_id": str}).drop_duplicates().itertuples(index=False):
        out.setdefault((leak, name), set()).add(site)
    return out


def _pair_windows(windows: tuple, sites: set[str] | None) -> np.ndarray | None:
    """The watched windows of a sensor at ``sites`` (those its detections of one leak name; None: none)."""
    if not sites:
        return None
    sel = np.isin(windows[0], list(sites))
    return windows[1][sel] if sel.any() else None


def _site_clock(windows: tuple, sites: set[str] | None):
    """Watched-time clock (days) of one sensor at one leak's sites, or None without coverage there."""
    w = _pair_windows(windows, sites)
    return None if w is None else watched_axis(w[:, 0], w[:, 1])


def _site_days(windows: tuple, sites: set[str] | None) -> np.ndarray | None:
    w = _pair_windows(windows, sites)
    return None if w is None else np.unique(np.floor(w[:, 0]))


def confidence_evidence(dets: pd.DataFrame, feeds: pd.DataFrame | None = None) -> pd.Series:
    """Per leak: how much more (or less) confident its sensors were than usual, in log-odds.

    Each detection's confidence is compared with the mean confidence of its own feed (logit difference):
    a feed's false alarms tend to carry lower confidence than its true detections, whatever its scale.
    The leak's value is the mean difference times the number of detections with a confidence, capped at
    ``CONFIDENCE_MAX_N`` because repeats of one leak are not independent.
    """
    if "confidence" not in dets:
        return pd.Series(0.0, index=pd.Index(dets["leak_id"].unique()))
    c = dets["confidence"].astype(float).clip(0.01, 0.99)
    ok = c.notna()
    if not ok.any():
        return pd.Series(0.0, index=pd.Index(dets["leak_id"].unique()))
    lc = np.log(c / (1 - c))
    if feeds is not None and feeds is not dets:  # each feed's usual confidence from all of ``feeds``
        fc = feeds["confidence"].astype(float).clip(0.01, 0.99)
        feed = fc[fc.notna()].groupby(feeds.loc[fc.notna(), "source_name"]).mean()
    else:
        feed = c[ok].groupby(dets.loc[ok, "source_name"]).mean()
    ref = dets["source_name"].map(feed).astype(float)
    rel = (lc - np.log(ref / (1 - ref)))[ok]
    g = rel.groupby(dets.loc[ok, "leak_id"])
    return (g.mean() * np.minimum(g.size(), CONFIDENCE_MAX_N)).reindex(pd.Index(dets["leak_id"].unique())).fillna(0.0)


def p_unrepaired(days: np.ndarray) -> np.ndarray:
    """P(a leak an OGI survey found ``days`` ago is not repaired yet): uniform repair over the regulatory
    window ``REPAIR_CLOCK_DAYS``, with a share ``REPAIR_MISS`` never repaired in it."""
    d = np.maximum(np.asarray(days, float), 0.0)
    return REPAIR_MISS + (1 - REPAIR_MISS) * np.clip(1 - d / REPAIR_CLOCK_DAYS, 0.0, 1.0)


def repair_clock(dets: pd.DataFrame, last: pd.Series, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per leak: ``log_p_unrepaired`` = ln P(still unrepaired at ``as_of`` | unrepaired when last seen) under
    the repair clock an OGI survey find starts (:func:`p_unrepaired`, from the leak's last OGI detection; 0
    without one: other sensors start no repair), and ``days_since_ogi`` (NaN without one).

    Seen again by any sensor after the OGI find, the leak was not repaired by then: only the part of the
    clock after the last sighting counts."""
    leaks = pd.Index(dets["leak_id"].unique())
    out = pd.DataFrame({"log_p_unrepaired": 0.0, "days_since_ogi": np.nan}, index=leaks)
    ogi = dets["source_type"].astype(str).eq("ogi").to_numpy()
    if not ogi.any():
        return out
    t = pd.to_datetime(dets.loc[ogi, "observed_at"], utc=True).groupby(dets.loc[ogi, "leak_id"]).max()
    seen = (last.reindex(t.index) - t).dt.total_seconds().to_numpy() / 86400.0
    now = np.maximum((pd.Timestamp(as_of) - t).dt.total_seconds().to_numpy() / 86400.0, seen)
    out.loc[t.index, "log_p_unrepaired"] = np.minimum(np.log(p_unrepaired(now)) - np.log(p_unrepaired(seen)), 0.0)
    out.loc[t.index, "days_since_ogi"] = now
    return out


def persistence_days(rate: np.ndarray, small_days: float = PERSISTENCE_DAYS) -> np.ndarray:
    """Mean remaining life of a leak by its rate: ``small_days`` up to ``LARGE_EVENT_KG_H[0]``, falling
    log-linearly to ``LARGE_EVENT_DAYS`` at ``LARGE_EVENT_KG_H[1]`` and above. The largest emissions are
    mostly abnormal events (stuck dump valves, unlit flares, blowdowns) that last days to weeks, not months
    (Zavala-Araiza et al. 2017; Cusworth et al. 2021; Lauvaux et al. 2022)."""
    lo, hi = LARGE_EVENT_KG_H
    x = np.clip((np.log(np.maximum(np.asarray(rate, float), 1e-9)) - math.log(lo)) / math.log(hi / lo), 0.0, 1.0)
    return np.exp(np.log(small_days) + x * (math.log(LARGE_EVENT_DAYS) - np.log(small_days)))


def leak_features(dets: pd.DataFrame, leaks: pd.DataFrame, as_of: pd.Timestamp,
                  coverage: pd.DataFrame | None = None, only: set[str] | None = None,
                  fits: dict | None = None) -> pd.DataFrame:
    """One row per leak (index leak_id) with :data:`FEATURES`, the rate estimate columns, first/last seen
    and ``source_names`` (the distinct sensor names, most detections first; for the reasons, not a feature).

    ``coverage`` (the store's ``MonitorCoverage`` windows) says when sensors watched: silence is counted
    only then, and each detection's window length weights its reading in the time-average rate.

    ``only`` (leak ids): the rows of those leaks alone, each from its own detections, the same as without it;
    what belongs to a sensor (its feed's usual confidence, its looks and the fit of its look efficiency and
    detection limit, :func:`look_stats`) is still learned from every detection in ``dets``.

    ``fits``: each sensor's look efficiency and detection limit as an earlier scoring fitted them (the
    ``attrs["sensor_fits"]`` of its result, which every result carries): not fitted again. With ``only`` and
    ``fits`` naming every sensor, the rates and look statistics are computed for those leaks alone (the
    fit needed every leak's rate); the rows are those a scoring of every leak with these ``fits`` gives."""
    everyone = dets
    d = dets if only is None else dets[isin(dets["leak_id"], only)]
    g = d.groupby("leak_id")
    counts = d.groupby(["leak_id", "source_type"]).size().unstack(fill_value=0)  # (a crosstab, in C)
    counts = counts.reindex(columns=list(SOURCE_TYPES), fill_value=0)
    counts.columns = [f"n_{c}" for c in counts.columns]
    t = pd.to_datetime(d["observed_at"], utc=True)
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    last = t.groupby(d["leak_id"]).max()
    first = t.groupby(d["leak_id"]).min()
    if coverage is not None and len(coverage):
        coverage = coverage[pd.to_datetime(coverage["start_at"], utc=True) <= as_of]  # nothing from after as_of
    local = only is not None and fits_cover(everyone, fits)
    # every leak's rate, for the sensor fits of look_stats; with the fits given, only these leaks'
    rates = estimate_rates(d if local else everyone, coverage)
    f = pd.DataFrame(index=pd.Index(d["leak_id"].unique(), name="leak_id"))
    f["n_detections"] = g.size()
    f["n_sources"] = g["source_name"].nunique()
    f["n_source_types"] = g["source_type"].nunique()
    f = f.join(counts)
    # distinct instruments of each kind (two vendors' monitors, two satellites): independent confirmations
    sensors = d.groupby(["leak_id", "source_type"])["source_name"].nunique().unstack()
    sensors = sensors.reindex(columns=list(SOURCE_TYPES)).fillna(0).astype(int)
    sensors.columns = [f"sensors_{c}" for c in sensors.columns]
    f = f.join(sensors)
    conf = d["confidence"].astype(float)  # (a column of None is object: grouped in Python, leak by leak)
    f["mean_confidence"] = conf.groupby(d["leak_id"]).mean()
    f["max_confidence"] = conf.groupby(d["leak_id"]).max()
    f["confidence_evidence"] = confidence_evidence(d, everyone).reindex(f.index).fillna(0.0)
    f["days_since_last"] = ((as_of - last).dt.total_seconds() / 86400.0).clip(lower=0)
    f["span_days"] = (last - first).dt.total_seconds() / 86400.0
    f = f.join(rates)
    f["rate_rel_unc"] = f["log_sigma"]
    amb = d["ambiguous"] if "ambiguous" in d else pd.Series(False, index=d.index)
    f["ambiguous_share"] = amb.fillna(False).astype(float).groupby(d["leak_id"]).mean()
    lk = leaks.set_index("leak_id") if len(leaks) and "leak_id" in leaks else pd.DataFrame()
    f["radius_m"] = lk["radius_m"].reindex(f.index) if "radius_m" in lk else np.nan
    around = d if local else everyone
    every = pd.Index(around["leak_id"].unique(), name="leak_id")
    if {"latitude", "longitude"} <= set(lk.columns):
        centres = lk[["latitude", "longitude"]].reindex(every)
    else:
        centres = pd.DataFrame(index=every, columns=["latitude", "longitude"], dtype=float)
    if {"latitude", "longitude"} <= set(around.columns):
        centres = centres.fillna(around.groupby("leak_id")[["latitude", "longitude"]].median().reindex(every))
    looks = look_stats(everyone, centres, rates["log_rate"], as_of, coverage, fits=fits,
                       only=set(f.index) if local else None, visit_post=visit_posterior(rates))
    f = f.join(looks.reindex(f.index))
    f = f.join(repair_clock(d, last, as_of))
    # most detections first, ties by name (a stable sort of the grouped pairs: the same order for these leaks alone
    # as in a scoring of every leak)
    names = d.groupby(["leak_id", "source_name"]).size().sort_values(ascending=False, kind="stable").reset_index()
    f["source_names"] = names.groupby("leak_id", sort=False)["source_name"].agg(", ".join).reindex(f.index)
    f["first_seen"], f["last_seen"] = first, last
    f.attrs["sensor_fits"] = looks.attrs.get("sensor_fits", {})
    return f
