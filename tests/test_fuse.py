"""Fuse: tiny synthetic scenes with exactly known groupings, id carrying and asset attribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import T0, distance_m, offset, partition

from mlpe_core.fuse import LeakFuser, attribute_assets, carry_ids
from mlpe_core.fuse.geometry import _log_rate_and_sd
from mlpe_core.fuse.streams import (
    _best_phases,
    _burst_cuts,
    _rate_split,
    _sequential_ll,
    _silence_cuts,
    _split_evidence,
    _two_sources,
    _watched_axis,
)

A = [dict(dx=0, dy=0, day=0), dict(dx=3, dy=2, day=1), dict(dx=-2, dy=3, day=2)]
B = [dict(dx=500, dy=0, day=0), dict(dx=503, dy=-2, day=1), dict(dx=498, dy=2, day=2)]


def _fit(frame: pd.DataFrame, **kw) -> LeakFuser:
    return LeakFuser(**kw).fit(frame)


def test_two_tight_groups_500_m_apart_are_two_leaks(dets):
    f = _fit(dets(A + B))
    assert partition(f.labels_) == [0, 0, 0, 1, 1, 1]
    assert len(f.leaks_) == 2
    assert not f.ambiguous_.any()
    assert sorted(f.leaks_["n_detections"]) == [3, 3]


def test_coarse_detection_between_two_leaks_attaches_to_one_and_is_ambiguous(dets):
    scada = dict(dx=250, dy=0, day=1, sigma=200, type="scada")
    f = _fit(dets(A + B + [scada]))
    lab = partition(f.labels_)
    assert lab[:6] == [0, 0, 0, 1, 1, 1]  # it does not merge them
    assert lab[6] in (0, 1)
    assert f.ambiguous_.tolist() == [False] * 6 + [True]
    assert len(f.leaks_) == 2
    assert f.leaks_["n_ambiguous"].sum() == 1
    # an ambiguous detection does not pull the centre: both centres stay on their precise groups
    for k, dx in ((f.labels_[0], 0), (f.labels_[3], 500)):
        lat, lon = offset(dx, 1)
        row = f.leaks_.iloc[k]
        assert distance_m(row["latitude"], row["longitude"], lat, lon) < 5


def test_coarse_detection_naming_an_asset_attaches_to_that_assets_leak(dets):
    b_with_asset = [dict(d, type="ogi", asset="PAD-B") for d in B]
    # the alarm's position is much nearer A than B, but it names B's asset
    scada = dict(dx=200, dy=0, day=1, sigma=200, type="scada", asset="PAD-B")
    f = _fit(dets(A + b_with_asset + [scada]))
    assert partition(f.labels_) == [0, 0, 0, 1, 1, 1, 1]
    assert not f.ambiguous_[6]


def test_coarse_detection_with_no_precise_leak_stands_alone(dets):
    far = dict(dx=50_000, dy=0, day=1, sigma=5000, type="satellite")
    f = _fit(dets(A + [far]))
    assert partition(f.labels_) == [0, 0, 0, 1]
    assert len(f.leaks_) == 2


@pytest.mark.parametrize(("gap_days", "n_leaks"), [(200, 2), (30, 1)])
def test_same_spot_months_apart_is_two_events(dets, gap_days, n_leaks):
    rows = [dict(dx=0, day=0), dict(dx=2, day=1), dict(dx=1, dy=1, day=gap_days), dict(dy=2, day=gap_days + 1)]
    f = _fit(dets(rows), time_gap_days=60)
    assert len(f.leaks_) == n_leaks
    expected = [0, 0, 1, 1] if n_leaks == 2 else [0, 0, 0, 0]
    assert partition(f.labels_) == expected


def test_every_detection_gets_a_label(dets):
    rng = np.random.default_rng(7)
    rows = [dict(dx=float(x), dy=float(y), day=float(d), sigma=float(s), type=t)
            for x, y, d, s, t in zip(rng.uniform(-3000, 3000, 60), rng.uniform(-3000, 3000, 60),
                                     rng.uniform(0, 90, 60), rng.choice([3, 5, 25, 150, 200, 2500], 60),
                                     rng.choice(["ogi", "aerial", "satellite", "continuous_monitor", "scada"], 60),
                                     strict=True)]
    f = _fit(dets(rows))
    assert f.labels_.shape == (60,)
    assert f.labels_.min() == 0
    assert set(f.labels_) == set(range(len(f.leaks_)))  # contiguous, no empty leak
    assert f.leaks_["n_detections"].sum() == 60
    assert f.leaks_["n_detections"].tolist() == np.bincount(f.labels_).tolist()


def test_leak_centre_is_the_inverse_variance_weighted_mean(dets):
    f = _fit(dets([dict(dx=0, sigma=5), dict(dx=40, sigma=50, type="satellite")]))
    assert len(f.leaks_) == 1
    row = f.leaks_.iloc[0]
    w5, w50 = 1 / 5**2, 1 / 50**2
    expected_offset = 40 * w50 / (w5 + w50)  # 0.396 m east of the 5 m detection
    lat, lon = offset(expected_offset, 0)
    assert distance_m(row["latitude"], row["longitude"], lat, lon) < 0.02
    assert row["radius_m"] == pytest.approx(1 / np.sqrt(w5 + w50), rel=1e-9)


def test_leak_summary_counts_sources_types_and_times(dets):
    rows = [dict(dx=0, day=0, name="GAO"), dict(dx=2, day=3, name="GAO"), dict(dx=1, day=5, type="ogi", name="OGI")]
    f = _fit(dets(rows))
    row = f.leaks_.iloc[0]
    assert (row["n_detections"], row["n_sources"], row["source_types"]) == (3, 2, "aerial,ogi")
    assert row["first_seen"] == T0
    assert row["last_seen"] == T0 + pd.Timedelta(days=5)
    assert row["radius_m"] == pytest.approx(5 / np.sqrt(3))


def test_fit_does_not_modify_its_input(dets):
    X = dets(A + B + [dict(dx=250, sigma=200, type="scada", asset="PAD-B")])
    before = X.copy(deep=True)
    LeakFuser().fit(X)
    pd.testing.assert_frame_equal(X, before)


def test_fit_predict_equals_fit_labels(dets):
    X = dets(A + B)
    assert LeakFuser().fit_predict(X).tolist() == LeakFuser().fit(X).labels_.tolist()


# --------------------------------------------------------------------------------------------- site streams


def _fence(days, rate=2.0, dx=0.0, asset="PAD-1", cv=0.9):
    """Fence-line monitor alerts (150 m, naming the pad) at ``days``, all at ``rate`` kg/h."""
    rates = rate if np.ndim(rate) else [rate] * len(days)
    return [dict(dx=dx + (7 * i) % 40 - 20, dy=(11 * i) % 40 - 20, day=float(d), sigma=150, type="continuous_monitor",
                 name="FenceCMS", asset=asset, rate=float(r), unc=cv * float(r))
            for i, (d, r) in enumerate(zip(days, rates, strict=True))]


def test_silence_cuts_only_at_improbable_silences():
    daily = np.arange(40.0)
    assert _silence_cuts(daily, np.log(1e-6)) == []
    assert _silence_cuts(np.r_[daily[:20], daily[20:] + 3], np.log(1e-6)) == []  # a 4-day lull is ordinary
    assert _silence_cuts(np.r_[daily[:20], daily[20:] + 40], np.log(1e-6)) == [20]  # 41 days of silence is not
    assert _silence_cuts(np.array([0.0, 50.0, 51.0]), np.log(1e-6)) == []  # three reports prove nothing


def test_watched_clock_counts_only_the_time_a_sensor_watched():
    clock = _watched_axis(np.array([0.0, 1.0, 5.0, 9.0]), np.array([2.0, 3.0, 5.0, 10.0]))  # 0-3, a look at 5, 9-10
    look = 1.0 / 1440.0
    assert clock(np.array([-1.0, 0.0, 1.5, 3.0, 4.0, 5.0, 6.0, 9.5, 12.0])).tolist() == pytest.approx(
        [0, 0, 1.5, 3, 3, 3, 3 + look, 3.5 + look, 4 + look])


def test_a_burst_of_alarms_counts_as_one_sighting():
    # 20 days with 12 alarms each, a 6-day lull, 20 more days: counted by alarm the lull would look like a
    # 1-in-a-million silence (240 reports, exponential gaps); counted by day it is an ordinary lull
    days = np.r_[np.arange(20.0), np.arange(26.0, 46.0)]
    t = np.sort(np.concatenate([d + 0.3 + np.arange(12) / 60.0 for d in days]))
    assert _silence_cuts(t, np.log(1e-6)) != []
    assert _burst_cuts(t, np.log(1e-6)) == []
    far = np.r_[np.arange(20.0), np.arange(80.0, 100.0)] + 0.3  # 60 silent days: the source stopped
    assert _burst_cuts(far, np.log(1e-6)) == [20]


def test_a_silence_while_the_monitor_was_offline_is_no_silence():
    t = np.r_[np.arange(20.0), np.arange(80.0, 100.0)] + 0.3
    watched = _watched_axis(np.r_[np.arange(20.0), np.arange(80.0, 100.0)], np.r_[np.arange(1.0, 21.0),
                                                                                  np.arange(81.0, 101.0)])
    assert _burst_cuts(t, np.log(1e-6), watched) == []  # it reported nothing for 60 days: offline, not silent
    always = _watched_axis(np.array([0.0]), np.array([101.0]))
    assert _burst_cuts(t, np.log(1e-6), always) == [20]  # it watched all along and saw nothing


def _site_stream(days, rates, *, asset="PAD-1", name="CMS-A", scattered=True, cv=0.2):
    """A site monitor's alarms; ``scattered`` False gives every report the site's one point (no localisation)."""
    return [dict(dx=((7 * i) % 40 - 20) if scattered else 0.0, dy=((11 * i) % 40 - 20) if scattered else 0.0,
                 day=float(d), sigma=150, type="continuous_monitor", name=name, asset=asset, rate=float(r),
                 unc=cv * float(r)) for i, (d, r) in enumerate(zip(days, rates, strict=True))]


def test_a_stream_that_does_not_localise_is_not_split_by_rate(dets):
    # readings alternating between 10 and 400 kg/h, as a facility-level reporter of one source whose rate
    # the operator changes every hour (Stanford 2022): from one point, each reading is the site's total
    days = np.arange(120) / 4.0
    rates = np.where(np.arange(120) % 3 == 0, 400.0, 10.0)
    assert len(_fit(dets(_site_stream(days, rates, scattered=False))).leaks_) == 1
    assert len(_fit(dets(_site_stream(days, rates, scattered=True))).leaks_) == 2  # one that localises: two


def test_two_monitors_at_one_pad_with_different_scales_are_one_leak(dets):
    # two vendors watching one source at the same time, one reading 5x the other (their calibrations
    # differ by such factors on the Stanford 2022 stack): the same site at the same time is the same leak
    rng = np.random.default_rng(0)
    a = _site_stream(np.arange(0, 40, 0.5), 10 * np.exp(rng.normal(0, 0.2, 80)), name="CMS-A")
    b = _site_stream(np.arange(10, 50, 0.5), 50 * np.exp(rng.normal(0, 0.2, 80)), name="CMS-B")
    f = _fit(dets(a + b))
    assert len(f.leaks_) == 1 and not f.ambiguous_.any()


def test_two_sources_on_one_pad_one_after_the_other_are_two_leaks(dets):
    # the OGI leak is seen on day 10 while the monitor alerts daily; the monitor then falls silent for
    # 40 days and alerts again: a second source on the same pad, which only the monitor sees
    ogi = dict(dx=0, dy=0, day=10, sigma=3, type="ogi", asset="PAD-1")
    first, second = _fence(range(0, 30)), _fence(range(70, 100))
    f = _fit(dets([ogi, *first, *second]))
    assert partition(f.labels_) == [0] * 31 + [1] * 30
    assert not f.ambiguous_.any()


def test_one_source_with_an_ordinary_lull_stays_one_leak(dets):
    ogi = dict(dx=0, dy=0, day=10, sigma=3, type="ogi", asset="PAD-1")
    f = _fit(dets([ogi, *_fence([*range(0, 30), *range(34, 64)])]))
    assert partition(f.labels_) == [0] * 61


def test_a_site_alarm_joins_the_leak_active_at_its_time(dets):
    # two monitor runs (two sources, one after the other) and SCADA alarms, which report no rate:
    # each alarm belongs to the run it falls in, not to the bigger leak
    first, second = _fence(range(0, 40)), _fence(range(80, 100))
    scada = [dict(day=d, sigma=200, type="scada", name="SCADA", asset="PAD-1") for d in (5.5, 90.5, 30.5)]
    f = _fit(dets([*first, *second, *scada]))
    assert partition(f.labels_) == [0] * 40 + [1] * 20 + [0, 1, 0]


def test_interleaved_monitor_alerts_at_very_different_rates_are_two_sources(dets):
    # a 2 kg/h and a 300 kg/h source on one pad, both alerting all the time; measured rates (cv 30%)
    rng = np.random.default_rng(3)
    days = np.arange(40.0)
    big = np.arange(40) % 3 == 0
    rates = np.where(big, 300.0, 2.0) * np.exp(rng.normal(0, 0.29, 40))
    f = _fit(dets(_fence(days, rate=rates, cv=0.3)))
    assert partition(f.labels_) == partition(big.astype(int))
    assert len(f.leaks_) == 2


def test_monitor_alerts_at_one_rate_stay_one_source(dets):
    rng = np.random.default_rng(4)
    rates = 5.0 * np.exp(rng.normal(0, np.sqrt(np.log1p(0.81)), 120))
    f = _fit(dets(_fence(np.arange(120.0) / 2, rate=rates)))
    assert len(f.leaks_) == 1


def test_a_monitor_run_at_another_rate_does_not_join_the_plume_seen_there(dets):
    # a satellite saw 500 kg/h at the pad on day 20; the monitor reads about 1 kg/h all along: another
    # (small) source, so the run does not join the plume's leak
    sat = [dict(dx=0, day=20, sigma=25, type="satellite", name="SAT", rate=500.0, unc=175.0),
           dict(dx=10, day=21, sigma=25, type="satellite", name="SAT", rate=450.0, unc=160.0)]
    ogi = dict(dx=5, day=20.5, sigma=3, type="ogi", asset="PAD-1")
    f = _fit(dets([*sat, ogi, *_fence(range(0, 40), rate=1.0)]))
    assert partition(f.labels_) == [0, 0, 0] + [1] * 40


FENCE_SD = np.sqrt(np.log1p(0.81))  # log-space 1-sigma of a monitor rate with cv 90%


def _rated_stream(rates: np.ndarray, seed: int, sd: float = FENCE_SD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two alerts a day with the given true rates, measured with a lognormal error (the monitor's)."""
    rng = np.random.default_rng(seed)
    t = np.arange(len(rates)) / 2.0
    return t, np.log(rates) + rng.normal(0, sd, len(t)), np.full(len(t), sd)


