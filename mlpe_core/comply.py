"""Comply: regulatory clocks per leak, from rules kept as data (``config/compliance.yaml``).

A leak under a rule gets a deadline per clock; ``due_by`` is the earliest one not yet met, and
``due_rule`` names the rule that set it. Rules are validated on load so a typo in a rule file stops
with the rule id and field, instead of silently dropping a regulator's deadline.
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


class RuleError(ValueError):
    """A rule file that cannot be trusted: names the rule and field."""


def _need(rule: dict, key: str, kind: type | tuple, where: str) -> object:
    if key not in rule:
        raise RuleError(f"{where}: rule '{rule.get('id', '?')}': field '{key}' is missing")
    if not isinstance(rule[key], kind):
        raise RuleError(f"{where}: rule '{rule.get('id', '?')}': field '{key}' must be {kind}")
    return rule[key]


def load_rules(path: str | Path | None = None) -> list[dict]:
    """Read and check a rule file; returns enabled and disabled rules alike."""
    p = Path(path) if path else RULES_PATH
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{p}: cannot read rules ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{p}: expected a top-level 'rules' list")
    seen = set()
    for rule in data["rules"]:
        if not isinstance(rule, dict):
            raise RuleError(f"{p}: every rule must be a mapping")
        rid = _need(rule, "id", str, str(p))
        if rid in seen:
            raise RuleError(f"{p}: rule '{rid}': field 'id' is repeated")
        seen.add(rid)
        for key in ("name", "citation"):
            _need(rule, key, str, str(p))
        _need(rule, "verified", bool, str(p))
        rule.setdefault("enabled", True)
        trig = _need(rule, "trigger", dict, str(p))
        types = trig.get("source_types")
        if not isinstance(types, list) or not types or not set(types) <= set(SOURCE_TYPES):
            raise RuleError(f"{p}: rule '{rid}': field 'trigger.source_types' must list of {SOURCE_TYPES}")
        if "min_rate_kg_h" in trig and not isinstance(trig["min_rate_kg_h"], int | float):
            raise RuleError(f"{p}: rule '{rid}': field 'trigger.min_rate_kg_h' must be a number")
        roll = trig.get("rolling_mean_kg_h")
        if roll is not None and not (isinstance(roll, dict) and {"days", "above"} <= set(roll)):
            raise RuleError(f"{p}: rule '{rid}': field 'trigger.rolling_mean_kg_h' needs days and above")
        region = rule.get("region")
        if region is not None and not (isinstance(region, list) and len(region) == 4):
            raise RuleError(f"{p}: rule '{rid}': field 'region' must be [lat_min, lat_max, lon_min, lon_max]")
        clocks = _need(rule, "clocks", list, str(p))
        if not clocks:
            raise RuleError(f"{p}: rule '{rid}': field 'clocks' is empty")
        for c in clocks:
            if not isinstance(c, dict) or c.get("action") not in ACTIONS:
                raise RuleError(f"{p}: rule '{rid}': field 'clocks.action' must be one of {sorted(ACTIONS)}")
            if not isinstance(c.get("days"), int) or c["days"] < 0:
                raise RuleError(f"{p}: rule '{rid}': field 'clocks.days' must be a whole number ≥ 0")
            if c.get("calendar", "calendar") not in ("calendar", "working"):
                raise RuleError(f"{p}: rule '{rid}': field 'clocks.calendar' must be calendar or working")
    return data["rules"]


def _add_days(start: pd.Series, days: int, calendar: str) -> pd.Series:
    if calendar == "working":
        d = start.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[D]")
        due = np.busday_offset(d, days, roll="forward")
        return pd.to_datetime(due).tz_localize("UTC") + (start - start.dt.floor("D")).to_numpy()
    return start + pd.Timedelta(days=days)


def _trigger_times(rule: dict, dets: pd.DataFrame) -> pd.Series:
    """Per leak: when the rule first triggered (NaT-free series over triggered leaks only)."""
    trig = rule["trigger"]
    d = dets[dets["source_type"].isin(trig["source_types"])]
    if "min_rate_kg_h" in trig:
        d = d[d["rate_kg_h"].fillna(-1) >= float(trig["min_rate_kg_h"])]
    region = rule.get("region")
    if region:
        d = d[d["latitude"].between(region[0], region[1]) & d["longitude"].between(region[2], region[3])]
    roll = trig.get("rolling_mean_kg_h")
    if roll and len(d):
        d = d.sort_values("observed_at").set_index("observed_at")
        mean = d.groupby("leak_id")["rate_kg_h"].rolling(f"{int(roll['days'])}D").mean()
        hit = mean[mean > float(roll["above"])].reset_index()
        return hit.groupby("leak_id")["observed_at"].min()
    return d.groupby("leak_id")["observed_at"].min()


def deadlines(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict],
              as_of: pd.Timestamp) -> pd.DataFrame:
    """Per leak with a running clock: due_by, due_rule, overdue, due_soon and urgency (0, 0.5 or 1)."""
    rows = []
    visited = set(validations["leak_id"]) if validations is not None and len(validations) else set()
    repaired = (set(validations.loc[validations["outcome"] == "already_repaired", "leak_id"])
                | set(validations.loc[validations["repaired_at"].notna(), "leak_id"])) \
        if validations is not None and len(validations) and "repaired_at" in validations else set()
    dets = dets.assign(observed_at=pd.to_datetime(dets["observed_at"], utc=True))
    for rule in rules:
        if not rule.get("enabled", True):
            continue
        start = _trigger_times(rule, dets)
        if start.empty:
            continue
        for clock in rule["clocks"]:
            met = visited if ACTIONS[clock["action"]] == {"any"} else repaired
            s = start[~start.index.isin(met)]
            if s.empty:
                continue
            due = _add_days(s, clock["days"], clock.get("calendar", "calendar"))
            rows.append(pd.DataFrame({"leak_id": due.index, "due_by": due.to_numpy(),
                                      "due_rule": f"{rule['id']}:{clock['action']}"}))
    cols = ["due_by", "due_rule", "overdue", "due_soon", "urgency"]
    if not rows:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="leak_id"))
    allr = pd.concat(rows).sort_values("due_by")
    first = allr.groupby("leak_id").first()
    first["due_by"] = pd.to_datetime(first["due_by"], utc=True)
    first["overdue"] = first["due_by"] < as_of
    first["due_soon"] = ~first["overdue"] & (first["due_by"] <= as_of + pd.Timedelta(days=DUE_SOON_DAYS))
    first["urgency"] = np.where(first["overdue"], 1.0, np.where(first["due_soon"], 0.5, 0.0))
    return first[cols]
