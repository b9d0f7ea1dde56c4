"""Score and explain: exact rate combination, an additive cold-start model, bands, priority, reasons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import T0

from mlpe_core.ingest import load_instruments
from mlpe_core.schema import SOURCE_TYPES
from mlpe_core.score import (
    CONFIDENCE_WEIGHT,
    DEFAULT_LOG_SIGMA,
    FEATURES,
    PERSISTENCE_DAYS,
    PRIOR_REAL,
    URGENCY_CAP_KG_H,
    ColdStartScorer,
    estimate_rates,
    leak_features,
    persistence_days,
    priority,
    risk_band,
)
from mlpe_core.score.explain import rate_phrase, top_reasons


def _leaks(frame: pd.DataFrame) -> pd.DataFrame:
    ids = frame["leak_id"].unique()
    return pd.DataFrame({"leak_id": ids, "radius_m": 5.0})


def _features(frame: pd.DataFrame, as_of=T0, coverage: pd.DataFrame | None = None) -> pd.DataFrame:
    return leak_features(frame, _leaks(frame), pd.Timestamp(as_of), coverage)


def _sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, float)))


# --------------------------------------------------------------------------------------------- rates

SYS = 0.5  # a sensor's systematic log error as a share of its single-measurement log error (score.SYSTEMATIC_SHARE)


@pytest.fixture
def neutral(monkeypatch):
    """An instrument table without measured biases, scatters, stated-error rules or episode variability, so that
    the arithmetic of the estimate is tested on its own (the measured table is tested in test_real_data and
    benchmarks/real.py)."""
    from mlpe_core.score import rates

    real = rates.sensor_default
    keys = {"rate_bias", "rate_bias_log_sd", "log_sigma", "use_reported_bounds", "reported_sigma_scale"}

    def table(names, types, key):
        return np.full(len(names), np.nan) if key in keys else real(names, types, key)

    monkeypatch.setattr(rates, "sensor_default", table)
    monkeypatch.setattr(rates, "episode_log_sd", lambda: 0.0)  # no variability between episodes either


def _s(rate, unc):
    """Log-space sigma of a rate reported with a 1-sigma ``unc`` (log-normal)."""
    return math.sqrt(math.log1p((unc / rate) ** 2))


def test_two_rates_combine_by_inverse_variance_in_log_space(dets, neutral):
    d = dets([dict(leak="L1", rate=100.0, unc=20.0, name="GAO"), dict(leak="L1", rate=110.0, unc=55.0, name="AV3")])
    r = estimate_rates(d).loc["L1"]
    sys2 = (SYS * DEFAULT_LOG_SIGMA["aerial"]) ** 2  # two sensors: each has its own systematic error
    w1, w2 = 1 / (_s(100, 20) ** 2 + sys2), 1 / (_s(110, 55) ** 2 + sys2)
    mu = (w1 * math.log(100) + w2 * math.log(110)) / (w1 + w2)
    sigma = 1 / math.sqrt(w1 + w2)  # larger than the scatter between the two, so it is the interval
    assert sigma > math.log(1.1) / 2
    assert r["est_rate_kg_h"] == pytest.approx(math.exp(mu), rel=1e-12)
    assert r["log_sigma"] == pytest.approx(sigma, rel=1e-12)
    assert r["rate_lo_kg_h"] == pytest.approx(math.exp(mu - sigma), rel=1e-12)
    assert r["rate_hi_kg_h"] == pytest.approx(math.exp(mu + sigma), rel=1e-12)
    assert (r["n_quantified"], bool(r["rate_quantified"])) == (2, True)


def test_scatter_between_repeat_measurements_widens_the_interval(dets, neutral):
    d = dets([dict(leak="L1", type="satellite", name="A", rate=100.0, unc=10.0),
              dict(leak="L1", type="satellite", name="B", rate=400.0, unc=40.0)])
    r = estimate_rates(d).loc["L1"]
    assert r["est_rate_kg_h"] == pytest.approx(200.0, rel=1e-12)  # geometric mean, equal weights
    assert r["log_sigma"] == pytest.approx(math.log(4) / 2, rel=1e-12)  # std(ln) / sqrt(n) beats propagation


def test_repeats_of_one_sensor_do_not_beat_its_systematic_error(dets, neutral):
    one = dets([dict(leak="L1", name="GAO", rate=50.0, unc=5.0) for _ in range(40)])
    two = dets([dict(leak="L1", name=("GAO" if i % 2 else "AV3"), rate=50.0, unc=5.0) for i in range(40)])
    floor = SYS * DEFAULT_LOG_SIGMA["aerial"]
    s_one = estimate_rates(one).loc["L1", "log_sigma"]
    s_two = estimate_rates(two).loc["L1", "log_sigma"]
    # the mean of n equal-weight readings has variance rate² (exp(s²) - 1) / n, in log space ln(1 + that / rate²)
    v40, v20 = math.log1p(math.expm1(_s(50, 5.0) ** 2) / 40), math.log1p(math.expm1(_s(50, 5.0) ** 2) / 20)
    assert s_one == pytest.approx(math.sqrt(v40 + floor**2), rel=1e-12)
    assert s_one > floor
    assert s_two == pytest.approx(1 / math.sqrt(2 / (v20 + floor**2)), rel=1e-12)  # two sensors: independent


def test_the_rate_is_the_time_average_of_the_readings_not_their_log_mean(dets, neutral):
    # one monitor: 1 kg/h for 9 hours, then 100 kg/h for 1 hour (the windows of its reports): a repair
    # removes 10.9 kg/h on average, whereas the log-space mean of the two readings is 10 and of the hours 1.6
    d = dets([dict(leak="L1", type="continuous_monitor", name="CMS", rate=1.0, unc=0.1, id="a", day=0),
              dict(leak="L1", type="continuous_monitor", name="CMS", rate=100.0, unc=10.0, id="b", day=0.5)])
    t0 = d["observed_at"].iloc[0]
    cov = pd.DataFrame({"source_name": ["CMS", "CMS"], "detection_id": ["a", "b"], "state": ["detected"] * 2,
                        "start_at": [t0, t0 + pd.Timedelta(hours=9)],
                        "end_at": [t0 + pd.Timedelta(hours=9), t0 + pd.Timedelta(hours=10)]})
    r = estimate_rates(d, cov).loc["L1"]
    assert r["est_rate_kg_h"] == pytest.approx(10.9, rel=1e-12)
    assert estimate_rates(d).loc["L1", "est_rate_kg_h"] == pytest.approx(50.5, rel=1e-12)  # no windows: equal
    assert r["reading_log_sd"] == pytest.approx(math.log(100) / math.sqrt(2), rel=1e-12)  # per-reading scatter
    # its uncertainty is the spread of that mean between the two episodes (n/(n-1) sum w²(x - mean)²)
    var = 2 * ((0.9 * 9.9) ** 2 + (0.1 * 89.1) ** 2)
    sys2 = (SYS * DEFAULT_LOG_SIGMA["continuous_monitor"]) ** 2
    assert r["log_sigma"] == pytest.approx(math.sqrt(math.log1p(var / 10.9**2) + sys2), rel=1e-12)


def test_the_instruments_measured_bias_is_divided_out(dets, monkeypatch):
    from mlpe_core.score import rates

    real = rates.sensor_default

    def table(names, types, key):
        if key == "rate_bias":
            return np.where(names.astype(str).eq("LOW").to_numpy(), 0.2, np.nan)
        if key == "rate_bias_log_sd":
            return np.where(names.astype(str).eq("LOW").to_numpy(), 0.8, np.nan)
        if key in ("log_sigma", "use_reported_bounds", "reported_sigma_scale"):
            return np.full(len(names), np.nan)
        return real(names, types, key)

    monkeypatch.setattr(rates, "sensor_default", table)
    d = dets([dict(leak="L1", type="continuous_monitor", name="LOW", rate=r, unc=0.1 * r) for r in (10.0, 30.0)]
             + [dict(leak="L2", type="continuous_monitor", name="OTHER", rate=20.0)])
    r = estimate_rates(d)
    assert r.loc["L1", "est_rate_kg_h"] == pytest.approx(100.0, rel=1e-12)  # (10 + 30) / 2 / 0.2
    assert r.loc["L2", "est_rate_kg_h"] == pytest.approx(20.0, rel=1e-12)  # no bias known: as read
    samp = 2 * (0.5**2 * 50**2 * 2)  # two readings 50 and 150 around 100, weights 1/2 (beats their 10 % errors)
    assert r.loc["L1", "log_sigma"] == pytest.approx(math.sqrt(math.log1p(samp / 100**2) + 0.8**2), rel=1e-12)


def test_one_reading_is_one_episode_of_the_time_average(dets, neutral, monkeypatch):
    """A single reading measures one release episode: its error against the time-average adds the source's
    variability between episodes (rate_episode_log_sd, 0.54 measured) to the instrument's own."""
    from mlpe_core.score import rates

    monkeypatch.setattr(rates, "episode_log_sd", lambda: 0.54)
    r = estimate_rates(dets([dict(leak="L1", rate=50.0, type="aerial")])).loc["L1"]
    s = DEFAULT_LOG_SIGMA["aerial"]
    assert r["est_rate_kg_h"] == pytest.approx(50.0)  # the estimate itself does not move
    assert r["log_sigma"] == pytest.approx(math.sqrt(s**2 + 0.54**2 + (SYS * s) ** 2), rel=1e-12)