def _misplaced(parts: list[np.ndarray], truth: np.ndarray) -> int:
    return int(sum(min(truth[p].sum(), (1 - truth[p]).sum()) for p in parts))


@pytest.mark.parametrize("n", [1, 2, 7, 30])
@pytest.mark.parametrize("seed", range(4))
def test_best_phases_is_the_exhaustive_optimum(n, seed):
    rng = np.random.default_rng(seed)
    l0, l1, lm = rng.normal(0, 1, (3, n))
    best = max(
        (l0[:c1].sum() if x == 0 else l1[:c1].sum()) + lm[c1:c2].sum() + (l0[c2:].sum() if y == 0 else l1[c2:].sum())
        for x in (0, 1) for y in (0, 1) for c1 in range(n + 1) for c2 in range(c1, n + 1)
    )
    got, c1, c2, x, y = _best_phases(l0, l1, lm)
    assert got == pytest.approx(best)
    again = (l0 if x == 0 else l1)[:c1].sum() + lm[c1:c2].sum() + (l0 if y == 0 else l1)[c2:].sum()
    assert again == pytest.approx(got)  # the phases returned are the ones that score it


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "truth",
    [
        np.r_[np.zeros(120), np.ones(120)],  # the rate goes up on day 60 for good
        np.r_[np.zeros(80), np.ones(60), np.zeros(100)],  # a higher rate from day 40 to day 70 only
        np.r_[np.ones(100), np.zeros(140)],  # the rate drops on day 50
    ],
    ids=["starts", "window", "stops"],
)
def test_a_stream_whose_rate_changes_between_episodes_stays_one_source(seed, truth):
    # issue 14: one site-level stream cannot tell a source that changed its rate from a second source that
    # took over; rate changes between episodes do not by themselves make leaks (100 against 5 kg/h, 3.9 sigmas)
    t, lr, sd = _rated_stream(np.where(truth == 1, 100.0, 5.0), seed)
    assert len(_rate_split(np.arange(len(t)), t, lr, sd, np.log(1e-6))) == 1


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("window", [False, True], ids=["all along", "days 40-70"])
def test_interleaved_rates_are_two_co_active_sources(seed, window):
    # the same two rates, but both reported in the same days, alternating: two sources on at once
    big = np.arange(240) % 3 == 0
    if window:
        big &= (np.arange(240) >= 80) & (np.arange(240) < 140)
    t, lr, sd = _rated_stream(np.where(big, 100.0, 5.0), seed)
    parts = _rate_split(np.arange(len(t)), t, lr, sd, np.log(1e-6))
    assert len(parts) == 2
    assert _misplaced(parts, big.astype(int)) <= 12  # of 240: a mixture of two rates 3.9 sigmas apart errs ~3 %


