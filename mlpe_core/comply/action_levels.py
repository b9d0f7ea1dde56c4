"""Action levels from data: each site's continuous-monitor rolling averages, its own baseline, and the day a level
is crossed, so a continuous-monitoring clock starts where 40 CFR 60.5398b says it does (an exceedance of a rolling
average) rather than at any monitor alert.

How the numbers are made (``docs/compliance.md`` says what was assumed and what could not be checked):

* **Readings.** A site's readings are its continuous-monitor detections with a rate. The site is the detection's
  own ``asset_id`` (a monitor knows its site), else its leak's attributed asset, else the leak itself
  (``leak:<id>``), so a monitor with no registry still gets levels.
* **Coverage.** The windows in which the site's monitor was watching. Pass them (``coverage``: site, start, end)
  when a monitor-status feed gives them; without them a site counts as watched from its first reading to its
  last reading plus one sample. Hours outside coverage are unknown, never zero.
* **Daily values.** ``fill: zero`` (a feed that reports only what it sees): each reading stands for
  ``sample_hours`` of emission at its rate and watched time without a reading is no emission, so the day's
  average is the mass over the watched hours. ``fill: none``: the mean of the readings reported.
* **Rolling N-day average** at day D: the days D−N+1 … D pooled the same way (mass over watched hours, or the mean
  of the readings), with its coverage (watched hours / N × 24). A window under ``min_coverage`` is not judged.
* **Baseline** (levels set over it): the operator's figure when one is configured
  (``settings.site_baselines_kg_h``), else the site's own average over its first ``baseline_days`` watched days;
  no level over baseline is judged before that period ends.
* **Exceedance.** The day the average goes from at or below the threshold to above it. The clock starts that day
  (00:00 UTC); while the average stays above, no new clock starts, and a later crossing starts a new one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
LEAK_SITE = "leak:"  # the site of monitor readings whose leak names no asset: the leak's own location


def site_words(site: str) -> str:
    """A site as a person reads it: an asset's id, or the leak whose own monitors are the site (no asset)."""
    s = str(site)
    return f"the site of leak {s[len(LEAK_SITE):]}" if s.startswith(LEAK_SITE) else f"site {s}"


def monitor_readings(dets: pd.DataFrame, leaks: pd.DataFrame | None = None,
                     source_types: tuple[str, ...] | list[str] = ("continuous_monitor",)) -> pd.DataFrame:
    """The continuous-monitor readings with a rate, each with its site: site, leak_id, detection_id,
    observed_at (UTC), rate_kg_h, sorted by site and time."""
    cols = ["site", "leak_id", "detection_id", "observed_at", "rate_kg_h"]
    if dets is None or dets.empty or "source_type" not in dets:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    d = dets[dets["source_type"].isin(list(source_types)) & dets["rate_kg_h"].notna()]
    if d.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    own = d["asset_id"] if "asset_id" in d else pd.Series(None, index=d.index, dtype=object)
    own = own.where(own.notna() & own.astype(str).str.strip().ne(""), None)
    leak_asset = pd.Series(None, index=d.index, dtype=object)
    if leaks is not None and len(leaks) and "asset_id" in leaks:
        leak_asset = d["leak_id"].map(leaks.set_index("leak_id")["asset_id"])
    site = own.fillna(leak_asset)
    site = site.where(site.notna(), LEAK_SITE + d["leak_id"].astype(str))
    out = pd.DataFrame({"site": site.astype(str), "leak_id": d["leak_id"],
                        "detection_id": d["detection_id"] if "detection_id" in d else None,
                        "observed_at": pd.to_datetime(d["observed_at"], utc=True),
                        "rate_kg_h": d["rate_kg_h"].astype(float)})
    return out.sort_values(["site", "observed_at"], kind="stable").reset_index(drop=True)


def default_coverage(readings: pd.DataFrame, sample_hours: float = 1.0) -> pd.DataFrame:
    """Until a monitor-status feed says when each monitor watched: from a site's first reading to its last
    reading plus one sample."""
    if readings.empty:
        return pd.DataFrame({"site": pd.Series(dtype=object), "start": pd.Series(dtype="datetime64[ns, UTC]"),
                             "end": pd.Series(dtype="datetime64[ns, UTC]")})
    g = readings.groupby("site")["observed_at"]
    out = pd.DataFrame({"start": g.min(), "end": g.max() + pd.Timedelta(hours=float(sample_hours))})
    return out.rename_axis("site").reset_index()


