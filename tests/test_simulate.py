"""Tests of the simulated basin: determinism, the canonical contract, and that the truth is honest."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from mlpe_core.schema import ASSET_COLUMNS, CANONICAL_COLUMNS, SOURCE_TYPES
from mlpe_core.simulate import (
    COVERAGE_COLUMNS,
    FEED_NAMES,
    SOURCE_COLUMNS,
    TRUTH_COLUMNS,
    Basin,
    simulate_basin,
    write_basin,
)

SIGMA_M = {
    "WideSat": 40.0,
    "PointSat": 25.0,
    "CoarseSat": 5000.0,
    "AirLidar": 5.0,
    "FenceCMS": 150.0,
    "SCADA": 200.0,
    "OGI": 3.0,
}
SMALL = {"n_assets": 300, "n_days": 60}


@pytest.fixture(scope="module")
def small() -> Basin:
    return simulate_basin(seed=3, **SMALL)


@pytest.fixture(scope="module")
def full() -> Basin:
    """The default basin: ~0.1 s to build, large enough for statistical checks."""
    return simulate_basin(seed=0)


def _metres(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Local equirectangular distance in metres (good to <0.1% over a basin)."""
    lat1, lon1, lat2, lon2 = (np.asarray(v, dtype=float) for v in (lat1, lon1, lat2, lon2))
    dy = (lat2 - lat1) * 110_900.0
    dx = (lon2 - lon1) * 111_320.0 * np.cos(np.radians((lat1 + lat2) / 2))
    return np.hypot(dx, dy)


def _true_rows(basin: Basin, name: str) -> pd.DataFrame:
    """Detections of feed ``name`` caused by a real source, joined to that source."""
    truth = basin.truth[basin.truth["source_name"] == name]
    det = basin.feeds[name].merge(truth, on=["source_name", "detection_id"], validate="1:1")
    real = det[det["source_id"] != ""]
    return real.merge(basin.sources, on="source_id", suffixes=("", "_src"), validate="m:1")


def _false_fraction(basin: Basin, name: str) -> float:
    truth = basin.truth[basin.truth["source_name"] == name]
    return float((truth["source_id"] == "").mean())


def test_same_seed_gives_identical_frames() -> None:
    a, b = simulate_basin(seed=11, **SMALL), simulate_basin(seed=11, **SMALL)
    pd.testing.assert_frame_equal(a.assets, b.assets)
    pd.testing.assert_frame_equal(a.sources, b.sources)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert list(a.feeds) == list(b.feeds)
    for name in a.feeds:
        pd.testing.assert_frame_equal(a.feeds[name], b.feeds[name])
    assert a.as_of == b.as_of


def test_different_seed_gives_different_frames() -> None:
    a, b = simulate_basin(seed=1, **SMALL), simulate_basin(seed=2, **SMALL)
    assert not a.assets.equals(b.assets)
    assert not a.sources.equals(b.sources)
    assert not a.feeds["FenceCMS"].equals(b.feeds["FenceCMS"])


def test_frames_follow_the_contract(small: Basin) -> None:
    assert tuple(small.assets.columns) == ASSET_COLUMNS
    assert tuple(small.sources.columns) == SOURCE_COLUMNS
    assert tuple(small.truth.columns) == TRUTH_COLUMNS
    assert tuple(small.feeds) == FEED_NAMES
    start = pd.Timestamp("2026-06-01", tz="UTC")
    assert small.as_of == start + pd.Timedelta(days=60)
    for name, frame in small.feeds.items():
        assert tuple(frame.columns) == CANONICAL_COLUMNS, name
        assert len(frame) > 0, name
        assert set(frame["source_name"]) == {name}
        assert frame["source_type"].nunique() == 1
        assert frame["source_type"].iloc[0] in SOURCE_TYPES
        assert str(frame["observed_at"].dt.tz) == "UTC"
        assert frame["observed_at"].between(start, small.as_of).all(), name
        assert (frame["location_uncertainty_m"] == SIGMA_M[name]).all(), name
        assert frame[["latitude", "longitude", "confidence"]].notna().all().all(), name
        assert frame["confidence"].between(0, 1).all(), name


def test_assets_form_a_realistic_registry(full: Basin) -> None:
    assets = full.assets
    assert len(assets) == 2000
    assert assets["asset_id"].is_unique
    assert assets["asset_id"].iloc[0] == "A000000"
    share = assets["asset_type"].value_counts(normalize=True)
    assert 0.55 < share["well_pad"] < 0.65
    assert set(share.index) == {
        "well_pad",
        "tank_battery",
        "compressor_station",
        "processing_plant",
        "pipeline_valve",
    }
    assert set(assets["operator"]) == {"Op North", "Op South", "Op East", "Op West"}
    assert abs(assets["latitude"].mean() - 32.0) < 0.05
    assert abs(assets["longitude"].mean() + 102.5) < 0.05


