"""A seeded, realistic simulated oil & gas basin with ground truth.

Why this exists: fusion, scoring and prioritisation can only be measured against detections whose
true cause is known, and real feeds never come with that. This module builds a whole basin -- asset
registry, emission sources with their true rates and lifetimes, and seven sensor feeds in the
canonical detection format -- from one integer seed, so that demos, tests and benchmarks are
reproducible and can score themselves against ``Basin.sources`` and ``Basin.truth``. It is pure
numpy/pandas and deterministic: the same arguments always give identical frames.

Assumptions (defaults: 2000 assets at 500 m spacing, 120 days, 12% of assets leaking):

Assets
    Placed on a square grid whose cells are ~80% occupied (the rest are gaps), jittered by up to
    +/-30% of a cell, with the cell size calibrated so the median nearest-neighbour distance is
    ~``spacing_m``. Types: well_pad 60%, tank_battery 20%, pipeline_valve 13%, compressor_station
    5%, processing_plant 2%. Operator follows the quadrant of the basin (``Op North/South/East/West``)
    with 10% of assets traded to a random operator. Metres are converted to degrees with the local
    WGS84 metres-per-degree series at ``center``.
Sources (ground truth)
    ``round(leak_fraction * n_assets)`` assets leak, weighted by type (well_pad 1, tank_battery 1.6,
    compressor_station 2.5, processing_plant 3, pipeline_valve 0.6). 18% of them have a second
    concurrent leak at another component; every component sits 5-25 m from the asset point (so two
    leaks at one asset are typically 15-50 m apart, both within 30 m of the asset). 6% of leaking
    assets have a leak that stops 10-35% of the period after its start and a new leak at the same
    asset 35-55% of the period later (e.g. stopped in mid-June, leaking again in August).
    Rates (kg CH4/h while emitting): a lognormal body, median 6.5 kg/h x a type factor (well_pad 1,
    tank_battery 1.3, compressor_station 1.8, processing_plant 2.5, pipeline_valve 0.6) with log-sd
    1.25, plus a super-emitter component (1.2-8% of leaks by type) with median 1500 kg/h and log-sd
    0.9; floored at 0.1 and capped at 20000 kg/h. Overall (seeds 0-19): ~295 sources, median
    7.8 kg/h, 4.6% above 100 kg/h, 1.4% above 1000 kg/h, 0.2% above 5000 kg/h.
    Timing: 60% of leaks predate the period (``start`` up to a year before it), the rest start at a
    uniform time inside it. Leaks stop at an exponential time (mean 300 days; 15 days for
    super-emitters), and a leak found by the OGI survey is repaired 1-30 days after the visit, so
    ~1/3 of sources stop before ``as_of``. 25% of ordinary leaks (40% of super-emitters) are
    intermittent: an on/off Markov process emitting a fraction 0.15-0.75 (0.05-0.5) of the time in
    episodes of 2-24 h (1-12 h). ``rate_kg_h`` is the rate while emitting; the time-averaged rate is
    ``rate_kg_h * intermittency``. ``emitting_at_end`` means the source had not stopped by ``as_of``
    (an intermittent source may be momentarily off).
Feeds
    Detection probability is logistic in log rate, 50% at the sensor's limit:
    ``p = 1 / (1 + (limit / rate) ** k)``, counted only while the source emits. For remote sensors
    the limit scales with ``sqrt(wind / 4 m/s)`` and wind is 1-8 m/s. Reported positions are the
    true position plus isotropic Gaussian error with the feed's 1-sigma (``location_uncertainty_m``);
    measured rates are the true rate x a median-unbiased lognormal error whose coefficient of
    variation is the feed's, reported as ``rate_uncertainty_kg_h = cv * measured``. Confidence is a
    Beta draw: true detections ~Beta(5, 3) nudged up with signal-to-limit, false ones ~Beta(3, 4).

    ========== =================== ======== ========== ======================================= ======
    feed       source_type         sigma m  50% limit  cadence / coverage                      false
    ========== =================== ======== ========== ======================================= ======
    WideSat    satellite           40       600 kg/h   every 3 days, 10:30 local, whole basin  10%
    PointSat   satellite           25       120 kg/h   every 6-8 days, ~11:00 local, whole     15%
    CoarseSat  satellite           5000     5000 kg/h  daily, 13:30 local, 50% good-quality    ~0.02/d
    AirLidar   aerial              5        3 kg/h     2 campaigns x 40% of assets, 3-5 days   3%
    FenceCMS   continuous_monitor  150      1-10 kg/h  15% of assets, <= 3 periods a day       see below
    SCADA      scada               200      --         30% of tank/compressor/plant leaks      50%
    OGI        ogi                 3        1 kg/h     10% of assets, ~8 sites per survey day  ~0.5%
    ========== =================== ======== ========== ======================================= ======

    Satellite passes are clear (70%), half-clouded (20%) or cloudy (10%); false plumes fall 40% near
    an asset (bright pads) and 60% anywhere in the scene, with rates near the limit. SCADA reports the
    site's registered coordinates with event types by asset (tank_pressure_high, pressure_drop,
    compressor_vent), one at a leak's onset plus one per ~12 emitting days, and false alarms at random
    tank/compressor/plant sites; it has no rate and confidence 0.2-0.6. OGI reports no rate, confidence
    0.9, and detects an emitting leak with ``0.8 * p(rate, 1 kg/h)``. Only the site-level feeds (FenceCMS,
    SCADA, OGI) fill ``asset_id``; only the remote ones (satellites, AirLidar) report wind.
Real-data realism (issue 14; docs/simulator.md has the fitted numbers and their sources)
    A source's rate changes from one release episode to the next (an on-run of an intermittent source, a
    UTC day of a steady one): a lognormal factor of mean 1 and log-sd 0.54 (the Kairos New Mexico Permian
    repeat sightings, between-pass sd 0.72 less the within-pass 0.48), so ``rate_kg_h`` is the time-average
    while emitting. Half the intermittent sources emit only in local daytime (07-19 h; an assumption).
    FenceCMS is now monitors of five kinds, one kind per monitored site, four fitted to the Stanford 2022
    vendors (``_CMS_VENDORS``): two fragmenting reporters (windows of ~21 min, one or two per detection
    period; one reports no rate), two all-day reporters (one window per period, ~4 h; they localise and
    report the located source's rate and position within 30 m, one states a 25 % error), and one 15-minute
    block reporter (pooled numbers, assumed). Each detects the site's total hourly while the plume reaches it
    (35% of hours, 4-hour episodes) with its own detection curve, reports at most three periods a UTC day,
    reads the site's total (or the located source) times its own bias with its own scatter (the real mean
    ratios 0.06-0.32 of the meter), is offline ~8% of the time in multi-day outages, and raises false alarms
    at its measured rate (0.02-0.13 a day) at any monitored site. ``Basin.coverage`` holds each alarm's
    window, the watched-and-quiet windows between them and the block reporter's offline windows. A reading of a
    site's total while several of its sources emitted is attributed to the largest (``source_share`` < 1 in
    the truth).
    The volume of false positives of a feed is drawn as Poisson(fraction / (1 - fraction) x its true
    detections), so the false share is as stated at any basin size. Times are UTC; blank values are
    NaN so CSVs get empty cells. With the defaults the feeds hold about 8,000-16,000 detections in total,
    most of them FenceCMS alarm windows; building them takes one to two seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlpe_core.schema import ASSET_COLUMNS, CANONICAL_COLUMNS

from .errors import BadInput

ASSET_TYPES: tuple[str, ...] = (
    "well_pad",
    "tank_battery",
    "compressor_station",
    "processing_plant",
    "pipeline_valve",
)
OPERATORS: tuple[str, ...] = ("Op North", "Op South", "Op East", "Op West")
SOURCE_COLUMNS: tuple[str, ...] = (
    "source_id",
    "asset_id",
    "latitude",
    "longitude",
    "rate_kg_h",
    "start",
    "end",
    "intermittency",
    "emitting_at_end",
)
TRUTH_COLUMNS: tuple[str, ...] = ("source_name", "detection_id", "source_id", "source_share")
COVERAGE_COLUMNS: tuple[str, ...] = ("source_name", "source_type", "asset_id", "start_at", "end_at", "state",
                                     "detection_id")
CHANGE_COLUMNS: tuple[str, ...] = ("asset_id", "kind", "changed_at", "factor", "source_ids", "before_kg_h",
                                   "after_kg_h")
FEED_NAMES: tuple[str, ...] = ("WideSat", "PointSat", "CoarseSat", "AirLidar", "FenceCMS", "SCADA", "OGI")

# Asset types, indexed like ASSET_TYPES.
_TYPE_SHARE = np.array([0.60, 0.20, 0.05, 0.02, 0.13])
_LEAK_WEIGHT = np.array([1.0, 1.6, 2.5, 3.0, 0.6])
_RATE_FACTOR = np.array([1.0, 1.3, 1.8, 2.5, 0.6])
_SUPER_PROB = np.array([0.012, 0.03, 0.05, 0.08, 0.01])
_TANK, _COMPRESSOR, _PLANT = 1, 2, 3

_OCCUPANCY = 0.8  # share of grid cells holding an asset
_JITTER = 0.3  # uniform jitter, fraction of a cell
_CELL_PER_SPACING = 1.25  # cell size / median nearest-neighbour distance, calibrated for the two above

_RATE_MEDIAN = 6.5
_RATE_LOG_SD = 1.25
_SUPER_MEDIAN = 1500.0
_SUPER_LOG_SD = 0.9
_RATE_MIN, _RATE_MAX = 0.1, 20000.0
# Rate of one source from one release episode to the next: the 958 sources of the New Mexico Permian Kairos
# survey seen on several passes (Chen, Sherwin et al. 2022; ../shared/data/real/stanford_aircraft_2022/
# chen_sherwin_2022_nm_permian_kairos_plume_table.csv) vary with log-sd 0.72 between passes, of which 0.48 is
# the scatter of plumes within one pass (measurement): sqrt(0.72² - 0.48²) = 0.54 is the source's own
# (benchmarks/instrument_priors.py, kairos_permian: between_pass_sd_ln_pooled, within_pass_sd_ln_pooled).
_EPISODE_LOG_SD = 0.54
_DIURNAL_SHARE = 0.5  # of intermittent sources emit only in local daytime (our assumption: operations-driven)
_DAY_HOURS = (7.0, 19.0)  # local solar hours of "daytime"

_DAY = 24.0  # hours


@dataclass
class Basin:
    """A simulated basin: what the engine sees (assets, feeds) and what really happened (sources, truth).

    ``assets`` has ``schema.ASSET_COLUMNS``; ``feeds`` maps each feed name to a detection frame with
    exactly ``schema.CANONICAL_COLUMNS``; ``sources`` has one row per real emission source
    (``SOURCE_COLUMNS``); ``truth`` has one row per detection of every feed naming the source that
    caused it, ``""`` for a false positive, and ``source_share``, that source's share of what the detection
    measured (1 but for a monitor's reading of a site's total while several of its sources emitted: it is then
    attributed to the largest) (``TRUTH_COLUMNS``); ``as_of`` is the UTC end of the period.
    """

    assets: pd.DataFrame
    feeds: dict[str, pd.DataFrame]
    sources: pd.DataFrame
    truth: pd.DataFrame
    as_of: pd.Timestamp
    # when the monitors watched (``COVERAGE_COLUMNS``): each alarm's window, watched-and-quiet and offline windows
    coverage: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(COVERAGE_COLUMNS)))
    # injected worsening sites (``CHANGE_COLUMNS``; empty unless ``simulate_basin(worsening=N)``): the truth a trend
    # test is measured against (issue 19)
    changes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(CHANGE_COLUMNS)))


@dataclass
class _World:
    """Internal state shared by the feed simulators: positions in metres, times in hours since t0."""

    t0: pd.Timestamp
    n_hours: int
    lat0: float
    lon0: float
    ax: np.ndarray
    ay: np.ndarray
    atype: np.ndarray
    # Sources, filled by _add_sources.
    sx: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    s_asset: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    rate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    start_h: np.ndarray = field(default_factory=lambda: np.zeros(0))
    end_h: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frac: np.ndarray = field(default_factory=lambda: np.zeros(0))
    on: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))  # (source, hour) on/off
    # (source, hour) factor on ``rate`` while emitting: each release episode (an on-run, or a day of a steady
    # source) has its own rate; the factors average 1, so ``rate`` is the time-average while emitting
    mult: np.ndarray = field(default_factory=lambda: np.ones((0, 0), dtype=np.float32))

    def rate_at(self, src: np.ndarray, t_h: np.ndarray) -> np.ndarray:
        """Rate of source(s) ``src`` during the episode at time(s) ``t_h`` (while it emits); shapes broadcast."""
        src, t_h = np.broadcast_arrays(np.asarray(src, dtype=int), np.asarray(t_h, dtype=float))
        if src.size == 0:
            return np.zeros(src.shape)
        hour = np.clip(np.floor(t_h).astype(int), 0, self.n_hours - 1)
        return self.rate[src] * self.mult[src, hour]

    def emitting(self, src: np.ndarray, t_h: np.ndarray) -> np.ndarray:
        """Whether source(s) ``src`` emit at time(s) ``t_h`` (hours since t0); shapes broadcast."""
        src, t_h = np.broadcast_arrays(np.asarray(src, dtype=int), np.asarray(t_h, dtype=float))
        if src.size == 0:
            return np.zeros(src.shape, dtype=bool)
        hour = np.clip(np.floor(t_h).astype(int), 0, self.n_hours - 1)
        return (t_h >= self.start_h[src]) & (t_h < self.end_h[src]) & self.on[src, hour]

    def bbox(self, margin_m: float) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the assets, widened by ``margin_m``."""
        return (
            float(self.ax.min()) - margin_m,
            float(self.ax.max()) + margin_m,
            float(self.ay.min()) - margin_m,
            float(self.ay.max()) + margin_m,
        )


