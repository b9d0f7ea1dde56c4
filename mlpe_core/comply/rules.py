"""Rules: the compliance rule file (``config/compliance.yaml``) read and checked field by field, so a typo
stops with the rule id and field instead of silently dropping a regulator's deadline."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import yaml

from ..config import config_path
from ..schema import NOTIFICATION_PROGRAMS, SOURCE_TYPES

RULES_PATH = config_path("compliance.yaml")  # the packaged default; MLPE_CONFIG_DIR may override it


ACTIONS = {"investigate": {"any"}, "report": {"any"}, "repair_attempt": {"repair"}, "repair": {"repair"}}


DUE_SOON_DAYS = 7


SITE_CLASSES = ("wellhead_only", "other")


FOUND_BY = ("ogi", "method21", "avo", "other")


FILLS = ("none", "zero")


RULE_KEYS = {"id", "name", "label", "citation", "verified", "enabled", "voluntary", "trigger", "clocks", "region",
             "holidays", "delay_of_repair", "note"}


TRIGGER_KEYS = {"event", "programs", "candidate", "source_types", "event_types", "min_rate_kg_h", "rolling_mean_kg_h",
                "found_by"}


# What can start a clock (``trigger.event``), so that every clock says where the rule says it starts:
#   notification  the operator's receipt of a notice of one of ``programs`` (the ``notifications`` table)
#   detection     a detection of ``source_types`` (optionally ``event_types``, ``min_rate_kg_h``)
#   field_find    a leak found in the field: an OGI-survey record of ``source_types`` or a confirmed visit ``found_by``
#   action_level  a site's continuous-monitor rolling average crossing its level (``rolling_mean_kg_h``)
EVENTS = ("notification", "detection", "field_find", "action_level")


ROLL_KEYS = {"days", "above", "over_baseline", "baseline_days", "fill", "sample_hours", "min_coverage"}


DEFAULT_SETTINGS = {"site_classes": {"wellhead_only": ["wellhead", "wellhead_only", "single_wellhead"]},
                    "default_site_class": "other", "site_baselines_kg_h": {},
                    "candidates": {"urgency": 0.0, "own_detections_voluntary": False, "own_source_names": []},
                    "notifications": {"match_distance_m": 500.0, "match_days": 90}}


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
    cand = _section(data, "candidates", where)
    if not (_num(cand["urgency"]) and 0 <= cand["urgency"] <= 1):
        raise RuleError(f"{where}: settings: field 'candidates.urgency' must be a number from 0 to 1")
    if not isinstance(cand["own_detections_voluntary"], bool):
        raise RuleError(f"{where}: settings: field 'candidates.own_detections_voluntary' must be true or false")
    own = cand["own_source_names"]
    if not (isinstance(own, list) and all(isinstance(x, str) for x in own)):
        raise RuleError(f"{where}: settings: field 'candidates.own_source_names' must be a list of source names")
    note = _section(data, "notifications", where)
    if not (_num(note["match_distance_m"]) and note["match_distance_m"] > 0):
        raise RuleError(f"{where}: settings: field 'notifications.match_distance_m' must be a number > 0")
    if not (isinstance(note["match_days"], int) and not isinstance(note["match_days"], bool)
            and note["match_days"] >= 0):
        raise RuleError(f"{where}: settings: field 'notifications.match_days' must be a whole number ≥ 0")
    return {"site_classes": {k: [x.lower() for x in v] for k, v in sc.items()}, "default_site_class": dflt,
            "site_baselines_kg_h": {str(k): float(v) for k, v in base.items()},
            "candidates": {"urgency": float(cand["urgency"]),
                           "own_detections_voluntary": cand["own_detections_voluntary"], "own_source_names": list(own)},
            "notifications": {"match_distance_m": float(note["match_distance_m"]), "match_days": note["match_days"]}}


def _section(data: dict, name: str, where: str) -> dict:
    """A settings section over its defaults; an unknown key is refused by name."""
    given = data.get(name) or {}
    known = DEFAULT_SETTINGS[name]
    if not isinstance(given, dict):
        raise RuleError(f"{where}: settings: field '{name}' must be a mapping")
    extra = sorted(set(given) - set(known))
    if extra:
        raise RuleError(f"{where}: settings: field '{name}.{extra[0]}' is not a {name} field "
                        f"(known: {', '.join(known)})")
    return {**known, **given}


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
    for key in ("label", "note"):
        if key in rule and not isinstance(rule[key], str):
            raise bad(key, "must be text")
    rule.setdefault("voluntary", False)
    if not isinstance(rule["voluntary"], bool):
        raise bad("voluntary", "must be true or false")
    trig = _need(rule, "trigger", dict, p)
    unknown = sorted(set(trig) - TRIGGER_KEYS)
    if unknown:
        raise bad(f"trigger.{unknown[0]}", f"is not a trigger field (known: {', '.join(sorted(TRIGGER_KEYS))})")
    _check_trigger(trig, bad)
    hol = rule.get("holidays")
    if hol is not None and not _known_holidays(hol):
        raise bad("holidays", "must name a country or country-subdivision the holidays package knows, e.g. US-CO")
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


def _types(v) -> bool:
    return isinstance(v, list) and bool(v) and set(v) <= set(SOURCE_TYPES)


def _check_trigger(trig: dict, bad) -> None:
    """The trigger names its event (a clock without one is refused) and only the fields that event reads."""
    event = trig.get("event")
    if event is None:
        raise bad("trigger.event", "is missing: every clock needs the event that starts it "
                                   f"(one of {', '.join(EVENTS)})")
    if event not in EVENTS:
        raise bad("trigger.event", f"must be one of {', '.join(EVENTS)}")
    allowed = {"notification": {"event", "programs", "candidate"},
               "detection": {"event", "source_types", "event_types", "min_rate_kg_h"},
               "field_find": {"event", "source_types", "event_types", "found_by"},
               "action_level": {"event", "source_types", "rolling_mean_kg_h"}}[event]
    extra = sorted(set(trig) - allowed)
    if extra:
        raise bad(f"trigger.{extra[0]}", f"does not apply to a {event} trigger (it reads {', '.join(sorted(allowed))})")
    if event == "notification":
        progs = trig.get("programs")
        if not (isinstance(progs, list) and progs and set(progs) <= set(NOTIFICATION_PROGRAMS)):
            raise bad("trigger.programs", f"must list some of {', '.join(NOTIFICATION_PROGRAMS)}")
        cand = trig.get("candidate")
        if cand is not None:
            if not (isinstance(cand, dict) and set(cand) <= {"source_types", "min_rate_kg_h"}
                    and _types(cand.get("source_types"))):
                raise bad("trigger.candidate", f"must be {{source_types: some of {SOURCE_TYPES}, min_rate_kg_h}}")
            if "min_rate_kg_h" in cand and not _num(cand["min_rate_kg_h"]):
                raise bad("trigger.candidate.min_rate_kg_h", "must be a number")
        return
    types = trig.get("source_types")
    if event == "action_level":
        trig.setdefault("source_types", ["continuous_monitor"])
        types = trig["source_types"]
    if types is not None and not _types(types):
        raise bad("trigger.source_types", f"must list of {SOURCE_TYPES}")
    if event == "detection" and types is None:
        raise bad("trigger.source_types", f"must list of {SOURCE_TYPES}")
    ev = trig.get("event_types")
    if ev is not None and not (isinstance(ev, list) and ev and all(isinstance(x, str) for x in ev)):
        raise bad("trigger.event_types", "must be a non-empty list of event_type texts")
    if "min_rate_kg_h" in trig and not _num(trig["min_rate_kg_h"]):
        raise bad("trigger.min_rate_kg_h", "must be a number")
    fb = trig.get("found_by")
    if fb is not None and not (isinstance(fb, list) and fb and set(fb) <= set(FOUND_BY)):
        raise bad("trigger.found_by", f"must list some of {FOUND_BY}")
    if event == "field_find" and types is None and fb is None:
        raise bad("trigger.found_by", "a field_find trigger needs found_by, source_types (survey records) or both")
    if event == "action_level":
        _check_roll(trig.get("rolling_mean_kg_h"), bad)


def _check_roll(roll, bad) -> None:
    if not (isinstance(roll, dict) and {"days", "above"} <= set(roll)):
        raise bad("trigger.rolling_mean_kg_h", "needs days and above")
    extra = sorted(set(roll) - ROLL_KEYS)
    if extra:
        raise bad(f"trigger.rolling_mean_kg_h.{extra[0]}", f"is not a rolling_mean_kg_h field (known: "
                                                          f"{', '.join(sorted(ROLL_KEYS))})")
    if not isinstance(roll["days"], int) or isinstance(roll["days"], bool) or roll["days"] < 1:
        raise bad("trigger.rolling_mean_kg_h.days", "must be a whole number ≥ 1")
    above = roll["above"]
    if isinstance(above, dict):
        if set(above) != set(SITE_CLASSES) or not all(_num(v) for v in above.values()):
            raise bad("trigger.rolling_mean_kg_h.above", f"must be a number or map each of {SITE_CLASSES} to a number")
    elif not _num(above):
        raise bad("trigger.rolling_mean_kg_h.above", "must be a number")
    if not isinstance(roll.get("over_baseline", False), bool):
        raise bad("trigger.rolling_mean_kg_h.over_baseline", "must be true or false")
    bd = roll.get("baseline_days")
    if bd is not None and not (roll.get("over_baseline") and isinstance(bd, int) and not isinstance(bd, bool)
                               and bd >= 1):
        raise bad("trigger.rolling_mean_kg_h.baseline_days", "must be a whole number ≥ 1, with over_baseline: true")
    if roll.get("fill", "none") not in FILLS:
        raise bad("trigger.rolling_mean_kg_h.fill", f"must be one of {FILLS}")
    if not (_num(roll.get("sample_hours", 1.0)) and roll.get("sample_hours", 1.0) > 0):
        raise bad("trigger.rolling_mean_kg_h.sample_hours", "must be a number > 0")
    mc = roll.get("min_coverage", 0.0)
    if not (_num(mc) and 0 <= mc <= 1):
        raise bad("trigger.rolling_mean_kg_h.min_coverage", "must be a share from 0 to 1")


def _known_holidays(code) -> bool:
    """``US`` or ``US-CO``: a country (and subdivision) the ``holidays`` package has a calendar for."""
    if not isinstance(code, str) or not code:
        return False
    return _has_calendar(code)


@functools.lru_cache(maxsize=64)
def _has_calendar(code: str) -> bool:
    """(Cached: building a calendar takes ~0.2 s, and every scoring loads the rules.)"""
    import holidays

    country, _, subdiv = code.partition("-")
    try:
        holidays.country_holidays(country, subdiv=subdiv or None, years=2025)
    except (NotImplementedError, KeyError, ValueError):
        return False
    return True


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and check a rule file; returns enabled and disabled rules alike (``.settings`` too).

    A file read and checked before, unchanged since (same size and modification time), is not parsed again
    (0.2 s a scoring, which a watcher makes every cycle); the caller still gets its own copy to change."""
    p = Path(path) if path else config_path("compliance.yaml")
    try:
        st = p.stat()
    except OSError as exc:
        raise RuleError(f"{p}: cannot read rules ({exc})") from exc
    rules, settings = _checked_rules(str(p), st.st_mtime_ns, st.st_size)
    out = RuleSet(copy.deepcopy(rules))
    out.settings = copy.deepcopy(settings)
    return out


@functools.lru_cache(maxsize=8)
def _checked_rules(path: str, _mtime_ns: int, _size: int) -> tuple[list, dict]:
    """The rules and settings of the file at ``path`` as it is now (the time and size key the cache)."""
    p = Path(path)
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
    return data["rules"], _check_settings(data.get("settings") or {}, str(p))
