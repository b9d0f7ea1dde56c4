"""The model gate is honest (issue 15): train → promote → score → train never grades the live model on visits it
was trained on, and training again on the same outcomes changes nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlmodel import Session

from mlpe_core import desk, pipeline, store
from mlpe_core.learn import MIN_HOLDOUT
from mlpe_core.outcomes import record_validations
from mlpe_core.store.db import get_engine

END = "2026-06-01T00:00:00Z"


@pytest.fixture(scope="module")
def trained():
    eng = get_engine("sqlite://")
    with Session(eng) as s:
        pipeline.run_demo(s, seed=0, n_assets=1200, end=END)
        first = pipeline.run_train(s, user="sup")
        again = pipeline.run_train(s, user="sup")
        n_versions = len(store.models_frame(s))
        if not first["promoted"]:  # a supervisor rolls forward to the candidate by hand: a learned model is live
            desk.activate_model(s, "sup", first["version"])
        live = store.active_model(s)
        # a fortnight later, a new round of visits (after everything any model has seen)
        rk = desk.ranking(s, desk.LeakFilter(ranked_only=True))
        new = rk.head(2 * MIN_HOLDOUT)
        rows = pd.DataFrame({"leak_id": new["leak_id"],
                             "visited_at": pd.Timestamp("2026-06-14T09:00Z") + pd.to_timedelta(range(len(new)), "h"),
                             "outcome": ["confirmed" if i % 3 else "not_found" for i in range(len(new))],
                             "measured_rate_kg_h": float("nan"), "component": None, "repaired_at": pd.NaT,
                             "crew": None, "notes": None})
        assert record_validations(s, rows, "lead")["recorded"] == len(new)
        third = pipeline.run_train(s, user="sup")
        models = store.models_frame(s)
        yield {"first": first, "again": again, "third": third, "n_versions": n_versions, "models": models,
               "live_through": json.loads(live.metrics)["trained_through"]}
    eng.dispose()


def test_training_again_on_the_same_outcomes_records_nothing(trained):
    assert trained["again"]["promoted"] is False
    assert "no new field outcome" in trained["again"]["decision"]
    assert trained["again"].get("version") is None
    assert trained["n_versions"] == 1 + (trained["first"].get("version") is not None)  # cold start + the first


def test_no_model_is_graded_on_visits_it_was_trained_on(trained):
    m = trained["models"]
    learned = m[m["kind"] == "learned"].sort_values("id")
    assert len(learned) >= 1
    for r in learned.itertuples():
        met = json.loads(r.metrics)
        seen_by_live = met.get("current_trained_through")
        if seen_by_live is not None:  # the live model saw visits up to here: the hold-out starts after
            assert met["holdout_from"] > seen_by_live, r.decision
    third = json.loads(learned.iloc[-1]["metrics"])
    assert third["current_trained_through"] == trained["live_through"] >= "2026-05-2"  # what the live model saw
    assert third["holdout_from"] > third["current_trained_through"]  # graded only on visits after what it saw
    assert "neither had seen" in trained["third"]["decision"]
