"""Comply: regulatory clocks per leak, from rules kept as data (``config/compliance.yaml``).

A leak under a rule gets a deadline per clock; ``due_by`` is the earliest one not yet met, and
``due_rule`` names the rule and action that set it. Rules are validated on load so a typo in a rule
file stops with the rule id and field, instead of silently dropping a regulator's deadline.

How a clock runs (``docs/compliance.md`` has each rule with its citation):

* It starts at the first event that triggers the rule (taken as the date of notice): a detection of
  the listed source types (optionally only some ``event_types``, at least ``min_rate_kg_h``, inside
  ``region``, or a rolling average above an action level), or a field visit that confirmed the leak
  and says how it was found (``found_by``, e.g. OGI or AVO).
* It is met by the first qualifying field record on or after the day it started: ``investigate`` and
  ``report`` by a visit that reached the site (not ``not_accessible``); ``repair_attempt`` by a repair
  attempt, a repair, an ``already_repaired`` visit or a visit that found no leak; ``repair`` by the
  last three.
* A clock with ``after: repair_attempt`` counts its days from the first repair attempt (or, while
  none is recorded, from the attempt's own deadline). A rule with ``delay_of_repair`` moves the final
  repair deadline to ``max_days`` after notice once a delay of repair is recorded for the leak.
* Once met, a clock starts again at the next triggering event after the record that met it (a leak
  seen again after its repair runs a new repair clock).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .schema import SOURCE_TYPES

RULES_PATH = Path(__file__).resolve().parent.parent / "config" / "compliance.yaml"
ACTIONS = {"investigate": {"any"}, "report": {"any"}, "repair_attempt": {"repair"}, "repair": {"repair"}}
DUE_SOON_DAYS = 7
SITE_CLASSES = ("wellhead_only", "other")
FOUND_BY = ("ogi", "method21", "avo", "other")
FILLS = ("none", "zero")
RULE_KEYS = {"id", "name", "citation", "verified", "enabled", "trigger", "clocks", "region", "delay_of_repair", "note"}
TRIGGER_KEYS = {"source_types", "event_types", "min_rate_kg_h", "rolling_mean_kg_h", "found_by"}
DEFAULT_SETTINGS = {"site_classes": {"wellhead_only": ["wellhead", "wellhead_only", "single_wellhead"]},
                    "default_site_class": "other", "site_baselines_kg_h": {}}


class RuleError(ValueError):
    """A rule file that cannot be trusted: names the rule and field."""


class RuleSet(list):
    """The rules (a list, as before) plus the file's site settings (``.settings``)."""

    settings: dict = DEFAULT_SETTINGS


def _need(rule: dict, key: str, kind: type | tuple, where: str) -> object:
    if key not in rule:
        raise RuleError(f"{where}: rule '{rule.get('id', '?')}': field '{key}' is missing")
    if not isinstance(rule[key], kind) or (kind is not bool and isinstance(rule[key], bool)):
        raise RuleError(f"{where}: rule '{rule.get('id', '?')}': field '{key}' must be {kind}")
    return rule[key]


def _num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def _check_settings(data: dict, where: str) -> dict:
    s = {k: v for k, v in DEFAULT_SETTINGS.items()}
    sc = data.get("site_classes", s["site_classes"])
    if not (isinstance(sc, dict) and set(sc) <= {"wellhead_only"}
            and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in sc.values())):
        raise RuleError(f"{where}: settings: field 'site_classes' must map wellhead_only to a list of asset_type "
                        "values")
    dflt = data.get("default_site_class", "other")
    if dflt not in SITE_CLASSES:
        raise RuleError(f"{where}: settings: field 'default_site_class' must be one of {SITE_CLASSES}")
    base = data.get("site_baselines_kg_h") or {}
    if not (isinstance(base, dict) and all(_num(v) and v >= 0 for v in base.values())):
        raise RuleError(f"{where}: settings: field 'site_baselines_kg_h' must map asset_id to a rate ≥ 0")
    return {"site_classes": {k: [x.lower() for x in v] for k, v in sc.items()}, "default_site_class": dflt,
            "site_baselines_kg_h": {str(k): float(v) for k, v in base.items()}}


