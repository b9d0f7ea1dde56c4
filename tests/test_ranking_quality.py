"""Ranking quality on simulated basins with ground truth (a fast version of benchmarks/ranking.py), and the
guarantees of the scorers: exact contributions, a rate model that keeps its uncertainty, a promotion rule
that refuses to decide on a tiny hold-out.

Thresholds are what was measured on these seeds with a margin (docs/scoring.md has the full benchmark):
1000-asset basins, seeds 0-2, mean share of the oracle's methane found by the top K (expected-methane
ranking p_real × rate): K=10 0.745 (baseline "largest reported rate first" 0.264), K=25 0.795 (0.709)
(measured before the three-state silence and the repair clock; the thresholds below still hold).
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpe_core import pipeline, store
from mlpe_core.learn import (
    MIN_HOLDOUT,
    LearnedScorer,
    RateModel,
    default_model,
    dumps,
    loads,
    outcome_labels,
    sensor_precision,
    train_candidate,
)
from mlpe_core.score import FEATURES, ColdStartScorer, leak_features, score_table
from mlpe_core.score.explain import reasons, top_reasons

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import ranking as bench  # noqa: E402

SEEDS = (0, 1, 2)
N_ASSETS = 1000


@pytest.fixture(scope="module")
def basins():
    out = []
    for seed in SEEDS:
        with contextlib.redirect_stderr(io.StringIO()):
            loaded = bench.load_basin(seed, n_assets=N_ASSETS)
        shares = {}
        leaks = store.leaks_frame(loaded.session)
        open_ = leaks[leaks["rank"].notna()]
        ids = open_["leak_id"].to_numpy()
        M, val, _ = bench.truth(loaded.session, loaded.basin, ids)
        expected = np.argsort(-(open_["p_real"] * open_["est_rate_kg_h"]).to_numpy(float), kind="stable")
        dets = store.detections_frame(loaded.session)
        maxrate = dets.groupby("leak_id")["rate_kg_h"].max().reindex(ids).fillna(-1.0).to_numpy()
        base = np.argsort(-maxrate, kind="stable")
        for k in (10, 25):
            o = bench.oracle(M, val, k)
            shares[("mlpe", k)] = bench.methane(M, val, expected[:k]) / o
            shares[("dispatched", k)] = bench.methane(M, val, np.arange(k)) / o
            shares[("base", k)] = bench.methane(M, val, base[:k]) / o
        X = leak_features(dets, leaks, dets["observed_at"].max())
        out.append({"loaded": loaded, "shares": shares, "X": X})
    return out


def _mean(basins, who, k):
    return float(np.mean([b["shares"][(who, k)] for b in basins]))


def test_cold_start_finds_more_methane_than_largest_rate_first(basins):
    assert _mean(basins, "mlpe", 10) >= 0.65
    assert _mean(basins, "mlpe", 10) >= _mean(basins, "base", 10) + 0.3
    assert _mean(basins, "mlpe", 25) >= 0.72
    assert _mean(basins, "mlpe", 25) >= _mean(basins, "base", 25) + 0.03
    # the dispatched order adds compliance urgency, which costs some methane but still beats the baseline
    assert _mean(basins, "dispatched", 10) >= _mean(basins, "base", 10) + 0.2


def test_cold_start_contributions_are_exact(basins):
    X = basins[0]["X"]
    m = default_model()
    c = m.contributions(X)
    logit = m.base_ + c.sum(axis=1).to_numpy()
    p = m.predict_proba(X)[:, 1]
    np.testing.assert_allclose(logit, m.decision_function(X), atol=1e-9)
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), p, atol=1e-9)
    assert {"recency", "silence", "confidence", "isolated"} <= set(c.columns)
    assert (c["silence"] <= 1e-12).all() and (c["recency"] <= 1e-12).all()  # time and silence only lower P


def test_learning_loop_trains_on_visits_and_keeps_round_two_near_the_oracle(basins):
    """Round 1 = top 36 + random 24; train; round 2 = next 60. Measured on seeds 0 and 1 (1000 assets) on the
    issue-14 simulator (real-like monitors): both promoted on an 18-visit hold-out; round 2 found 143 kg/h of
    the oracle's 143.5 with training (134 without) on seed 0, and 110 of 131 (84 %, the same as without) on
    seed 1; seed 2 (not tested here) 93 of 103 with, 77 without. Before issue 14 (the former simulator) the
    cold start's round 2 found 99.7 % and 97.8 %. A hold-out that small is noisy (docs/scoring.md)."""
    results = [bench.learning_loop(b["loaded"], seed, n_round=60, diagnose=False)
               for b, seed in zip(basins[:2], SEEDS[:2], strict=True)]
    for r in results:
        said = f"on the {r['holdout']} visits since" in r["decision"] and "neither had seen" in r["decision"]
        assert said or "field outcomes are newer" in r["decision"]
        assert r["round2_with"] >= 0.8 * r["round2_oracle"]
        if not r["promoted"]:
            assert r["round2_with"] == pytest.approx(r["round2_without"])
    for b, r in zip(basins[:2], results, strict=True):  # the store scores with what the gate decided
        model, _ = pipeline.current_model(b["loaded"].session)
        if r["promoted"]:
            assert isinstance(model, LearnedScorer)
            assert 1 <= model.n_trees_ <= model.n_estimators  # tree count chosen by cross-validation
        else:
            assert isinstance(model, ColdStartScorer)