def test_visit_rate_shrinks_noisy_estimates_toward_the_leak_size_prior():
    """The expected rate a visit finds: posterior mean given the log-normal leak-size prior (1.40 kg/h, ln-sd
    1.75). A precise estimate keeps its value, a single noisy high one is pulled down, the unquantified prior
    posterior is left alone, and at equal uncertainty the order of the estimates is kept."""
    from mlpe_core.score.rates import expected_rate, rate_prior

    med, lsd = rate_prior()
    lr = np.log([200.0, 1000.0, 1000.0, 13.0, 300.0])
    ls = np.array([0.05, 0.78, 1.6, 1.2, 0.78])
    q = np.array([True, True, True, False, True])
    e = expected_rate(lr, ls, q)
    v = 1 / (1 / lsd**2 + 1 / 0.78**2)
    assert e[1] == pytest.approx(math.exp(v * (math.log(med) / lsd**2 + math.log(1000) / 0.78**2) + v / 2))
    assert e[0] == pytest.approx(200.0, rel=0.01)
    assert 300 < e[1] < 600 and e[2] < e[1]  # noisier: pulled further
    assert e[3] == pytest.approx(13.0)  # unquantified: already a posterior of the prior
    assert e[4] < e[1]


def test_silence_since_the_last_sighting_lowers_the_visit_rate_only_where_a_smaller_rate_explains_it():
    """If a leak still emits after its sensors missed it k times, its rate is more likely one they miss: the visit
    posterior reweighted by the same beta-binomial silence likelihood as ``log_p_silence``, per rate. No silence:
    no change; a rate far above the limit (only an outage explains the silence): ~no change; a rate near the
    limit after many silent looks: lower; more silent looks: lower still."""
    from mlpe_core.score.features import _silence_rate

    post = pd.DataFrame({"mu": np.log([50.0, 50.0, 50.0, 5000.0]), "var": [0.6, 0.6, 0.6, 0.6]},
                        index=["near", "more", "none", "far"])
    ids = pd.Series(["near", "more", "none", "far"])
    ones = np.ones(4)
    looks = (0.9 * ones, 40.0 * ones, 2.0 * ones, ones, ones, 0 * ones, np.array([3.0, 12.0, 0.0, 12.0]))
    f = _silence_rate(ids, np.array([True, True, False, True]), looks, post)
    assert "none" not in f.index  # not silent: the caller fills 0
    assert f["far"] == pytest.approx(0.0, abs=0.01)
    assert f["more"] < f["near"] < -0.05
    assert (f <= 0).all()


