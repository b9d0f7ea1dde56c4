"""Clocks: when each rule's clock starts for a leak, what meets it, and when it is due."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .rules import ACTIONS, DEFAULT_SETTINGS, DUE_SOON_DAYS


def _add(start: pd.Timestamp, days: int, calendar: str) -> pd.Timestamp:
    """``start`` + ``days`` calendar days, or working days (Mon-Fri; a weekend start rolls to Monday)."""
    if calendar == "working":
        day = np.datetime64(start.tz_convert("UTC").tz_localize(None).floor("D").date(), "D")
        due = np.busday_offset(day, days, roll="forward")
        return pd.Timestamp(due).tz_localize("UTC") + (start - start.floor("D"))
    return start + pd.Timedelta(days=days)


def _utc(s) -> pd.Series:
    return pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601") if len(s) else pd.to_datetime(s, utc=True)


def _leak_sites(dets: pd.DataFrame, assets: pd.DataFrame | None, leaks: pd.DataFrame | None,
                settings: dict) -> tuple[pd.Series, pd.Series]:
    """Per leak: its asset (leaks frame, else the detections' most common asset) and site class."""
    asset = pd.Series(dtype=object)
    if leaks is not None and "asset_id" in leaks:
        asset = leaks.set_index("leak_id")["asset_id"].dropna()
    elif "asset_id" in dets:
        a = dets[["leak_id", "asset_id"]].dropna()
        a = a[a["asset_id"].astype(str).str.len() > 0]
        if len(a):
            asset = a.groupby("leak_id")["asset_id"].agg(lambda s: s.mode().iloc[0])
    klass = pd.Series(settings["default_site_class"], index=pd.Index(dets["leak_id"].unique(), name="leak_id"),
                      dtype=object)
    if assets is not None and len(assets) and "asset_type" in assets and len(asset):
        atype = asset.map(assets.set_index("asset_id")["asset_type"]).dropna().astype(str).str.lower()
        wellhead = set(settings["site_classes"].get("wellhead_only", []))
        k = atype.map(lambda t: "wellhead_only" if t in wellhead else "other")
        klass.loc[klass.index.intersection(k.index)] = k.reindex(klass.index.intersection(k.index))
    return asset, klass


def _leak_positions(dets: pd.DataFrame, leaks: pd.DataFrame | None) -> pd.DataFrame:
    if leaks is not None and {"latitude", "longitude"} <= set(leaks):
        return leaks.set_index("leak_id")[["latitude", "longitude"]]
    return dets.groupby("leak_id")[["latitude", "longitude"]].mean()


def _in_region(lat: pd.Series, lon: pd.Series, region) -> pd.Series:
    return lat.between(region[0], region[1]) & lon.between(region[2], region[3])


def _trigger_times(rule: dict, dets: pd.DataFrame, visits: pd.DataFrame, positions: pd.DataFrame,
                   klass: pd.Series, asset: pd.Series, baselines: dict) -> pd.DataFrame:
    """Every event that triggers ``rule``: a frame of (leak_id, at)."""
    trig = rule["trigger"]
    d = dets[dets["source_type"].isin(trig["source_types"])]
    if trig.get("event_types"):
        ev = d["event_type"] if "event_type" in d else pd.Series("", index=d.index)
        d = d[ev.fillna("").astype(str).str.strip().str.lower().isin([e.lower() for e in trig["event_types"]])]
    if "min_rate_kg_h" in trig:
        d = d[d["rate_kg_h"].fillna(-1) >= float(trig["min_rate_kg_h"])]
    region = rule.get("region")
    if region:
        d = d[_in_region(d["latitude"], d["longitude"], region)]
    roll = trig.get("rolling_mean_kg_h")
    if roll and len(d):
        d = d[d["rate_kg_h"].notna()].sort_values("observed_at").set_index("observed_at")
        window = f"{int(roll['days'])}D"
        g = d.groupby("leak_id")["rate_kg_h"].rolling(window)
        if roll.get("fill", "none") == "zero":  # a missing reading is no emission: time-weighted mean
            value = g.sum() * float(roll.get("sample_hours", 1.0)) / (24.0 * int(roll["days"]))
        else:  # mean of the readings the monitor reported
            value = g.mean()
        value = value.reset_index()
        above = roll["above"]
        if isinstance(above, dict):
            level = value["leak_id"].map(klass).map(above).astype(float)
        else:
            level = pd.Series(float(above), index=value.index)
        if roll.get("over_baseline"):
            level = level + value["leak_id"].map(asset).map(baselines).fillna(0.0).astype(float)
        hit = value[value["rate_kg_h"] > level]
        out = hit[["leak_id", "observed_at"]].rename(columns={"observed_at": "at"})
    else:
        out = d[["leak_id", "observed_at"]].rename(columns={"observed_at": "at"})
    if trig.get("found_by") and len(visits):
        v = visits[(visits["outcome"] == "confirmed") & visits["found_by"].isin(trig["found_by"])]
        if region and len(v):
            pos = positions.reindex(v["leak_id"])
            v = v[_in_region(pos["latitude"], pos["longitude"], region).to_numpy()]
        out = pd.concat([out, v[["leak_id", "visited_at"]].rename(columns={"visited_at": "at"})], ignore_index=True)
    return out


def _np(times: pd.Series) -> np.ndarray:
    """UTC times as sorted naive datetime64[ns] (what the clock arithmetic searches)."""
    return np.sort(pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy().astype("datetime64[ns]"))


def _meets(visits: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Per kind of clock, per leak: sorted times of the field records that meet it."""
    if visits.empty:
        return {"any": {}, "attempt": {}, "repair": {}, "delay": {}}
    reached = visits[visits["outcome"] != "not_accessible"]
    done = visits["outcome"].isin(["already_repaired", "not_found"])
    parts = {
        "any": [reached[["leak_id", "visited_at"]]],
        "repair": [visits.loc[done, ["leak_id", "visited_at"]],
                   visits[["leak_id", "repaired_at"]].rename(columns={"repaired_at": "visited_at"})],
        "delay": [visits.loc[visits["delay_reason"].notna(), ["leak_id", "visited_at"]]],
    }
    parts["attempt"] = parts["repair"] + [
        visits[["leak_id", "repair_attempted_at"]].rename(columns={"repair_attempted_at": "visited_at"})]
    out = {}
    for kind, frames in parts.items():
        f = pd.concat([x for x in frames if len(x)], ignore_index=True).dropna() if any(len(x) for x in frames) \
            else pd.DataFrame(columns=["leak_id", "visited_at"])
        out[kind] = {k: _np(g["visited_at"]) for k, g in f.groupby("leak_id")}
    return out


def _first_at_or_after(times: np.ndarray | None, t: pd.Timestamp) -> pd.Timestamp | None:
    """The first time in ``times`` on or after the day of ``t`` (a record that day counts)."""
    if times is None or not len(times):
        return None
    day = np.datetime64(t.tz_convert("UTC").tz_localize(None).floor("D").to_datetime64(), "ns")
    i = np.searchsorted(times, day, side="left")
    return pd.Timestamp(times[i]).tz_localize("UTC") if i < len(times) else None


def _open_start(starts: np.ndarray, met: np.ndarray | None) -> pd.Timestamp | None:
    """Start of the clock instance still running, if any (see the module docstring)."""
    t = pd.Timestamp(starts[0]).tz_localize("UTC")
    while True:
        m = _first_at_or_after(met, t)
        if m is None:
            return t
        later = starts[starts > max(m, t).tz_localize(None).to_datetime64()]  # a record met this instance
        if not len(later):
            return None
        t = pd.Timestamp(later[0]).tz_localize("UTC")


def _visits(validations: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["leak_id", "outcome", "visited_at", "repaired_at", "repair_attempted_at", "found_by", "delay_reason"]
    if validations is None or not len(validations):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    v = validations.reindex(columns=cols).copy()
    for c in ("visited_at", "repaired_at", "repair_attempted_at"):
        v[c] = _utc(v[c])
    v["outcome"] = v["outcome"].astype(str)
    v["found_by"] = v["found_by"].where(v["found_by"].notna(), "").astype(str).str.lower()
    v["delay_reason"] = v["delay_reason"].where(v["delay_reason"].astype(str).str.strip().ne("")
                                                & v["delay_reason"].notna(), None)
    return v


def _clock_rows(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict],
                assets: pd.DataFrame | None, leaks: pd.DataFrame | None, baselines: dict | None) -> pd.DataFrame:
    """Every running clock: (leak_id, due_by, due_rule, rule, action)."""
    settings = getattr(rules, "settings", DEFAULT_SETTINGS)
    base = dict(settings.get("site_baselines_kg_h", {}))
    base.update(baselines or {})
    dets = dets.assign(observed_at=pd.to_datetime(dets["observed_at"], utc=True))
    dets = dets[dets["leak_id"].notna()]
    visits = _visits(validations)
    meets = _meets(visits)
    asset, klass = _leak_sites(dets, assets, leaks, settings)
    positions = _leak_positions(dets, leaks)
    rows = []
    for rule in rules:
        if not rule.get("enabled", True):
            continue
        trig = _trigger_times(rule, dets, visits, positions, klass, asset, base)
        if trig.empty:
            continue
        by_clock = {c["action"]: c for c in rule["clocks"]}
        delay = rule.get("delay_of_repair")
        for lid, g in trig.groupby("leak_id"):
            starts = _np(g["at"])
            for clock in rule["clocks"]:
                action, days, cal = clock["action"], clock["days"], clock.get("calendar", "calendar")
                kind = "any" if ACTIONS[action] == {"any"} else ("attempt" if action == "repair_attempt" else "repair")
                start = _open_start(starts, meets[kind].get(lid))
                if start is None:
                    continue
                label = f"{rule['id']}:{action}"
                if clock.get("after") == "repair_attempt":
                    attempt = _first_at_or_after(meets["attempt"].get(lid), start)
                    first = by_clock["repair_attempt"]
                    origin = attempt if attempt is not None else _add(start, first["days"],
                                                                      first.get("calendar", "calendar"))
                    due = _add(origin, days, cal)
                else:
                    due = _add(start, days, cal)
                if delay and action == "repair" and _first_at_or_after(meets["delay"].get(lid), start) is not None:
                    due = _add(start, int(delay["max_days"]), "calendar")
                    label += " (delay of repair)"
                rows.append((lid, due, label, rule["id"], action))
    out = pd.DataFrame(rows, columns=["leak_id", "due_by", "due_rule", "rule", "action"])
    out["due_by"] = pd.to_datetime(out["due_by"], utc=True)
    return out


def deadlines(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict],
              as_of: pd.Timestamp, assets: pd.DataFrame | None = None, leaks: pd.DataFrame | None = None,
              baselines: dict[str, float] | None = None) -> pd.DataFrame:
    """Per leak with a running clock: due_by, due_rule, overdue, due_soon and urgency (0, 0.5 or 1).

    ``assets`` (asset_id, asset_type) and ``leaks`` (leak_id, asset_id, latitude, longitude) let
    rules tell wellhead-only sites from other sites; ``baselines`` (asset_id → kg/h) are the sites'
    baselines for action levels set over baseline (default: the rule file's ``settings``, else 0).
    """
    cols = ["due_by", "due_rule", "overdue", "due_soon", "urgency"]
    allr = _clock_rows(dets, validations, rules, assets, leaks, baselines)
    if allr.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="leak_id"))
    first = allr.sort_values(["due_by", "due_rule"], kind="stable").groupby("leak_id").first()
    _flags(first, as_of)
    return first[cols]


def _flags(df: pd.DataFrame, as_of) -> None:
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    df["overdue"] = df["due_by"] < as_of
    df["due_soon"] = ~df["overdue"] & (df["due_by"] <= as_of + pd.Timedelta(days=DUE_SOON_DAYS))
    df["urgency"] = np.where(df["overdue"], 1.0, np.where(df["due_soon"], 0.5, 0.0))


def leak_clocks(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict], as_of: pd.Timestamp,
                leak_id: str | None = None, **kw) -> pd.DataFrame:
    """Every running clock (of one leak, or all), not only the earliest: for the leak page, API and work orders.

    Columns: leak_id, rule, action, due_by, due_rule, overdue, due_soon, citation, verified.
    """
    if leak_id is not None:
        dets = dets[dets["leak_id"] == leak_id]
        if validations is not None and len(validations):
            validations = validations[validations["leak_id"] == leak_id]
    out = _clock_rows(dets, validations, rules, kw.get("assets"), kw.get("leaks"), kw.get("baselines"))
    by_id = {r["id"]: r for r in rules}
    _flags(out, as_of)
    out["citation"] = out["rule"].map(lambda r: by_id[r]["citation"])
    out["verified"] = out["rule"].map(lambda r: bool(by_id[r]["verified"]))
    return out.sort_values(["leak_id", "due_by"]).reset_index(drop=True)[
        ["leak_id", "rule", "action", "due_by", "due_rule", "overdue", "due_soon", "citation", "verified"]]