@dataclass(frozen=True)
class _Feed:
    """Static description of one sensor feed."""

    name: str
    source_type: str
    prefix: str
    sigma_m: float
    limit_kg_h: float
    slope: float  # k of the logistic detection curve in log rate
    rate_cv: float  # 0 = the feed reports no rate
    false_fraction: float


_WIDESAT = _Feed("WideSat", "satellite", "WID", 40.0, 600.0, 3.0, 0.5, 0.10)
_POINTSAT = _Feed("PointSat", "satellite", "POI", 25.0, 120.0, 3.0, 0.35, 0.15)
_COARSESAT = _Feed("CoarseSat", "satellite", "COA", 5000.0, 5000.0, 3.0, 0.5, 0.0)
_AIRLIDAR = _Feed("AirLidar", "aerial", "AIR", 5.0, 3.0, 2.5, 0.3, 0.03)
_FENCECMS = _Feed("FenceCMS", "continuous_monitor", "FEN", 150.0, 1.0, 2.0, 0.9, 0.30)
_SCADA = _Feed("SCADA", "scada", "SCA", 200.0, 0.0, 0.0, 0.0, 0.50)
_OGI = _Feed("OGI", "ogi", "OGI", 3.0, 1.0, 3.0, 0.0, 0.0)

# A block of raw detections: times in hours since t0, positions in metres, asset / source indices
# (-1 = none; src -1 = false positive).
_Block = dict[str, np.ndarray]
_RAW_KEYS = ("t", "x", "y", "rate", "conf", "wind", "asset", "event", "src", "end", "unc", "share")


def simulate_basin(
    seed: int = 0,
    n_assets: int = 2000,
    spacing_m: float = 500.0,
    n_days: int = 120,
    leak_fraction: float = 0.12,
    start: str = "2026-06-01",
    center: tuple[float, float] = (32.0, -102.5),
    worsening: int = 0,
    worsening_factor: float = 3.0,
) -> Basin:
    """Simulate a basin of ``n_assets`` sites over ``n_days`` days from ``start`` (UTC), fully from ``seed``.

    ``spacing_m`` is the typical (median) distance between neighbouring assets, ``leak_fraction``
    the share of assets with at least one leak, and ``center`` the (latitude, longitude) of the
    basin. See the module docstring for every modelling assumption.

    ``worsening`` sites get an injected change (issue 19, :func:`_inject_worsening`): half of them an existing,
    still-emitting source's rate multiplied by ``worsening_factor`` from a change time on, the others a new steady
    source from that time. ``Basin.changes`` says which sites changed, how and when. With the default 0 nothing is
    drawn from any generator the basin uses, so every other benchmark sees the same basin as before.
    """
    if n_assets < 2:
        raise BadInput("n_assets must be at least 2")
    if spacing_m <= 0 or n_days < 1 or not 0 <= leak_fraction <= 1:
        raise BadInput("spacing_m must be > 0, n_days >= 1 and 0 <= leak_fraction <= 1")
    rngs = np.random.default_rng(seed).spawn(10)
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    n_hours = int(n_days * 24)
    as_of = t0 + pd.Timedelta(hours=n_hours)

    ax, ay, atype, operator = _place_assets(rngs[0], n_assets, spacing_m)
    world = _World(
        t0=t0, n_hours=n_hours, lat0=float(center[0]), lon0=float(center[1]), ax=ax, ay=ay, atype=atype
    )
    _add_sources(world, rngs[1], leak_fraction)
    changes = _inject_worsening(world, np.random.default_rng([seed, 19]), worsening, worsening_factor) \
        if worsening > 0 else None

    # OGI runs first: leaks it finds get repaired, which shortens them for every other feed.
    raws = {"OGI": _ogi_feed(world, rngs[2])}
    # Revisit days (+/- jitter), local solar overpass hour (+/- jitter) of each imager.
    orbits = {
        _WIDESAT: (3.0, 0.0, 10.5, 0.3),
        _POINTSAT: (7.0, 1.0, 11.0, 1.0),
        _COARSESAT: (1.0, 0.0, 13.5, 0.5),
    }
    for (feed, orbit), rng in zip(orbits.items(), rngs[3:6], strict=True):
        raws[feed.name] = _satellite_feed(world, rng, feed, _passes(rng, n_hours, *orbit, world.lon0))
    raws["AirLidar"] = _aerial_feed(world, rngs[6])
    raws["FenceCMS"], cms_cover = _cms_feed(world, rngs[7])
    raws["SCADA"] = _scada_feed(world, rngs[8])

    asset_ids = np.array([f"A{i:06d}" for i in range(n_assets)], dtype=object)
    source_ids = np.array([f"S{i:05d}" for i in range(len(world.rate))], dtype=object)
    lat, lon = _to_latlon(world, ax, ay)
    assets = pd.DataFrame(
        {
            "asset_id": asset_ids,
            "latitude": lat.round(7),
            "longitude": lon.round(7),
            "asset_type": np.array(ASSET_TYPES, dtype=object)[atype],
            "operator": np.array(OPERATORS, dtype=object)[operator],
        }
    )[list(ASSET_COLUMNS)]
    assets = assets.astype({"asset_id": "str", "asset_type": "str", "operator": "str"})

    feeds: dict[str, pd.DataFrame] = {}
    truth_parts: list[pd.DataFrame] = []
    for feed in (_WIDESAT, _POINTSAT, _COARSESAT, _AIRLIDAR, _FENCECMS, _SCADA, _OGI):
        frame, truth, ends = _finalize(world, feed, raws[feed.name], asset_ids, source_ids)
        feeds[feed.name] = frame
        truth_parts.append(truth)
        if feed is _FENCECMS:
            cms_ends = ends
    truth = pd.concat(truth_parts, ignore_index=True)
    truth = truth.astype({"source_name": "str", "detection_id": "str", "source_id": "str"})

    return Basin(
        assets=assets,
        feeds=feeds,
        sources=_sources_frame(world, asset_ids, source_ids),
        truth=truth,
        as_of=as_of,
        coverage=_coverage_frame(world, feeds["FenceCMS"], cms_ends, cms_cover, asset_ids),
        changes=_changes_frame(world, changes, asset_ids, source_ids),
    )