def test_rate_without_uncertainty_uses_the_source_type_default(dets, neutral):
    r = estimate_rates(dets([dict(leak="L1", rate=50.0, type="aerial")])).loc["L1"]
    s = math.hypot(DEFAULT_LOG_SIGMA["aerial"], SYS * DEFAULT_LOG_SIGMA["aerial"])
    assert r["est_rate_kg_h"] == pytest.approx(50.0)
    assert r["log_sigma"] == pytest.approx(s, rel=1e-12)
    assert r["rate_lo_kg_h"] == pytest.approx(50 * math.exp(-s), rel=1e-12)


def test_a_coarse_pixel_does_not_set_the_rate_of_a_precise_leak(dets, neutral):
    d = dets([dict(leak="L1", rate=10.0, unc=2.0, sigma=5),
              dict(leak="L1", type="satellite", name="Sentinel-5P/TROPOMI", rate=6000.0, unc=2000.0, sigma=2500),
              dict(leak="L2", type="satellite", name="Sentinel-5P/TROPOMI", rate=6000.0, unc=2000.0, sigma=2500)])
    r = estimate_rates(d)
    assert r.loc["L1", "est_rate_kg_h"] == pytest.approx(10.0) and r.loc["L1", "n_quantified"] == 1
    assert r.loc["L2", "est_rate_kg_h"] == pytest.approx(6000.0)  # a pixel alone still quantifies its leak


