"""Rates: a leak's emission rate from its quantified detections, with its uncertainty, and the prior for
leaks no sensor quantified."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..ingest import instrument_defaults

# log-space 1-sigma of a single rate when the source gives none, by source type
DEFAULT_LOG_SIGMA = {"satellite": 0.5, "aerial": 0.35, "continuous_monitor": 0.9, "scada": 1.2, "ogi": 1.0}


# Prior of a leak's rate before any quantification (kg/h): log-normal, measured site totals (Zavala-Araiza et
# al. 2018, ``rate_prior`` of config/instruments.yaml; these are the fallbacks). Used only for leaks no sensor
# quantified, together with the detection curve of the sensor that saw them.
RATE_PRIOR_MEDIAN_KG_H, RATE_PRIOR_LOG_SD = 1.40, 1.75


DETECTION_SLOPE = 2.0  # fallback slope of the detection curve (logistic in log rate, Conrad et al. 2023)


def rate_prior() -> tuple[float, float]:
    """(median kg/h, ln-sd) of the leak-size prior, from ``config/instruments.yaml`` (``rate_prior``)."""
    from ..ingest import load_instruments

    p = load_instruments().get("rate_prior", {})
    return float(p.get("median_kg_h", RATE_PRIOR_MEDIAN_KG_H)), float(p.get("log_sd", RATE_PRIOR_LOG_SD))


def expected_rate(log_rate: np.ndarray, log_sigma: np.ndarray, quantified: np.ndarray) -> np.ndarray:
    """The rate a visit finds on average (kg/h): the posterior mean of the leak's rate given its estimate and
    the leak-size prior (:func:`rate_prior`, measured site totals). What the expected methane of a visit uses.

    Why: a rate estimate ``exp(log_rate)`` with ln-sd ``log_sigma`` is a noisy measurement, and leak sizes are
    heavy-tailed around a small median, so a single high reading is, on average, an overestimate (regression to
    the mean; the instrument's measured log-scatter and calibration spread, ``config/instruments.yaml``, say
    how noisy). The standard answer is to combine the measurement with the population prior: both log-normal,
    so the posterior of ln(rate) is normal with precision 1/σ0² + 1/σ² and mean their precision-weighted
    average, and the expected rate is exp(mean + var/2). A precise estimate (an aircraft's many passes, ln-sd
    0.1) keeps its value (−1 %); one satellite plume of 1,000 kg/h (ln-sd 0.95: scatter 0.7, calibration 0.35,
    episode 0.54) counts as ~320, one monitor reading of 1,000 (ln-sd 1.7) as ~80; the four Stanford monitors'
    113 kg/h (ln-sd 0.68) as 78. Well-measured leaks keep their order; noisy large readings no longer outbid
    them on their reading alone.

    Leaks no sensor quantified (``quantified`` False) keep ``exp(log_rate)``: their estimate is already the
    posterior of the same prior given their detection (:func:`estimate_rates`), and applying the prior again
    would count it twice."""
    m, v = _posterior(log_rate, log_sigma, quantified)
    with np.errstate(invalid="ignore", over="ignore"):
        post = np.exp(m + 0.5 * v)
    lr = np.asarray(log_rate, float)
    q = np.asarray(quantified, bool)
    return np.where(q & np.isfinite(post), post, np.exp(lr))


def _posterior(log_rate, log_sigma, quantified) -> tuple[np.ndarray, np.ndarray]:
    """(mean, variance) of ln rate given the estimate and the leak-size prior (:func:`expected_rate`); leaks no
    sensor quantified keep (log_rate, log_sigma²), already a posterior of the same prior."""
    med, lsd = rate_prior()
    lr = np.asarray(log_rate, float)
    ls = np.maximum(np.asarray(log_sigma, float), 1e-6)
    q = np.asarray(quantified, bool)
    v0, mu0 = lsd**2, math.log(med)
    with np.errstate(invalid="ignore"):
        v = 1.0 / (1.0 / v0 + 1.0 / ls**2)
        m = v * (mu0 / v0 + lr / ls**2)
    return np.where(q, m, lr), np.where(q, v, ls**2)


def visit_posterior(rates: pd.DataFrame) -> pd.DataFrame:
    """Per leak (``estimate_rates`` rows): mean ``mu`` and variance ``var`` of the posterior of ln rate whose mean
    is the visit rate (:func:`expected_rate`). What the silence since a leak's last sighting conditions
    (``features.look_stats``)."""
    q = rates["rate_quantified"].fillna(False).astype(bool).to_numpy()
    m, v = _posterior(rates["log_rate"].to_numpy(float), rates["log_sigma"].to_numpy(float), q)
    return pd.DataFrame({"mu": m, "var": v}, index=rates.index)


EPISODE_LOG_SD = 0.54  # fallback of ``rate_episode_log_sd`` (config/instruments.yaml)


def episode_log_sd() -> float:
    """ln-sd of a source's rate between release episodes, ``rate_episode_log_sd`` of ``config/instruments.yaml``
    (measured on the Kairos New Mexico Permian repeat sightings: 0.54)."""
    from ..ingest import load_instruments

    return float(load_instruments().get("rate_episode_log_sd", EPISODE_LOG_SD))


COARSE_SIGMA_M = 500.0  # detections located worse than this (larger than a site) do not quantify a precise leak


SYSTEMATIC_SHARE = 0.5  # a sensor's systematic rate error (log space) as a share of its single-measurement error


def sensor_default(source_name: pd.Series, source_type: pd.Series, key: str) -> np.ndarray:
    """``ingest.instrument_defaults`` looked up once per distinct (name, type) and spread back to the rows.

    Each column is factorised on its own and the pairs numbered from the two codes (a grouping by two string
    columns of a million rows, and their ``astype(str)``, took 0.4 s a call; scoring makes eight)."""
    if len(source_name) == 0:
        return np.zeros(0, float)
    cn, names = pd.factorize(pd.Series(source_name), use_na_sentinel=False)
    ct, types = pd.factorize(pd.Series(source_type), use_na_sentinel=False)
    pair, first = np.unique(cn.astype(np.int64) * max(len(types), 1) + ct, return_index=True)
    code = np.searchsorted(pair, cn.astype(np.int64) * max(len(types), 1) + ct)
    uniq_n = pd.Series([str(v) for v in np.asarray(names, dtype=object)[cn[first]]])
    uniq_t = pd.Series([str(v) for v in np.asarray(types, dtype=object)[ct[first]]])
    vals = instrument_defaults(uniq_n, uniq_t, key).to_numpy(float)
    return vals[code].astype(float)


def p_detect(rate: np.ndarray, limit: np.ndarray, slope: float = DETECTION_SLOPE) -> np.ndarray:
    """Probability a sensor with 50 % detection limit ``limit`` sees a source of ``rate`` on one look."""
    r = np.maximum(np.asarray(rate, float), 1e-9)
    return 1.0 / (1.0 + (np.asarray(limit, float) / r) ** slope)


def _log_sigma(rate: np.ndarray, unc: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Log-space 1-sigma of a reported rate from its 1-sigma (log-normal: sqrt(ln(1 + cv²)))."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = unc / rate
        s = np.sqrt(np.log1p(cv**2))
    return np.where(np.isfinite(unc) & (unc > 0), np.clip(s, 0.05, 3.0), default)


def _unquantified_rate(limit: np.ndarray, slope: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Posterior (mean, sd) of log rate for a leak seen, not quantified, by a sensor with this limit and slope.

    Prior: log-normal leak sizes (:func:`rate_prior`); likelihood: the sensor's probability of detection.
    """
    med, lsd = rate_prior()
    grid = np.linspace(math.log(med) - 6 * lsd, math.log(med) + 6 * lsd, 601)
    prior = np.exp(-0.5 * ((grid - math.log(med)) / lsd) ** 2)
    slope = np.full(len(np.atleast_1d(limit)), DETECTION_SLOPE) if slope is None else np.asarray(slope, float)
    pairs = np.column_stack([np.asarray(limit, float), slope])
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    inv = np.asarray(inv).ravel()
    mu, sd = np.empty(len(uniq)), np.empty(len(uniq))
    for i, (lim, k) in enumerate(uniq):
        w = prior * p_detect(np.exp(grid), lim, k)
        w = w / w.sum()
        mu[i] = float((w * grid).sum())
        sd[i] = float(np.sqrt((w * (grid - mu[i]) ** 2).sum()))
    return mu[inv], sd[inv]


