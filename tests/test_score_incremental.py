"""Issue 18: after an incremental fusion only the leaks it changed (and those their change can reach) are
re-scored, as of the scores' clock, and every open leak re-ranked; their scores are a full scoring's."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from sqlmodel import Session

from mlpe_core import desk, pipeline, store
from mlpe_core.store.models import AuditEvent

PICKS = 4
COLS = ["p_real", "est_rate_kg_h", "priority_score", "risk_band", "rank", "due_by", "band_reason", "top_reasons",
        "contributions"]


def _leaks(session: Session) -> pd.DataFrame:
    return store.leaks_frame(session).set_index("leak_id").sort_index()


def _new_detections(session: Session, path) -> None:
    """New sightings of known leaks (every kind of sensor, monitor readings naming their site) and a new source."""
    d = store.detections_frame(session)
    rng = np.random.default_rng(5)
    pick = d[d["leak_id"].notna()].sample(PICKS, random_state=3)
    t = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=2)
    rows = pd.DataFrame({
        "detection_id": [f"INC-{i}" for i in range(len(pick))],
        "source_type": pick["source_type"].to_numpy(), "source_name": pick["source_name"].to_numpy(),
        "observed_at": [(t - pd.Timedelta(minutes=int(m))).strftime("%Y-%m-%dT%H:%M:%SZ")
                        for m in rng.integers(0, 600, len(pick))],
        "latitude": pick["latitude"].to_numpy(), "longitude": pick["longitude"].to_numpy(),
        "location_uncertainty_m": pick["location_uncertainty_m"].to_numpy(),
        "rate_kg_h": np.round(pick["rate_kg_h"].fillna(5.0).to_numpy() * 1.1, 3),
        "asset_id": pick["asset_id"].to_numpy(),
    })
    far = rows.iloc[[0]].assign(detection_id="INC-far", source_type="aerial", source_name="AirLidar",
                                latitude=rows["latitude"].iloc[0] + 0.5, location_uncertainty_m=5.0, asset_id=None)
    pd.concat([rows, far]).to_csv(path, index=False)


@pytest.mark.slow
def test_incremental_scores_are_a_full_scorings_and_the_ranks_follow(tmp_path):
    db = tmp_path / "inc.db"
    eng = desk.engine(str(db))
    with Session(eng) as s:
        desk.demo(s, "demo", seed=4, n_assets=1000)
        fits = pipeline.last_score_fits(s)  # the demo's scoring fitted the sensors: re-scores reuse them
        assert fits and all(0 < c <= 1 and L > 0 for c, L in fits.values())
        new = tmp_path / "new.csv"
        _new_detections(s, new)
        desk.ingest(s, "system", [new])
        fz = desk.fuse(s, "system")
        assert fz["mode"] == "incremental" and fz["changed_leaks"]
        assert "changed_leaks" not in desk.runs(s, 1)["detail"].iloc[0]  # the run record stays small
        sc = desk.score(s, "system", changed=fz["changed_leaks"])
        assert sc["mode"] == "incremental" and 0 < sc["scored"] < len(_leaks(s))
        ev = s.execute(select(AuditEvent.detail).where(AuditEvent.action == "rescore")
                       .order_by(AuditEvent.id.desc())).first()
        rescored = set(json.loads(ev.detail)["leaks"])
        assert set(fz["changed_leaks"]) <= rescored
        inc = _leaks(s)
    eng.dispose()
    # the same store scored in full at the same as-of, with the sensor fits the re-score used (the last full
    # scoring's); refitted on the new detections they may move (a definition: docs/scoring.md)
    shutil.copy(db, tmp_path / "full.db")
    eng = desk.engine(str(tmp_path / "full.db"))
    with Session(eng) as s:
        pipeline.run_score(s, as_of=sc["as_of"], user="system", sensor_fits=fits)
        assert pipeline.last_score_fits(s) == fits
        full = _leaks(s)
    eng.dispose()
    assert list(inc.index) == list(full.index)
    r = sorted(rescored & set(inc.index))
    for c in COLS[:3]:
        np.testing.assert_allclose(inc.loc[r, c].astype(float), full.loc[r, c].astype(float), rtol=1e-9, atol=1e-12,
                                   err_msg=c)
    for c in COLS[3:]:
        assert inc.loc[r, c].tolist() == full.loc[r, c].tolist(), c
    # every open leak ranked from the stored priorities: a strict order, 1..n, by priority then p_real
    ranked = inc[inc["rank"].notna()].sort_values("rank")
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    pr = ranked["priority_score"].to_numpy()
    assert (np.diff(pr) <= 0).all()
    # the leaks not re-scored keep their scores: with them, the full scoring's ranks (when their scores agree)
    same = (inc["priority_score"] - full["priority_score"]).abs().fillna(0).le(1e-9) \
        & (inc["p_real"] - full["p_real"]).abs().fillna(0).le(1e-9)
    if same.all():
        assert inc["rank"].tolist() == full["rank"].tolist()


def test_a_full_score_still_scores_everything(tmp_path):
    eng = desk.engine(str(tmp_path / "f.db"))
    with Session(eng) as s:
        desk.demo(s, "demo", seed=2, n_assets=60)
        n = int(_leaks(s)["status"].isin(pipeline.OPEN_STATUSES).sum())
        sc = desk.score(s, "system")
        assert "mode" not in sc and sc["ranked"] == n
        # the ranking written is the one rule's (rank_order), the very ranking a re-score writes
        lk = store.leaks_frame(s, columns=["status", "priority_score", "p_real"])
        ranked = lk[lk["rank"].notna()].sort_values("rank")
        assert ranked["rank"].tolist() == list(range(1, n + 1))
        assert ranked["leak_id"].tolist() == pipeline.rank_order(lk).tolist()
    eng.dispose()


@pytest.mark.parametrize(("rows", "expected"), [
    # priority first, then P(real), then the leak id: a tie is broken the same way whatever the row order
    ([("L3", "open", 5.0, 0.5), ("L1", "open", 5.0, 0.5), ("L2", "open", 5.0, 0.9)], ["L2", "L1", "L3"]),
    ([("L1", "open", 1.0, 0.9), ("L2", "open", 2.0, 0.1)], ["L2", "L1"]),
    # closed leaks and leaks never scored are not ranked
    ([("L1", "repaired", 9.0, 0.9), ("L2", "open", None, None), ("L3", "open", 0.5, 0.2)], ["L3"]),
    ([], []),
])
def test_rank_order_is_one_rule(rows, expected):
    lk = pd.DataFrame(rows, columns=["leak_id", "status", "priority_score", "p_real"])
    before = lk.copy()
    assert pipeline.rank_order(lk).tolist() == expected
    assert pipeline.rank_order(lk.iloc[::-1]).tolist() == expected
    pd.testing.assert_frame_equal(lk, before)  # input not modified


@pytest.fixture(scope="module")
def demo_frames(tmp_path_factory) -> dict:
    """What scoring reads of a demo store (seed 4, 1,000 assets), built once for the tests that only read it.

    Its period ends on a fixed day and it is scored as of that day: the demo's default (ending today, scored as of
    now) made its few compliance clocks (0-2 of ~300 leaks) depend on the day and hour the tests ran."""
    eng = desk.engine(str(tmp_path_factory.mktemp("demo4") / "d.db"))
    with Session(eng) as s:
        pipeline.run_demo(s, seed=4, n_assets=1000, end="2026-12-05", user="demo")
        out = {"leaks": store.leaks_frame(s, columns=pipeline.SCORE_LEAK_COLUMNS),
               "dets": store.detections_frame(s, columns=pipeline.SCORE_DETECTION_COLUMNS),
               "assets": store.assets_frame(s), "notifications": store.notifications_frame(s),
               "validations": store.validations_frame(s), "coverage": store.coverage_frame(s),
               "as_of": pipeline.last_score_as_of(s)}
    eng.dispose()
    return out


@pytest.mark.slow
def test_a_leaks_clocks_need_only_the_detections_of_the_leaks_sharing_its_sites(demo_frames):
    """What score_frame(leak_ids=...) relies on: deadlines from the detections of ``site_scope`` are the full ones."""
    from mlpe_core.comply import deadlines, load_rules

    leaks, dets, as_of = demo_frames["leaks"], demo_frames["dets"], demo_frames["as_of"]
    kw = dict(assets=demo_frames["assets"], leaks=leaks, notifications=demo_frames["notifications"])
    vals, rules = demo_frames["validations"], load_rules()
    every = deadlines(dets, vals, rules, as_of, **kw)
    monitored = set(dets.loc[dets["source_type"].eq("continuous_monitor"), "leak_id"].dropna())
    assert len(every) and monitored
    rng = np.random.default_rng(0)
    n_clocks = 0
    ids = sorted(set(leaks["leak_id"]))
    clocked = set(every.index[every["due_by"].notna()])  # every leak with a clock is checked too
    for pick in [set(rng.choice(ids, 15, replace=False)) for _ in range(4)] + [set(sorted(monitored)[:20]), clocked]:
        part = deadlines(dets[dets["leak_id"].isin(pipeline.site_scope(leaks, dets, pick))], vals, rules, as_of, **kw)
        assert _norm(part, pick) == _norm(every, pick)
        n_clocks += int(every.reindex(sorted(pick))["due_by"].notna().sum())
    assert n_clocks  # some of the picked leaks have clocks


def _norm(df: pd.DataFrame, ids: set) -> list[tuple]:
    """Rows of ``ids`` as plain values (a missing row, NaN, NaT and None all None)."""
    df = df.reindex(sorted(ids)).astype(object)
    return [tuple(None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in row)
            for row in df.itertuples()]


@pytest.mark.slow
def test_features_of_some_leaks_are_those_of_every_leak(demo_frames):
    """leak_features(only=...): the rows from the leaks' own detections equal those computed with every leak."""
    from mlpe_core.score import leak_features

    leaks, dets, as_of, cov = demo_frames["leaks"], demo_frames["dets"], demo_frames["as_of"], demo_frames["coverage"]
    dets = dets[dets["leak_id"].notna()]
    every = leak_features(dets, leaks, as_of, cov)
    pick = set(np.random.default_rng(1).choice(sorted(every.index), 25, replace=False))
    some = leak_features(dets, leaks, as_of, cov, only=pick)
    assert set(some.index) == pick
    pd.testing.assert_frame_equal(some.sort_index(), every.loc[sorted(pick)], check_exact=True)
    # with the sensors' fits of the scoring of every leak, only those leaks' rates and looks are computed
    fits = every.attrs["sensor_fits"]
    assert fits and set(fits) == set(dets["source_name"].astype(str))
    local = leak_features(dets, leaks, as_of, cov, only=pick, fits=fits)
    pd.testing.assert_frame_equal(local.sort_index(), every.loc[sorted(pick)], check_exact=True)
    # and the fits are used: other fits give other look statistics
    moved = {k: (c / 2, L * 3) for k, (c, L) in fits.items()}
    other = leak_features(dets, leaks, as_of, cov, only=pick, fits=moved)
    assert not np.allclose(other["log_p_silence"].sort_index(), local["log_p_silence"].sort_index())