@pytest.mark.parametrize("seed", range(5))
def test_a_change_the_phases_find_is_still_one_source_when_sequential(seed):
    # 3 then 9 kg/h: the phased two-source model finds the change (a plain mixture cannot), but one source
    # changing its rate once explains it as well, so the stream stays whole
    truth = np.r_[np.zeros(120), np.ones(120)].astype(int)
    t, lr, sd = _rated_stream(np.where(truth == 1, 9.0, 3.0), seed)
    w = 1 / sd**2
    one = -0.5 * np.sum(w * (lr - np.average(lr, weights=w)) ** 2)
    plain, phased = _two_sources(lr, w)
    assert phased[0] - one > 40 > plain[0] - one
    assert phased[0] - _sequential_ll(lr, w, 6.9) < 13.8
    assert len(_rate_split(np.arange(len(t)), t, lr, sd, np.log(1e-6))) == 1


def test_sequential_model_finds_the_levels_of_a_staircase():
    y = np.repeat(np.log([2.0, 20.0, 200.0, 2000.0]), 30)
    w = np.full(len(y), 1 / FENCE_SD**2)
    assert _sequential_ll(y, w, 6.9) == pytest.approx(0.0)  # four exact levels, three changes
    assert _sequential_ll(y, w, np.inf) < -600  # no change allowed: one level


@pytest.mark.parametrize("seed", range(30))
def test_one_intermittent_source_is_never_split(seed):
    rng = np.random.default_rng(100 + seed)
    on = np.repeat(rng.random(60) < 0.5, 4)  # on and off in 2-day episodes
    t = np.flatnonzero(on) / 2.0
    lr = np.log(5.0) + rng.normal(0, FENCE_SD, len(t))
    assert len(_rate_split(np.arange(len(t)), t, lr, np.full(len(t), FENCE_SD), np.log(1e-6))) == 1


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kind", ["drifts x3", "heavy-tailed errors"])
def test_one_source_that_drifts_or_reads_wild_is_not_split(seed, kind):
    # 400 alerts of one source: its rate creeping up threefold over 200 days, or read with Student-t
    # errors (5 degrees of freedom, same variance) instead of the stated lognormal
    rng = np.random.default_rng(seed)
    t = np.arange(400) / 2.0
    if kind == "drifts x3":
        lr = np.log(5.0) + np.log(3.0) * t / t.max() + rng.normal(0, FENCE_SD, 400)
    else:
        lr = np.log(5.0) + rng.standard_t(5, 400) * FENCE_SD * np.sqrt(3 / 5)
    assert len(_rate_split(np.arange(400), t, lr, np.full(400, FENCE_SD), np.log(1e-6))) == 1


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("first", "steps", "per_step", "sd"),
    [
        (2.0, 4, 60, FENCE_SD),  # 2, 20, 200, 2000 kg/h one after another
        (5.0, 3, 80, FENCE_SD),  # 5, 50, 500 kg/h
        (5.0, 3, 80, np.sqrt(np.log1p(0.09))),  # the same read to 30 %: three tight groups far apart
    ],
    ids=["staircase of four", "three steps", "three steps, precise rates"],
)
def test_rates_one_after_another_are_one_source_to_one_stream(seed, first, steps, per_step, sd):
    # before issue 14 these were split into one part per step; a crew would not accept a change of rate at
    # a site as proof of a second source, and the Stanford 2022 stack changed its rate like this every hour
    truth = np.repeat(np.arange(steps), per_step)
    t, lr, sd = _rated_stream(first * 10.0**truth, seed, sd)
    assert len(_rate_split(np.arange(len(t)), t, lr, sd, np.log(1e-6))) == 1