def test_detection_ids_are_unique_per_feed(small: Basin) -> None:
    for name, frame in small.feeds.items():
        assert frame["detection_id"].is_unique, name
        assert frame["detection_id"].str.fullmatch(r"[A-Z]{3}-\d{7}").all(), name
    assert small.feeds["WideSat"]["detection_id"].iloc[0] == "WID-0000000"


def test_truth_covers_every_detection_exactly_once(small: Basin) -> None:
    keys = pd.concat([f[["source_name", "detection_id"]] for f in small.feeds.values()], ignore_index=True)
    assert len(small.truth) == len(keys)
    assert not small.truth.duplicated(["source_name", "detection_id"]).any()
    joined = keys.merge(small.truth, on=["source_name", "detection_id"], how="outer", indicator=True)
    assert (joined["_merge"] == "both").all()
    real = small.truth["source_id"][small.truth["source_id"] != ""]
    assert real.isin(small.sources["source_id"]).all()


def test_true_detections_happen_while_their_source_emits(full: Basin) -> None:
    slack = pd.Timedelta(seconds=1)
    for name in FEED_NAMES:
        rows = _true_rows(full, name)
        assert (rows["observed_at"] >= rows["start"] - slack).all(), name
        ended = rows["end"].notna()
        assert (rows.loc[ended, "observed_at"] <= rows.loc[ended, "end"] + slack).all(), name


@pytest.mark.parametrize("name", ["AirLidar", "PointSat", "WideSat", "OGI"])
def test_location_errors_are_consistent_with_sigma(name: str) -> None:
    rows = pd.concat([_true_rows(simulate_basin(seed=s, **SMALL), name) for s in range(4)])
    rows = pd.concat([rows, _true_rows(simulate_basin(seed=0), name)])
    assert len(rows) >= 10, name
    err = _metres(rows["latitude"], rows["longitude"], rows["latitude_src"], rows["longitude_src"])
    sigma = SIGMA_M[name]
    # Beyond 4 sigma has probability exp(-8) = 3e-4 for a 2-D Gaussian; beyond 5 sigma 4e-6.
    assert (err > 4 * sigma).sum() <= max(1, 0.002 * len(err)), name
    assert err.max() < 5 * sigma, name
    # 2-D Gaussian: the radial median is 1.177 sigma.
    assert 0.8 < np.median(err) / (1.177 * sigma) < 1.25, name


def test_site_level_feeds_name_the_right_asset(full: Basin) -> None:
    for name in ("FenceCMS", "SCADA", "OGI"):
        frame = full.feeds[name]
        assert frame["asset_id"].notna().all(), name
        assert frame["asset_id"].isin(full.assets["asset_id"]).all(), name
        rows = _true_rows(full, name)
        assert (rows["asset_id"] == rows["asset_id_src"]).all(), name
    for name in ("WideSat", "PointSat", "CoarseSat", "AirLidar"):
        frame = full.feeds[name]
        assert frame["asset_id"].isna().all(), name
        assert frame["wind_speed_m_s"].between(1, 8).all(), name
        assert (frame["rate_kg_h"] > 0).all(), name
        assert (frame["rate_uncertainty_kg_h"] > 0).all(), name


def test_scada_ogi_and_cms_specifics(full: Basin) -> None:
    scada, ogi, cms = full.feeds["SCADA"], full.feeds["OGI"], full.feeds["FenceCMS"]
    assert scada["rate_kg_h"].isna().all()
    assert ogi["rate_kg_h"].isna().all()
    assert scada["confidence"].between(0.2, 0.6).all()
    assert set(scada["event_type"]) <= {"pressure_drop", "tank_pressure_high", "compressor_vent"}
    assert (ogi["confidence"] == 0.9).all()
    assert ogi["event_type"].isna().all()
    assert (cms["event_type"] == "concentration_alert").all()
    per_day = cms.groupby([cms["asset_id"], cms["observed_at"].dt.floor("D")]).size()
    assert per_day.median() <= 3 and per_day.max() <= 15  # at most 3 periods a day, a few windows each
    big = cms[cms["rate_kg_h"] > 0.1]  # (values are rounded to 4 decimals)
    rel = (big["rate_uncertainty_kg_h"] / big["rate_kg_h"]).dropna()
    assert len(rel) and np.allclose(rel, 0.25, atol=2e-3)  # only the Sensirion-like vendor states an error
    assert 0.1 < _false_fraction(full, "FenceCMS") < 0.4
    assert 0.4 < _false_fraction(full, "SCADA") < 0.6
    assert _false_fraction(full, "OGI") < 0.1
    monitored = cms["asset_id"].nunique()
    assert monitored <= round(0.15 * len(full.assets))


