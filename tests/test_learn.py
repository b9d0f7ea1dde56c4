"""Learn: a candidate that is better is promoted, one that is not is not, and SHAP terms are exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpe_core.learn import (
    MIN_TRAIN,
    LearnedScorer,
    dumps,
    evaluate,
    loads,
    outcome_labels,
    train_candidate,
)
from mlpe_core.score import FEATURES

N = 90


def _table(n: int = N, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features where a crew finds a leak exactly when the leak was seen by aircraft (n_aerial > 0)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES,
                     index=pd.Index([f"L{i:06d}" for i in range(n)], name="leak_id"))
    X["n_aerial"] = rng.integers(0, 3, n).astype(float)
    y = (X["n_aerial"] > 0).astype(int).to_numpy()
    labels = pd.DataFrame({"visited_at": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), "h"),
                           "y": y, "measured_rate_kg_h": np.nan}, index=X.index)
    return X, labels


class _Constant:
    """A current model that predicts the same probability for every leak."""

    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, X):
        return np.column_stack([np.full(len(X), 1 - self.p), np.full(len(X), self.p)])


class _Backwards:
    """A deliberately bad current model: confident, and wrong about the one feature that matters."""

    def predict_proba(self, X):
        p = np.where(X["n_aerial"] > 0, 0.05, 0.95)
        return np.column_stack([1 - p, p])


class _Oracle:
    """A current model that cannot be beaten: it knows the rule."""

    def predict_proba(self, X):
        p = np.where(X["n_aerial"] > 0, 1 - 1e-9, 1e-9)
        return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def promoted():
    X, labels = _table()
    return X, labels, train_candidate(X, labels, _Backwards())


def test_a_better_candidate_is_promoted(promoted):
    X, _, res = promoted
    assert res["promote"] is True
    assert res["decision"].startswith("promoted")
    m = res["metrics"]
    assert m["candidate"]["brier"] < m["current"]["brier"]
    assert m["candidate"]["auc"] > 0.9
    assert m["n_train"] + m["n_holdout"] == N
    assert m["n_holdout"] == round(N * 0.3)
    assert isinstance(res["model"], LearnedScorer)
    assert len(res["data_hash"]) == 16
    p = res["model"].predict_proba(X)[:, 1]
    assert p[X["n_aerial"] > 0].min() > p[X["n_aerial"] == 0].max()


def test_a_candidate_that_cannot_beat_the_current_model_is_not_promoted():
    X, labels = _table(seed=1)
    res = train_candidate(X, labels, _Oracle())
    assert res["promote"] is False
    assert res["decision"].startswith("kept current")
    assert res["metrics"]["current"]["brier"] <= res["metrics"]["candidate"]["brier"]


@pytest.mark.parametrize("n", [0, 1, MIN_TRAIN - 1])
def test_too_few_validations_train_nothing(n):
    X, labels = _table()
    res = train_candidate(X, labels.iloc[:n], _Constant(0.5))
    assert (res["promote"], res["model"]) == (False, None)
    assert res["decision"].startswith("not trained")
    assert str(MIN_TRAIN) in res["decision"]


def test_one_outcome_only_trains_nothing():
    X, labels = _table()
    labels = labels.assign(y=1)
    res = train_candidate(X, labels, _Constant(0.5))
    assert (res["promote"], res["model"]) == (False, None)


def test_labels_without_features_do_not_count():
    X, labels = _table()
    res = train_candidate(X.iloc[: MIN_TRAIN - 5], labels, _Constant(0.5))
    assert res["model"] is None and f"{MIN_TRAIN - 5} usable" in res["decision"]


def test_learned_contributions_plus_base_equal_the_decision_function(promoted):
    X, _, res = promoted
    model = res["model"]
    c = model.contributions(X)
    assert set(FEATURES) <= set(c.columns) and c.index.equals(X.index)
    total = c.sum(axis=1).to_numpy() + model.base_
    # exact up to SHAP's float32 tree arithmetic (~1e-7 of the raw log-odds), which the Platt slope scales
    assert np.max(np.abs(total - model.decision_function(X))) < 1e-6 * max(1.0, model.a_)
    p = model.predict_proba(X)[:, 1]
    assert np.allclose(p, 1 / (1 + np.exp(-model.decision_function(X))))


def test_the_deciding_feature_gets_the_largest_contributions(promoted):
    X, _, res = promoted
    mean_abs = res["model"].contributions(X).abs().mean()
    assert mean_abs.idxmax() == "n_aerial"


def test_learned_model_survives_the_store_round_trip(promoted):
    X, _, res = promoted
    again = loads(dumps(res["model"]))
    assert np.array_equal(again.decision_function(X), res["model"].decision_function(X))


def test_learned_scorer_fit_does_not_modify_its_input():
    X, labels = _table(n=40, seed=2)
    before = X.copy(deep=True)
    LearnedScorer(n_estimators=20).fit(X, labels["y"].to_numpy())
    pd.testing.assert_frame_equal(X, before)


def _visits(rows):
    v = pd.DataFrame(rows, columns=["leak_id", "visited_at", "outcome", "measured_rate_kg_h", "repaired_at"])
    v["visited_at"] = pd.to_datetime(v["visited_at"], utc=True)
    v["repaired_at"] = pd.to_datetime(v["repaired_at"], utc=True)
    return v


def test_outcome_labels_use_the_first_usable_visit():
    v = _visits([
        ("L1", "2025-01-01T00:00:00Z", "not_accessible", None, None),
        ("L1", "2025-01-02T00:00:00Z", "confirmed", 4.0, "2025-01-03T00:00:00Z"),  # the crew repaired it
        ("L1", "2025-02-01T00:00:00Z", "already_repaired", None, None),  # its own follow-up: not a new label
        ("L2", "2025-01-05T00:00:00Z", "already_repaired", None, None),
        ("L3", "2025-01-06T00:00:00Z", "not_accessible", None, None),
        ("L4", "2025-01-07T00:00:00Z", "not_found", None, None),
        ("L4", "2025-02-07T00:00:00Z", "confirmed", 9.0, None),  # never seen again in between: same cycle
    ])
    lab = outcome_labels(v)
    assert lab["y"].to_dict() == {"L1": 1, "L2": 0, "L4": 0}  # not_accessible says nothing
    assert lab.loc["L1", "measured_rate_kg_h"] == 4.0
    assert lab.loc["L1", "visited_at"] == pd.Timestamp("2025-01-02T00:00:00Z")
    assert (lab["cycle"] == 0).all() and lab["leak_id"].tolist() == ["L1", "L2", "L4"]


def test_outcome_labels_start_a_new_cycle_when_the_leak_is_seen_again():
    v = _visits([
        ("L4", "2025-01-07T00:00:00Z", "not_found", None, None),
        ("L4", "2025-02-07T00:00:00Z", "confirmed", 9.0, "2025-02-08T00:00:00Z"),
        ("L4", "2025-02-20T00:00:00Z", "already_repaired", None, None),  # follow-up of cycle 1
        ("L4", "2025-04-01T00:00:00Z", "confirmed", 3.0, None),  # after a failed repair: cycle 2
    ])
    d = pd.DataFrame({"leak_id": ["L4", "L4", "L4"],
                      "observed_at": pd.to_datetime(["2025-01-01", "2025-01-20", "2025-03-01"], utc=True)})
    lab = outcome_labels(v, d)
    assert lab["y"].to_dict() == {"L4": 0, "L4#1": 1, "L4#2": 1}
    assert lab["cycle"].tolist() == [0, 1, 2] and (lab["leak_id"] == "L4").all()
    assert lab.loc["L4#2", "measured_rate_kg_h"] == 3.0
    # a sighting after a visit does not re-open the cycle for that visit, only for the next one
    late = d.assign(observed_at=pd.to_datetime(["2025-01-01T00:00:00Z", "2025-02-07T12:00:00Z", "2025-04-02T00:00:00Z"],
                                              utc=True))
    lab = outcome_labels(v, late)
    assert lab["y"].to_dict() == {"L4": 0, "L4#1": 0}
    assert lab.loc["L4#1", "visited_at"] == pd.Timestamp("2025-02-20T00:00:00Z")


def test_features_at_visits_use_only_what_was_known_before_the_visit(dets):
    from conftest import T0

    from mlpe_core.learn import features_at_visits
    from mlpe_core.score import leak_features

    d = dets([dict(leak="L1", type="aerial", name="AirLidar", rate=50.0, day=0.0),
              dict(leak="L1", type="aerial", name="AirLidar", rate=50.0, day=1.0),
              dict(leak="L1", type="aerial", name="AirLidar", rate=500.0, day=20.0),  # after the visit
              dict(leak="L2", type="satellite", name="Sat", rate=300.0, day=2.0, dx=5000.0)])
    leaks = pd.DataFrame({"leak_id": ["L1", "L2"], "radius_m": 5.0})
    v = _visits([("L1", T0 + pd.Timedelta(days=10), "confirmed", 40.0, None),
                 ("L2", T0 + pd.Timedelta(days=30), "not_found", None, None)])
    lab = outcome_labels(v, d)
    X = features_at_visits(d, leaks, lab)
    assert list(X.index) == ["L1", "L2"]
    assert X.loc["L1", "n_detections"] == 2  # the day-20 detection came after the visit
    from mlpe_core.ingest import instrument_defaults

    bias = instrument_defaults(pd.Series(["AirLidar"]), pd.Series(["aerial"]), "rate_bias").iloc[0]
    assert X.loc["L1", "est_rate_kg_h"] == pytest.approx(50.0 / bias)  # the 500 after the visit is not in it
    assert X.loc["L1", "days_since_last"] == pytest.approx(9.0)  # counted at the visit, not at the end
    assert X.loc["L2", "days_since_last"] == pytest.approx(28.0)
    ref = leak_features(d[d["observed_at"] < T0 + pd.Timedelta(days=10)], leaks, T0 + pd.Timedelta(days=10))
    assert X.loc["L1", "log_p_silence"] == pytest.approx(ref.loc["L1", "log_p_silence"])
    # a visit before the leak's first detection has nothing to rank by: left out
    early = _visits([("L2", T0 + pd.Timedelta(days=1), "not_found", None, None)])
    assert features_at_visits(d, leaks, outcome_labels(early, d)).empty


def test_the_hold_out_is_the_most_recent_visits_when_the_live_model_saw_none(promoted):
    _, labels, res = promoted
    m = res["metrics"]
    first_held = labels["visited_at"].sort_values().iloc[N - m["n_holdout"]]
    assert m["holdout_from"] == first_held.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert m["current_trained_through"] is None  # the current model saw no outcome: every visit can be held out
    # promoted: refitted on everything, so it was trained through the newest visit
    assert m["trained_through"] == labels["visited_at"].max().strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_live_model_is_never_graded_on_visits_it_was_trained_on():
    X, labels = _table()
    through = labels["visited_at"].iloc[N - 12]  # the live model saw all but the 11 newest visits
    res = train_candidate(X, labels, _Backwards(), current_through=through, current_name="v7")
    assert res["metrics"]["n_holdout"] == 11 and res["metrics"]["holdout_from"] > through.strftime("%Y-%m-%dT%H:%M")
    assert "11 visits since" in res["decision"]
    # fewer new visits than a fair comparison needs: nothing is decided, nothing is fitted
    few = train_candidate(X, labels, _Backwards(), current_through=labels["visited_at"].iloc[N - 4],
                          current_name="v7")
    assert few["model"] is None and few["promote"] is False
    assert "only 3 field outcomes are newer" in few["decision"] and "v7" in few["decision"]


def test_training_again_on_the_same_outcomes_changes_nothing(promoted):
    X, labels, res = promoted
    again = train_candidate(X, labels, res["model"], last_hash=res["data_hash"])
    assert again["model"] is None and again.get("unchanged") is True
    assert "no new field outcome" in again["decision"]


def test_evaluate_reports_brier_exactly():
    X, labels = _table(n=40)
    y = labels["y"].to_numpy()
    m = evaluate(_Constant(0.25), X, y)
    assert m["brier"] == pytest.approx(np.mean((0.25 - y) ** 2))
    assert m["n"] == 40 and m["base_rate"] == pytest.approx(y.mean())
    assert sum(b["n"] for b in m["calibration"]) == 40