def test_readings_quantised_to_two_values_still_split():
    # a monitor that reports whole kg/h bands: 34 alerts read exactly 5 and 6, interleaved, exactly 500
    big = np.isin(np.arange(40), [3, 9, 15, 21, 27, 33])
    y = np.where(big, np.log(500.0), np.log(5.0))
    parts = _rate_split(np.arange(40), np.arange(40.0), y, np.full(40, FENCE_SD), np.log(1e-6))
    assert sorted(len(p) for p in parts) == [6, 34]


def test_unrated_reports_go_with_the_source_active_at_their_time():
    # 5 kg/h all along, a 100 kg/h source alerting (every other alert) only from day 40 to day 70
    big = (np.arange(240) >= 80) & (np.arange(240) < 140) & (np.arange(240) % 2 == 0)
    t, lr, sd = _rated_stream(np.where(big, 100.0, 5.0), 0)
    unrated = [20, 200]  # outside the big source's time: only the small one is active
    lr[unrated] = np.nan
    parts = _rate_split(np.arange(len(t)), t, lr, sd, np.log(1e-6))
    assert len(parts) == 2
    small = next(p for p in parts if big[p].mean() < 0.5)
    assert set(unrated) <= set(small)
    assert _misplaced(parts, big.astype(int)) <= 4


def test_one_reading_stated_as_exact_does_not_stop_a_split():
    big = np.arange(80) % 2 == 1
    t, lr, _ = _rated_stream(np.where(big, 100.0, 5.0), 0)
    cv = np.r_[[0.9] * 5, 1e-6, [0.9] * 74]  # one meter wrote 0.0001 kg/h of uncertainty on 5 kg/h
    X = pd.DataFrame({"rate_kg_h": np.exp(lr), "rate_uncertainty_kg_h": np.exp(lr) * cv})
    lr2, sd2 = _log_rate_and_sd(X, X["rate_kg_h"].to_numpy())
    assert sd2.min() == pytest.approx(0.01)
    parts = _rate_split(np.arange(len(t)), t, lr2, sd2, np.log(1e-6))
    assert len(parts) == 2 and _misplaced(parts, big.astype(int)) <= 2


def test_the_quick_look_passes_every_stream_that_splits():
    # _split_evidence screens streams before the two-source fits; each changing stream above passes it
    # with room (half the split threshold is 6.9)
    for truth in (np.r_[np.zeros(120), np.ones(120)], np.r_[np.zeros(80), np.ones(60), np.zeros(100)]):
        for seed in range(5):
            _, lr, sd = _rated_stream(np.where(truth == 1, 9.0, 3.0), seed)
            assert _split_evidence(lr, 1 / sd**2) > 13.8


def test_two_runs_split_by_rate_never_share_a_leak(dets):
    # two aircraft fixes 8 m apart (one precise leak: 5 m fixes cannot separate them) and a monitor
    # alternating between 3 and 40 kg/h: two co-active sources, so its two runs stay two leaks
    fixes = [dict(dx=0, day=30, sigma=5, type="aerial", name="AIR", rate=3.0, unc=0.9, asset="PAD-1"),
             dict(dx=8, day=90, sigma=5, type="aerial", name="AIR", rate=40.0, unc=12.0, asset="PAD-1")]
    big = np.arange(240) % 3 == 0
    _, lr, _ = _rated_stream(np.where(big, 40.0, 3.0), 1)
    f = _fit(dets([*fixes, *_fence(np.arange(240) / 2.0, rate=np.exp(lr))]))
    fence = f.labels_[2:]
    assert len(set(fence)) == 2
    assert _misplaced([np.flatnonzero(fence == k) for k in set(fence)], big.astype(int)) <= 12  # of 240 (3 %)


def test_one_monitor_run_goes_whole_to_the_leak_whose_rate_it_matches(dets):
    # the monitor sees one 9 kg/h source all period (aircraft fix on day 30); the aircraft also found a
    # 2 kg/h source 40 m away on day 85. Sharing the run out by date would give the second leak every
    # alert after day 57; its rates say they are all the first source's
    fixes = [dict(dx=0, day=30, sigma=5, type="aerial", name="AIR", rate=9.0, unc=2.7, asset="PAD-1"),
             dict(dx=40, day=85, sigma=5, type="aerial", name="AIR", rate=2.0, unc=0.6, asset="PAD-1")]
    _, lr, _ = _rated_stream(np.full(240, 9.0), 2)
    f = _fit(dets([*fixes, *_fence(np.arange(240) / 2.0, rate=np.exp(lr))]))
    assert partition(f.labels_) == [0, 1] + [0] * 240


def test_when_rates_cannot_tell_two_fixes_apart_the_dates_share_out_the_run(dets):
    # two sources one after the other at the same rate, 40 m apart on one pad: aircraft fixes of the
    # first on days 5-20 and of the second on days 70-80; the monitor alerts through both lives
    fix = dict(sigma=5, type="aerial", name="AIR", rate=5.0, unc=1.5, asset="PAD-1")
    fixes = [dict(fix, dx=0, day=d) for d in (5, 10, 20)] + [dict(fix, dx=40, day=d) for d in (70, 80)]
    days = np.r_[np.arange(0, 40, 0.5), np.arange(45, 90, 0.5)]
    _, lr, _ = _rated_stream(np.full(len(days), 5.0), 3)
    f = _fit(dets([*fixes, *_fence(days, rate=np.exp(lr))]))
    first, second = f.labels_[0], f.labels_[3]
    assert first != second
    fence = f.labels_[5:]
    assert ((fence == first) == (days < 42)).mean() >= 0.99


def test_fusion_does_not_depend_on_row_order(dets):
    # two pads, each with a monitor whose rate changes and SCADA alarms, one aircraft fix
    rows = [dict(dx=0, day=30, sigma=5, type="aerial", name="AIR", rate=3.0, unc=0.9, asset="PAD-1")]
    for pad, dx, seed in (("PAD-1", 0, 1), ("PAD-2", 3000, 2)):
        truth = np.r_[np.zeros(60), np.ones(60)]
        _, lr, _ = _rated_stream(np.where(truth == 1, 30.0, 3.0), seed)
        rows += _fence(np.arange(120) / 2.0, rate=np.exp(lr), dx=dx, asset=pad)
        rows += [dict(dx=dx, day=d, sigma=200, type="scada", name="SCADA", asset=pad) for d in (3.5, 20.5, 45.5, 50.5)]
    X = dets(rows)
    base = LeakFuser().fit(X)
    for seed in range(5):
        p = np.random.default_rng(seed).permutation(len(X))
        got = LeakFuser().fit(X.iloc[p].reset_index(drop=True))
        back = np.empty(len(X), dtype=np.int64)
        back[p] = got.labels_
        assert partition(back) == partition(base.labels_)
        amb = np.empty(len(X), dtype=bool)
        amb[p] = got.ambiguous_
        assert (amb == base.ambiguous_).all()


# --------------------------------------------------------------------------------------------- carry_ids


def _s(d: dict) -> pd.Series:
    return pd.Series(d, dtype=object)