def test_pointsat_false_positive_fraction_is_plausible(full: Basin) -> None:
    assert 0.05 < _false_fraction(full, "PointSat") < 0.3
    pooled = pd.concat([simulate_basin(seed=s, **SMALL).truth for s in range(5)])
    pooled = pooled[pooled["source_name"] == "PointSat"]
    assert len(pooled) >= 30
    assert 0.05 < float((pooled["source_id"] == "").mean()) < 0.3


def test_true_detections_are_more_confident_on_average(full: Basin) -> None:
    for name in ("PointSat", "FenceCMS", "AirLidar"):
        det = full.feeds[name].merge(full.truth, on=["source_name", "detection_id"])
        real = det["source_id"] != ""
        assert det.loc[real, "confidence"].mean() > det.loc[~real, "confidence"].mean() + 0.05, name
        if name != "AirLidar":  # (AirLidar has only a handful of false positives)
            # ...but the two populations overlap.
            assert det.loc[~real, "confidence"].max() > det.loc[real, "confidence"].median(), name


def test_sensitivity_follows_detection_limits(full: Basin) -> None:
    median_rate = {
        n: _true_rows(full, n)["rate_kg_h_src"].median() for n in ("AirLidar", "PointSat", "WideSat")
    }
    assert median_rate["AirLidar"] < median_rate["PointSat"] < median_rate["WideSat"]
    coarse = _true_rows(full, "CoarseSat")
    assert (coarse["rate_kg_h_src"] > 1000).all()


def test_sources_are_realistic(full: Basin) -> None:
    src = full.sources
    assert src["source_id"].is_unique
    assert src["source_id"].iloc[0] == "S00000"
    n_leaky = src["asset_id"].nunique()
    assert n_leaky == round(0.12 * len(full.assets))
    assert src["asset_id"].value_counts().max() >= 2
    merged = src.merge(full.assets, on="asset_id", suffixes=("", "_asset"))
    dist = _metres(
        merged["latitude"], merged["longitude"], merged["latitude_asset"], merged["longitude_asset"]
    )
    assert dist.max() <= 30.0
    rate = src["rate_kg_h"]
    assert 4 < rate.median() < 15
    assert 0.01 < (rate > 100).mean() < 0.1
    assert (rate > 1000).any()
    assert rate.max() <= 20000
    start = pd.Timestamp("2026-06-01", tz="UTC")
    assert (src["start"] > start).mean() > 0.2  # leaks that begin mid-period
    assert src["end"].notna().mean() > 0.1  # leaks repaired / stopped before as_of
    assert (src["end"].dropna() < full.as_of).all()
    assert (src["end"].dropna() > src["start"][src["end"].notna()]).all()
    assert (src["emitting_at_end"] == src["end"].isna()).all()
    assert ((src["intermittency"] > 0) & (src["intermittency"] < 1)).any()
    assert src["intermittency"].between(0, 1).all()


def test_some_assets_leak_again_after_a_repair(full: Basin) -> None:
    src = full.sources.sort_values("start")
    again = 0
    for _, group in src.groupby("asset_id"):
        if len(group) < 2:
            continue
        for _, first in group.iterrows():
            later = group["start"] > first["end"] + pd.Timedelta(days=30)
            again += int(pd.notna(first["end"]) and later.any())
    assert again >= 3


def test_spacing_scales_nearest_neighbour_distance() -> None:
    medians = {}
    for spacing in (150.0, 500.0):
        assets = simulate_basin(seed=5, n_assets=300, n_days=5, spacing_m=spacing).assets
        xy = np.column_stack(
            [
                assets["longitude"] * 111_320.0 * math.cos(math.radians(32.0)),
                assets["latitude"] * 110_900.0,
            ]
        )
        dist, _ = cKDTree(xy).query(xy, k=2)
        medians[spacing] = float(np.median(dist[:, 1]))
        assert 0.8 * spacing < medians[spacing] < 1.2 * spacing
    assert 0.25 < medians[150.0] / medians[500.0] < 0.36


def test_default_volume_loads_quickly(full: Basin) -> None:
    total = sum(len(f) for f in full.feeds.values())
    assert 5_000 <= total <= 15_000


