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
    site = site.where(site.notna(), "leak:" + d["leak_id"].astype(str))
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


def _covered_hours(coverage: pd.DataFrame, site: str, days: pd.DatetimeIndex) -> np.ndarray:
    """Watched hours of ``site`` on each day (windows clipped to the day, overlaps counted once)."""
    w = coverage[coverage["site"] == site]
    hours = np.zeros(len(days))
    if w.empty:
        return hours
    spans = sorted(zip(pd.to_datetime(w["start"], utc=True), pd.to_datetime(w["end"], utc=True), strict=True))
    merged: list[list[pd.Timestamp]] = []
    for s, e in spans:  # merge overlapping windows so an hour is never counted twice
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    start = days.to_numpy(dtype="datetime64[ns]")
    end = start + np.timedelta64(1, "D")
    for s, e in merged:
        s64 = np.datetime64(s.tz_convert("UTC").tz_localize(None), "ns")
        e64 = np.datetime64(e.tz_convert("UTC").tz_localize(None), "ns")
        lo, hi = np.maximum(start, s64), np.minimum(end, e64)
        hours += np.clip((hi - lo) / np.timedelta64(1, "h"), 0, None)
    return hours


def daily_values(readings: pd.DataFrame, coverage: pd.DataFrame | None = None, sample_hours: float = 1.0
                 ) -> pd.DataFrame:
    """Per site and UTC day: mass (Σ rate × sample_hours, kg), rate_sum, n (readings), covered_h (watched hours).

    Every day from a site's first watched day to its last is present, so windows count the days without readings.
    """
    cov = default_coverage(readings, sample_hours) if coverage is None else coverage
    frames = []
    for site in sorted(set(readings["site"]) | set(cov["site"])):
        r = readings[readings["site"] == site]
        c = cov[cov["site"] == site]
        times = list(r["observed_at"]) + list(pd.to_datetime(c["start"], utc=True)) + \
            list(pd.to_datetime(c["end"], utc=True) - pd.Timedelta(microseconds=1))
        if not times:
            continue
        days = pd.date_range(min(times).floor("D"), max(times).floor("D"), freq="D")
        day_of = r["observed_at"].dt.floor("D")
        per = pd.DataFrame({"mass": r["rate_kg_h"].to_numpy() * float(sample_hours), "rate": r["rate_kg_h"].to_numpy(),
                            "day": day_of.to_numpy()}).groupby("day").agg(mass=("mass", "sum"),
                                                                         rate_sum=("rate", "sum"), n=("rate", "size"))
        per = per.reindex(days, fill_value=0)
        per["covered_h"] = _covered_hours(cov, site, days)
        per["site"] = site
        frames.append(per.rename_axis("day").reset_index())
    if not frames:
        return pd.DataFrame(columns=["site", "day", "mass", "rate_sum", "n", "covered_h"])
    return pd.concat(frames, ignore_index=True)[["site", "day", "mass", "rate_sum", "n", "covered_h"]]


def rolling_average(daily: pd.DataFrame, days: int, fill: str = "zero", min_coverage: float = 0.0) -> pd.DataFrame:
    """The ``days``-day rolling average at the end of each day: site, day, average_kg_h, coverage (watched share
    of the window). NaN where the window has no data or its coverage is under ``min_coverage``."""
    out = []
    for site, g in daily.groupby("site", sort=True):
        g = g.set_index("day").sort_index()
        roll = g[["mass", "rate_sum", "n", "covered_h"]].rolling(f"{int(days)}D").sum()
        if fill == "zero":
            avg = roll["mass"] / roll["covered_h"].where(roll["covered_h"] > 0)
        else:
            avg = roll["rate_sum"] / roll["n"].where(roll["n"] > 0)
        cover = (roll["covered_h"] / (24.0 * days)).clip(upper=1.0)
        avg = avg.where(cover >= min_coverage)
        out.append(pd.DataFrame({"site": site, "day": g.index, "average_kg_h": avg.to_numpy(float),
                                 "coverage": cover.to_numpy(float)}))
    if not out:
        return pd.DataFrame(columns=["site", "day", "average_kg_h", "coverage"])
    return pd.concat(out, ignore_index=True)


def site_baselines(daily: pd.DataFrame, baseline_days: int, fill: str = "zero") -> pd.DataFrame:
    """Each site's own baseline: its average over its first ``baseline_days`` days (from its first watched day),
    and the first day a level over it can be judged. Columns: site, baseline_kg_h, judged_from."""
    rows = []
    for site, g in daily.groupby("site", sort=True):
        watched = g[g["covered_h"] > 0]
        if watched.empty:
            continue
        first = watched["day"].min()
        end = first + pd.Timedelta(days=int(baseline_days))
        w = g[(g["day"] >= first) & (g["day"] < end)]
        if g["day"].max() < end - DAY:  # the baseline period has not ended yet
            rows.append((site, np.nan, end))
            continue
        if fill == "zero":
            base = w["mass"].sum() / w["covered_h"].sum() if w["covered_h"].sum() > 0 else np.nan
        else:
            base = w["rate_sum"].sum() / w["n"].sum() if w["n"].sum() > 0 else np.nan
        rows.append((site, float(base), end))
    return pd.DataFrame(rows, columns=["site", "baseline_kg_h", "judged_from"])


