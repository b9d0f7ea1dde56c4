"""Score: how likely a crew finds a real, still-emitting leak, how big it is, and so what a visit is worth.

priority_score = P(crew finds a real, still-emitting leak) × estimated rate, i.e. the kg/h of methane a visit
is expected to find, plus a bounded regulatory urgency for leaks with a compliance clock running
(urgency × P × min(rate, 20 kg/h), see :func:`priority`).
(Method, references and measured ranking quality: ``docs/scoring.md``.)

The cold-start scorer needs no validations: it is a log-odds model whose terms come from what is known
about each instrument (``config/instruments.yaml``) and from what the feeds themselves show (how often a
sensor sees a leak it has seen before), so its explanation is exact: the terms *are* the model. Until
field outcomes exist its probability is a prior, not a calibrated one, and the app says so; ``learn.py``
fits and calibrates a model from validations.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy.special import betaln

from .explain import reasons
from .ingest import instrument_defaults, load_instruments
from .schema import SOURCE_TYPES

FEATURES: list[str] = [
    "n_detections",
    "n_sources",
    "n_source_types",
    *[f"n_{t}" for t in SOURCE_TYPES],
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
    "confidence_evidence",
    "log_lr_isolated",
    "log_p_unrepaired",
]

# log-space 1-sigma of a single rate when the source gives none, by source type
DEFAULT_LOG_SIGMA = {"satellite": 0.5, "aerial": 0.35, "continuous_monitor": 0.9, "scada": 1.2, "ogi": 1.0}
# Prior of a leak's rate before any quantification (kg/h): log-normal, the order of magnitude of measured
# site-level leak-size distributions (Omara et al. 2018; Brandt et al. 2016). Used only for leaks no sensor
# quantified, together with the detection limit of the sensor that saw them.
RATE_PRIOR_MEDIAN_KG_H, RATE_PRIOR_LOG_SD = 5.0, 1.5
DETECTION_SLOPE = 2.0  # probability of detection is logistic in log rate, 50 % at the limit (Conrad et al. 2023)

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
COARSE_SIGMA_M = 500.0  # detections located worse than this (larger than a site) do not quantify a precise leak
SYSTEMATIC_SHARE = 0.5  # a sensor's systematic rate error (log space) as a share of its single-measurement error
PERSISTENCE_DAYS = 180.0  # mean remaining life of a leak that nothing has contradicted (prior survival)
LARGE_EVENT_KG_H, LARGE_EVENT_DAYS = (100.0, 1000.0), 30.0  # large emissions are short events (persistence_days)
RECENCY_TAU_DAYS = PERSISTENCE_DAYS  # former name, kept for callers
# A leak an OGI (LDAR) survey found is under a repair clock: OOOOb requires the first repair attempt within
# 30 days of the survey (40 CFR 60.5397b(h); the same 30 days as OOOOa and most state LDAR rules). With no
# repair record in the store, the repair time is taken as uniform over that window, and a share of found
# leaks is still emitting after it (repair delayed, attempt failed, re-leak): ``REPAIR_MISS``.
REPAIR_CLOCK_DAYS = 30.0
REPAIR_MISS = 0.1
PRIOR_REAL = 0.25  # prior P(real) of a place before any sensor: the reference the sensor precisions update
REPEAT_WEIGHT = 0.5  # log-odds per e-fold of repeated sightings by the same kind of sensor
CONFIDENCE_WEIGHT = 0.5  # log-odds per unit of confidence evidence (confidence_evidence)
CONFIDENCE_MAX_N = 10  # repeats of one leak are correlated: at most this many count as independent
HIGH_KG_H, MEDIUM_KG_H = 20.0, 2.0  # risk bands on expected methane found per visit
URGENCY_CAP_KG_H = HIGH_KG_H  # a compliance clock adds at most urgency × P(find) × this (``priority``)
_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def sensor_default(source_name: pd.Series, source_type: pd.Series, key: str) -> np.ndarray:
    """``ingest.instrument_defaults`` looked up once per distinct (name, type) and spread back to the rows."""
    pairs = pd.DataFrame({"n": source_name.astype(str).to_numpy(), "t": source_type.astype(str).to_numpy()})
    uniq = pairs.drop_duplicates().reset_index(drop=True)
    vals = instrument_defaults(uniq["n"], uniq["t"], key).to_numpy(float)
    lookup = {(n, t): v for n, t, v in zip(uniq["n"], uniq["t"], vals, strict=True)}
    return np.array([lookup[(n, t)] for n, t in zip(pairs["n"], pairs["t"], strict=True)], float)


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


def _unquantified_rate(limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior (mean, sd) of log rate for a leak seen, not quantified, by a sensor with this limit.

    Prior: log-normal leak sizes (``RATE_PRIOR_*``); likelihood: the probability of detection at the limit.
    """
    grid = np.linspace(math.log(RATE_PRIOR_MEDIAN_KG_H) - 6 * RATE_PRIOR_LOG_SD,
                       math.log(RATE_PRIOR_MEDIAN_KG_H) + 6 * RATE_PRIOR_LOG_SD, 601)
    prior = np.exp(-0.5 * ((grid - math.log(RATE_PRIOR_MEDIAN_KG_H)) / RATE_PRIOR_LOG_SD) ** 2)
    uniq, inv = np.unique(np.asarray(limit, float), return_inverse=True)
    mu, sd = np.empty(len(uniq)), np.empty(len(uniq))
    for i, lim in enumerate(uniq):
        w = prior * p_detect(np.exp(grid), lim)
        w = w / w.sum()
        mu[i] = float((w * grid).sum())
        sd[i] = float(np.sqrt((w * (grid - mu[i]) ** 2).sum()))
    return mu[inv], sd[inv]