def test_unquantified_leaks_are_flagged_and_ordered_by_what_saw_them(dets, neutral):
    d = dets([
        dict(leak="L1", type="satellite", name="EMIT - NASA"),
        dict(leak="L1", type="ogi", name="OGI"),
        dict(leak="L2", type="satellite", name="Sentinel-5P/TROPOMI - ESA"),
        dict(leak="L3", type="scada", name="SCADA", rate=np.nan),
        dict(leak="L3", type="aerial", name="GAO", rate=12.0, unc=3.0),
        dict(leak="L4", type="satellite", name="EMIT - NASA"),
    ])
    r = estimate_rates(d)
    assert r.index.tolist() == ["L1", "L2", "L3", "L4"]
    for lk in ("L1", "L2", "L4"):
        assert not bool(r.loc[lk, "rate_quantified"])
        assert r.loc[lk, "n_quantified"] == 0
        assert np.isfinite(r.loc[lk, "est_rate_kg_h"]) and r.loc[lk, "log_sigma"] > 0.5
    # the most sensitive sensor that saw a leak sets how small it can be: OGI < EMIT < TROPOMI
    assert r.loc["L1", "est_rate_kg_h"] < r.loc["L4", "est_rate_kg_h"] < r.loc["L2", "est_rate_kg_h"]
    assert bool(r.loc["L3", "rate_quantified"]) and r.loc["L3", "est_rate_kg_h"] == pytest.approx(12.0)


# --------------------------------------------------------------------------------------------- features


def test_leak_features_counts_and_times(dets):
    d = dets([
        dict(leak="L1", type="aerial", name="GAO", day=0, conf=0.9),
        dict(leak="L1", type="aerial", name="GAO", day=4, conf=0.7),
        dict(leak="L1", type="scada", name="SCADA", day=6, conf=0.2),
        dict(leak="L2", type="ogi", name="OGI", day=1),
    ])
    f = _features(d, T0 + pd.Timedelta(days=10))
    assert set(FEATURES) <= set(f.columns)
    assert f.loc["L1", ["n_detections", "n_sources", "n_source_types", "n_aerial", "n_scada", "n_ogi"]].tolist() == [
        3, 2, 2, 2, 1, 0]
    assert f.loc["L1", "mean_confidence"] == pytest.approx(0.6)
    assert f.loc["L1", "max_confidence"] == pytest.approx(0.9)
    assert f.loc["L1", "days_since_last"] == pytest.approx(4.0)
    assert f.loc["L1", "span_days"] == pytest.approx(6.0)
    assert f.loc["L2", "days_since_last"] == pytest.approx(9.0)


def test_leak_features_does_not_modify_its_input(dets):
    d = dets([dict(leak="L1", name="GAO", rate=5.0), dict(leak="L1", type="scada", day=2), dict(leak="L2")])
    before = d.copy(deep=True)
    _features(d, T0 + pd.Timedelta(days=3))
    pd.testing.assert_frame_equal(d, before)


# --------------------------------------------------------------------------------------------- cold start


@pytest.fixture
def scorer():
    return ColdStartScorer().fit()