def test_carry_ids_keeps_ids_when_refusing_with_other_label_numbers():
    old = _s({"a": "L000001", "b": "L000001", "c": "L000002", "d": "L000002"})
    new = _s({"a": 1, "b": 1, "c": 0, "d": 0})
    assert carry_ids(old, new, {"L000001", "L000002"}) == {1: "L000001", 0: "L000002"}


def test_carry_ids_after_more_data_keeps_old_ids_and_numbers_new_leaks_on():
    old = _s({"a": "L000001", "b": "L000001", "c": "L000002", "x": np.nan, "y": np.nan})
    new = _s({"a": 0, "b": 0, "c": 1, "x": 1, "y": 2})  # x joins L000002, y is a new leak
    assert carry_ids(old, new, {"L000001", "L000002"}) == {0: "L000001", 1: "L000002", 2: "L000003"}


def test_new_ids_continue_after_the_highest_existing_id_even_a_retired_one():
    old = _s({"a": np.nan, "b": np.nan})
    new = _s({"a": 0, "b": 1})
    assert carry_ids(old, new, {"L000002", "L000041", "legacy-7"}) == {0: "L000042", 1: "L000043"}


def test_when_a_leak_splits_the_larger_part_keeps_the_id():
    old = _s({"a": "L000005", "b": "L000005", "c": "L000005"})
    new = _s({"a": 3, "b": 3, "c": 4})
    assert carry_ids(old, new, {"L000005"}) == {3: "L000005", 4: "L000006"}


def test_when_leaks_merge_one_id_survives_and_is_used_once():
    old = _s({"a": "L000001", "b": "L000002", "c": "L000002"})
    new = _s({"a": 0, "b": 0, "c": 0})
    assert carry_ids(old, new, {"L000001", "L000002"}) == {0: "L000002"}


# --------------------------------------------------------------------------------------------- attribute_assets


def _leak(radius=5.0):
    return pd.DataFrame({"latitude": [32.0], "longitude": [-102.0], "radius_m": [radius], "label": [0]})


def _assets(*spec):
    rows = []
    for aid, dx in spec:
        lat, lon = offset(dx, 0)
        rows.append({"asset_id": aid, "latitude": lat, "longitude": lon})
    return pd.DataFrame(rows)


def test_attribute_assets_picks_the_nearest_asset():
    out = attribute_assets(_leak(), _assets(("FAR", 200), ("NEAR", 20), ("MID", 60)))
    assert out["asset_id"].tolist() == ["NEAR"]
    cands = out["asset_candidates"].iloc[0]
    assert [c["asset_id"] for c in cands] == ["NEAR", "MID", "FAR"]
    assert [c["distance_m"] for c in cands] == pytest.approx([20, 60, 200], abs=0.2)
    ps = [c["p"] for c in cands]
    assert ps == sorted(ps, reverse=True) and sum(ps) == pytest.approx(1, abs=0.01)


def test_attribute_assets_uses_the_detections_votes():
    assets = _assets(("NEAR", 20), ("OTHER", 40))
    assert attribute_assets(_leak(), assets)["asset_id"].tolist() == ["NEAR"]
    votes = pd.DataFrame({"label": [0, 0, 0], "asset_id": ["OTHER"] * 3})
    assert attribute_assets(_leak(), assets, votes)["asset_id"].tolist() == ["OTHER"]


def test_attribute_assets_leaves_a_leak_far_from_every_asset_unattributed():
    out = attribute_assets(_leak(), _assets(("FAR", 5000)))
    assert out["asset_id"].tolist() == [None]
    assert out["asset_candidates"].tolist() == [[]]


def test_attribute_assets_with_no_registry():
    out = attribute_assets(_leak(), pd.DataFrame(columns=["asset_id", "latitude", "longitude"]))
    assert out["asset_id"].tolist() == [None]


# --------------------------------------------------------------------------------------------- incremental fusion


def _store(session, frame: pd.DataFrame) -> None:
    """Add detections (as from ``dets``) to the store, not yet fused."""
    from mlpe_core.store.models import Detection

    cols = ["detection_id", "source_type", "source_name", "observed_at", "latitude", "longitude",
            "location_uncertainty_m", "rate_kg_h", "rate_uncertainty_kg_h", "asset_id"]
    recs = frame[cols].astype(object).where(frame[cols].notna(), None).to_dict(orient="records")
    for r in recs:
        r["observed_at"] = pd.Timestamp(r["observed_at"]).to_pydatetime()
    session.add_all([Detection(**r) for r in recs])
    session.commit()


@pytest.fixture
def fuse_store(session, monkeypatch):
    """(session, fuse): ``fuse(**kw)`` runs ``run_fuse`` and returns (summary, ids of the detections it wrote)."""
    from mlpe_core import pipeline, store

    written: list = []
    real = store.save_fusion

    def spy(session_, det_ids, *a, **kw):
        written.append(set(map(int, det_ids)))
        return real(session_, det_ids, *a, **kw)

    monkeypatch.setattr(pipeline.store, "save_fusion", spy)

    def fuse(**kw):
        kw.setdefault("max_share", 1.0)  # these stores are tiny: any region is a large share of them
        written.clear()
        out = pipeline.run_fuse(session, **kw)
        return out, (written[0] if written else set())

    return session, fuse


def _fused_then_added(session, fuse, dets, new: dict) -> dict:
    """Store leaks A and B, fuse them, then store one ``new`` detection; returns the memberships before it."""
    _store(session, dets(A + B))
    fuse()
    before = _members(session)
    _store(session, dets([new]))
    return before


def _members(session) -> dict:
    from mlpe_core.store import detections_frame

    d = detections_frame(session)
    return dict(zip(d["detection_id"], d["leak_id"], strict=True))


def test_a_new_fix_5_m_from_a_leak_joins_it_and_keeps_its_id(fuse_store, dets):
    session, fuse = fuse_store
    _store(session, dets(A + B))
    first, _ = fuse()
    assert (first["mode"], first["leaks"]) == ("full", 2)
    before = _members(session)
    _store(session, dets([dict(dx=5, dy=0, day=3, id="new")]))
    out, written = fuse()
    after = _members(session)
    assert out["mode"] == "incremental" and out["new_detections"] == 1
    assert after["new"] == before["d0"]  # joined A under A's id
    assert {k: v for k, v in after.items() if k != "new"} == before
    assert written == {1, 2, 3, 7}  # A's three and the new fix; B untouched
    assert (out["refused"], out["leaks"], out["kept"], out["new"], out["retired"]) == (4, 2, 2, 0, 0)


def test_a_new_fix_5_km_away_is_a_new_leak_and_rewrites_nothing_else(fuse_store, dets):
    session, fuse = fuse_store
    before = _fused_then_added(session, fuse, dets, dict(dx=5000, dy=0, day=3, id="far"))
    out, written = fuse()
    after = _members(session)
    assert written == {7} and out["refused"] == 1
    assert after["far"] not in set(before.values())
    assert after["far"] == "L000003"
    assert {k: v for k, v in after.items() if k != "far"} == before
    assert (out["leaks"], out["kept"], out["new"]) == (3, 2, 1)