NOTICE_LAG_DAYS = 5.0  # simulated time from an overpass to the operator's receipt of EPA's notice


def simulate_notifications(basin: Basin, n: int = 5, seed: int = 0, lag_days: float = NOTICE_LAG_DAYS,
                           min_rate_kg_h: float = 100.0, recent: int = 2, recent_days: float = 20.0) -> pd.DataFrame:
    """Super-emitter notices for ``n`` real sources a satellite or aircraft saw at ``min_rate_kg_h`` or more.

    Under the OOOOb super-emitter program EPA sends a notice after checking a certified notifier's data; the
    operator's clocks start at its receipt (40 CFR 60.5371b). Each notice names the first qualifying detection
    (``detection_ref``) and is received ``lag_days`` after it, only if that is before the end of the period.
    ``recent`` of the ``n`` are drawn from the last ``recent_days`` (their clocks still run at the end), the
    rest from before. Returns the contract's notifications columns as text (``schema.NOTIFICATION_COLUMNS``).
    """
    from .schema import NOTIFICATION_COLUMNS

    rows = []
    for name, feed in sorted(basin.feeds.items()):
        f = feed[feed["source_type"].isin(["satellite", "aerial"])]
        f = f[pd.to_numeric(f["rate_kg_h"], errors="coerce").fillna(0) >= min_rate_kg_h]
        if f.empty:
            continue
        t = basin.truth[basin.truth["source_name"] == name].set_index("detection_id")["source_id"]
        f = f.assign(source_id=f["detection_id"].map(t))
        rows.append(f[f["source_id"].fillna("") != ""])
    if not rows:
        return pd.DataFrame(columns=list(NOTIFICATION_COLUMNS))
    q = pd.concat(rows).assign(at=lambda d: pd.to_datetime(d["observed_at"], utc=True))
    q = q[q["at"] + pd.Timedelta(days=lag_days) < basin.as_of].sort_values("at").drop_duplicates("source_id")
    late = q["at"] >= basin.as_of - pd.Timedelta(days=recent_days)
    new = q[late].sample(n=min(recent, int(late.sum()), n), random_state=seed)
    old = q[~late].sample(n=min(n - len(new), int((~late).sum())), random_state=seed)
    pick = pd.concat([old, new]).sort_values("at")
    received = pick["at"] + pd.Timedelta(days=lag_days)
    return pd.DataFrame({
        "notification_id": [f"EPA-SEP-{r:%Y%m%d}-{i + 1:03d}" for i, r in enumerate(received)],
        "received_at": received.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
        "program": "ooooB_super_emitter",
        "notifier": "EPA Super-Emitter Program (simulated)",
        "detection_ref": pick["detection_id"].to_numpy(),
        "latitude": pick["latitude"].astype(str).to_numpy(),
        "longitude": pick["longitude"].astype(str).to_numpy(),
        "rate_kg_h": pick["rate_kg_h"].astype(str).to_numpy(),
        "notes": "simulated notice of a super-emitter event",
    })[list(NOTIFICATION_COLUMNS)].reset_index(drop=True)


def _coverage_frame(world: _World, cms: pd.DataFrame, ends: np.ndarray, cover: pd.DataFrame,
                    asset_ids: np.ndarray) -> pd.DataFrame:
    """The monitors' coverage (``COVERAGE_COLUMNS``): each alarm's window, then watching and offline windows."""
    def at(hours: np.ndarray) -> pd.Series:
        return pd.Series(world.t0 + pd.to_timedelta(np.round(np.asarray(hours, float) * 3600), unit="s"))

    detected = pd.DataFrame({
        "source_name": cms["source_name"].to_numpy(), "source_type": cms["source_type"].to_numpy(),
        "asset_id": cms["asset_id"].to_numpy(), "start_at": pd.to_datetime(cms["observed_at"], utc=True).to_numpy(),
        "end_at": at(ends).to_numpy(), "state": "detected", "detection_id": cms["detection_id"].to_numpy()})
    rest = pd.DataFrame({
        "source_name": _FENCECMS.name, "source_type": _FENCECMS.source_type,
        "asset_id": asset_ids[cover["asset"].to_numpy(int)], "start_at": at(cover["start_h"]).to_numpy(),
        "end_at": at(cover["end_h"]).to_numpy(), "state": cover["state"].to_numpy(), "detection_id": None})
    out = pd.concat([detected, rest], ignore_index=True)
    out["start_at"] = pd.to_datetime(out["start_at"], utc=True)
    out["end_at"] = pd.to_datetime(out["end_at"], utc=True)
    out = out[out["end_at"] >= out["start_at"]].sort_values(["asset_id", "start_at", "state"], kind="stable")
    return out.reset_index(drop=True)[list(COVERAGE_COLUMNS)]


def write_basin(basin: Basin, folder: str | Path) -> dict[str, Path]:
    """Write ``basin`` as CSV files into ``folder`` (created if needed) and return name -> path.

    Files: ``assets.csv``, one ``<source_name>.csv`` per feed (canonical columns, ISO 8601 UTC times
    with a ``Z``, blanks as empty cells), ``coverage.csv`` (the monitors' watched windows, the ``coverage``
    ingest format), ``truth_sources.csv`` and ``truth_detections.csv``. The keys of the result are the file
    names without ``.csv``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, pd.DataFrame] = {"assets": basin.assets, **basin.feeds, "coverage": basin.coverage}
    tables["truth_sources"] = basin.sources
    tables["truth_detections"] = basin.truth
    paths: dict[str, Path] = {}
    for name, frame in tables.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        paths[name] = path
    return paths


# --------------------------------------------------------------------------------------------------
# geometry


def _metres_per_degree(lat_deg: float) -> tuple[float, float]:
    """Metres per degree of latitude and of longitude at ``lat_deg`` on the WGS84 ellipsoid."""
    phi = math.radians(lat_deg)
    m_lat = 111132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi) - 0.0023 * math.cos(6 * phi)
    m_lon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    return m_lat, m_lon


def _to_latlon(world: _World, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local east/north metres around the basin centre to (latitude, longitude) degrees."""
    m_lat, m_lon = _metres_per_degree(world.lat0)
    return world.lat0 + np.asarray(y, dtype=float) / m_lat, world.lon0 + np.asarray(x, dtype=float) / m_lon