def _X(**kw) -> pd.DataFrame:
    """One leak's feature row: zero everywhere unless given."""
    row = dict.fromkeys(FEATURES, 0.0)
    row.update(kw)
    return pd.DataFrame([row], index=pd.Index(["L1"], name="leak_id"))


def _logit(p):
    return math.log(p / (1 - p))


def test_cold_start_probability_matches_its_formula(scorer):
    prec = {t: v["precision"] for t, v in load_instruments()["source_types"].items()}
    X = _X(n_aerial=2, n_scada=1, confidence_evidence=0.4, days_since_last=30.0, log_rate=math.log(10))
    z0 = _logit(PRIOR_REAL)
    z_real = (z0 + (_logit(prec["aerial"]) - z0 + 0.5 * math.log(2)) + (_logit(prec["scada"]) - z0)
              + CONFIDENCE_WEIGHT * 0.4)
    expected = _sigmoid(z_real) * math.exp(-30 / PERSISTENCE_DAYS)  # P(real) × P(still emitting)
    assert scorer.predict_proba(X)[0, 1] == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize(("rate", "days"), [(1.0, 180.0), (100.0, 180.0), (1000.0, 30.0), (20000.0, 30.0),
                                            (math.sqrt(100 * 1000), math.sqrt(180 * 30))])
def test_large_emissions_are_expected_to_stop_sooner(rate, days):
    assert persistence_days(np.array([rate]))[0] == pytest.approx(days, rel=1e-12)


def test_cold_start_contributions_sum_exactly_to_the_logit(dets, scorer):
    d = dets([
        dict(leak="L1", type="aerial", name="GAO", day=0, conf=0.9),
        dict(leak="L1", type="satellite", name="EMIT", day=2, conf=0.5, rate=300.0),
        dict(leak="L1", type="scada", name="SCADA", day=3, conf=0.3),
        dict(leak="L2", type="continuous_monitor", name="FenceCMS", day=1),
        dict(leak="L2", type="continuous_monitor", name="FenceCMS", day=8, rate=2.0),
        dict(leak="L3", type="ogi", name="OGI", day=9, conf=0.95),
    ])
    X = _features(d, T0 + pd.Timedelta(days=20))
    c = scorer.contributions(X)
    logit = scorer.base_ + c.sum(axis=1).to_numpy()
    assert np.allclose(logit, scorer.decision_function(X), rtol=0, atol=1e-12)
    proba = scorer.predict_proba(X)
    assert np.allclose(proba[:, 1], _sigmoid(logit), rtol=0, atol=1e-12)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba[:, 1] > 0) & (proba[:, 1] < 1)).all()


def test_cold_start_does_not_modify_its_input(dets, scorer):
    X = _features(dets([dict(leak="L1", type="aerial", name="GAO"), dict(leak="L2", type="scada", name="S")]))
    before = X.copy(deep=True)
    scorer.contributions(X)
    scorer.predict_proba(X)
    pd.testing.assert_frame_equal(X, before)


@pytest.mark.parametrize("extra_type", SOURCE_TYPES)
def test_a_second_independent_sensor_raises_p(dets, scorer, extra_type):
    """Corroboration by another kind of sensor is evidence for a leak, never against it."""
    base = [dict(leak="L1", type="aerial", name="GAO", day=0)]
    if extra_type == "aerial":
        extra = dict(leak="L1", type="aerial", name="OtherPlane", day=0)
    else:
        extra = dict(leak="L1", type=extra_type, name=f"{extra_type}-feed", day=0)
    one = scorer.predict_proba(_features(dets(base)))[0, 1]
    two = scorer.predict_proba(_features(dets(base + [extra])))[0, 1]
    assert two > one


def test_an_older_last_sighting_lowers_p(scorer):
    p = [scorer.predict_proba(_X(n_satellite=1, days_since_last=k, log_rate=math.log(50)))[0, 1]
         for k in (0, 10, 60, 200)]
    assert p == sorted(p, reverse=True) and len(set(p)) == 4