def test_write_basin_round_trips(small: Basin, tmp_path) -> None:
    paths = write_basin(small, tmp_path / "basin")
    assert set(paths) == {"assets", "coverage", "truth_sources", "truth_detections", *FEED_NAMES}
    assert all(p.exists() and p.suffix == ".csv" for p in paths.values())
    assets = pd.read_csv(paths["assets"])
    assert tuple(assets.columns) == ASSET_COLUMNS
    assert len(assets) == len(small.assets)
    for name, frame in small.feeds.items():
        back = pd.read_csv(paths[name])
        assert tuple(back.columns) == CANONICAL_COLUMNS, name
        assert len(back) == len(frame), name
        assert back["detection_id"].tolist() == frame["detection_id"].tolist()
        when = pd.to_datetime(back["observed_at"], utc=True, format="ISO8601")
        assert (when.to_numpy() == frame["observed_at"].to_numpy()).all(), name
        assert np.allclose(back["latitude"], frame["latitude"])
        assert back["asset_id"].isna().sum() == frame["asset_id"].isna().sum(), name
    with open(paths["SCADA"]) as handle:
        header, first = handle.readline(), handle.readline()
    assert re.search(r",\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,", first)
    assert ",," in first  # blank rate cells
    assert header.strip() == ",".join(CANONICAL_COLUMNS)
    sources = pd.read_csv(paths["truth_sources"])
    assert len(sources) == len(small.sources)
    assert tuple(sources.columns) == SOURCE_COLUMNS
    assert sources["end"].isna().sum() == small.sources["end"].isna().sum()
    truth = pd.read_csv(paths["truth_detections"], keep_default_na=False)
    assert len(truth) == len(small.truth)
    assert (truth["source_id"] == "").sum() == (small.truth["source_id"] == "").sum()


# ------------------------------------------------------------------------------- real-like monitors (issue 14)


def test_monitor_positions_are_the_site_or_a_localised_source(full: Basin) -> None:
    rows = _true_rows(full, "FenceCMS")
    at_site = full.assets.set_index("asset_id").loc[rows["asset_id"]]
    site = (np.abs(rows["latitude"].to_numpy() - at_site["latitude"].to_numpy()) < 1e-6) & (
        np.abs(rows["longitude"].to_numpy() - at_site["longitude"].to_numpy()) < 1e-6)
    assert 0.3 < site.mean() < 0.9  # the vendors that do not localise report the site's point
    err = _metres(rows["latitude"], rows["longitude"], rows["latitude_src"], rows["longitude_src"])[~site]
    assert err.max() < 5 * 30.0 and 0.8 < np.median(err) / (1.177 * 30.0) < 1.25  # the others, 30 m 1-sigma


def test_coverage_windows_are_consistent(full: Basin) -> None:
    cov = full.coverage
    assert tuple(cov.columns) == COVERAGE_COLUMNS
    assert set(cov["state"]) <= {"detected", "watching", "offline"}
    assert (cov["end_at"] >= cov["start_at"]).all()
    det = cov[cov["state"] == "detected"]
    assert sorted(det["detection_id"]) == sorted(full.feeds["FenceCMS"]["detection_id"])  # one window per alarm
    # a monitor's watching windows never overlap its alarms or each other
    for _, g in cov[cov["state"] != "offline"].groupby("asset_id"):
        g = g.sort_values("start_at")
        w = g[g["state"] == "watching"]
        assert (w["start_at"].to_numpy()[1:] >= w["end_at"].to_numpy()[:-1]).all()
    assert cov["asset_id"].isin(full.feeds["FenceCMS"]["asset_id"]).mean() > 0.5


def test_a_sources_rate_changes_between_episodes_and_averages_its_rate() -> None:
    from mlpe_core.simulate import _EPISODE_LOG_SD, _episode_factors

    rng = np.random.default_rng(0)
    on = np.repeat(rng.random(600) < 0.5, 8)[None, :].repeat(200, axis=0)
    f = _episode_factors(np.random.default_rng(1), on, np.ones(200, bool))
    assert f.mean() == pytest.approx(1.0, abs=0.02)  # rate_kg_h is the time-average while emitting
    runs = np.r_[True, on[0, 1:] != on[0, :-1]].sum()
    assert len(np.unique(f[0])) == runs  # one factor per episode
    assert np.log(f).std() == pytest.approx(_EPISODE_LOG_SD, abs=0.03)


def test_monitor_readings_carry_the_vendors_measured_bias(full: Basin) -> None:
    rows = _true_rows(full, "FenceCMS")
    rows = rows[rows["rate_kg_h"].notna() & (rows["source_share"] >= 0.999)]
    ratio = rows["rate_kg_h"].sum() / rows["rate_kg_h_src"].sum()
    assert 0.06 < ratio < 0.5  # the real vendors' mean ratios are 0.06-0.32 (episodes vary around rate_kg_h)