@pytest.mark.slow
def test_the_fusions_handed_over_frame_is_a_fresh_read_and_scores_the_same(tmp_path):
    """A watcher cycle (desk.process_new) reads the detections once: the incremental fusion hands its frame, with
    the leak ids it wrote, to the re-score. That frame is what a fresh read gives, and the scores are the same."""
    db = tmp_path / "base.db"
    eng = desk.engine(str(db))
    with Session(eng) as s:
        desk.demo(s, "demo", seed=4, n_assets=1000)
        new = tmp_path / "new.csv"
        _new_detections(s, new)
        desk.ingest(s, "system", [new])
    eng.dispose()
    shutil.copy(db, tmp_path / "read.db")
    eng = desk.engine(str(db))  # handed over: the watcher's and POST /detections?process=true's path
    with Session(eng) as s:
        fz = desk.fuse(s, "system", hand_over=True)
        frame = fz.pop("detections_frame")
        assert fz["mode"] == "incremental" and fz["refused"] < len(frame)
        assert "detections_frame" not in desk.runs(s, 1)["detail"].iloc[0]
        fresh = store.detections_frame(s, columns=pipeline.SCORE_EVERY_COLUMNS)
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), fresh)
        assert fresh["id"].isin(frame["id"]).all() and frame["leak_id"].notna().all()
        sc = desk.score(s, "system", changed=fz["changed_leaks"], dets=frame)
        assert sc["mode"] == "incremental" and sc["scored"] > 0
        handed = _leaks(s)
    eng.dispose()
    eng = desk.engine(str(tmp_path / "read.db"))  # read again by the score
    with Session(eng) as s:
        fz = desk.fuse(s, "system")
        assert "detections_frame" not in fz
        sc2 = desk.score(s, "system", changed=fz["changed_leaks"])
        assert sc2["scored"] == sc["scored"]
        read = _leaks(s)
    eng.dispose()
    assert list(handed.index) == list(read.index)
    pd.testing.assert_frame_equal(handed[COLS], read[COLS])