def test_silence_of_sensors_that_kept_looking_lowers_p(scorer):
    p = [scorer.predict_proba(_X(n_satellite=1, days_since_last=10.0, log_p_silence=v))[0, 1]
         for v in (0.0, -0.5, -2.0)]
    assert p == sorted(p, reverse=True) and len(set(p)) == 3


@pytest.mark.parametrize(
    ("score", "overdue", "band"),
    [(20.0, False, "HIGH"), (19.999, False, "MEDIUM"), (2.0, False, "MEDIUM"), (1.999, False, "LOW"),
     (0.0, False, "LOW"), (0.1, True, "HIGH"), (5000.0, False, "HIGH")],
)
def test_risk_band_thresholds(score, overdue, band):
    assert risk_band(np.array([score]), np.array([overdue])).tolist() == [band]


def test_risk_band_without_overdue_information():
    assert risk_band(np.array([25.0, 3.0, 0.5])).tolist() == ["HIGH", "MEDIUM", "LOW"]


def test_priority_is_expected_methane_plus_bounded_urgency():
    p, rate = np.array([0.5, 0.2, 1.0]), np.array([10.0, 100.0, 3.0])
    # p·rate + urgency·p·min(rate, 20 kg/h): a small overdue leak counts double, a large one gains at most p·20
    assert priority(p, rate, np.array([0.0, 0.5, 1.0])).tolist() == pytest.approx([5.0, 20.0 + 0.5 * 0.2 * 20, 6.0])
    assert priority(p, rate).tolist() == pytest.approx([5.0, 20.0, 3.0])
    assert URGENCY_CAP_KG_H == 20.0


def test_overdue_clock_does_not_lift_a_probably_stopped_super_emitter():
    # an overdue 1 t/h satellite leak that has probably stopped (p 0.02: 20 kg/h expected) against a probably
    # emitting 30 kg/h leak (p 0.9: 27 kg/h expected) with no clock: the expected methane decides
    p, rate, u = np.array([0.02, 0.9]), np.array([1000.0, 30.0]), np.array([1.0, 0.0])
    pr = priority(p, rate, u)
    assert pr[1] > pr[0]
    assert pr[0] == pytest.approx(20.0 + 0.02 * 20.0)
    # but between comparable expected methane the clock decides: urgency never lowers a priority
    p2, rate2 = np.array([0.9, 0.9]), np.array([30.0, 31.0])
    pr2 = priority(p2, rate2, np.array([1.0, 0.0]))
    assert pr2[0] > pr2[1]
    assert np.all(priority(p, rate, u) >= priority(p, rate))


# --------------------------------------------------------------------------------------------- explain


def _f(**kw) -> pd.Series:
    base = {f"n_{t}": 0 for t in SOURCE_TYPES}
    base.update({"n_sources": 1, "n_detections": 1, "days_since_last": 0.0, "mean_confidence": np.nan,
                 "est_rate_kg_h": 120.0, "rate_lo_kg_h": 80.0, "rate_hi_kg_h": 180.0, "rate_quantified": True})
    base.update(kw)
    return pd.Series(base, dtype=object)


def test_reasons_say_independent_sensors_when_several_saw_it():
    f = _f(n_sources=3, n_satellite=1, n_aerial=2, n_scada=1, days_since_last=12.4)
    c = pd.Series({"satellite": 1.4, "aerial": 2.8, "scada": -0.4, "confidence": 0.0, "recency": -0.41})
    text = top_reasons(f, c)
    assert "seen by 3 independent sensors (satellite, aircraft, SCADA alarm)" in text
    assert "last seen 12 days ago" in text
    assert text.endswith("~120 kg/h (±50)")
    assert text.count("independent sensors") == 1


def test_reasons_for_a_single_sensor_do_not_claim_corroboration():
    f = _f(n_sources=1, n_aerial=2, n_detections=2, days_since_last=0.2)
    c = pd.Series({"aerial": 2.8, "confidence": 0.0, "recency": -0.01})
    text = top_reasons(f, c)
    assert "independent" not in text
    assert text.startswith("2 aircraft detections")
    assert "last seen" not in text  # a negligible term is not a reason