def _merged_windows(coverage: pd.DataFrame) -> pd.DataFrame:
    """Each site's watching windows with overlaps merged, so an hour is never counted twice (site, start, end)."""
    c = coverage.assign(start=pd.to_datetime(coverage["start"], utc=True),
                        end=pd.to_datetime(coverage["end"], utc=True))
    c = c[c["end"] > c["start"]].sort_values(["site", "start"], kind="stable").reset_index(drop=True)
    if c.empty:
        return c[["site", "start", "end"]]
    reach = c.groupby("site")["end"].cummax()
    prev = reach.groupby(c["site"]).shift(1)
    new = prev.isna() | (c["start"] > prev)
    grp = new.cumsum()
    return c.groupby(grp).agg(site=("site", "first"), start=("start", "min"), end=("end", "max")).reset_index(drop=True)


def _covered_hours(coverage: pd.DataFrame) -> pd.DataFrame:
    """Watched hours per site and UTC day (site, day, covered_h), from the merged windows."""
    w = _merged_windows(coverage)
    if w.empty:
        return pd.DataFrame({"site": pd.Series(dtype=object), "day": pd.Series(dtype="datetime64[ns, UTC]"),
                             "covered_h": pd.Series(dtype=float)})
    start = w["start"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    end = w["end"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    first = start.astype("datetime64[D]").astype("datetime64[ns]")
    n_days = ((end - np.timedelta64(1, "us")).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(int) + 1
    rep = np.repeat(np.arange(len(w)), n_days)
    offs = np.arange(len(rep)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    day = first[rep] + offs * np.timedelta64(1, "D")
    lo = np.maximum(day, start[rep])
    hi = np.minimum(day + np.timedelta64(1, "D"), end[rep])
    hours = (hi - lo) / np.timedelta64(1, "h")
    out = pd.DataFrame({"site": w["site"].to_numpy()[rep], "day": pd.to_datetime(day, utc=True), "covered_h": hours})
    return out.groupby(["site", "day"], as_index=False)["covered_h"].sum()


def daily_values(readings: pd.DataFrame, coverage: pd.DataFrame | None = None, sample_hours: float = 1.0
                 ) -> pd.DataFrame:
    """Per site and UTC day: mass (Σ rate × sample_hours, kg), rate_sum, n (readings), covered_h (watched hours).

    Every day from a site's first watched day (or reading) to its last is present, so windows count the days
    without readings."""
    cols = ["site", "day", "mass", "rate_sum", "n", "covered_h"]
    cov = default_coverage(readings, sample_hours) if coverage is None else coverage
    per = readings.assign(day=readings["observed_at"].dt.floor("D"), mass=readings["rate_kg_h"] * float(sample_hours))
    per = per.groupby(["site", "day"]).agg(mass=("mass", "sum"), rate_sum=("rate_kg_h", "sum"),
                                           n=("rate_kg_h", "size"))
    hours = _covered_hours(cov).set_index(["site", "day"])["covered_h"]
    keys = per.index.union(hours.index)
    if not len(keys):
        return pd.DataFrame(columns=cols)
    span = keys.to_frame(index=False).groupby("site")["day"].agg(["min", "max"])
    n_days = ((span["max"] - span["min"]).dt.days + 1).to_numpy()
    rep = np.repeat(np.arange(len(span)), n_days)
    offs = np.arange(len(rep)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    lo = span["min"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    grid = pd.MultiIndex.from_arrays([span.index.to_numpy()[rep],
                                      pd.to_datetime(lo[rep] + offs * np.timedelta64(1, "D"), utc=True)],
                                     names=["site", "day"])
    out = per.reindex(grid, fill_value=0)
    out["covered_h"] = hours.reindex(grid).fillna(0.0).to_numpy()
    return out.reset_index()[cols]


def _window_sums(daily: pd.DataFrame, cols: list[str], days: int) -> pd.DataFrame:
    """Sums of ``cols`` over the ``days`` rows ending at each row, within each site (rows: one per day, in order)."""
    site = daily["site"].to_numpy()
    start = np.r_[0, np.flatnonzero(site[1:] != site[:-1]) + 1]
    first_of = np.repeat(start, np.diff(np.r_[start, len(site)]))
    idx = np.arange(len(site))
    j = np.maximum(idx - days + 1, first_of)  # the window's first row
    out = {}
    for c in cols:
        cs = np.cumsum(daily[c].to_numpy(float))
        out[c] = cs - np.where(j > 0, cs[np.maximum(j - 1, 0)], 0.0)
    return pd.DataFrame(out, index=daily.index)


def rolling_average(daily: pd.DataFrame, days: int, fill: str = "zero", min_coverage: float = 0.0) -> pd.DataFrame:
    """The ``days``-day rolling average at the end of each day: site, day, average_kg_h, coverage (watched share
    of the window). NaN where the window has no data or its coverage is under ``min_coverage``."""
    if daily.empty:
        return pd.DataFrame(columns=["site", "day", "average_kg_h", "coverage"])
    daily = daily.sort_values(["site", "day"], kind="stable").reset_index(drop=True)
    roll = _window_sums(daily, ["mass", "rate_sum", "n", "covered_h"], int(days))
    if fill == "zero":
        avg = roll["mass"] / roll["covered_h"].where(roll["covered_h"] > 0)
    else:
        avg = roll["rate_sum"] / roll["n"].where(roll["n"] > 0)
    cover = (roll["covered_h"] / (24.0 * days)).clip(upper=1.0)
    avg = avg.where(cover >= min_coverage)
    return pd.DataFrame({"site": daily["site"], "day": daily["day"], "average_kg_h": avg.to_numpy(float),
                         "coverage": cover.to_numpy(float)})


def site_baselines(daily: pd.DataFrame, baseline_days: int, fill: str = "zero") -> pd.DataFrame:
    """Each site's own baseline: its average over its first ``baseline_days`` days (from its first watched day),
    and the first day a level over it can be judged. Columns: site, baseline_kg_h, judged_from (NaN baseline while
    the period has not ended)."""
    watched = daily[daily["covered_h"] > 0]
    if watched.empty:
        return pd.DataFrame(columns=["site", "baseline_kg_h", "judged_from"])
    first = watched.groupby("site")["day"].min()
    end = first + pd.Timedelta(days=int(baseline_days))
    d = daily[daily["site"].isin(first.index)]
    inside = (d["day"] >= d["site"].map(first)) & (d["day"] < d["site"].map(end))
    w = d[inside].groupby("site")[["mass", "rate_sum", "n", "covered_h"]].sum().reindex(first.index)
    base = w["mass"] / w["covered_h"].where(w["covered_h"] > 0) if fill == "zero" \
        else w["rate_sum"] / w["n"].where(w["n"] > 0)
    ended = d.groupby("site")["day"].max().reindex(first.index) >= end - DAY
    base = base.where(ended)
    return pd.DataFrame({"site": first.index, "baseline_kg_h": base.to_numpy(float), "judged_from": end.to_numpy()})


def site_classes(sites: pd.Series | list[str], assets: pd.DataFrame | None, settings: dict) -> pd.Series:
    """wellhead_only or other per site (asset_type from the registry; a leak pseudo-site is the default class)."""
    s = sites if isinstance(sites, pd.Series) else pd.Series(list(sites), dtype=object)
    sites = pd.Index(pd.unique(s)).astype(object)  # distinct first: a rule's series holds a row per site and day
    klass = pd.Series(settings.get("default_site_class", "other"), index=sites, dtype=object)
    if assets is not None and len(assets) and "asset_type" in assets:
        atype = pd.Series(sites, index=sites).map(assets.set_index("asset_id")["asset_type"]).dropna()
        wellhead = set(settings.get("site_classes", {}).get("wellhead_only", []))
        klass.loc[atype.index] = atype.astype(str).str.lower().map(
            lambda t: "wellhead_only" if t in wellhead else "other")
    return klass


def _memo(memo: dict | None, key: tuple, make):
    """``make()``, or what it gave for ``key`` before in ``memo`` (keys name their inputs by ``id``: the memo holds
    those inputs too, so an id is never reused while it lives)."""
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def rule_series(readings: pd.DataFrame, rule: dict, settings: dict, assets: pd.DataFrame | None = None,
                coverage: pd.DataFrame | None = None, baselines: dict[str, float] | None = None,
                memo: dict | None = None) -> pd.DataFrame:
    """One action-level rule over every site: site, day, average_kg_h, coverage, baseline_kg_h, threshold_kg_h,
    above (judged and over the threshold), crossed (the first day above after a day that was not).

    ``memo``: a dict shared by the rules of one check, so rules over the same readings compute their daily values
    and baselines once (a re-score's clocks at 1M detections: two rules, 0.4 s of the same work twice)."""
    roll = rule["trigger"]["rolling_mean_kg_h"]
    fill, sample_h = roll.get("fill", "none"), float(roll.get("sample_hours", 1.0))
    daily = _memo(memo, ("daily", id(readings), id(coverage), sample_h),
                  lambda: daily_values(readings, coverage, sample_h))
    avg = rolling_average(daily, int(roll["days"]), fill, float(roll.get("min_coverage", 0.0)))
    if avg.empty:
        return avg.assign(baseline_kg_h=np.nan, threshold_kg_h=np.nan, above=False, crossed=False)
    above = roll["above"]
    # a row per site and day: what belongs to a site is looked up once per site and spread by its code
    code, sites = pd.factorize(avg["site"])
    sites = pd.Series(sites, index=sites)

    def per_site(values: pd.Series | dict) -> pd.Series:
        return pd.Series(sites.map(values).array.take(code), index=avg.index)

    klass = site_classes(sites, assets, settings)
    level = per_site(klass.map(above)).astype(float) if isinstance(above, dict) \
        else pd.Series(float(above), index=avg.index)
    avg["baseline_kg_h"] = 0.0
    judged = pd.Series(True, index=avg.index)
    if roll.get("over_baseline"):
        given = {**settings.get("site_baselines_kg_h", {}), **(baselines or {})}
        if roll.get("baseline_days"):
            own = _memo(memo, ("baselines", id(daily), int(roll["baseline_days"]), fill),
                        lambda: site_baselines(daily, int(roll["baseline_days"]), fill).set_index("site"))
            avg["baseline_kg_h"] = per_site(own["baseline_kg_h"])
            judged = avg["day"] >= per_site(own["judged_from"])
        configured = per_site(given)
        avg["baseline_kg_h"] = configured.fillna(avg["baseline_kg_h"]).astype(float)
        judged = judged | configured.notna()  # an operator's baseline is known from the first day
        judged &= avg["baseline_kg_h"].notna()
    avg["threshold_kg_h"] = level + avg["baseline_kg_h"].fillna(0.0)
    avg["above"] = (judged & (avg["average_kg_h"] > avg["threshold_kg_h"])).fillna(False).astype(bool)
    prev = avg.groupby(code)["above"].shift(1, fill_value=False).astype(bool)
    avg["crossed"] = avg["above"] & ~prev
    return avg


def exceedances(dets: pd.DataFrame, rule: dict, settings: dict, leaks: pd.DataFrame | None = None,
                assets: pd.DataFrame | None = None, coverage: pd.DataFrame | None = None,
                baselines: dict[str, float] | None = None, memo: dict | None = None) -> pd.DataFrame:
    """The days one action-level rule is crossed at each site: site, day (UTC midnight), average_kg_h,
    threshold_kg_h, baseline_kg_h, leak_ids (the leaks holding the site's readings)."""
    types = rule["trigger"].get("source_types", ["continuous_monitor"])
    readings = _memo(memo, ("readings", id(dets), id(leaks), tuple(types)),
                     lambda: monitor_readings(dets, leaks, types))
    cols = ["site", "day", "average_kg_h", "threshold_kg_h", "baseline_kg_h", "leak_ids"]
    if readings.empty:
        return pd.DataFrame(columns=cols)
    series = rule_series(readings, rule, settings, assets, coverage, baselines, memo)
    hit = series[series["crossed"]].copy()
    held = readings.loc[readings["site"].isin(set(hit["site"])), ["site", "leak_id"]].dropna().drop_duplicates()
    held = held.assign(leak_id=held["leak_id"].astype(object))
    site_leaks = {site: sorted(g) for site, g in held.groupby("site", sort=False)["leak_id"]}
    hit["leak_ids"] = [site_leaks.get(site, []) for site in hit["site"]]
    return hit[cols].reset_index(drop=True)


def action_level_series(dets: pd.DataFrame, rules: list[dict], site: str, leaks: pd.DataFrame | None = None,
                        assets: pd.DataFrame | None = None, coverage: pd.DataFrame | None = None,
                        baselines: dict[str, float] | None = None) -> pd.DataFrame:
    """For a page's chart of one site: per day and action-level rule, the rolling average, its coverage, the
    baseline and the threshold, and whether it was above or crossed that day.

    Columns: rule, label, day, average_kg_h, coverage, baseline_kg_h, threshold_kg_h, above, crossed. Empty when
    the site has no monitor readings. ``rules`` is a ``load_rules()`` result (its ``settings`` are used)."""
    settings = getattr(rules, "settings", {})
    out = []
    for rule in rules:
        if not rule.get("enabled", True) or rule["trigger"].get("event") != "action_level":
            continue
        readings = monitor_readings(dets, leaks, rule["trigger"].get("source_types", ["continuous_monitor"]))
        readings = readings[readings["site"] == site]
        cov = coverage[coverage["site"] == site] if coverage is not None else None
        if readings.empty:
            continue
        s = rule_series(readings, rule, settings, assets, cov, baselines)
        out.append(s.drop(columns=["site"]).assign(rule=rule["id"], label=rule.get("label", rule["name"])))
    cols = ["rule", "label", "day", "average_kg_h", "coverage", "baseline_kg_h", "threshold_kg_h", "above", "crossed"]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]
