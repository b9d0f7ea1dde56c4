"""Rules: the compliance rule file (``config/compliance.yaml``) read and checked field by field, so a typo
stops with the rule id and field instead of silently dropping a regulator's deadline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..config import config_path
from ..schema import SOURCE_TYPES

RULES_PATH = config_path("compliance.yaml")  # the packaged default; MLPE_CONFIG_DIR may override it


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
    p = Path(path) if path else config_path("compliance.yaml")
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