def test_reasons_keep_at_most_k_terms_then_the_rate():
    f = _f(n_sources=1, n_aerial=1, days_since_last=40.0, mean_confidence=0.9)
    c = pd.Series({"aerial": 2.4, "recency": -1.33, "confidence": 0.6})
    parts = top_reasons(f, c, k=2).split("; ")
    assert parts == ["1 aircraft detection", "last seen 40 days ago", "~120 kg/h (±50)"]


@pytest.mark.parametrize(
    ("est", "lo", "hi", "quantified", "expected"),
    [
        (120.0, 80.0, 180.0, True, "~120 kg/h (±50)"),
        (2500.0, 1000.0, 4000.0, True, "~2,500 kg/h (±1,500)"),
        (3.0, 2.0, 5.0, True, "~3.0 kg/h (±1.5)"),
        (500.0, 184.0, 1359.0, False, "not quantified (~500 kg/h expected from what detected it)"),
    ],
)
def test_rate_phrase(est, lo, hi, quantified, expected):
    f = _f(est_rate_kg_h=est, rate_lo_kg_h=lo, rate_hi_kg_h=hi, rate_quantified=quantified)
    assert rate_phrase(f) == expected


# --------------------------------------------------------------------------------------------- persistence


def _row(**kw) -> pd.DataFrame:
    r = dict.fromkeys(FEATURES, 0.0)
    r.update(kw)
    return pd.DataFrame([r])


def test_silence_is_also_evidence_that_the_detection_was_false():
    """Three states (false, real but stopped, real and emitting): a false detection is never seen again, so a
    long silence lowers P(find) below P(real) × P(emitting | real, silence)."""
    m = ColdStartScorer().fit()
    row = _row(n_satellite=1.0, days_since_last=30.0, log_rate=math.log(50.0), log_p_silence=math.log(0.1))
    p = float(m.predict_proba(row)[0, 1])
    c = m.contributions(row).iloc[0]
    p_real = float(_sigmoid(m.base_ + c[[*SOURCE_TYPES, "isolated", "confidence"]].sum()))
    surv = math.exp(-30.0 / PERSISTENCE_DAYS)
    p0, p0s = 0.1, (1 - 0.1) / -math.log(0.1)
    expected = p_real * surv * p0 / (p_real * surv * p0 + p_real * (1 - surv) * p0s + (1 - p_real))
    assert p == pytest.approx(expected, rel=1e-9)
    two_state = p_real * surv * p0 / (surv * p0 + (1 - surv) * p0s)
    assert p < two_state
    # without silence nothing changes: P(find) = P(real) × survival
    quiet = row.assign(log_p_silence=0.0)
    assert float(m.predict_proba(quiet)[0, 1]) == pytest.approx(p_real * surv, rel=1e-9)


def test_contributions_stay_exact_at_extreme_probabilities():
    m = ColdStartScorer().fit()
    X = pd.concat([_row(n_aerial=1e9, n_ogi=1e9, n_satellite=1e9), _row(n_scada=1.0, days_since_last=3000.0,
                                                                       log_p_silence=-50.0, log_p_unrepaired=-5.0)])
    c = m.contributions(X)
    assert np.isfinite(c.to_numpy()).all()
    z = m.base_ + c.sum(axis=1).to_numpy()
    assert z[0] > 30 and z[1] < -30  # beyond what a probability clipped at 1e-12 could express