def estimate_rates(dets: pd.DataFrame) -> pd.DataFrame:
    """Per leak: rate combined across quantified detections by inverse variance in log space.

    Rates are log-normal-ish and errors multiplicative, so a log-space mean is the right average;
    the spread between repeat measurements is kept too (an intermittent source varies), so the
    reported interval is the larger of the propagated error and the scatter. Detections fusion marked
    ambiguous (a coarse pixel that fits several leaks) do not set the rate of a leak that has others.
    A leak with no quantified detection gets the posterior of a log-normal leak-size prior given that
    the most sensitive sensor that saw it detected it (``rate_quantified`` False).
    Columns: log_rate, log_sigma (1-sigma of log rate), n_quantified, rate_quantified, est_rate_kg_h
    (median), rate_lo_kg_h / rate_hi_kg_h (±1 sigma), rate_mean_kg_h (the expected rate, exp(mu + s²/2)).
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
    s = _log_sigma(rate, unc, default)
    tmp = pd.DataFrame({"leak_id": q["leak_id"].to_numpy(), "sensor": q["source_name"].astype(str).to_numpy(),
                        "w": 1 / s**2, "lr": np.log(rate), "sys2": (SYSTEMATIC_SHARE * default) ** 2})
    tmp["wlr"] = tmp["w"] * tmp["lr"]
    # repeats of one sensor share its systematic error: average within a sensor, then across sensors
    per = tmp.groupby(["leak_id", "sensor"]).agg(w=("w", "sum"), wlr=("wlr", "sum"), sys2=("sys2", "first"))
    per["mu"] = per["wlr"] / per["w"]
    per["W"] = 1 / (1 / per["w"] + per["sys2"])
    per["Wmu"] = per["W"] * per["mu"]
    gp = per.groupby(level="leak_id")
    mu = gp["Wmu"].sum() / gp["W"].sum()
    prop = 1 / np.sqrt(gp["W"].sum())
    g = tmp.groupby("leak_id")
    n = g.size()
    scatter = g["lr"].std(ddof=1).fillna(0) / np.sqrt(n)
    sig = np.maximum(prop, scatter)
    out = pd.DataFrame({"log_rate": mu, "log_sigma": sig, "n_quantified": n, "rate_quantified": True})
    missing = leaks.difference(out.index)
    if len(missing):
        u = dets[dets["leak_id"].isin(missing).to_numpy() & use]
        limit = pd.Series(sensor_default(u["source_name"], u["source_type"], "detection_limit_kg_h"), index=u.index)
        floor = limit.fillna(1.0).groupby(u["leak_id"]).min()
        m, sd = _unquantified_rate(floor.to_numpy())
        out = pd.concat([out, pd.DataFrame({"log_rate": m, "log_sigma": sd, "n_quantified": 0,
                                            "rate_quantified": False}, index=floor.index)])
    out.index.name = "leak_id"
    out["n_quantified"] = out["n_quantified"].astype(int)
    out["rate_quantified"] = out["rate_quantified"].astype(bool)
    out["est_rate_kg_h"] = np.exp(out["log_rate"])
    out["rate_lo_kg_h"] = np.exp(out["log_rate"] - out["log_sigma"])
    out["rate_hi_kg_h"] = np.exp(out["log_rate"] + out["log_sigma"])
    out["rate_mean_kg_h"] = np.exp(out["log_rate"] + 0.5 * out["log_sigma"] ** 2)
    return out.reindex(leaks)


def _cell_keys(lat: np.ndarray, lon: np.ndarray, cell: float) -> np.ndarray:
    """Integer key of the look cell of each point."""
    iy = np.floor((np.asarray(lat, float) + 90.0) / cell).astype(np.int64)
    ix = np.floor((np.asarray(lon, float) + 180.0) / cell).astype(np.int64)
    return iy * 1_000_000 + ix


def _fit_sensor(hits: np.ndarray, looks: np.ndarray, rate: np.ndarray, limit: float) -> tuple[float, float]:
    """Look efficiency c and detection limit L of one sensor from the leaks it saw on ≥ 2 days.

    Maximum likelihood of ``hits`` re-sightings in ``looks`` looks with P(sighting) = c·p_detect(rate, L),
    on a grid (L from limit/100 to limit×10). The feed measures itself: no field outcome is used.
    """
    Ls = limit * 10.0 ** np.linspace(-2, 1, 31)
    cs = np.linspace(0.02, 1.0, 50)
    pdet = p_detect(rate[None, :], Ls[:, None])  # (L, pair)
    q = np.clip(cs[:, None, None] * pdet[None], 1e-6, 1 - 1e-6)  # (c, L, pair)
    ll = (hits * np.log(q) + (looks - hits) * np.log1p(-q)).sum(axis=-1)
    i, j = np.unravel_index(int(np.argmax(ll)), ll.shape)
    return float(cs[i]), float(Ls[j])


def look_stats(dets: pd.DataFrame, centres: pd.DataFrame, log_rate: pd.Series, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per leak: how often its sensors looked since they last saw it, and how likely that silence is if it
    still emits.

    For each (leak, sensor) pair: n = days the sensor saw the leak, A = looks from its first to its last
    sighting and k = looks since (see ``LOOK_MODE``). The per-look sighting probability q has a Beta prior
    of strength ``LOOK_PRIOR_STRENGTH`` centred on c·p_detect(rate, L), where the sensor's look efficiency c
    (clouds, wind, alert caps) and detection limit L are fitted to how often it re-saw the leaks it saw at
    least twice (:func:`_fit_sensor`; the instrument table's limit and c = 0.5 when it saw fewer than 5),
    and the leak's own history (n − 1 sightings in A − 1 looks) updates it. P(k silent looks | emitting) is
    the beta-binomial E[(1 − q)^k], floored by a sensor outage probability ``SENSOR_OUTAGE``.
    Returns ``n_days_seen``, ``missed_looks`` (expected sightings missed, Σ k·E[q]) and ``log_p_silence``
    (Σ over sensors of ln P(silence | still emitting)).
    """
    cols = ["n_days_seen", "missed_looks", "log_p_silence", "log_lr_isolated"]
    leaks = pd.Index(dets["leak_id"].unique())
    if dets.empty:
        return pd.DataFrame(columns=cols, index=leaks, dtype=float)
    day = np.floor((pd.to_datetime(dets["observed_at"], utc=True) - _EPOCH).dt.total_seconds().to_numpy() / 86400.0)
    day = day.astype(np.int64)
    asof_day = int(math.floor((pd.Timestamp(as_of) - _EPOCH).total_seconds() / 86400.0))
    d = pd.DataFrame({"leak_id": dets["leak_id"].to_numpy(), "source_name": dets["source_name"].astype(str).to_numpy(),
                      "source_type": dets["source_type"].to_numpy(), "day": day})
    seen = d.groupby("leak_id")["day"].nunique()
    pairs = d.groupby(["leak_id", "source_name"], sort=False).agg(
        source_type=("source_type", "first"), n=("day", "nunique"), first=("day", "min"), last=("day", "max")
    ).reset_index()
    cen = centres.reindex(pairs["leak_id"])
    lat, lon = cen["latitude"].to_numpy(float), cen["longitude"].to_numpy(float)
    n = pairs["n"].to_numpy(float)
    first, last = pairs["first"].to_numpy(float), pairs["last"].to_numpy(float)
    A = n.copy()
    k = np.zeros(len(pairs))
    k_pre = np.zeros(len(pairs))  # looks before the first sighting, since the feed began
    pre_days = np.zeros(len(pairs))
    informative = np.zeros(len(pairs), bool)
    nan = np.full(len(dets), np.nan)
    lat_d = dets["latitude"].to_numpy(float) if "latitude" in dets else nan
    lon_d = dets["longitude"].to_numpy(float) if "longitude" in dets else nan
    names = d["source_name"].to_numpy()
    for name, idx in pairs.groupby("source_name", sort=False).groups.items():
        idx = np.asarray(idx)
        mode = LOOK_MODE.get(pairs["source_type"].iloc[idx[0]])
        mine = names == name
        active = np.unique(day[mine])
        if mode is None or len(active) < 2:
            continue
        if mode == "revisit":
            gaps = np.diff(active)
            revisit = max(1.0, float(np.quantile(gaps, 0.25)))
            end = min(asof_day, int(active[-1] + gaps.max()))  # a feed silent longer than ever before has stopped
            A[idx] = (last[idx] - first[idx]) / revisit + 1
            k[idx] = np.maximum(end - last[idx], 0) / revisit
            k_pre[idx] = np.maximum(first[idx] - active[0], 0) / revisit
        else:
            where = mine & np.isfinite(lat_d) & np.isfinite(lon_d)
            idx = idx[np.isfinite(lat[idx]) & np.isfinite(lon[idx])]
            if not where.any() or len(idx) == 0:
                continue
            act = np.unique(_cell_keys(lat_d[where], lon_d[where], CAMPAIGN_CELL_DEG) * 100_000 + day[where])
            key = _cell_keys(lat[idx], lon[idx], CAMPAIGN_CELL_DEG) * 100_000
            A[idx] = np.searchsorted(act, key + last[idx], "right") - np.searchsorted(act, key + first[idx], "left")
            k[idx] = np.searchsorted(act, key + asof_day, "right") - np.searchsorted(act, key + last[idx], "right")
            k_pre[idx] = np.searchsorted(act, key + first[idx], "left") - np.searchsorted(act, key, "left")
        pre_days[idx] = np.maximum(first[idx] - active[0], 0)
        informative[idx] = True
    A = np.maximum(A, n)
    limit = sensor_default(pairs["source_name"], pairs["source_type"], "detection_limit_kg_h")
    limit = np.where(np.isfinite(limit), limit, 1.0)
    rate = np.exp(log_rate.reindex(pairs["leak_id"]).fillna(0.0).to_numpy(float))
    m = np.zeros(len(pairs))
    for _name, idx in pairs.groupby("source_name", sort=False).groups.items():
        idx = np.asarray(idx)
        rep = idx[informative[idx] & (n[idx] >= 2)]
        c, lim = 0.5, float(limit[idx[0]])
        if len(rep) >= 5:
            c, lim = _fit_sensor(n[rep] - 1, A[rep] - 1, rate[rep], lim)
        m[idx] = c * p_detect(rate[idx], lim)
    m = np.clip(m, 1e-3, 1 - 1e-3)
    a = LOOK_PRIOR_STRENGTH * m + (n - 1)
    b = LOOK_PRIOR_STRENGTH * (1 - m) + np.maximum(A - n, 0)
    p0 = np.where(informative & (k > 0), np.exp(betaln(a, b + k) - betaln(a, b)), 1.0)
    logp = np.log(SENSOR_OUTAGE + (1 - SENSOR_OUTAGE) * p0)
    missed = np.where(informative, k * a / (a + b), 0.0)
    # an imager's one-off: would a real source of this size have been seen before? Its age is exponential
    # with the mean life of its size (persistence_days), looks come at k_pre / pre_days a day, each seeing it
    # with probability m; a false plume is a one-off whatever the looks. Likelihood ratio real : false.
    n_leak = d.groupby("leak_id").size().reindex(pairs["leak_id"]).to_numpy()
    lone = informative & (n_leak == 1) & pairs["source_type"].isin(["satellite", "aerial"]).to_numpy()
    inv_tau = 1.0 / persistence_days(rate)
    lam = -np.log1p(-m) * k_pre / np.maximum(pre_days, 1.0)
    e = np.exp(-pre_days * (inv_tau + lam))
    lr = inv_tau / (inv_tau + lam) * (1 - e) + e
    log_lr = np.where(lone, np.log(np.maximum(lr, 1e-12)), 0.0)
    out = pd.DataFrame({"leak_id": pairs["leak_id"], "missed_looks": missed, "log_p_silence": logp,
                        "log_lr_isolated": log_lr})
    out = out.groupby("leak_id")[["missed_looks", "log_p_silence", "log_lr_isolated"]].sum()
    out["n_days_seen"] = seen
    return out.reindex(leaks)[cols]