def _durations(q: pd.DataFrame, coverage: pd.DataFrame | None) -> np.ndarray:
    """Hours each quantified detection's report covered (its ``detected`` coverage window), NaN when unknown."""
    out = np.full(len(q), np.nan)
    if coverage is None or len(coverage) == 0 or len(q) == 0:
        return out
    c = coverage[coverage["state"].eq("detected") & coverage["detection_id"].notna()]
    if c.empty:
        return out
    hours = (pd.to_datetime(c["end_at"], utc=True) - pd.to_datetime(c["start_at"], utc=True)).dt.total_seconds() / 3600
    key = pd.MultiIndex.from_arrays([c["source_name"].astype(str), c["detection_id"].astype(str)])
    dur = pd.Series(hours.to_numpy(float), index=key)
    dur = dur[~dur.index.duplicated(keep="first")]
    want = pd.MultiIndex.from_arrays([q["source_name"].astype(str), q["detection_id"].astype(str)]) \
        if "detection_id" in q else None
    if want is None:
        return out
    return dur.reindex(want).to_numpy(float)


def estimate_rates(dets: pd.DataFrame, coverage: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per leak: the time-average emission rate (what a repair removes per hour while it emits), with its
    uncertainty, from intermittent and heavy-tailed readings.

    A source whose rate changes by orders of magnitude between episodes emits, on average, the arithmetic
    time-average of its rates, not their log-space mean (the median reading): one 1,400 kg/h hour outweighs
    many 0.5 kg/h hours. So each sensor's readings of the leak are averaged in linear space, weighted by the
    hours each report covered (its ``detected`` window in ``coverage``; equal weights when unknown), after
    dividing by the instrument's measured quantification bias (``rate_bias``: the ratio of mean reported to
    mean metered rate on controlled releases, ``config/instruments.yaml``). Its uncertainty combines the
    scatter of that weighted mean between episodes (or the readings' stated errors, whichever is larger) and
    the calibration uncertainty of the sensor (``rate_bias_log_sd``: how far one unit's bias may be from the
    platform's; repeats of one sensor share it, so 200 alerts do not outvote one aircraft measurement).
    Sensors are then combined by inverse variance in log space, and the interval is widened to the scatter
    between sensors when they disagree more than their errors say.

    A coarse pixel or a detection fusion marked ambiguous says how much methane is around, not what this
    leak emits: it sets the rate only of a leak that has no precise detection. A leak with no quantified
    detection gets the posterior of a log-normal leak-size prior given that the most sensitive sensor that
    saw it detected it (``rate_quantified`` False).
    Columns: log_rate (ln of the estimate), log_sigma (its 1-sigma in log space), n_quantified,
    rate_quantified, est_rate_kg_h, rate_lo_kg_h / rate_hi_kg_h (±1 sigma), rate_mean_kg_h (exp(mu + s²/2)),
    reading_log_sd (the per-reading scatter, sd of ln of the readings: how variable the leak is).
    """
    leaks = pd.Index(dets["leak_id"].unique())
    # a coarse pixel (or one fusion found compatible with several leaks) says how much methane is around,
    # not how much this leak emits: it sets the rate only of a leak that has no precise detection
    sigma = dets["location_uncertainty_m"] if "location_uncertainty_m" in dets else pd.Series(0.0, index=dets.index)
    weak = sigma.fillna(0).to_numpy(float) > COARSE_SIGMA_M
    if "ambiguous" in dets:
        weak |= dets["ambiguous"].fillna(False).astype(bool).to_numpy()
    has_strong = set(dets.loc[~weak, "leak_id"])
    use = ~weak | ~dets["leak_id"].isin(has_strong).to_numpy()
    q = dets[use & dets["rate_kg_h"].notna().to_numpy() & (dets["rate_kg_h"].fillna(0) > 0).to_numpy()]
    rate = q["rate_kg_h"].to_numpy(float)
    unc = q["rate_uncertainty_kg_h"].to_numpy(float) if "rate_uncertainty_kg_h" in q else np.full(len(q), np.nan)
    default = q["source_type"].map(DEFAULT_LOG_SIGMA).fillna(0.7).to_numpy(float)
    if len(q):  # the instrument table's measured single-reading scatter, and whether its stated errors hold
        table = sensor_default(q["source_name"], q["source_type"], "log_sigma")
        default = np.where(np.isfinite(table), table, default)
        stated = sensor_default(q["source_name"], q["source_type"], "use_reported_bounds")
        scale = sensor_default(q["source_name"], q["source_type"], "reported_sigma_scale")
        unc = np.where(np.isfinite(stated) & (stated == 0), np.nan, unc * np.where(np.isfinite(scale), scale, 1.0))
    s = _log_sigma(rate, unc, default)
    bias = sensor_default(q["source_name"], q["source_type"], "rate_bias") if len(q) else np.zeros(0)
    bias = np.where(np.isfinite(bias) & (bias > 0), bias, 1.0)
    cal = sensor_default(q["source_name"], q["source_type"], "rate_bias_log_sd") if len(q) else np.zeros(0)
    cal = np.where(np.isfinite(cal), cal, SYSTEMATIC_SHARE * default)
    tmp = pd.DataFrame({"leak_id": q["leak_id"].to_numpy(), "sensor": q["source_name"].astype(str).to_numpy(),
                        "c": rate / bias, "s2": s**2, "cal2": cal**2, "d": _durations(q, coverage),
                        "lr": np.log(rate)})
    # weights: hours covered; a report of unknown length counts as the sensor's median report on this leak
    med = tmp.groupby(["leak_id", "sensor"])["d"].transform("median")
    tmp["w"] = tmp["d"].where(tmp["d"] > 0, med).where(lambda x: x > 0, 1.0).fillna(1.0)
    tmp["wc"] = tmp["w"] * tmp["c"]
    g = tmp.groupby(["leak_id", "sensor"], sort=False)
    per = g.agg(sw=("w", "sum"), swc=("wc", "sum"), n=("c", "size"), cal2=("cal2", "first"))
    per["T"] = per["swc"] / per["sw"]
    tmp = tmp.join(per[["T", "sw"]], on=["leak_id", "sensor"])
    tmp["samp"] = (tmp["w"] / tmp["sw"]) ** 2 * (tmp["c"] - tmp["T"]) ** 2
    # each reading's error against the time-average: its measurement error and how far its episode was from the
    # source's average (``episode_log_sd``); without the latter one snapshot was as sure of the time-average as
    # of the rate it saw, and a single high plume reading outbid leaks measured on many episodes
    tmp["meas"] = (tmp["w"] / tmp["sw"]) ** 2 * tmp["c"] ** 2 * np.expm1(tmp["s2"] + episode_log_sd() ** 2)
    g = tmp.groupby(["leak_id", "sensor"], sort=False)
    n = per["n"].to_numpy(float)
    samp = g["samp"].sum().reindex(per.index).to_numpy() * np.where(n > 1, n / np.maximum(n - 1, 1), 0.0)
    var = np.maximum(samp, g["meas"].sum().reindex(per.index).to_numpy())
    per["mu"] = np.log(per["T"])
    per["V"] = np.log1p(var / per["T"].to_numpy() ** 2) + per["cal2"].to_numpy()
    per["W"] = 1.0 / per["V"]
    per["Wmu"] = per["W"] * per["mu"]
    gp = per.groupby(level="leak_id")
    mu = gp["Wmu"].sum() / gp["W"].sum()
    prop = 1 / np.sqrt(gp["W"].sum())
    k = gp.size()
    between = (gp["mu"].std(ddof=1) / np.sqrt(k)).fillna(0.0)  # sensors disagreeing beyond their errors
    sig = np.maximum(prop, between.reindex(prop.index))
    nq = tmp.groupby("leak_id").size()
    spread = tmp.groupby("leak_id")["lr"].std(ddof=1)
    out = pd.DataFrame({"log_rate": mu, "log_sigma": sig, "n_quantified": nq, "rate_quantified": True,
                        "reading_log_sd": spread})
    missing = leaks.difference(out.index)
    if len(missing):
        u = dets[dets["leak_id"].isin(missing).to_numpy() & use]
        limit = pd.Series(sensor_default(u["source_name"], u["source_type"], "detection_limit_kg_h"), index=u.index)
        slope = pd.Series(sensor_default(u["source_name"], u["source_type"], "detection_slope"), index=u.index)
        best = limit.fillna(1.0).groupby(u["leak_id"]).idxmin()  # the most sensitive sensor that saw it
        floor = limit.fillna(1.0).loc[best.to_numpy()].set_axis(best.index)
        m, sd = _unquantified_rate(floor.to_numpy(), slope.fillna(DETECTION_SLOPE).loc[best.to_numpy()].to_numpy())
        out = pd.concat([out, pd.DataFrame({"log_rate": m, "log_sigma": sd, "n_quantified": 0,
                                            "rate_quantified": False, "reading_log_sd": np.nan}, index=floor.index)])
    out.index.name = "leak_id"
    out["n_quantified"] = out["n_quantified"].astype(int)
    out["rate_quantified"] = out["rate_quantified"].astype(bool)
    out["est_rate_kg_h"] = np.exp(out["log_rate"])
    out["rate_lo_kg_h"] = np.exp(out["log_rate"] - out["log_sigma"])
    out["rate_hi_kg_h"] = np.exp(out["log_rate"] + out["log_sigma"])
    out["rate_mean_kg_h"] = np.exp(out["log_rate"] + 0.5 * out["log_sigma"] ** 2)
    return out.reindex(leaks)