def test_a_region_over_the_share_limit_is_fused_in_full_and_says_so(fuse_store, dets):
    session, fuse = fuse_store
    before = _fused_then_added(session, fuse, dets, dict(dx=5, dy=0, day=3, id="new"))
    out, written = fuse(max_share=0.5)  # A's three and the new fix: 4 of 7
    assert out["mode"] == "full" and out["reason"] == "affected area 4 of 7 detections (> 50%)"
    assert written == set(range(1, 8)) and _members(session) == {**before, "new": before["d0"]}


def test_a_coarse_detection_covering_two_leaks_is_ambiguous_as_in_a_full_fusion(fuse_store, dets):
    from mlpe_core.store import detections_frame

    session, fuse = fuse_store
    before = _fused_then_added(session, fuse, dets, dict(dx=250, dy=0, day=1, sigma=200, type="scada", id="alarm"))
    out, written = fuse()
    d = detections_frame(session)
    after = dict(zip(d["detection_id"], d["leak_id"], strict=True))
    assert out["mode"] == "incremental" and written == set(range(1, 8))  # it could join either leak
    assert {k: v for k, v in after.items() if k != "alarm"} == before
    assert after["alarm"] in set(before.values())
    assert d.set_index("detection_id")["ambiguous"].to_dict() == {**{k: False for k in before}, "alarm": True}
    full = LeakFuser().fit(d)
    assert partition(full.labels_) == partition(d["leak_id"]) and full.ambiguous_.tolist() == d["ambiguous"].tolist()


def test_fusing_again_with_nothing_new_changes_nothing(fuse_store, dets):
    session, fuse = fuse_store
    _store(session, dets(A + B + [dict(dx=250, dy=0, day=1, sigma=200, type="scada")]))
    fuse()
    before = _members(session)
    out, written = fuse()
    assert (out["mode"], out["refused"], out["new_detections"]) == ("incremental", 0, 0)
    assert written == set() and _members(session) == before
    assert (out["leaks"], out["kept"], out["new"], out["retired"], out["ambiguous"]) == (2, 2, 0, 0, 1)


def test_full_is_forced_by_the_flag_and_by_new_settings(fuse_store, dets):
    session, fuse = fuse_store
    _store(session, dets(A + B))
    fuse()
    out, written = fuse(full=True)
    assert (out["mode"], out["reason"], out["refused"]) == ("full", "asked for", 6)
    out, _ = fuse(fuser=LeakFuser(time_gap_days=30))
    assert out["mode"] == "full" and "settings" in out["reason"]


@pytest.mark.parametrize("recorded", ["none", "other_version"])
def test_a_fusion_by_another_version_is_never_extended_incrementally(fuse_store, dets, monkeypatch, recorded):
    """A store fused by an older MLPE (no settings in its audit event) or by another FUSION_VERSION is
    re-fused in full: its leaks were grouped by other logic, and mixing them would break equivalence."""
    import json

    from sqlmodel import select

    from mlpe_core import fuse as fuse_pkg
    from mlpe_core import store
    from mlpe_core.store.models import AuditEvent

    session, fuse = fuse_store
    _store(session, dets(A + B))
    fuse()
    last = session.exec(select(AuditEvent).where(AuditEvent.action == "fuse")).all()[-1]
    detail = json.loads(last.detail)
    if recorded == "none":  # the audit trail is append-only: an older MLPE's fusion event comes after it
        detail.pop("settings")
        store.audit(session, "older-mlpe", "fuse", None, detail)
        session.commit()
    else:
        monkeypatch.setattr(fuse_pkg, "FUSION_VERSION", fuse_pkg.FUSION_VERSION + 1)  # what run_fuse records
    _store(session, dets([dict(dx=5, dy=0, day=3, id="new")]))
    out, written = fuse()
    assert out["mode"] == "full" and len(written) == 7
    assert out["reason"] == ("the last fusion recorded no settings (an older MLPE)" if recorded == "none"
                             else "fuser settings or version changed since the last fusion")
    out, _ = fuse()  # recorded now: the next fuse may be incremental again
    assert out["mode"] == "incremental" and out["refused"] == 0


def _split_basin(n_assets: int, how: str):
    from mlpe_core.simulate import simulate_basin

    b = simulate_basin(seed=2, n_assets=n_assets, n_days=90)
    d = pd.concat(list(b.feeds.values()), ignore_index=True)
    t = pd.to_datetime(d["observed_at"], utc=True)
    late = (t > t.quantile(0.5)).to_numpy() if how == "halves" else np.random.default_rng(1).random(len(d)) < 0.1
    d = pd.concat([d[~late], d[late]], ignore_index=True)  # the store's order: part 2 was ingested later
    d.insert(0, "id", np.arange(1, len(d) + 1))
    return b, d, int((~late).sum())


@pytest.mark.parametrize("how", ["halves", "random 10%"])
def test_incremental_fusion_equals_a_full_fusion_of_everything(how):
    from sklearn.metrics import adjusted_rand_score

    from mlpe_core.fuse import IncrementalFuser

    b, d, n1 = _split_basin(400, how)
    f1 = LeakFuser().fit(d.iloc[:n1], b.assets)
    d["leak_id"] = pd.Series([f"L{k:06d}" for k in f1.labels_] + [None] * (len(d) - n1), dtype=object)
    d["ambiguous"] = np.r_[f1.ambiguous_, np.zeros(len(d) - n1, bool)]
    inc = IncrementalFuser(max_share=1.0).fit(d, b.assets)  # never fall back: this tests the local re-fusion
    full = LeakFuser().fit(d, b.assets)
    assert not inc.full_ and inc.region_[n1:].all() and inc.region_.sum() < len(d)
    combined = np.where(inc.region_, pd.Series(inc.labels_).map("R{}".format), d["leak_id"])
    assert adjusted_rand_score(full.labels_, combined) == 1.0  # the same partition, exactly
    assert (inc.ambiguous_ == full.ambiguous_).all()
    # leaks outside the region are the full fusion's leaks, member for member
    out = ~inc.region_
    assert (pd.DataFrame({"old": d["leak_id"][out], "full": full.labels_[out]}).drop_duplicates()
            .pipe(lambda p: not p["old"].duplicated().any() and not p["full"].duplicated().any()))
    assert not np.isin(full.labels_[inc.region_], full.labels_[out]).any()
    # and the region's leak summaries are the full fusion's (same members, same order: same sums)
    key = pd.Series(full.labels_[inc.region_]).groupby(inc.labels_[inc.region_]).first()
    cols = ["latitude", "longitude", "radius_m", "n_detections", "n_ambiguous"]
    pd.testing.assert_frame_equal(inc.leaks_[cols], full.leaks_.iloc[key.to_numpy()][cols].reset_index(drop=True))