def confidence_evidence(dets: pd.DataFrame) -> pd.Series:
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


def leak_features(dets: pd.DataFrame, leaks: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per leak (index leak_id) with :data:`FEATURES`, the rate estimate columns, first/last seen
    and ``source_names`` (the distinct sensor names, most detections first; for the reasons, not a feature)."""
    d = dets
    g = d.groupby("leak_id")
    counts = pd.crosstab(d["leak_id"], d["source_type"]).reindex(columns=list(SOURCE_TYPES), fill_value=0)
    counts.columns = [f"n_{c}" for c in counts.columns]
    t = pd.to_datetime(d["observed_at"], utc=True)
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    last = t.groupby(d["leak_id"]).max()
    first = t.groupby(d["leak_id"]).min()
    rates = estimate_rates(d)
    f = pd.DataFrame(index=pd.Index(d["leak_id"].unique(), name="leak_id"))
    f["n_detections"] = g.size()
    f["n_sources"] = g["source_name"].nunique()
    f["n_source_types"] = g["source_type"].nunique()
    f = f.join(counts)
    f["mean_confidence"] = g["confidence"].mean()
    f["max_confidence"] = g["confidence"].max()
    f["confidence_evidence"] = confidence_evidence(d).reindex(f.index).fillna(0.0)
    f["days_since_last"] = ((as_of - last).dt.total_seconds() / 86400.0).clip(lower=0)
    f["span_days"] = (last - first).dt.total_seconds() / 86400.0
    f = f.join(rates)
    f["rate_rel_unc"] = f["log_sigma"]
    amb = d["ambiguous"] if "ambiguous" in d else pd.Series(False, index=d.index)
    f["ambiguous_share"] = amb.fillna(False).astype(float).groupby(d["leak_id"]).mean()
    lk = leaks.set_index("leak_id") if len(leaks) and "leak_id" in leaks else pd.DataFrame()
    f["radius_m"] = lk["radius_m"].reindex(f.index) if "radius_m" in lk else np.nan
    if {"latitude", "longitude"} <= set(lk.columns):
        centres = lk[["latitude", "longitude"]].reindex(f.index)
    else:
        centres = pd.DataFrame(index=f.index, columns=["latitude", "longitude"], dtype=float)
    if {"latitude", "longitude"} <= set(d.columns):
        centres = centres.fillna(d.groupby("leak_id")[["latitude", "longitude"]].median().reindex(f.index))
    f = f.join(look_stats(d, centres, f["log_rate"], as_of))
    f = f.join(repair_clock(d, last, as_of))
    names = d.groupby(["leak_id", "source_name"]).size().sort_values(ascending=False).reset_index()
    f["source_names"] = names.groupby("leak_id", sort=False)["source_name"].agg(", ".join).reindex(f.index)
    f["first_seen"], f["last_seen"] = first, last
    return f


def persistence_days(rate: np.ndarray, small_days: float = PERSISTENCE_DAYS) -> np.ndarray:
    """Mean remaining life of a leak by its rate: ``small_days`` up to ``LARGE_EVENT_KG_H[0]``, falling
    log-linearly to ``LARGE_EVENT_DAYS`` at ``LARGE_EVENT_KG_H[1]`` and above. The largest emissions are
    mostly abnormal events (stuck dump valves, unlit flares, blowdowns) that last days to weeks, not months
    (Zavala-Araiza et al. 2017; Cusworth et al. 2021; Lauvaux et al. 2022)."""
    lo, hi = LARGE_EVENT_KG_H
    x = np.clip((np.log(np.maximum(np.asarray(rate, float), 1e-9)) - math.log(lo)) / math.log(hi / lo), 0.0, 1.0)
    return np.exp(np.log(small_days) + x * (math.log(LARGE_EVENT_DAYS) - np.log(small_days)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


class ColdStartScorer:
    """Log-odds model from instrument knowledge and the feeds' own revisit history; needs no validations.

    P(find) = P(real) × P(still emitting | real):

    * logit P(real) = logit(π0) + Σ_types present [logit(precision_type) − logit(π0) + 0.5·ln(n_type)]
      + isolated + 0.5·confidence_evidence: naive Bayes with π0 = ``PRIOR_REAL``, so each kind of sensor
      multiplies the odds by its likelihood ratio (one sensor alone gives its precision, a second
      independent one always raises P), repeats add a little, an imager's one-off detection of a source
      that size loses what :func:`look_stats` says (``log_lr_isolated``), and detections rated more (less)
      confident than their feed usually is add (remove) a little (:func:`confidence_evidence`);
    * P(still emitting | real) combines a survival prior exp(−d / τ(rate)) since the last sighting
      (:func:`persistence_days`: 180 days, down to 30 for the largest emissions) with the silence since:
      if the sensors that saw the leak have looked k more times without seeing it, the odds are multiplied
      by P(silence | emitting) / P(silence | stopped in between) (``log_p_silence``, :func:`look_stats`).

    Contributions are log-odds terms that sum exactly to logit P(find) − ``base_``: the sensor, isolated
    and confidence terms are additive; ``recency`` and ``silence`` are the changes of the logit when the
    survival prior and then the silence are applied, in that order. ``fit`` learns nothing (it reads
    the instrument table) and returns ``self`` so the cold-start and learned scorers are used alike.
    """

    kind = "cold_start"

    def __init__(self, recency_tau_days: float = PERSISTENCE_DAYS, repeat_weight: float = REPEAT_WEIGHT,
                 confidence_weight: float = CONFIDENCE_WEIGHT, prior_real: float = PRIOR_REAL):
        self.recency_tau_days = recency_tau_days
        self.repeat_weight = repeat_weight
        self.confidence_weight = confidence_weight
        self.prior_real = prior_real

    def fit(self, X: pd.DataFrame | None = None, y: np.ndarray | None = None) -> ColdStartScorer:
        table = load_instruments()["source_types"]
        self.precision_ = {t: float(table[t]["precision"]) for t in SOURCE_TYPES}
        self.base_ = float(_logit(np.array(getattr(self, "prior_real", PRIOR_REAL))))
        self.feature_names_in_ = list(FEATURES)
        return self

    def _col(self, X: pd.DataFrame, name: str, default: float) -> np.ndarray:
        return X[name].fillna(default).to_numpy(float) if name in X else np.full(len(X), default)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Log-odds terms per leak; their row sum plus ``base_`` is the logit of P(find)."""
        out = pd.DataFrame(index=X.index)
        for t in SOURCE_TYPES:
            n = self._col(X, f"n_{t}", 0.0)
            lr = float(_logit(np.array(self.precision_[t]))) - self.base_
            out[t] = np.where(n > 0, lr + self.repeat_weight * np.log(np.maximum(n, 1)), 0.0)
        out["isolated"] = np.minimum(self._col(X, "log_lr_isolated", 0.0), 0.0)
        out["confidence"] = self.confidence_weight * self._col(X, "confidence_evidence", 0.0)
        z_real = self.base_ + out.sum(axis=1).to_numpy()
        # in log space throughout, so that the terms stay exact for P(find) near 0 or 1
        lp_real, lp_false = -np.logaddexp(0.0, -z_real), -np.logaddexp(0.0, z_real)
        days = np.maximum(self._col(X, "days_since_last", 0.0), 0.0)
        log_surv = -days / persistence_days(np.exp(self._col(X, "log_rate", 0.0)), self.recency_tau_days)
        log_alive = log_surv + np.minimum(self._col(X, "log_p_unrepaired", 0.0), 0.0)
        logp0 = np.minimum(self._col(X, "log_p_silence", 0.0), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # P(silence | stopped at a uniform time in the window) = (1 − P0) / (−ln P0)
            log_p0_stopped = np.where(logp0 < -1e-9, np.log(-np.expm1(logp0)) - np.log(np.maximum(-logp0, 1e-300)),
                                      0.0)

            def z(log_a: np.ndarray, log_sil_alive: np.ndarray, log_sil_stopped: np.ndarray) -> np.ndarray:
                """logit P(real, emitting | evidence) with P(emitting | real) = exp(log_a) before the silence.
                Three states: false (never seen again: P(silence) = 1), real but stopped, real and emitting."""
                log_stopped = np.log(-np.expm1(np.minimum(log_a, -1e-300)))
                other = np.logaddexp(lp_false, lp_real + log_stopped + log_sil_stopped)
                return lp_real + log_a + log_sil_alive - other

            zero = np.zeros(len(X))
            z1 = z(log_surv, zero, zero)
            z2 = z(log_alive, zero, zero)
            z3 = z(log_alive, logp0, log_p0_stopped)
        out["recency"] = z1 - z_real
        out["repair_clock"] = z2 - z1
        out["silence"] = z3 - z2
        return out

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.base_ + self.contributions(X).sum(axis=1).to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = _sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])