@pytest.fixture(scope="module")
def labelled(basins):
    """Features and outcomes of the visits the loop recorded on the first basin."""
    loaded = basins[0]["loaded"]
    vals = store.validations_frame(loaded.session)
    if vals.empty:
        pipeline.simulate_visits(loaded.session, loaded.basin, n_visits=60, seed=0, p_no_access=0.0)
        vals = store.validations_frame(loaded.session)
    dets = store.detections_frame(loaded.session)
    X = leak_features(dets, store.leaks_frame(loaded.session, active_only=False), dets["observed_at"].max())
    lab = outcome_labels(vals)
    lab = lab[lab.index.isin(X.index)]
    return X, lab, dets, vals


def test_learned_contributions_are_exact(labelled):
    X, lab, _, _ = labelled
    m = LearnedScorer().fit(X.loc[lab.index], lab["y"].to_numpy())
    c = m.contributions(X)
    logit = m.base_ + c.sum(axis=1).to_numpy()
    np.testing.assert_allclose(logit, m.decision_function(X), atol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), m.predict_proba(X)[:, 1], atol=1e-6)
    assert set(FEATURES) <= set(c.columns) and "recency" in c.columns  # the prior's terms and the trees' SHAP


def test_rate_model_keeps_its_uncertainty(labelled):
    X, lab, _, _ = labelled
    # a crew measured every confirmed leak; make sure there are enough rates for the model (≥ 20)
    rng = np.random.default_rng(0)
    est = X.loc[lab.index, "est_rate_kg_h"].to_numpy(float)
    rates = np.where(np.isfinite(lab["measured_rate_kg_h"].to_numpy(float)), lab["measured_rate_kg_h"].to_numpy(float),
                     np.where(np.arange(len(lab)) % 2 == 0, 1.5 * est * np.exp(rng.normal(0, 0.5, len(lab))), np.nan))
    assert np.isfinite(rates).sum() >= 20
    m = LearnedScorer().fit(X.loc[lab.index], lab["y"].to_numpy(), rates)
    rm = m.rate_model_
    assert isinstance(rm, RateModel) and rm.n_ == int(np.isfinite(rates).sum())
    # cross-validated: never worse than no correction on the criterion the choice is made on (the mean absolute
    # error of ln rate, RateModel); its RMSE, sigma_, may then be a little above the uncorrected one
    assert rm.sigma_ > 0 and rm.cv_mae_[str(rm.alpha_)] <= rm.cv_mae_["None"] + 1e-12
    m2 = loads(dumps(m))  # the rate model travels inside the pickled scorer, so current_model returns it
    s, _ = score_table(X, m2)
    np.testing.assert_allclose(np.log(s["rate_hi_kg_h"] / s["est_rate_kg_h"]), rm.sigma_, rtol=1e-9)
    np.testing.assert_allclose(np.log(s["est_rate_kg_h"] / s["rate_lo_kg_h"]), rm.sigma_, rtol=1e-9)
    few = LearnedScorer().fit(X.loc[lab.index], lab["y"].to_numpy(), np.where(np.arange(len(rates)) < 5, rates, np.nan))
    assert few.rate_model_ is None  # fewer than 20 measured rates: the features' estimate is kept