@pytest.mark.parametrize(("plume_rate", "two_leaks"), [(2800.0, True), (60.0, False), (None, False)])
def test_a_satellite_plume_far_off_the_leaks_rate_is_another_source(dets, plume_rate, two_leaks):
    """An aircraft pair at ~24 kg/h, then 70 days later a 40 m-pixel plume on the same spot: at 2.8 t/h
    (over 20× the fixes) it is another event; at 60 kg/h (2.5×) or unquantified it is the same leak."""
    fixes = [dict(dx=0, dy=0, day=0, rate=24.0), dict(dx=2, dy=1, day=1, rate=22.0)]
    plume = dict(dx=10, dy=-5, day=70, sigma=40, type="satellite", name="WideSat")
    if plume_rate is not None:
        plume["rate"] = plume_rate
    frame = dets(fixes + [plume])
    before = frame.copy()
    f = _fit(frame)
    assert partition(f.labels_) == ([0, 0, 1] if two_leaks else [0, 0, 0])
    pd.testing.assert_frame_equal(frame, before)  # input not modified
    assert partition(_fit(frame, max_rate_ratio=1e9).labels_) == [0, 0, 0]  # without the gate: one leak


# ------------------------------------------------------------------------------------ incremental: review fixes


def _stored(frame: pd.DataFrame, new: np.ndarray, assets=None) -> pd.DataFrame:
    """``frame`` with the rows not in ``new`` fused and stored (leak_id, ambiguous); the ``new`` rows unfused."""
    d = frame.copy()
    f1 = LeakFuser().fit(d[~new], assets)
    lid = np.full(len(d), None, dtype=object)
    lid[~new] = [f"L{k:06d}" for k in f1.labels_]
    d["leak_id"] = pd.Series(lid, dtype=object)
    amb = np.zeros(len(d), bool)
    amb[~new] = f1.ambiguous_
    d["ambiguous"] = amb
    return d


def _same_as_full(d: pd.DataFrame, assets=None, **kw):
    from mlpe_core.fuse import IncrementalFuser

    inc = IncrementalFuser(max_share=1.0, **kw).fit(d, assets)
    full = LeakFuser().fit(d, assets)
    combined = np.where(inc.region_, pd.Series(inc.labels_).map("R{}".format), d["leak_id"])
    return partition(full.labels_) == partition(combined) and (inc.ambiguous_ == full.ambiguous_).all(), inc


def _shared_leak_scene(dets):
    """Pads P (0 m) and Q (150 m). Precise leak R 30 m west of P, leak O 55 m east (attributable to P by
    position, to Q by an OGI fix naming Q). Q's fence-line monitor (days 0-60) joins O and keeps it active;
    P's monitor alerts (days 20-50) therefore join O, not R, in a full fusion."""

    def asset(name, dx):
        la, lo = offset(dx, 0)
        return dict(asset_id=name, latitude=la, longitude=lo)

    assets = pd.DataFrame([asset("P", 0), asset("Q", 150)])
    r = [dict(dx=-30 + e, dy=e, day=k, id=f"R{k}") for k, e in zip(range(4), (0, 1, -1, 2), strict=True)]
    o = [dict(dx=55, dy=0, day=0, id="O0"), dict(dx=57, dy=1, day=1, id="O1"),
         dict(dx=56, dy=-1, day=2, sigma=3, type="ogi", name="OGI", asset="Q", id="O2")]
    cms = dict(sigma=150, type="continuous_monitor", name="FenceCMS")
    q = [dict(cms, dx=150, dy=0, day=k, asset="Q", id=f"Q{k}") for k in range(0, 61, 2)]
    p = [dict(cms, dx=0, dy=0, day=k, asset="P", id=f"P{k}") for k in range(20, 51, 3)]
    return dets(r + o + q + p), assets


def test_incremental_stream_joins_a_leak_another_sites_stream_keeps_active(dets):
    frame, assets = _shared_leak_scene(dets)
    new = frame["detection_id"].str.startswith("P").to_numpy()
    d = _stored(frame, new, assets)
    same, inc = _same_as_full(d, assets)
    assert same and not inc.full_
    full = LeakFuser().fit(d, assets)
    ids = frame["detection_id"].to_numpy()
    assert full.labels_[ids == "P20"][0] == full.labels_[ids == "O0"][0]  # the scene is what it says
    assert inc.region_[ids == "Q0"][0]  # Q's stream, which shapes O's activity span, was re-fused too


def test_stored_stream_joins_a_leak_another_sites_stream_keeps_active(fuse_store, dets):
    from mlpe_core import pipeline

    session, fuse = fuse_store
    frame, assets = _shared_leak_scene(dets)
    pipeline.store_assets(session, assets)
    new = frame["detection_id"].str.startswith("P").to_numpy()
    _store(session, frame[~new])
    fuse()
    _store(session, frame[new])
    out, _ = fuse()
    assert out["mode"] == "incremental"
    after = _members(session)
    assert after["P20"] == after["O0"] != after["R0"]
    fuse(full=True)
    assert _members(session) == after  # a full re-fusion changes nothing


def _pad_chain(n: int) -> list[dict]:
    """Pads 1 km apart, each with an aircraft pair and an unnamed 200 m pixel 550 m east (within reach of
    two pads' leaks): a region started at pad 0 grows one pad per pass."""
    rows = []
    for i in range(n):
        x = 1000.0 * i
        rows += [dict(dx=x, dy=0, day=0), dict(dx=x + 2, dy=1, day=1),
                 dict(dx=x + 550, dy=0, day=1, sigma=200, type="satellite", name="S200")]
    return rows


def test_a_region_growing_along_a_chain_stops_at_the_share_limit_and_reaches_each_leak_once(dets, monkeypatch):
    from mlpe_core.fuse import IncrementalFuser
    from mlpe_core.fuse.incremental import _StoreGeometry

    n_pads = 40
    frame = dets(_pad_chain(n_pads) + [dict(dx=-3, dy=0, day=2)])
    d = _stored(frame, np.arange(len(frame)) == len(frame) - 1)
    seen = []
    real = _StoreGeometry._reach

    def spy(self, region, rows, lab):
        seen.append(len(rows))
        return real(self, region, rows, lab)

    monkeypatch.setattr(_StoreGeometry, "_reach", spy)
    inc = IncrementalFuser(max_share=0.5).fit(d)
    assert inc.full_ and inc.reason_.startswith("affected area") and inc.rounds_ == 1
    assert len(seen) <= 0.6 * n_pads  # stopped once past half the store, not after growing over all of it
    assert sum(seen) <= len(d)  # each stored leak's reach computed once, not once per pass
    monkeypatch.setattr(_StoreGeometry, "_reach", real)
    same, inc = _same_as_full(d)  # and without the limit the chain is followed to the end, exactly
    assert same and inc.region_.all()


def test_one_stored_km_pixel_does_not_widen_the_search_around_every_new_fix(dets, monkeypatch):
    import mlpe_core.fuse.incremental as fuse_mod
    from mlpe_core.fuse.incremental import _StoreGeometry

    rng = np.random.default_rng(3)
    rows = [dict(dx=float(x), dy=float(y), day=float(t), id=f"s{i}") for i, (x, y, t) in
            enumerate(zip(rng.uniform(-5000, 5000, 300), rng.uniform(-5000, 5000, 300), rng.uniform(0, 30, 300),
                          strict=True))]
    rows.append(dict(dx=9000, dy=9000, day=5, sigma=5000, type="tropomi", name="TROPOMI", id="pixel"))
    rows.append(dict(dx=1, dy=1, day=6, id="new"))
    d = dets(rows)
    old = pd.Series([f"L{i}" for i in range(len(d) - 1)] + [None], dtype=object)
    returned = []

    class Tree(fuse_mod.cKDTree):
        def query_ball_point(self, x, r, *a, **kw):
            res = super().query_ball_point(x, r, *a, **kw)
            returned.append(sum(map(len, res)))
            return res

    monkeypatch.setattr(fuse_mod, "cKDTree", Tree)
    g = _StoreGeometry(d, old, LeakFuser(), None)
    hit = g.near(old.isna().to_numpy())
    assert hit[d["detection_id"] == "pixel"].all()  # the pixel covers the new fix: it is found
    assert sum(returned) < 20  # but the 5 m fixes are searched a few tens of metres around, not 20 km