def site_classes(sites: pd.Series | list[str], assets: pd.DataFrame | None, settings: dict) -> pd.Series:
    """wellhead_only or other per site (asset_type from the registry; a leak pseudo-site is the default class)."""
    sites = pd.Index(pd.unique(pd.Series(list(sites), dtype=object)))
    klass = pd.Series(settings.get("default_site_class", "other"), index=sites, dtype=object)
    if assets is not None and len(assets) and "asset_type" in assets:
        atype = pd.Series(sites, index=sites).map(assets.set_index("asset_id")["asset_type"]).dropna()
        wellhead = set(settings.get("site_classes", {}).get("wellhead_only", []))
        klass.loc[atype.index] = atype.astype(str).str.lower().map(
            lambda t: "wellhead_only" if t in wellhead else "other")
    return klass


def rule_series(readings: pd.DataFrame, rule: dict, settings: dict, assets: pd.DataFrame | None = None,
                coverage: pd.DataFrame | None = None, baselines: dict[str, float] | None = None) -> pd.DataFrame:
    """One action-level rule over every site: site, day, average_kg_h, coverage, baseline_kg_h, threshold_kg_h,
    above (judged and over the threshold), crossed (the first day above after a day that was not)."""
    roll = rule["trigger"]["rolling_mean_kg_h"]
    fill, sample_h = roll.get("fill", "none"), float(roll.get("sample_hours", 1.0))
    daily = daily_values(readings, coverage, sample_h)
    avg = rolling_average(daily, int(roll["days"]), fill, float(roll.get("min_coverage", 0.0)))
    if avg.empty:
        return avg.assign(baseline_kg_h=np.nan, threshold_kg_h=np.nan, above=False, crossed=False)
    above = roll["above"]
    klass = site_classes(avg["site"], assets, settings)
    level = avg["site"].map(klass).map(above).astype(float) if isinstance(above, dict) \
        else pd.Series(float(above), index=avg.index)
    avg["baseline_kg_h"] = 0.0
    judged = pd.Series(True, index=avg.index)
    if roll.get("over_baseline"):
        given = {**settings.get("site_baselines_kg_h", {}), **(baselines or {})}
        if roll.get("baseline_days"):
            own = site_baselines(daily, int(roll["baseline_days"]), fill).set_index("site")
            avg["baseline_kg_h"] = avg["site"].map(own["baseline_kg_h"])
            judged = avg["day"] >= avg["site"].map(own["judged_from"])
        configured = avg["site"].map(given)
        avg["baseline_kg_h"] = configured.fillna(avg["baseline_kg_h"]).astype(float)
        judged = judged | configured.notna()  # an operator's baseline is known from the first day
        judged &= avg["baseline_kg_h"].notna()
    avg["threshold_kg_h"] = level + avg["baseline_kg_h"].fillna(0.0)
    avg["above"] = (judged & (avg["average_kg_h"] > avg["threshold_kg_h"])).fillna(False).astype(bool)
    prev = avg.groupby("site")["above"].shift(1, fill_value=False).astype(bool)
    avg["crossed"] = avg["above"] & ~prev
    return avg


def exceedances(dets: pd.DataFrame, rule: dict, settings: dict, leaks: pd.DataFrame | None = None,
                assets: pd.DataFrame | None = None, coverage: pd.DataFrame | None = None,
                baselines: dict[str, float] | None = None) -> pd.DataFrame:
    """The days one action-level rule is crossed at each site: site, day (UTC midnight), average_kg_h,
    threshold_kg_h, baseline_kg_h, leak_ids (the leaks holding the site's readings)."""
    types = rule["trigger"].get("source_types", ["continuous_monitor"])
    readings = monitor_readings(dets, leaks, types)
    cols = ["site", "day", "average_kg_h", "threshold_kg_h", "baseline_kg_h", "leak_ids"]
    if readings.empty:
        return pd.DataFrame(columns=cols)
    series = rule_series(readings, rule, settings, assets, coverage, baselines)
    hit = series[series["crossed"]].copy()
    site_leaks = readings.groupby("site")["leak_id"].agg(lambda s: sorted(set(s.dropna())))
    hit["leak_ids"] = hit["site"].map(site_leaks)
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