def priority(p_real: np.ndarray, rate: np.ndarray, urgency: np.ndarray | None = None) -> np.ndarray:
    """Expected kg/h found by a visit plus the compliance urgency (0 none, 0.5 due soon, 1 overdue):

    p·rate + urgency·p·min(rate, ``URGENCY_CAP_KG_H``). A running clock counts the leak's expected methane
    again up to the cap: a small overdue leak counts double, a large one gains at most p × 20 kg/h, so an
    overdue clock reorders leaks of comparable expected methane and never lifts a leak that has probably
    stopped (small p) over one that is probably emitting much more."""
    p = np.asarray(p_real, float)
    r = np.asarray(rate, float)
    u = np.zeros(len(p)) if urgency is None else np.asarray(urgency, float)
    return p * r + u * p * np.minimum(r, URGENCY_CAP_KG_H)


def risk_band(priority_score: np.ndarray, overdue: np.ndarray | None = None) -> np.ndarray:
    """HIGH ≥ 20 kg/h expected (or overdue), MEDIUM ≥ 2 kg/h, else LOW."""
    s = np.asarray(priority_score, float)
    band = np.where(s >= HIGH_KG_H, "HIGH", np.where(s >= MEDIUM_KG_H, "MEDIUM", "LOW"))
    if overdue is not None:
        band = np.where(np.asarray(overdue, bool), "HIGH", band)
    return band