def test_promotion_refused_when_too_few_outcomes_are_newer_than_the_live_model(labelled):
    X, lab, _, _ = labelled
    small = lab.sort_values("visited_at").head(40)
    if small["y"].nunique() < 2:
        pytest.skip("first 40 visits hold one outcome")
    through = small["visited_at"].iloc[-(MIN_HOLDOUT - 3)]  # the live model saw all but the newest few
    res = train_candidate(X, small, default_model(), current_through=through, current_name="v2")
    newer = int((pd.to_datetime(small["visited_at"], utc=True) > through).sum())
    assert 0 < newer < MIN_HOLDOUT
    assert res["promote"] is False and res["model"] is None
    assert res["decision"].startswith(f"not promoted: only {newer} field outcomes are newer")


def test_sensor_precision_counts_each_leak_once(labelled):
    _, _, dets, vals = labelled
    sp = sensor_precision(dets, vals)
    assert {"source_name", "checked", "precision", "precision_lo", "precision_hi"} <= set(sp.columns)
    assert (sp["checked"] == sp[["confirmed", "already_repaired", "not_found"]].sum(axis=1)).all()
    assert ((sp["precision_lo"] <= sp["precision"]) & (sp["precision"] <= sp["precision_hi"])).all()
    usable = vals[vals["outcome"] != "not_accessible"]["leak_id"].nunique()
    assert sp["checked"].max() <= usable


def test_reasons_name_the_sensors():
    f = pd.Series({"n_sources": 3, "n_detections": 5, "source_names": "PointSat, AirLidar, FenceCMS",
                   "days_since_last": 2.2, "est_rate_kg_h": 140.0, "rate_lo_kg_h": 105.0, "rate_hi_kg_h": 185.0,
                   "rate_quantified": True, "n_satellite": 2, "n_aerial": 1, "n_continuous_monitor": 2})
    c = pd.Series({"satellite": 2.0, "aerial": 1.5, "continuous_monitor": 0.4, "recency": -0.3, "silence": 0.0})
    text = top_reasons(f, c)
    assert text == "seen by 3 independent sensors (PointSat, AirLidar, FenceCMS); last seen 2 days ago; ~140 kg/h (±40)"
    assert reasons(pd.DataFrame([f]), pd.DataFrame([c])) == [text]


def test_cold_start_scorer_is_exact_on_hand_made_rows():
    X = pd.DataFrame({"n_satellite": [1, 0], "n_scada": [0, 1], "days_since_last": [1.0, 60.0],
                      "log_rate": [np.log(300.0), np.log(10.0)], "log_p_silence": [-2.0, 0.0],
                      "confidence_evidence": [0.5, -1.0]}, index=["a", "b"])
    m = ColdStartScorer().fit()
    c = m.contributions(X)
    np.testing.assert_allclose(m.base_ + c.sum(axis=1), m.decision_function(X), atol=1e-12)
    assert c.loc["a", "silence"] < 0 and c.loc["b", "silence"] == 0