def _check_rule(rule: dict, p: str, seen: set) -> None:
    rid = _need(rule, "id", str, p)
    if rid in seen:
        raise RuleError(f"{p}: rule '{rid}': field 'id' is repeated")
    seen.add(rid)

    def bad(field: str, what: str) -> RuleError:
        return RuleError(f"{p}: rule '{rid}': field '{field}' {what}")

    unknown = sorted(set(rule) - RULE_KEYS)
    if unknown:
        raise bad(unknown[0], f"is not a rule field (known: {', '.join(sorted(RULE_KEYS))})")
    for key in ("name", "citation"):
        _need(rule, key, str, p)
    _need(rule, "verified", bool, p)
    rule.setdefault("enabled", True)
    if not isinstance(rule["enabled"], bool):
        raise bad("enabled", "must be true or false")
    trig = _need(rule, "trigger", dict, p)
    unknown = sorted(set(trig) - TRIGGER_KEYS)
    if unknown:
        raise bad(f"trigger.{unknown[0]}", f"is not a trigger field (known: {', '.join(sorted(TRIGGER_KEYS))})")
    types = trig.get("source_types")
    if not isinstance(types, list) or not types or not set(types) <= set(SOURCE_TYPES):
        raise bad("trigger.source_types", f"must list of {SOURCE_TYPES}")
    ev = trig.get("event_types")
    if ev is not None and not (isinstance(ev, list) and ev and all(isinstance(x, str) for x in ev)):
        raise bad("trigger.event_types", "must be a non-empty list of event_type texts")
    if "min_rate_kg_h" in trig and not _num(trig["min_rate_kg_h"]):
        raise bad("trigger.min_rate_kg_h", "must be a number")
    fb = trig.get("found_by")
    if fb is not None and not (isinstance(fb, list) and fb and set(fb) <= set(FOUND_BY)):
        raise bad("trigger.found_by", f"must list some of {FOUND_BY}")
    roll = trig.get("rolling_mean_kg_h")
    if roll is not None:
        if not (isinstance(roll, dict) and {"days", "above"} <= set(roll)):
            raise bad("trigger.rolling_mean_kg_h", "needs days and above")
        if not isinstance(roll["days"], int) or isinstance(roll["days"], bool) or roll["days"] < 1:
            raise bad("trigger.rolling_mean_kg_h.days", "must be a whole number ≥ 1")
        above = roll["above"]
        if isinstance(above, dict):
            if set(above) != set(SITE_CLASSES) or not all(_num(v) for v in above.values()):
                raise bad("trigger.rolling_mean_kg_h.above", f"must be a number or map each of {SITE_CLASSES} "
                                                              "to a number")
        elif not _num(above):
            raise bad("trigger.rolling_mean_kg_h.above", "must be a number")
        if not isinstance(roll.get("over_baseline", False), bool):
            raise bad("trigger.rolling_mean_kg_h.over_baseline", "must be true or false")
        if roll.get("fill", "none") not in FILLS:
            raise bad("trigger.rolling_mean_kg_h.fill", f"must be one of {FILLS}")
        if not (_num(roll.get("sample_hours", 1.0)) and roll.get("sample_hours", 1.0) > 0):
            raise bad("trigger.rolling_mean_kg_h.sample_hours", "must be a number > 0")
    region = rule.get("region")
    if region is not None and not (isinstance(region, list) and len(region) == 4 and all(_num(x) for x in region)
                                   and region[0] < region[1] and region[2] < region[3]):
        raise bad("region", "must be [lat_min, lat_max, lon_min, lon_max]")
    clocks = _need(rule, "clocks", list, p)
    if not clocks:
        raise bad("clocks", "is empty")
    actions = [c.get("action") for c in clocks if isinstance(c, dict)]
    for c in clocks:
        if not isinstance(c, dict) or c.get("action") not in ACTIONS:
            raise bad("clocks.action", f"must be one of {sorted(ACTIONS)}")
        if not isinstance(c.get("days"), int) or isinstance(c.get("days"), bool) or c["days"] < 0:
            raise bad("clocks.days", "must be a whole number ≥ 0")
        if c.get("calendar", "calendar") not in ("calendar", "working"):
            raise bad("clocks.calendar", "must be calendar or working")
        if "after" in c and (c["after"] != "repair_attempt" or c["action"] != "repair"
                             or "repair_attempt" not in actions):
            raise bad("clocks.after", "may only be 'repair_attempt', on a repair clock of a rule that has a "
                                      "repair_attempt clock")
    if actions.count("repair_attempt") > 1 or len(actions) != len(set(actions)):
        raise bad("clocks.action", "repeats an action")
    dor = rule.get("delay_of_repair")
    if dor is not None and not (isinstance(dor, dict) and isinstance(dor.get("max_days"), int)
                                and not isinstance(dor.get("max_days"), bool) and dor["max_days"] > 0):
        raise bad("delay_of_repair", "must be {max_days: whole number > 0}")
    if dor is not None and "repair" not in actions:
        raise bad("delay_of_repair", "needs a repair clock to delay")
    if "note" in rule and not isinstance(rule["note"], str):
        raise bad("note", "must be text")


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and check a rule file; returns enabled and disabled rules alike (``.settings`` too)."""
    p = Path(path) if path else RULES_PATH
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{p}: cannot read rules ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{p}: expected a top-level 'rules' list")
    seen: set = set()
    for rule in data["rules"]:
        if not isinstance(rule, dict):
            raise RuleError(f"{p}: every rule must be a mapping")
        _check_rule(rule, str(p), seen)
    out = RuleSet(data["rules"])
    out.settings = _check_settings(data.get("settings") or {}, str(p))
    return out


# --------------------------------------------------------------------------------------------- time


def _add(start: pd.Timestamp, days: int, calendar: str) -> pd.Timestamp:
    """``start`` + ``days`` calendar days, or working days (Mon-Fri; a weekend start rolls to Monday)."""
    if calendar == "working":
        day = np.datetime64(start.tz_convert("UTC").tz_localize(None).floor("D").date(), "D")
        due = np.busday_offset(day, days, roll="forward")
        return pd.Timestamp(due).tz_localize("UTC") + (start - start.floor("D"))
    return start + pd.Timedelta(days=days)


def _utc(s) -> pd.Series:
    return pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601") if len(s) else pd.to_datetime(s, utc=True)


# --------------------------------------------------------------------------------------------- context


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