def test_an_ogi_find_starts_a_repair_clock(dets):
    """An OGI (LDAR) find is repaired within the regulatory 30 days, with a 10 % miss: P(unrepaired) falls
    linearly from 1 to 0.1 over the clock; a sighting after the find restarts the count from that sighting."""
    d = dets([dict(leak="L1", type="ogi", name="OGI", day=0.0),
              dict(leak="L2", type="ogi", name="OGI", day=0.0, dx=3000.0),
              dict(leak="L2", type="aerial", name="AirLidar", rate=20.0, day=20.0, dx=3000.0),
              dict(leak="L3", type="aerial", name="AirLidar", rate=20.0, day=0.0, dx=6000.0)])
    f = _features(d, T0 + pd.Timedelta(days=15))
    assert f.loc["L1", "log_p_unrepaired"] == pytest.approx(math.log(0.1 + 0.9 * 0.5))
    assert f.loc["L1", "days_since_ogi"] == pytest.approx(15.0)
    assert f.loc["L3", "log_p_unrepaired"] == 0.0 and np.isnan(f.loc["L3", "days_since_ogi"])
    f = _features(d, T0 + pd.Timedelta(days=40))
    assert f.loc["L1", "log_p_unrepaired"] == pytest.approx(math.log(0.1))
    # L2 was still emitting on day 20 (seen again): P(unrepaired on day 40 | unrepaired on day 20)
    assert f.loc["L2", "log_p_unrepaired"] == pytest.approx(math.log(0.1) - math.log(0.1 + 0.9 * (1 - 20 / 30)))
    m = ColdStartScorer().fit()
    c = m.contributions(f)
    assert c.loc["L1", "repair_clock"] < 0 and c.loc["L3", "repair_clock"] == pytest.approx(0.0, abs=1e-9)
    text = top_reasons(f.loc["L1"], c.loc["L1"])
    assert "found by an OGI survey 40 days ago: probably repaired since" in text


# --------------------------------------------------------------------------------------------- silence (issue 14)


def _monitor_days(leak, name, days, **kw):
    return [dict(leak=leak, type="continuous_monitor", name=name, sigma=150, asset="PAD-1", day=float(d), **kw)
            for d in days]


def _watching(name, start_day, end_day, state="watching"):
    return {"source_name": name, "source_type": "continuous_monitor", "asset_id": "PAD-1", "state": state,
            "detection_id": None, "start_at": T0 + pd.Timedelta(days=start_day),
            "end_at": T0 + pd.Timedelta(days=end_day)}


def test_silence_counts_from_the_leaks_last_sighting_not_each_sensors(dets, scorer):
    # monitor D saw the leak on days 0-9 and not since; A, B and C saw it every day up to day 30. As of
    # day 30.2, D's 20 days without it say nothing about the source having stopped (A-C saw it emit since)
    rows = _monitor_days("L1", "D", range(10))
    for name in "ABC":
        rows += _monitor_days("L1", name, range(31))
    d = dets(rows)
    f = _features(d, T0 + pd.Timedelta(days=30.2))
    assert f.loc["L1", "log_p_silence"] == 0.0 and f.loc["L1", "missed_looks"] == 0.0
    assert scorer.predict_proba(f)[0, 1] > 0.9
    later = _features(d, T0 + pd.Timedelta(days=40.2))  # then all four are silent for 10 days: that counts
    assert later.loc["L1", "log_p_silence"] < -6


def test_looks_are_counted_only_while_the_monitor_watched(dets):
    d = dets(_monitor_days("L1", "CMS", range(20)) + _monitor_days("L2", "CMS", range(0, 20, 2)))
    as_of = T0 + pd.Timedelta(days=30.5)
    silent = _features(d, as_of)
    offline = pd.DataFrame([_watching("CMS", 0, 19), _watching("CMS", 19, 30.5, "offline")])  # from its last alarm
    watching = pd.DataFrame([_watching("CMS", 0, 30.5)])
    f_off = _features(d, as_of, offline)
    f_watch = _features(d, as_of, watching)
    assert f_off.loc["L1", "missed_looks"] == 0.0 and f_off.loc["L1", "log_p_silence"] == 0.0  # it was offline
    assert f_watch.loc["L1", "missed_looks"] > 8  # 11 watched days without the daily leak
    # without coverage the feed's own reports are all there is: it reported nothing after day 19, so it is
    # taken to have stopped looking a day later (its longest gap), and the silence counts for less
    assert f_watch.loc["L1", "log_p_silence"] < silent.loc["L1", "log_p_silence"] < 0


def test_one_streams_silence_is_floored(dets, scorer):
    # however long one sensor watches in vain, its evidence is at most ln(SENSOR_OUTAGE)
    from mlpe_core.score.features import SENSOR_OUTAGE

    d = dets(_monitor_days("L1", "CMS", range(30)))
    f = _features(d, T0 + pd.Timedelta(days=400), pd.DataFrame([_watching("CMS", 0, 400)]))
    assert f.loc["L1", "log_p_silence"] == pytest.approx(math.log(SENSOR_OUTAGE), abs=1e-6)