RATE_COLUMNS = ["log_rate", "log_sigma", "est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h"]


def model_rates(model, X: pd.DataFrame) -> pd.DataFrame:
    """The rate a model scores with: its learned rate model's when it has one (``learn.RateModel``),
    else the estimate in the features (:func:`estimate_rates`)."""
    rm = getattr(model, "rate_model_", None)
    if rm is not None:
        return rm.predict(X)[RATE_COLUMNS]
    return X[RATE_COLUMNS].copy()


def score_table(X: pd.DataFrame, model, urgency: np.ndarray | None = None,
                overdue: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a features frame with ``model``: p_real, rate, priority, band, reasons and contributions.

    Returns (scores indexed like X, contributions). ``contributions`` (a JSON column) holds ``base`` and
    every non-zero term, rounded to 4 places; they sum to the logit of ``p_real``.
    """
    contrib = model.contributions(X)
    logit = float(model.base_) + contrib.sum(axis=1).to_numpy()
    p = 1 / (1 + np.exp(-logit))
    rates = model_rates(model, X)
    s = pd.DataFrame(index=X.index)
    s["p_real"] = p
    s["est_rate_kg_h"] = rates["est_rate_kg_h"].to_numpy(float)
    s["rate_lo_kg_h"] = rates["rate_lo_kg_h"].to_numpy(float)
    s["rate_hi_kg_h"] = rates["rate_hi_kg_h"].to_numpy(float)
    s["rate_quantified"] = X["rate_quantified"].fillna(False).astype(bool).to_numpy() if "rate_quantified" in X \
        else True
    s["priority_score"] = priority(p, s["est_rate_kg_h"].to_numpy(float), urgency)
    s["risk_band"] = risk_band(s["priority_score"].to_numpy(), overdue)
    feats = X.drop(columns=[c for c in RATE_COLUMNS + ["rate_quantified"] if c in X]).join(s)
    s["top_reasons"] = reasons(feats, contrib)
    base = round(float(model.base_), 4)
    vals = contrib.to_numpy(float).round(4)
    names = list(contrib.columns)
    s["contributions"] = [json.dumps({"base": base, **{names[j]: float(row[j]) for j in np.flatnonzero(row)}})
                          for row in vals]
    return s, contrib