@pytest.mark.parametrize("n_small", [1, 2])
def test_the_rate_gate_also_separates_satellite_plumes_clustered_among_themselves(dets, n_small):
    """Satellite plumes only (mid tier, no aircraft anchor): one or two 24 kg/h PointSat plumes and a
    2.8 t/h WideSat plume on the same spot are two sources, as they are when the 24 kg/h fixes are aircraft."""
    small = [dict(dx=0, dy=0, day=0, sigma=25, type="satellite", name="PointSat", rate=24.0),
             dict(dx=5, dy=3, day=6, sigma=25, type="satellite", name="PointSat", rate=22.0)][:n_small]
    big = dict(dx=10, dy=-5, day=70, sigma=40, type="satellite", name="WideSat", rate=2800.0)
    frame = dets(small + [big])
    assert partition(_fit(frame).labels_) == [0] * n_small + [1]
    assert partition(_fit(frame, max_rate_ratio=1e9).labels_) == [0] * (n_small + 1)  # without the gate: one
    unquantified = dets(small + [{k: v for k, v in big.items() if k != "rate"}])
    assert partition(_fit(unquantified).labels_) == [0] * (n_small + 1)  # an unquantified plume is never refused


# ------------------------------------------------------------------------- issue 18: clustering local by definition


def test_local_hdbscan_is_hdbscan_on_well_separated_sources_and_a_lone_pair_is_a_cluster():
    """Sources km apart (each its own link component): nearly the same clusters as one HDBSCAN run over
    everything (a component is born at 1/link_m, not at 1/its distance to the nearest other, so a few
    4-point sources split 2 + 2 one way and not the other); and a single tight pair, alone, is a cluster
    (one run of the library calls it noise: the root is never selected)."""
    import hdbscan
    from sklearn.metrics import adjusted_rand_score

    from mlpe_core.fuse.geometry import local_hdbscan

    rng = np.random.default_rng(0)
    centres = np.c_[rng.uniform(0, 1e5, (500, 2)), np.zeros(500)]
    x = np.repeat(centres, 4, axis=0) + rng.normal(0, 5, (2000, 3))
    ref = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=1).fit_predict(x)
    assert adjusted_rand_score(ref, local_hdbscan(x, 424.0, 2)) > 0.99
    pair = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, 0.0]])
    assert (local_hdbscan(pair, 424.0, 2) >= 0).all()
    assert (hdbscan.HDBSCAN(min_cluster_size=2, min_samples=1).fit_predict(pair) < 0).all()


def test_a_components_clusters_do_not_depend_on_far_points():
    """HDBSCAN per link component: a cluster pattern inside one component is the same whatever lies 2 km
    away, including a far dense blob that, in one global excess-of-mass choice, changes what is selected."""
    from mlpe_core.fuse.geometry import local_hdbscan

    rng = np.random.default_rng(3)
    here = np.vstack([rng.normal(0, 4, (6, 3)), rng.normal(0, 4, (5, 3)) + [60, 0, 0], [[30.0, 40.0, 0.0]]])
    far = np.vstack([rng.normal(0, 50, (300, 3)) + [5000, 0, 0], rng.normal(0, 3, (3, 3)) + [2500, 0, 0]])
    alone = partition(local_hdbscan(here, 424.0, 2))
    with_far = partition(local_hdbscan(np.vstack([here, far]), 424.0, 2)[: len(here)])
    assert alone == with_far


def test_precise_leaks_never_span_two_link_components(dets):
    """Two aircraft pairs 40 m apart are one leak's worth of evidence only within a link component: with a
    link distance shorter than their gap they stay two leaks, with the default (424 m) they are one."""
    rows = [dict(dx=0, dy=0, day=0), dict(dx=2, dy=1, day=1), dict(dx=40, dy=0, day=2, sigma=30, type="satellite")]
    assert partition(_fit(dets(rows)).labels_) == [0, 0, 0]
    assert partition(_fit(dets(rows), link_m=20.0).labels_) == [0, 0, 1]
    assert LeakFuser().link_distance() == pytest.approx(3 * np.sqrt(2) * 100)


def test_incremental_context_is_the_touched_components_not_every_precise_detection(dets, monkeypatch):
    """A new fix at pad 0 of a chain of pads 1 km apart: the fit sees pad 0's component (and nothing else),
    not every precise detection of the store, and still equals a full fusion."""
    seen = []
    real = LeakFuser.fit

    def spy(self, X, *a, **k):
        seen.append(len(X))
        return real(self, X, *a, **k)

    rows = []
    for i in range(30):
        rows += [dict(dx=1000.0 * i, dy=0, day=0), dict(dx=1000.0 * i + 2, dy=1, day=1)]
    frame = dets(rows + [dict(dx=-3, dy=0, day=2)])
    d = _stored(frame, np.arange(len(frame)) == len(frame) - 1)
    monkeypatch.setattr(LeakFuser, "fit", spy)
    same, inc = _same_as_full(d)
    assert same and not inc.full_
    assert seen[0] == 3  # the new fix and its pad's pair; the other 58 precise fixes stay out of the fit


def test_a_crowd_of_fixes_takes_the_spanning_tree_without_every_pair(monkeypatch):
    """Thousands of fixes of one source within metres are millions of pairs: the link forest then comes from
    Borůvka (bounded memory) and is the same forest, so the clusters are the same (the kill-9 watch test's file,
    200,000 fixes of 40 sources, was killed for memory when every pair was listed)."""
    from mlpe_core.fuse import geometry

    rng = np.random.default_rng(3)
    xyz = np.r_[rng.normal(0, 2, (1500, 3)), rng.normal(3000, 2, (1500, 3)), rng.normal(0, 150, (40, 3)) + 800]
    xyz = xyz + 6.4e6
    via_pairs = geometry.link_forest(xyz, 424.0)
    lab_pairs = geometry.local_hdbscan(xyz, 424.0, 2)
    calls = []
    real = geometry._boruvka_mst
    monkeypatch.setattr(geometry, "_boruvka_mst", lambda x: calls.append(len(x)) or real(x))
    monkeypatch.setattr(geometry, "MAX_LINK_PAIRS", 10_000)  # the crowds hold ~2.2 million pairs
    via_tree = geometry.link_forest(xyz, 424.0)
    assert calls == [len(xyz)]
    assert partition(via_tree[0]) == partition(via_pairs[0])
    np.testing.assert_allclose(np.sort(via_tree[3]), np.sort(via_pairs[3]))
    assert partition(geometry.local_hdbscan(xyz, 424.0, 2)) == partition(lab_pairs)