def _place_assets(
    rng: np.random.Generator, n: int, spacing_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Jittered, partly occupied grid: (x, y) in metres, type codes and operator codes."""
    side = math.ceil(math.sqrt(n / _OCCUPANCY))
    cell = spacing_m * _CELL_PER_SPACING
    idx = np.sort(rng.choice(side * side, size=n, replace=False))
    jitter = rng.uniform(-_JITTER, _JITTER, size=(n, 2))
    x = (idx % side + 0.5 + jitter[:, 0] - side / 2) * cell
    y = (idx // side + 0.5 + jitter[:, 1] - side / 2) * cell
    atype = rng.choice(len(ASSET_TYPES), size=n, p=_TYPE_SHARE)
    # Quadrant operators: North where y dominates upward, South downward, East / West likewise.
    operator = np.where(np.abs(y) >= np.abs(x), np.where(y >= 0, 0, 1), np.where(x >= 0, 2, 3))
    traded = rng.random(n) < 0.10
    operator[traded] = rng.integers(0, len(OPERATORS), size=int(traded.sum()))
    return x, y, atype, operator


# --------------------------------------------------------------------------------------------------
# sources


def _on_off(rng: np.random.Generator, n: int, frac: float, mean_on_h: float) -> np.ndarray:
    """Hourly on/off Markov (alternating geometric runs) series of length n, on a fraction ``frac``."""
    if frac >= 1.0:
        return np.ones(n, dtype=bool)
    if frac <= 0.0:
        return np.zeros(n, dtype=bool)
    mean_on = max(mean_on_h, 1.0)
    mean_off = max(mean_on * (1.0 - frac) / frac, 1.0)
    first_on = bool(rng.random() < frac)
    lengths: list[np.ndarray] = []
    total = 0
    while total < n:
        pairs = int(n / (mean_on + mean_off)) + 4
        on = rng.geometric(1.0 / mean_on, size=pairs)
        off = rng.geometric(1.0 / mean_off, size=pairs)
        chunk = np.column_stack((on, off) if first_on else (off, on)).ravel()
        lengths.append(chunk)
        total += int(chunk.sum())
    runs = np.concatenate(lengths)
    states = np.resize(np.array([first_on, not first_on]), runs.size)
    return np.repeat(states, runs)[:n]


def _add_sources(world: _World, rng: np.random.Generator, leak_fraction: float) -> None:
    """Draw the leaking assets, their components, rates, lifetimes and on/off behaviour into ``world``."""
    ax, ay, atype, n_hours = world.ax, world.ay, world.atype, world.n_hours
    n_assets = len(ax)
    n_leaky = min(n_assets, round(leak_fraction * n_assets))
    weight = _LEAK_WEIGHT[atype]
    leaky = np.sort(rng.choice(n_assets, size=n_leaky, replace=False, p=weight / weight.sum()))
    second = rng.random(n_leaky) < 0.18
    releak = rng.random(n_leaky) < 0.06

    s_asset: list[int] = []
    angle: list[float] = []
    kind: list[int] = []  # 0 ordinary, 1 stops early (followed by a re-leak), 2 re-leak
    parent: list[int] = []  # for a re-leak, the index of the leak it follows; else -1
    for i, a in enumerate(leaky):
        first_index = len(s_asset)
        theta = float(rng.uniform(0, 2 * math.pi))
        s_asset.append(int(a))
        angle.append(theta)
        kind.append(1 if releak[i] else 0)
        parent.append(-1)
        if second[i]:
            s_asset.append(int(a))
            angle.append(theta + math.pi + float(rng.uniform(-0.8, 0.8)))
            kind.append(0)
            parent.append(-1)
        if releak[i]:
            s_asset.append(int(a))
            angle.append(theta + float(rng.uniform(-math.pi / 2, math.pi / 2)))
            kind.append(2)
            parent.append(first_index)
    s_asset_arr = np.array(s_asset, dtype=int)
    kind_arr = np.array(kind, dtype=int)
    n = len(s_asset_arr)
    radius = rng.uniform(5.0, 25.0, size=n)
    angle_arr = np.array(angle, dtype=float)
    sx = ax[s_asset_arr] + radius * np.cos(angle_arr)
    sy = ay[s_asset_arr] + radius * np.sin(angle_arr)

    stype = atype[s_asset_arr]
    is_super = rng.random(n) < _SUPER_PROB[stype]
    body = np.exp(rng.normal(np.log(_RATE_MEDIAN * _RATE_FACTOR[stype]), _RATE_LOG_SD))
    big = np.exp(rng.normal(np.log(_SUPER_MEDIAN), _SUPER_LOG_SD, size=n))
    rate = np.clip(np.where(is_super, big, body), _RATE_MIN, _RATE_MAX)

    # Lifetimes (hours since t0). Exponential remaining life: memoryless, so pre-existing leaks too.
    mean_life_h = np.where(is_super, 15.0, 300.0) * _DAY
    pre = rng.random(n) < 0.6
    start_h = np.where(pre, -rng.uniform(_DAY, 365 * _DAY, size=n), rng.uniform(0, n_hours, size=n))
    end_h = np.maximum(start_h, 0.0) + rng.exponential(mean_life_h)
    # Stopped-then-re-leaked assets: the first leak stops 10-35% of the period after its start (or t0),
    # the new one starts 35-55% of the period after that (at the latest at 95% of the period).
    first = np.flatnonzero(kind_arr == 1)
    start_h[first] = np.where(pre[first], start_h[first], rng.uniform(0, 0.1 * n_hours, size=first.size))
    end_h[first] = np.maximum(start_h[first], 0.0) + rng.uniform(0.1, 0.35, size=first.size) * n_hours
    end_h[first] = np.maximum(end_h[first], np.maximum(start_h[first], 0.0) + _DAY)
    again = np.flatnonzero(kind_arr == 2)
    gap = rng.uniform(0.35, 0.55, size=again.size) * n_hours
    start_h[again] = np.minimum(end_h[np.array(parent, dtype=int)[again]] + gap, 0.95 * n_hours)
    end_h[again] = start_h[again] + rng.exponential(mean_life_h[again])
    end_h = np.where(end_h >= n_hours, np.inf, end_h)

    intermittent = rng.random(n) < np.where(is_super, 0.4, 0.25)
    frac = np.where(is_super, rng.uniform(0.05, 0.5, size=n), rng.uniform(0.15, 0.75, size=n))
    frac = np.where(intermittent, frac, 1.0)
    episode = np.where(is_super, rng.uniform(1.0, 12.0, size=n), rng.uniform(2.0, 24.0, size=n))
    on = np.ones((n, n_hours), dtype=bool)
    for i in np.flatnonzero(intermittent):
        on[i] = _on_off(rng, n_hours, float(frac[i]), float(episode[i]))
    # a share of intermittent sources emit with the site's daytime operations only (bursts by day, gaps at night)
    local_h = (np.arange(n_hours) + world.lon0 / 15.0 + world.t0.hour) % 24.0
    daytime = (local_h >= _DAY_HOURS[0]) & (local_h < _DAY_HOURS[1])
    diurnal = intermittent & (rng.random(n) < _DIURNAL_SHARE)
    on[diurnal] &= daytime[None, :]
    frac = np.where(intermittent, on.mean(axis=1), 1.0)
    mult = _episode_factors(rng, on, intermittent)

    world.sx, world.sy, world.s_asset, world.rate = sx, sy, s_asset_arr, rate
    world.start_h, world.end_h, world.frac, world.on, world.mult = start_h, end_h, frac, on, mult


_CHANGE_WINDOW = (0.35, 0.65)  # change times: uniform in this share of the period
_NEW_SOURCE_MEDIAN, _NEW_SOURCE_LOG_SD = 30.0, 1.0  # an injected new source's rate (kg/h): a material change


def _inject_worsening(world: _World, rng: np.random.Generator, n: int, factor: float) -> list[dict]:
    """Make ``n`` sites worse from a change time (uniform in ``_CHANGE_WINDOW`` of the period): half of them (the
    sites that have a source emitting from 20 days before the change to the end) see that source's rate times
    ``factor`` from then on (``step``), the others (sites with no source emitting at the change) gain a new steady
    source, lognormal median ``_NEW_SOURCE_MEDIAN`` kg/h (``new_source``). Called before the feeds, so every sensor
    sees the change; the OGI survey may still find and repair it, as in the field. Returns one dict per site."""
    n_hours, n_assets = world.n_hours, len(world.ax)
    t_c = rng.uniform(*_CHANGE_WINDOW, size=n) * n_hours
    n_step = n // 2
    out: list[dict] = []
    taken: set[int] = set()
    mid = np.arange(n_hours) + 0.5
    for i in range(n):
        t = float(t_c[i])
        if i < n_step:  # an ongoing source gets worse
            ok = np.flatnonzero((world.start_h < t - 20 * _DAY) & ~np.isfinite(world.end_h))
            ok = np.array([s for s in ok if int(world.s_asset[s]) not in taken], dtype=int)
            if ok.size:
                s = int(rng.choice(ok))
                a = int(world.s_asset[s])
                h = int(t)
                world.mult[s, h:] *= np.float32(factor)
                taken.add(a)
                out.append({"asset": a, "kind": "step", "t": t, "factor": float(factor), "sources": [s]})
                continue
        busy = {int(a) for a in world.s_asset[(world.start_h <= t) & (world.end_h > t)]} | taken
        free = np.array([a for a in range(n_assets) if a not in busy], dtype=int)
        a = int(rng.choice(free))
        r = float(np.clip(np.exp(rng.normal(math.log(_NEW_SOURCE_MEDIAN), _NEW_SOURCE_LOG_SD)), 2.0, 2000.0))
        theta = float(rng.uniform(0, 2 * math.pi))
        radius = float(rng.uniform(5.0, 25.0))
        world.sx = np.r_[world.sx, world.ax[a] + radius * math.cos(theta)]
        world.sy = np.r_[world.sy, world.ay[a] + radius * math.sin(theta)]
        world.s_asset = np.r_[world.s_asset, a]
        world.rate = np.r_[world.rate, r]
        world.start_h = np.r_[world.start_h, t]
        world.end_h = np.r_[world.end_h, np.inf]
        world.frac = np.r_[world.frac, 1.0]
        world.on = np.vstack([world.on, np.ones((1, n_hours), dtype=bool)])
        world.mult = np.vstack([world.mult, _episode_factors(rng, world.on[-1:], np.array([False]))])
        taken.add(a)
        out.append({"asset": a, "kind": "new_source", "t": t, "factor": np.nan, "sources": [len(world.rate) - 1]})
    for c in out:  # the site's true time-averaged emission in the 30 days either side of the change
        srcs = np.flatnonzero(world.s_asset == c["asset"])
        for key, lo, hi in (("before", c["t"] - 30 * _DAY, c["t"]), ("after", c["t"], c["t"] + 30 * _DAY)):
            hours = mid[(mid >= max(lo, 0)) & (mid < min(hi, n_hours))]
            if not srcs.size or not hours.size:
                c[key] = 0.0
                continue
            em = world.emitting(srcs[:, None], hours[None, :])
            c[key] = float((em * world.rate_at(srcs[:, None], hours[None, :])).sum(axis=0).mean())
    return out


def _changes_frame(world: _World, changes: list[dict] | None, asset_ids: np.ndarray,
                   source_ids: np.ndarray) -> pd.DataFrame:
    """The injected changes (``CHANGE_COLUMNS``), one row per site."""
    if not changes:
        return pd.DataFrame(columns=list(CHANGE_COLUMNS))
    return pd.DataFrame({
        "asset_id": [str(asset_ids[c["asset"]]) for c in changes],
        "kind": [c["kind"] for c in changes],
        "changed_at": [world.t0 + pd.Timedelta(hours=round(c["t"], 4)) for c in changes],
        "factor": [c["factor"] for c in changes],
        "source_ids": [",".join(str(source_ids[s]) for s in c["sources"]) for c in changes],
        "before_kg_h": [round(c["before"], 4) for c in changes],
        "after_kg_h": [round(c["after"], 4) for c in changes],
    })[list(CHANGE_COLUMNS)]


def _episode_factors(rng: np.random.Generator, on: np.ndarray, intermittent: np.ndarray) -> np.ndarray:
    """(source, hour) rate factors: one lognormal factor (log-sd ``_EPISODE_LOG_SD``, mean 1) per release
    episode, an on-run of an intermittent source or a UTC day of a steady one."""
    n, n_hours = on.shape
    mult = np.ones((n, n_hours), dtype=np.float32)
    hours = np.arange(n_hours)
    for i in range(n):
        if intermittent[i]:
            run = np.cumsum(np.r_[True, on[i, 1:] != on[i, :-1]])  # a new episode at every switch
        else:
            run = hours // 24 + 1
        f = np.exp(rng.normal(-0.5 * _EPISODE_LOG_SD**2, _EPISODE_LOG_SD, size=int(run.max()) + 1))
        mult[i] = f[run]
    return mult


def _sources_frame(world: _World, asset_ids: np.ndarray, source_ids: np.ndarray) -> pd.DataFrame:
    """Ground-truth table of sources (``SOURCE_COLUMNS``)."""
    lat, lon = _to_latlon(world, world.sx, world.sy)
    start = world.t0 + pd.to_timedelta(np.round(world.start_h * 3600), unit="s")
    finite = np.isfinite(world.end_h)
    end_s = np.where(finite, np.round(np.where(finite, world.end_h, 0.0) * 3600), np.nan)
    end = world.t0 + pd.to_timedelta(end_s, unit="s")
    frame = pd.DataFrame(
        {
            "source_id": source_ids,
            "asset_id": asset_ids[world.s_asset],
            "latitude": lat.round(7),
            "longitude": lon.round(7),
            "rate_kg_h": world.rate.round(4),
            "start": start,
            "end": end,
            "intermittency": world.frac.round(4),
            "emitting_at_end": ~finite,
        }
    )
    return frame.astype({"source_id": "str", "asset_id": "str"})[list(SOURCE_COLUMNS)]


# --------------------------------------------------------------------------------------------------
# detections: shared helpers


def _raw(n: int, **cols: np.ndarray) -> _Block:
    """A block of n raw detections; columns not given are blank (NaN / -1 / None)."""
    out: _Block = {
        "t": np.zeros(n),
        "x": np.zeros(n),
        "y": np.zeros(n),
        "rate": np.full(n, np.nan),
        "conf": np.full(n, np.nan),
        "wind": np.full(n, np.nan),
        "asset": np.full(n, -1, dtype=int),
        "event": np.full(n, None, dtype=object),
        "src": np.full(n, -1, dtype=int),
        "end": np.zeros(n),  # end of the window a report covers (hours); = t for a snapshot
        "unc": np.full(n, np.nan),  # stated 1-sigma relative error when the feed states its own
        "share": np.ones(n),  # the source's share of what the report measured (< 1: a site's total of several)
    }
    for key, value in cols.items():
        out[key] = np.broadcast_to(np.asarray(value, dtype=out[key].dtype), (n,)).copy()
    if "end" not in cols:
        out["end"] = out["t"].copy()
    return out


def _concat(*blocks: _Block) -> _Block:
    """Stack raw detection blocks."""
    return {key: np.concatenate([b[key] for b in blocks]) for key in _RAW_KEYS}


def _p_detect(rate: np.ndarray, limit: np.ndarray | float, slope: float) -> np.ndarray:
    """Logistic-in-log-rate detection probability, 0.5 at ``limit``."""
    return 1.0 / (1.0 + (np.asarray(limit) / np.maximum(rate, 1e-9)) ** slope)


def _measure(rng: np.random.Generator, true_rate: np.ndarray, cv: float) -> np.ndarray:
    """True rate x median-unbiased lognormal error with coefficient of variation ``cv``."""
    return true_rate * np.exp(rng.normal(0.0, math.sqrt(math.log1p(cv * cv)), size=np.shape(true_rate)))


def _confidence(rng: np.random.Generator, snr: np.ndarray | None, n_false: int = 0) -> np.ndarray:
    """Confidences: true detections (``snr`` = log(rate / limit)) then ``n_false`` false ones."""
    n_true = 0 if snr is None else len(snr)
    true = rng.beta(5.0, 3.0, size=n_true) + (0.0 if snr is None else 0.08 * np.tanh(snr))
    false = rng.beta(3.0, 4.0, size=n_false)
    return np.clip(np.concatenate([true, false]), 0.01, 0.99)


def _wind(rng: np.random.Generator, n: int) -> np.ndarray:
    """Scene wind speeds, 1-8 m/s (mean ~3.8)."""
    return 1.0 + 7.0 * rng.beta(2.0, 3.0, size=n)


def _n_false(rng: np.random.Generator, n_true: int, fraction: float) -> int:
    """Number of false positives so that they are ~``fraction`` of a feed's rows."""
    if fraction <= 0:
        return 0
    return int(rng.poisson(fraction / (1.0 - fraction) * max(n_true, 1)))


def _disc(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform in a disc of ``radius`` metres around the origin."""
    r = radius * np.sqrt(rng.random(n))
    a = rng.uniform(0, 2 * math.pi, size=n)
    return r * np.cos(a), r * np.sin(a)


def _local_solar_to_utc_h(local_h: float, lon: float) -> float:
    """UTC hour of a local mean solar time at longitude ``lon``."""
    return (local_h - lon / 15.0) % 24.0


# --------------------------------------------------------------------------------------------------
# detections: feeds


def _passes(
    rng: np.random.Generator,
    n_hours: int,
    revisit_d: float,
    revisit_jitter_d: float,
    local_h: float,
    local_jitter_h: float,
    lon: float,
) -> np.ndarray:
    """Overpass times (hours since t0): every ``revisit_d`` +/- jitter days at a local solar time."""
    utc_h = _local_solar_to_utc_h(local_h, lon)
    days: list[int] = []
    day = float(rng.uniform(0, revisit_d))
    while day < n_hours / _DAY:
        days.append(int(day))
        day += max(1.0, revisit_d + float(rng.uniform(-revisit_jitter_d, revisit_jitter_d)))
    days_arr = np.unique(np.array(days, dtype=int))
    t = days_arr * _DAY + utc_h + rng.uniform(-local_jitter_h, local_jitter_h, size=days_arr.size)
    return t[(t >= 0) & (t < n_hours - 1)]


def _satellite_feed(world: _World, rng: np.random.Generator, feed: _Feed, passes: np.ndarray) -> _Block:
    """Whole-basin imager: one look at every source per pass, clouds per pass, false plumes."""
    n_p, n_s = len(passes), len(world.rate)
    coarse = feed.sigma_m > 1000
    quality = [1.0, 0.5, 0.0]
    clear = rng.choice(quality, size=n_p, p=[0.5, 0.25, 0.25] if coarse else [0.7, 0.2, 0.1])
    scene_wind = _wind(rng, n_p)
    t = passes[:, None] + rng.uniform(0, 30 / 3600, size=(n_p, n_s))
    src = np.broadcast_to(np.arange(n_s), (n_p, n_s))
    wind = np.clip(scene_wind[:, None] * np.exp(rng.normal(0, 0.1, size=(n_p, n_s))), 1.0, 8.0)
    limit = feed.limit_kg_h * np.sqrt(wind / 4.0)
    seen = world.emitting(src, t) & (rng.random((n_p, n_s)) < clear[:, None])
    now = world.rate_at(src, t)
    det = seen & (rng.random((n_p, n_s)) < _p_detect(now, limit, feed.slope))
    pi, si = np.nonzero(det)
    rate = _measure(rng, now[pi, si], feed.rate_cv)
    true = _raw(
        len(si),
        t=t[pi, si],
        x=world.sx[si] + rng.normal(0, feed.sigma_m, size=len(si)),
        y=world.sy[si] + rng.normal(0, feed.sigma_m, size=len(si)),
        rate=rate,
        wind=wind[pi, si],
        src=si,
    )
    snr = np.log(now[pi, si] / limit[pi, si])

    # CoarseSat: a few spurious hot-spots (~0.02 per day); the others: a share of the rows.
    n_fp = int(rng.poisson(0.02 * n_p)) if coarse else _n_false(rng, len(si), feed.false_fraction)
    weight = clear + 0.05
    fp_pass = rng.choice(n_p, size=n_fp, p=weight / weight.sum()) if n_p else np.zeros(0, dtype=int)
    xmin, xmax, ymin, ymax = world.bbox(10000.0 if coarse else 2000.0)
    fx, fy = rng.uniform(xmin, xmax, size=n_fp), rng.uniform(ymin, ymax, size=n_fp)
    near = rng.random(n_fp) < (0.0 if coarse else 0.4)
    host = rng.integers(0, len(world.ax), size=n_fp)
    fx = np.where(near, world.ax[host] + rng.normal(0, 80, size=n_fp), fx)
    fy = np.where(near, world.ay[host] + rng.normal(0, 80, size=n_fp), fy)
    f_wind = scene_wind[fp_pass] if n_p else np.zeros(0)
    false = _raw(
        n_fp,
        t=passes[fp_pass] + rng.uniform(0, 30 / 3600, size=n_fp) if n_p else np.zeros(0),
        x=fx,
        y=fy,
        rate=feed.limit_kg_h * np.sqrt(f_wind / 4.0) * np.exp(rng.normal(0.1, 0.5, size=n_fp)),
        wind=f_wind,
    )
    out = _concat(true, false)
    out["conf"] = _confidence(rng, snr, n_fp)
    return out


def _aerial_feed(world: _World, rng: np.random.Generator) -> _Block:
    """Two aircraft campaigns, each flying a contiguous ~40% of the basin over 3-5 days."""
    feed = _AIRLIDAR
    n_assets, n_days = len(world.ax), world.n_hours // 24
    blocks: list[_Block] = []
    snrs: list[np.ndarray] = []
    visits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (assets, times, winds)
    n_true = 0
    for centre in (0.25, 0.7):
        n_fly = int(rng.integers(3, 6))
        first = int(np.clip(round(centre * n_days) - n_fly // 2, 0, max(n_days - n_fly, 0)))
        heading = float(rng.uniform(0, math.pi))
        order = np.argsort(world.ax * math.cos(heading) + world.ay * math.sin(heading), kind="stable")
        m = round(0.4 * n_assets)
        offset = int(rng.integers(0, n_assets - m + 1))
        covered = order[offset : offset + m]
        day = first + (np.arange(m) * n_fly) // max(m, 1)
        day = np.minimum(day, n_days - 1)
        day_wind = _wind(rng, n_fly)
        when = day * _DAY + np.sort(rng.uniform(15.0, 22.0, size=m))  # 09-16 local (CDT)
        when_at = np.full(n_assets, np.nan)
        when_at[covered] = when
        wind_at = np.full(n_assets, np.nan)
        gust = np.exp(rng.normal(0, 0.1, m))
        wind_at[covered] = np.clip(day_wind[np.minimum(day - first, n_fly - 1)] * gust, 1.0, 8.0)
        visits.append((covered, when, wind_at[covered]))
        src = np.flatnonzero(np.isfinite(when_at[world.s_asset]))
        t = when_at[world.s_asset[src]] + rng.uniform(0, 120 / 3600, size=src.size)
        wind = wind_at[world.s_asset[src]]
        limit = feed.limit_kg_h * np.sqrt(wind / 4.0)
        now = world.rate_at(src, t)
        hit = world.emitting(src, t) & (rng.random(src.size) < _p_detect(now, limit, feed.slope))
        src, t, wind, limit, now = src[hit], t[hit], wind[hit], limit[hit], now[hit]
        blocks.append(
            _raw(
                src.size,
                t=t,
                x=world.sx[src] + rng.normal(0, feed.sigma_m, size=src.size),
                y=world.sy[src] + rng.normal(0, feed.sigma_m, size=src.size),
                rate=_measure(rng, now, feed.rate_cv),
                wind=wind,
                src=src,
            )
        )
        snrs.append(np.log(now / limit))
        n_true += src.size

    n_fp = _n_false(rng, n_true, feed.false_fraction)
    all_assets = np.concatenate([v[0] for v in visits])
    all_times = np.concatenate([v[1] for v in visits])
    all_winds = np.concatenate([v[2] for v in visits])
    pick = rng.integers(0, all_assets.size, size=n_fp)
    dx, dy = _disc(rng, n_fp, 150.0)
    blocks.append(
        _raw(
            n_fp,
            t=all_times[pick] + rng.uniform(0, 120 / 3600, size=n_fp),
            x=world.ax[all_assets[pick]] + dx,
            y=world.ay[all_assets[pick]] + dy,
            rate=feed.limit_kg_h * np.exp(rng.normal(0.3, 0.6, size=n_fp)),
            wind=all_winds[pick],
        )
    )
    out = _concat(*blocks)
    out["conf"] = _confidence(rng, np.concatenate(snrs), n_fp)
    return out


@dataclass(frozen=True)
class _CmsVendor:
    """How one kind of continuous monitor detects, reports and quantifies (fitted to a real vendor)."""

    fitted_to: str  # the Stanford 2022 vendor whose reports set these numbers ("" = assumed)
    style: str  # "fragment": a detection period as a few short windows; "episode": one window; "block": 15 min
    limit_kg_h: float  # 50 % detection per downwind hour, of the site's total rate
    slope: float  # k of the logistic detection curve in log rate
    window_min: float  # fragment windows: median length (minutes)
    window_log_sd: float  # and its log-sd
    median_bias: float  # median reported / true (0 = reports no rate)
    log_sd: float  # log-scatter of a window's reported rate around median_bias x true
    stated_cv: float  # 1-sigma it states as relative error (nan: states none usable)
    localises: bool  # reports where on the site it thinks the emission is
    false_per_day: float  # false alarm windows per day online
    reports_offline: bool  # writes its outages as offline windows


# Fitted to the four vendors' real P/N timelines and the meter (../shared/data/real/stanford_cms_2022), see
# docs/simulator.md: detection L50 and slope from benchmarks/instrument_priors.py (cms.vendors.<V>.
# pod_step_any_overlap; "not identified" -> 1 kg/h, slope 1.4); window length from cms.vendors.<V>.cadence;
# bias and scatter from benchmarks/real.py cms_calibration (median bias = mean ratio x exp(-resid_sd²/2), so
# that the mean reported / true is the vendor's measured mean ratio; resid_sd = scatter around its
# reported-vs-metered line); false alarms from cms.vendors.<V>.false_alarms.per_covered_day. The fixed-block
# reporter is not among the four: its numbers are the pooled ones (mean ratio 0.181, scatter 1.15) and assumed.
_CMS_VENDORS = (
    _CmsVendor("Qube", "fragment", 4.5, 0.66, 21.0, 1.32, 0.104 * math.exp(-0.80**2 / 2), 0.80, np.nan, False,
               0.13, False),
    _CmsVendor("Andium", "fragment", 10.2, 0.84, 21.0, 1.14, 0.0, 0.0, np.nan, False, 0.105, False),
    _CmsVendor("Canary", "episode", 1.0, 1.4, 0.0, 0.0, 0.060 * math.exp(-1.15**2 / 2), 1.15, np.nan, True,
               0.063, False),
    _CmsVendor("Sensirion", "episode", 1.0, 1.4, 0.0, 0.0, 0.323 * math.exp(-1.90**2 / 2), 1.90, 0.25, True,
               0.022, False),
    _CmsVendor("", "block", 2.0, 1.0, 15.0, 0.0, 0.181 * math.exp(-1.15**2 / 2), 1.15, np.nan, False, 0.10, True),
)
_CMS_DOWNWIND = 0.35  # share of hours the plume reaches the monitor's sensors (4 h episodes); assumed
_CMS_ONLINE_DAYS, _CMS_OUTAGE_DAYS = 25.0, 2.0  # mean online stretch, median outage: ~8 % offline; assumed
_CMS_PERIODS_PER_DAY = 3  # detection periods reported per UTC day (the real vendors: 0.7-3.2 windows a day)
_CMS_LOCATE_M = 30.0  # 1-sigma of a localising vendor's emission point on the site; assumed


def _alternating(rng: np.random.Generator, n_hours: int, on_days: float, off_days: float) -> np.ndarray:
    """Hourly online mask: online stretches exponential (mean ``on_days``), outages lognormal (median
    ``off_days``, log-sd 0.8)."""
    out = np.ones(n_hours, dtype=bool)
    t = float(rng.exponential(on_days * _DAY))
    while t < n_hours:
        off = float(np.exp(rng.normal(math.log(off_days * _DAY), 0.8)))
        out[int(t): int(min(t + off, n_hours))] = False
        t += off + float(rng.exponential(on_days * _DAY))
    return out


def _periods(hit: np.ndarray) -> list[tuple[int, int]]:
    """Runs of detected hours [first, last], joining runs separated by at most one hour; at most
    ``_CMS_PERIODS_PER_DAY`` starting in each UTC day."""
    hours = np.flatnonzero(hit)
    if hours.size == 0:
        return []
    new = np.r_[True, np.diff(hours) > 2]
    starts, ends = hours[new], hours[np.r_[new[1:], True]]
    day = starts // 24
    rank = np.arange(starts.size) - np.searchsorted(day, day)
    keep = rank < _CMS_PERIODS_PER_DAY
    return list(zip(starts[keep].tolist(), ends[keep].tolist(), strict=True))


def _windows(rng: np.random.Generator, v: _CmsVendor, first: int, last: int) -> list[tuple[float, float]]:
    """The report windows (start, end hours) a vendor writes for a detection period of hours first..last."""
    p0, p1 = first + float(rng.uniform(0, 0.5)), last + 1 - float(rng.uniform(0, 0.5))
    p1 = max(p1, p0 + 1 / 6)
    if v.style == "episode":
        return [(p0, p1)]
    if v.style == "block":  # the blocks of the period's first hour (its alert; later blocks repeat it)
        b0 = math.floor(p0 * 4) / 4
        return [(b, b + 0.25) for b in np.arange(b0, p1, 0.25)][:4]
    out, t = [], p0
    for _ in range(1 + int(rng.poisson(0.5))):
        length = float(np.exp(rng.normal(math.log(v.window_min / 60), v.window_log_sd)))
        out.append((t, min(t + max(length, 1 / 60), p1)))
        t = out[-1][1] + float(np.exp(rng.normal(math.log(1 / 3), 1.0)))
        if t >= p1:
            break
    return out


def _cms_feed(world: _World, rng: np.random.Generator) -> tuple[_Block, pd.DataFrame]:
    """Continuous monitors at ~15% of assets (favouring big sites), each of one vendor kind (``_CMS_VENDORS``).

    Every hour the plume reaches the sensors (``_CMS_DOWNWIND``) while the monitor is online, it detects the
    site's total emission with the vendor's probability; detected hours form periods, which the vendor
    reports as one window, a few fragments or 15-minute blocks, each with the site's total rate read with the
    vendor's bias and scatter (the window is attributed, in the truth, to the largest source then emitting); a
    vendor that localises reports that source's rate and position (within ``_CMS_LOCATE_M``) instead.
    The time it watched and saw nothing becomes ``watching`` coverage windows; outages are silent (or
    ``offline`` windows for the block reporter). False alarms come at the vendor's measured rate per day.
    Returns the detections (``end`` = window ends) and the coverage windows (asset, start, end, state).
    """
    n_assets, n_hours = len(world.ax), world.n_hours
    weight = np.array([1.0, 2.0, 3.0, 3.0, 0.3])[world.atype]
    n_mon = max(1, round(0.15 * n_assets))
    monitored = np.sort(rng.choice(n_assets, size=n_mon, replace=False, p=weight / weight.sum()))
    kind = rng.integers(0, len(_CMS_VENDORS), size=n_mon)
    mid = np.arange(n_hours) + 0.5
    rows: list[tuple] = []  # (t, end, src, asset, vendor index, false)
    cover: list[tuple] = []  # (asset, start, end, state)
    for a, k in zip(monitored, kind, strict=True):
        v = _CMS_VENDORS[k]
        online = _alternating(rng, n_hours, _CMS_ONLINE_DAYS, _CMS_OUTAGE_DAYS)
        srcs = np.flatnonzero(world.s_asset == a)
        windows: list[tuple[float, float, int, bool]] = []
        if srcs.size:
            em = world.emitting(srcs[:, None], mid[None, :])
            now = np.where(em, world.rate[srcs][:, None] * world.mult[srcs], 0.0)
            total = now.sum(axis=0)
            downwind = _on_off(rng, n_hours, _CMS_DOWNWIND, 4.0)
            p = np.where(total > 0, _p_detect(np.maximum(total, 1e-9), v.limit_kg_h, v.slope), 0.0)
            hit = online & downwind & (rng.random(n_hours) < p)
            lead = np.where(em.any(axis=0), srcs[np.argmax(now, axis=0)], -1)
            for first, last in _periods(hit):
                for w0, w1 in _windows(rng, v, first, last):
                    h = min(int(w0), last)
                    src = lead[h] if lead[h] >= 0 else lead[first]
                    windows.append((w0, w1, int(src), False))
        n_false = int(rng.poisson(v.false_per_day * online.sum() / _DAY))
        if n_false:
            on_hours = np.flatnonzero(online)
            starts = rng.choice(on_hours, size=n_false) + rng.uniform(0, 1, size=n_false)
            length = (np.full(n_false, 0.25) if v.style == "block"
                      else np.exp(rng.normal(math.log(max(v.window_min, 45.0) / 60), 0.8, size=n_false)))
            windows += [(float(t0), float(min(t0 + dl, n_hours)), -1, True) for t0, dl in
                        zip(starts, length, strict=True)]
        windows.sort()
        rows += [(w0, w1, src, int(a), int(k), fa) for w0, w1, src, fa in windows]
        # coverage: online time outside its alarm windows is watching; outages offline (if it says so)
        edges = np.flatnonzero(np.diff(np.r_[0, online.astype(np.int8), 0]))
        for s0, s1 in zip(edges[::2], edges[1::2], strict=True):
            t = float(s0)
            for w0, w1, *_ in windows:
                if w1 <= s0 or w0 >= s1:
                    continue
                if w0 > t:
                    cover.append((int(a), t, w0, "watching"))
                t = max(t, w1)
            if t < s1:
                cover.append((int(a), t, float(s1), "watching"))
            if v.reports_offline and s1 < n_hours:
                nxt = edges[2::2][edges[2::2] > s1]
                cover.append((int(a), float(s1), float(nxt[0]) if nxt.size else float(n_hours), "offline"))
    if not rows:
        empty = pd.DataFrame(columns=["asset", "start_h", "end_h", "state"])
        return _concat(_raw(0)), empty
    t0, t1, src, asset, k, fa = (np.array(c) for c in zip(*rows, strict=True))
    vend = [_CMS_VENDORS[i] for i in k]
    bias = np.array([x.median_bias for x in vend])
    sd = np.array([x.log_sd for x in vend])
    limit = np.array([x.limit_kg_h for x in vend])
    true_rate = np.where(src >= 0, world.rate_at(np.maximum(src, 0), t0), 0.0)
    hour = np.clip(t0.astype(int), 0, n_hours - 1)
    em_total = np.zeros(len(t0))
    for i in np.flatnonzero(src >= 0):  # the site's total at the window's start: what the monitor reads
        ss = np.flatnonzero(world.s_asset == asset[i])
        em_total[i] = float((world.emitting(ss, np.full(ss.size, hour[i] + 0.5)) * world.rate_at(ss, hour[i])).sum())
    # a monitor that localises reports the source it located (the largest then), one that does not the site total
    loc = np.array([x.localises for x in vend])
    base = np.where(src >= 0, np.where(loc, true_rate, np.maximum(em_total, true_rate)), limit)
    reading = base * bias * np.exp(rng.normal(0.0, np.where(src >= 0, sd, 0.8)))
    reading = np.where(bias > 0, reading, np.nan)
    px = np.where(src >= 0, world.sx[np.maximum(src, 0)], world.ax[asset])
    py = np.where(src >= 0, world.sy[np.maximum(src, 0)], world.ay[asset])
    x = np.where(loc, px + rng.normal(0, _CMS_LOCATE_M, size=len(t0)), world.ax[asset])
    y = np.where(loc, py + rng.normal(0, _CMS_LOCATE_M, size=len(t0)), world.ay[asset])
    share = np.where(loc | (src < 0), 1.0, true_rate / np.maximum(np.maximum(em_total, true_rate), 1e-12))
    out = _raw(len(t0), t=t0, end=t1, x=x, y=y, rate=reading, asset=asset, src=src,
               unc=np.array([x.stated_cv for x in vend]), share=share)
    snr = np.log(np.maximum(base, 1e-9) / limit)
    out["conf"] = np.where(fa, rng.beta(3.0, 4.0, size=len(t0)),
                           np.clip(rng.beta(5.0, 3.0, size=len(t0)) + 0.08 * np.tanh(snr), 0.01, 0.99))
    out["event"] = np.full(len(t0), "concentration_alert", dtype=object)
    cov = pd.DataFrame(cover, columns=["asset", "start_h", "end_h", "state"])
    return out, cov[cov["end_h"] > cov["start_h"]].reset_index(drop=True)


_SCADA_EVENTS: dict[int, tuple[tuple[str, ...], tuple[float, ...]]] = {
    _TANK: (("tank_pressure_high", "pressure_drop"), (0.8, 0.2)),
    _COMPRESSOR: (("compressor_vent", "pressure_drop"), (0.6, 0.4)),
    _PLANT: (("pressure_drop", "compressor_vent"), (0.5, 0.5)),
}


def _scada_events(rng: np.random.Generator, atype: np.ndarray) -> np.ndarray:
    """Event type for each alarm, by the asset's type."""
    out = np.empty(atype.size, dtype=object)
    for code, (names, probs) in _SCADA_EVENTS.items():
        idx = np.flatnonzero(atype == code)
        out[idx] = rng.choice(np.array(names, dtype=object), size=idx.size, p=probs)
    return out


def _scada_feed(world: _World, rng: np.random.Generator) -> _Block:
    """Operator SCADA alarms at tanks, compressors and plants: some leaks show, most alarms are noise."""
    feed = _SCADA
    n_hours = world.n_hours
    mid = np.arange(n_hours) + 0.5
    scada_type = np.isin(world.atype, list(_SCADA_EVENTS))
    cand = np.flatnonzero(scada_type[world.s_asset] & (rng.random(len(world.rate)) < 0.3))
    times: list[np.ndarray] = []
    who: list[np.ndarray] = []
    for s in cand:
        t: list[np.ndarray] = []
        if 0 <= world.start_h[s] < n_hours - 1:
            t.append(np.array([world.start_h[s] + rng.uniform(0, 1)]))
        on_hours = np.flatnonzero(world.emitting(np.full(n_hours, s), mid))
        extra = int(rng.poisson(on_hours.size / (12 * _DAY)))
        if extra and on_hours.size:
            t.append(rng.choice(on_hours, size=extra) + rng.uniform(0, 1, size=extra))
        if t:
            ts = np.clip(np.concatenate(t), world.start_h[s], min(world.end_h[s], n_hours) - 1e-3)
            times.append(ts)
            who.append(np.full(ts.size, s))
    src = np.concatenate(who) if who else np.zeros(0, dtype=int)
    asset = world.s_asset[src]
    true = _raw(
        src.size,
        t=np.concatenate(times) if times else np.zeros(0),
        x=world.ax[asset],
        y=world.ay[asset],
        conf=rng.uniform(0.3, 0.6, size=src.size),
        asset=asset,
        src=src,
    )
    true["event"] = _scada_events(rng, world.atype[asset])

    hosts = np.flatnonzero(scada_type)
    n_fp = _n_false(rng, src.size, feed.false_fraction) if hosts.size else 0
    host = hosts[rng.integers(0, hosts.size, size=n_fp)] if n_fp else np.zeros(0, dtype=int)
    false = _raw(
        n_fp,
        t=rng.uniform(0, n_hours, size=n_fp),
        x=world.ax[host],
        y=world.ay[host],
        conf=rng.uniform(0.2, 0.5, size=n_fp),
        asset=host,
    )
    false["event"] = _scada_events(rng, world.atype[host])
    return _concat(true, false)


def _ogi_feed(world: _World, rng: np.random.Generator) -> _Block:
    """LDAR optical gas imaging survey of ~10% of assets; leaks it finds are repaired within 30 days."""
    feed = _OGI
    n_assets, n_days = len(world.ax), world.n_hours // 24
    n_visit = max(1, round(0.10 * n_assets))
    visited = rng.choice(n_assets, size=n_visit, replace=False)
    weekdays = np.flatnonzero((world.t0.dayofweek + np.arange(n_days)) % 7 < 5)
    weekdays = weekdays if weekdays.size else np.arange(n_days)
    n_survey_days = math.ceil(n_visit / 8)
    days = rng.choice(weekdays, size=n_survey_days, replace=n_survey_days > weekdays.size)
    when_at = np.full(n_assets, np.nan)
    when_at[visited] = rng.choice(days, size=n_visit) * _DAY + rng.uniform(14.0, 22.0, size=n_visit)

    src = np.flatnonzero(np.isfinite(when_at[world.s_asset]))
    t = when_at[world.s_asset[src]] + rng.uniform(0, 0.5, size=src.size)
    p = 0.8 * _p_detect(world.rate_at(src, t), feed.limit_kg_h, feed.slope)
    hit = world.emitting(src, t) & (rng.random(src.size) < p)
    src, t = src[hit], t[hit]
    # Found leaks are repaired 1-30 days after the visit (LDAR rules), unless they stop sooner.
    world.end_h[src] = np.minimum(world.end_h[src], t + rng.uniform(1, 30, size=src.size) * _DAY)
    world.end_h[world.end_h >= world.n_hours] = np.inf
    true = _raw(
        src.size,
        t=t,
        x=world.sx[src] + rng.normal(0, feed.sigma_m, size=src.size),
        y=world.sy[src] + rng.normal(0, feed.sigma_m, size=src.size),
        asset=world.s_asset[src],
        src=src,
    )
    n_fp = int(rng.poisson(0.005 * n_visit))
    host = visited[rng.integers(0, n_visit, size=n_fp)]
    false = _raw(
        n_fp,
        t=when_at[host] + rng.uniform(0, 0.5, size=n_fp),
        x=world.ax[host] + rng.normal(0, 15, size=n_fp),
        y=world.ay[host] + rng.normal(0, 15, size=n_fp),
        asset=host,
    )
    out = _concat(true, false)
    out["conf"] = np.full(out["t"].size, 0.9)
    return out


def _finalize(
    world: _World, feed: _Feed, raw: _Block, asset_ids: np.ndarray, source_ids: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Raw detections -> (canonical frame sorted by time with ids, truth rows, window ends in hours)."""
    order = np.lexsort((raw["x"], raw["t"]))
    r = {key: raw[key][order] for key in _RAW_KEYS}
    n = order.size
    t = np.clip(r["t"], 0.0, world.n_hours)
    observed = world.t0 + pd.to_timedelta(np.round(t * 3600), unit="s")
    lat, lon = _to_latlon(world, r["x"], r["y"])
    ids = np.array([f"{feed.prefix}-{i:07d}" for i in range(n)], dtype=object)
    has_rate = feed.rate_cv > 0
    rate = r["rate"] if has_rate else np.full(n, np.nan)
    frame = pd.DataFrame(
        {
            "detection_id": ids,
            "source_type": np.full(n, feed.source_type, dtype=object),
            "source_name": np.full(n, feed.name, dtype=object),
            "observed_at": observed,
            "latitude": lat.round(7),
            "longitude": lon.round(7),
            "location_uncertainty_m": np.full(n, feed.sigma_m),
            "rate_kg_h": rate.round(4),
            # a monitor states its own error or none (r["unc"]); the other feeds state their cv
            "rate_uncertainty_kg_h": ((r["unc"] if feed is _FENCECMS else feed.rate_cv) * rate).round(4)
            if has_rate else np.full(n, np.nan),
            "confidence": r["conf"].round(4),
            "wind_speed_m_s": r["wind"].round(2),
            "asset_id": np.append(asset_ids, None)[r["asset"]],  # -1 -> the trailing blank
            "event_type": r["event"],
        }
    )
    frame = frame.astype(
        dict.fromkeys(("detection_id", "source_type", "source_name", "asset_id", "event_type"), "str")
    )[list(CANONICAL_COLUMNS)]
    truth = pd.DataFrame(
        {
            "source_name": np.full(n, feed.name, dtype=object),
            "detection_id": ids,
            "source_id": np.append(source_ids, "")[r["src"]],  # -1 (false positive) -> ""
            "source_share": r["share"].round(4),
        }
    )
    return frame, truth, np.clip(r["end"], t, world.n_hours)
