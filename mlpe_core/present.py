"""Presentation: the words, numbers, dates and units people read, decided once for every face.

Why it exists: the store speaks in codes (``not_found``, ``lifecycle_dispatch``, ``ooooB_super_emitter:investigate``,
``est_rate_kg_h``) and floats with fifteen digits. Machines should keep reading those (the contract's CSV and
GeoJSON exports do), but a page, a workbook or a KML balloon is read by a person, who should see "Not found",
"Status change: dispatch", "OOOOb super-emitter investigation", "Rate (scf/h)" and "12.3". Every face asks this
module, so the same code reads the same way on the map, in the Excel file and in Google Earth.

What is here:

* labels for every vocabulary (statuses, outcomes, lifecycle events, audit actions, sensors, found-by methods,
  work-order states, model kinds, asset types), with a fallback that turns any other code into words;
* rule titles from the compliance rules file (``label`` and ``name`` of each rule, never its id);
* one number, percent, date and time format;
* rate units chosen by the user, with the conversion constants and their sources;
* column specifications per table (:data:`TABLES`): header, kind of value, whether it is a key column shown by
  default, and :func:`display_frame` / :func:`people_frame`, which turn a desk frame into a people-ready one.

Nothing here reads the store; it sits at the bottom of the layers (beside ``schema`` and ``config``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import yaml

from .config import config_path

# --------------------------------------------------------------------------------------------- units

SCF_KG = 0.01920  # kg of methane in one standard cubic foot at 60 °F and 1 atm (CONTRACT §1; 16.04 g/mol / 835.4 L)
HOURS_PER_YEAR = 8760.0  # a 365-day year: t/yr is the rate held for a year, as annual inventories count it
UNITS: dict[str, float] = {  # multiply kg/h by this
    "kg/h": 1.0,
    "scf/h": 1.0 / SCF_KG,  # 52.08 scf/h per kg/h
    "Mcf/d": 24.0 / SCF_KG / 1000.0,  # 1 Mcf = 1,000 scf; 1.25 Mcf/d per kg/h
    "t/yr": HOURS_PER_YEAR / 1000.0,  # 8.76 t/yr per kg/h
}
UNIT_DIGITS = {"kg/h": 1, "scf/h": 0, "Mcf/d": 2, "t/yr": 1}
DEFAULT_UNIT = "kg/h"
DASH = "–"


def unit_or_default(unit: str | None) -> str:
    """``unit`` when it is one of :data:`UNITS`, else kg/h (a hand-edited link cannot break a page)."""
    return unit if unit in UNITS else DEFAULT_UNIT


def convert(kg_h, unit: str = DEFAULT_UNIT):
    """A rate (scalar, array or Series, kg/h) in ``unit``; missing stays missing."""
    return kg_h * UNITS[unit_or_default(unit)] if kg_h is not None else None


def _missing(x) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def number(x, digits: int | None = None) -> str:
    """A number with thousands separators and at most 4 decimals: ``digits`` when given, else by size (0 from
    100, 1 from 1, 2 below 1, 3 below 0.1). Missing is a dash."""
    if _missing(x):
        return DASH
    x = float(x)
    if not math.isfinite(x):
        return DASH
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 100 else 1 if a >= 1 else 2 if a >= 0.1 or a == 0 else 3
    text = f"{x:,.{min(digits, 4)}f}"
    return "0" if re.fullmatch(r"-?0(\.0+)?", text) else text


def rate(kg_h, unit: str = DEFAULT_UNIT) -> str:
    """A rate in ``unit`` with its unit: "12.3 kg/h", "641 scf/h"; a fraction keeps two decimals."""
    if _missing(kg_h):
        return DASH
    unit = unit_or_default(unit)
    v = float(kg_h) * UNITS[unit]
    d = UNIT_DIGITS[unit] if abs(v) >= 1 or v == 0 else 2
    return f"{number(v, d)} {unit}"


def rate_label(what: str, unit: str = DEFAULT_UNIT) -> str:
    """A label over a rate, naming the unit its value is in: "Expected (scf/h)" (as a rate column's header)."""
    return f"{what} ({unit_or_default(unit)})"


def pct(p) -> str:
    """A probability as a whole percent; never a bare 0% or 100% for what is only nearly so."""
    if _missing(p):
        return DASH
    p = float(p)
    return "<1%" if 0 < p < 0.005 else ">99%" if 0.995 < p < 1 else f"{100 * p:.0f}%"


def _ts(t) -> pd.Timestamp | None:
    if _missing(t):
        return None
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def date(t) -> str:
    """A day: 2026-09-14 (UTC)."""
    t = _ts(t)
    return DASH if t is None else f"{t:%Y-%m-%d}"


def when(t) -> str:
    """A moment: 2026-09-14 13:05 UTC (never ``+00:00``)."""
    t = _ts(t)
    return DASH if t is None else f"{t:%Y-%m-%d %H:%M} UTC"


def days_left(due, as_of) -> str:
    """"3 days left", "due today", "2 days overdue" as of the scores' clock."""
    due, as_of = _ts(due), _ts(as_of)
    if due is None or as_of is None:
        return ""
    d = (due - as_of).total_seconds() / 86400
    if d < 0:
        n = math.ceil(-d)
        return f"{n} day{'s' if n != 1 else ''} overdue"
    n = math.floor(d)
    return "due today" if n == 0 else f"{n} day{'s' if n != 1 else ''} left"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


# --------------------------------------------------------------------------------------------- labels

LABELS: dict[str, dict[str, str]] = {
    "band": {"HIGH": "High", "MEDIUM": "Medium", "LOW": "Low"},
    "status": {"open": "Open", "dispatched": "Dispatched", "confirmed": "Confirmed leaking", "not_found": "Not found",
               "no_access": "No access", "repair_attempted": "Repair attempted", "repaired": "Repaired",
               "closed": "Closed"},
    "outcome": {"confirmed": "Confirmed leaking", "not_found": "Not found", "already_repaired": "Already repaired",
                "not_accessible": "Not accessible"},
    "event": {"dispatch": "Dispatched", "release": "Released", "visit": "Field visit",
              "repair_attempt": "Repair attempt", "repair": "Repaired", "delay_of_repair": "Delay of repair",
              "close": "Closed", "reopen": "Re-opened"},
    "sensor": {"satellite": "Satellite", "aerial": "Aircraft", "continuous_monitor": "Continuous monitor",
               "scada": "SCADA alarm", "ogi": "OGI survey"},
    "found_by": {"ogi": "OGI camera", "method21": "Method 21", "avo": "Audio, visual, olfactory", "other": "Other"},
    "wo_status": {"planned": "Planned", "dispatched": "Dispatched", "in_progress": "In progress",
                  "repair_attempted": "Repair attempted", "repaired": "Repaired", "delayed": "Delayed",
                  "closed": "Closed", "cancelled": "Cancelled"},
    "list_status": {"draft": "Draft", "approved": "Approved", "withdrawn": "Withdrawn", "proposal": "Proposal"},
    "model_kind": {"cold_start": "Instrument priors (cold start)", "learned": "Learned from field outcomes"},
    "program": {"ooooB_super_emitter": "EPA OOOOb super-emitter", "imeo_mars": "UNEP IMEO MARS", "state": "State",
                "voluntary": "Voluntary"},
    "match": {"reference": "By reference", "position": "By position", "manual": "By hand"},
    "obligation_state": {"overdue": "Overdue", "due soon": "Due soon", "running": "Running", "met": "Met"},
    "story_kind": {"detection": "Detection", "score": "Score", "lifecycle": "Status change",
                   "field visit": "Field visit", "audit": "Recorded action"},
    "action": {"assets_import": "Assets imported", "ingest": "File loaded", "fuse": "Fusion run",
               "score": "Scoring run",
               "rescore": "Re-scored after field outcomes", "train": "Model trained", "model_trained": "Model trained",
               "model_promoted": "Model promoted", "model_activated": "Model activated", "note": "Note",
               "notification": "Notification recorded", "notification_match": "Notification matched",
               "rank_override": "Rank override", "ranking_reviewed": "Ranking reviewed",
               "dispatch_planned": "Dispatch list planned", "dispatch_approved": "Dispatch list approved",
               "dispatch_withdrawn": "Dispatch list withdrawn", "validation": "Field outcome recorded",
               "work_order_status": "Work order status", "user_added": "User added",
               "token_created": "Token created", "token_revoked": "Token revoked", "restore": "Store restored",
               "lifecycle_check": "Re-opened leaks checked", "version": "Version"},
    "why_listed": {},
    # the cold-start model's and the learned model's log-odds terms (mlpe_core.score.cold, FEATURES)
    "term": {"base": "Starting point", "satellite": "Satellite sightings", "aerial": "Aircraft sightings",
             "continuous_monitor": "Continuous-monitor alarms", "scada": "SCADA alarms", "ogi": "OGI survey finds",
             "isolated": "A one-off sighting", "confidence": "Sensors' own confidence", "recency": "Time since seen",
             "repair_clock": "Repair clock", "silence": "Silent looks since", "n_detections": "Detections",
             "n_sources": "Sensors", "n_source_types": "Kinds of sensor", "mean_confidence": "Mean confidence",
             "max_confidence": "Highest confidence", "days_since_last": "Days since seen",
             "span_days": "Days between first and last", "n_days_seen": "Days seen", "n_quantified": "Rates measured",
             "log_rate": "Rate", "rate_rel_unc": "Rate uncertainty", "radius_m": "Location spread",
             "ambiguous_share": "Ambiguous sightings", "missed_looks": "Looks that missed it",
             "log_p_silence": "Silence since last seen", "log_p_silence_before": "Silence before last seen",
             "confidence_evidence": "Sensors' own confidence", "log_lr_isolated": "A one-off sighting",
             "log_p_unrepaired": "Repair clock"},
}
# a sensor inside a sentence ("2 aircraft detections", "continuous monitor detection D1 …"): reasons and clocks
SENSOR_WORDS = {"satellite": "satellite", "aerial": "aircraft", "continuous_monitor": "continuous monitor",
                "scada": "SCADA alarm", "ogi": "OGI survey"}
for _t, _w in list(LABELS["sensor"].items()):
    LABELS["term"].setdefault(f"n_{_t}", f"{_w} sightings")
    LABELS["term"].setdefault(f"sensors_{_t}", f"{_w} instruments")


def words(code) -> str:
    """Any code as words: ``repair_attempted`` → "Repair attempted" (the fallback of :func:`label`)."""
    if _missing(code):
        return ""
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(code)).replace("_", " ").strip()
    return s[:1].upper() + s[1:]


def label(vocab: str, code) -> str:
    """The label of ``code`` in vocabulary ``vocab`` (see :data:`LABELS`); unknown codes become words."""
    if _missing(code):
        return ""
    code = str(code)
    if vocab == "action" and code.startswith("lifecycle_") and code != "lifecycle_check":
        return "Status change: " + label("event", code[len("lifecycle_"):]).lower()
    if vocab == "rule":
        return rule_title(code)
    return LABELS.get(vocab, {}).get(code) or words(code)


def sensors(codes) -> str:
    """A comma-separated list of sensor kinds (``source_types``) as words: "Satellite, Aircraft"."""
    if _missing(codes):
        return ""
    return ", ".join(label("sensor", c.strip()) for c in str(codes).split(",") if c.strip())


ACTION_NOUNS = {"investigate": "investigation", "report": "report", "repair_attempt": "first repair attempt",
                "repair": "repair"}  # as comply.clocks says them


@lru_cache(maxsize=4)
def _rules(path: str) -> dict[str, str]:
    try:
        data = yaml.safe_load(open(path, encoding="utf-8").read()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {str(r.get("id")): str(r.get("title") or r.get("label") or r.get("name") or r.get("id"))
            for r in data.get("rules", []) if isinstance(r, dict) and r.get("id")}


def rule_titles() -> dict[str, str]:
    """{rule id: its short title} from the compliance rules in force (``MLPE_CONFIG_DIR`` or the packaged file)."""
    return _rules(str(config_path("compliance.yaml")))


def rule_title(due_rule) -> str:
    """A clock as people say it: ``ooooB_super_emitter:investigate (voluntary)`` → "OOOOb super-emitter
    investigation (voluntary)"; a bare rule id → its title."""
    if _missing(due_rule) or not str(due_rule).strip():
        return ""
    text = str(due_rule)
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?::([a-z_]+))?(.*)$", text)
    if not m:
        return text
    rid, action, rest = m.groups()
    title = rule_titles().get(rid) or words(rid)
    if action:
        title += " " + ACTION_NOUNS.get(action, words(action).lower())
    return title + rest


_RULE_ID = re.compile(r"\b([A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+):([a-z_]+)\b")


def rules_in_text(text) -> str:
    """Free text (a band's reason, a sentence) with any ``rule_id:action`` in it replaced by the clock's title."""
    if _missing(text):
        return ""
    return _RULE_ID.sub(lambda m: rule_title(m.group(0)), str(text))


_ESTIMATE = re.compile(r"~(\d[\d,]*(?:\.\d+)?) kg/h(?: \(±(\d[\d,]*(?:\.\d+)?)\))?")


def _approx(text: str, factor: float) -> str:
    """A rounded number of a sentence times ``factor``, to as many significant digits as it had (at least 2)."""
    x = float(text.replace(",", ""))
    sig = max(len(text.replace(",", "").replace(".", "").lstrip("0")), 2)
    v = x * factor
    if v == 0:
        return "0"
    v = round(v, sig - 1 - math.floor(math.log10(abs(v))))
    return number(v, max(sig - 1 - math.floor(math.log10(abs(v))), 0))


def estimates_in_text(text, unit: str = DEFAULT_UNIT) -> str:
    """A reason sentence (``top_reasons``) with its rate estimates ("~25 kg/h (±18)", as the scorer writes them) in
    ``unit``: "~1,300 scf/h (±940)", as precise as the sentence was. Other numbers are left as they are."""
    if _missing(text):
        return ""
    unit = unit_or_default(unit)
    if unit == DEFAULT_UNIT:
        return str(text)
    f = UNITS[unit]
    return _ESTIMATE.sub(lambda m: f"~{_approx(m.group(1), f)} {unit}"
                         + (f" (±{_approx(m.group(2), f)})" if m.group(2) else ""), str(text))


_KEY_WORDS = {"from": "from", "to": "to", "row": "row", "outcome": "outcome", "note": "note", "reason": "reason",
              "n": "leaks", "as_of": "as of", "leaks": "leaks", "items": "stops", "released": "released",
              # a fusion's "refused" counts the detections it fused again (re-fused), not ones it turned away
              "refused": "detections re-fused", "fuse_refused": "fuse: detections re-fused",
              "n_holdout": "visits held out", "source": "from"}


def _value(key: str, v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return number(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list):
        return ", ".join(_value(key, x) for x in v[:8]) + (f" and {len(v) - 8:,} more" if len(v) > 8 else "")
    if isinstance(v, dict):
        return f"{len(v):,} entries"
    s = str(v)
    if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", s):
        return when(s)
    if key in ("from", "to", "status", "before_status", "after_status"):
        return label("status", s).lower()
    if key == "outcome":
        return label("outcome", s).lower()
    if key in ("due_rule", "rule"):
        return rule_title(s)
    return s


def detail_text(detail) -> str:
    """A recorded detail (a JSON object from the audit trail or a lifecycle event) as "key: value; …" in words;
    plain text stays as it is; a note is its text."""
    if _missing(detail) or detail == "":
        return ""
    if isinstance(detail, str):
        try:
            d = json.loads(detail)
        except ValueError:
            return detail
    else:
        d = detail
    if not isinstance(d, dict):
        return _value("", d)
    if set(d) == {"note"}:
        return str(d["note"])
    parts = []
    for k, v in d.items():
        if v is None or v == "" or v == [] or k in ("ranks", "settings"):
            continue
        parts.append(f"{_KEY_WORDS.get(k, words(k).lower())}: {_value(k, v)}")
    return "; ".join(parts)


_TARGET_WORDS = {"model": "Model v{}", "dispatch_list": "Dispatch list {}", "user": "User {}", "token": "Token {}",
                 "alert": "Alert {}", "notification": "Notification {}", "work_order": "Work order {}"}


def target_text(target) -> str:
    """What an audit event concerns, in words: "model:2" is "Model v2", "dispatch_list:1" "Dispatch list 1"; a leak
    or site id stays as it is."""
    if _missing(target) or target == "":
        return ""
    kind, sep, rest = str(target).partition(":")
    return _TARGET_WORDS[kind].format(rest) if sep and kind in _TARGET_WORDS else str(target)


def settings_rows(settings: dict | None) -> pd.DataFrame:
    """A run's configuration snapshot (``settings``: MLPE_* values by name) as a table a person reads: the setting
    in words, the variable that sets it and its value ("not set", yes/no, numbers with separators; a password,
    token or secret only as "set")."""
    rows = []
    for k, v in sorted((settings or {}).items()):
        if _missing(v) or v == "":
            val = "not set"
        elif any(w in k for w in ("password", "token", "secret")):
            val = "set (not shown)"
        else:
            val = _value(k, v)
        rows.append({"setting": words(k), "variable": f"MLPE_{k.upper()}", "value": val})
    return pd.DataFrame(rows, columns=["setting", "variable", "value"])


# --------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Column:
    """How one column reads: ``kind`` is text, int, number, p (3 decimals), mass (tonnes, 3 decimals), rate, pct,
    date, datetime, km, bool, coord, ``label:VOCAB`` (codes shown as labels), ``rule`` (a clock id as its title),
    ``sensors``, ``detail`` (JSON in words) or ``target`` (an audit event's target in words);
    ``key`` columns show by default, the others are one click away (a table's column menu)."""

    name: str
    header: str
    kind: str = "text"
    key: bool = True
    width: str | None = None  # small, medium, large (a hint for the faces)
    help: str | None = None
    pinned: bool = False  # stays in view while a narrow table scrolls sideways (the row's name)


def _c(name, header, kind="text", key=True, width=None, help=None, pinned=False) -> Column:  # noqa: A002
    return Column(name, header, kind, key, width, help, pinned)


_P = "probability that a crew on site finds a real leak"
_PRI = ("expected rate a visit finds: P(real) × the rate it finds on average (the estimate pulled toward typical leak "
        "sizes as far as it is uncertain), plus a running clock's urgency × P(real) × min(that rate, 20 kg/h)")
TABLES: dict[str, list[Column]] = {
    "leaks": [
        _c("rank", "Rank", "int", width="small", help="1 = visit first"), _c("leak_id", "Leak"),
        _c("risk_band", "Risk", "label:band", width="small"), _c("p_real", "P(real)", "pct", help=_P),
        _c("est_rate_kg_h", "Rate", "rate", help="best estimate"),
        _c("due_by", "Due by (UTC)", "date", help="the earliest compliance deadline, when a rule applies"),
        _c("top_reasons", "Why", width="large"),
        _c("priority_score", "Priority", "rate", key=False, help=_PRI),
        _c("due_rule", "Deadline rule", "rule", key=False), _c("model_rank", "Model rank", "int", key=False,
                                                                help="before any override"),
        _c("override_reason", "Override reason", key=False), _c("n_detections", "Detections", "int", key=False),
        _c("source_types", "Sensors", "sensors", key=False), _c("asset_id", "Asset", key=False),
        _c("operator", "Operator", key=False), _c("status", "Status", "label:status", key=False),
        _c("first_seen", "First seen (UTC)", "date", key=False), _c("last_seen", "Last seen (UTC)", "date", key=False),
        _c("band_why", "Why this band", key=False), _c("latitude", "Latitude", "coord", key=False),
        _c("longitude", "Longitude", "coord", key=False),
        _c("rate_lo_kg_h", "Rate, low", "rate", key=False, help="the rate's ±1σ interval (in log space): low end"),
        _c("rate_hi_kg_h", "Rate, high", "rate", key=False, help="the rate's ±1σ interval (in log space): high end"),
        _c("rate_quantified", "Rate measured", "bool", key=False, help="a sensor reported a rate (else: the prior)"),
        _c("radius_m", "Location ± (m)", "number", key=False), _c("n_sources", "Sensors (count)", "int", key=False),
        _c("n_ambiguous", "Ambiguous detections", "int", key=False,
           help="detections that fit this leak and another one"),
        _c("asset_type", "Asset type", "label:asset_type", key=False), _c("override", "Rank set to", "int", key=False),
        _c("marked", "Marked for dispatch", "bool", key=False), _c("overdue", "Overdue", "bool", key=False),
        _c("active", "Live", "bool", key=False), _c("model_version", "Model", "version", key=False),
        _c("scored_at", "Scored (UTC)", "datetime", key=False),
        _c("status_at", "Status since (UTC)", "datetime", key=False),
        _c("repair_attempted_at", "Repair attempted (UTC)", "date", key=False),
        _c("repaired_at", "Repaired (UTC)", "date", key=False), _c("reopened_at", "Reopened (UTC)", "date", key=False),
        _c("failed_repair", "Failed repair", "bool", key=False)],
    "dispatch": [
        _c("crew", "Crew"), _c("stop", "Stop", "int", width="small"), _c("leak_id", "Leak"),
        _c("risk_band", "Risk", "label:band", width="small"), _c("est_rate_kg_h", "Rate", "rate"),
        _c("arrive_at", "Arrive (UTC)", "time"), _c("due_by", "Due by (UTC)", "date"),
        _c("leg_km", "Drive (km)", "km"), _c("asset_id", "Asset"), _c("rank", "Rank", "int", width="small"),
        _c("top_reasons", "Why", width="large"), _c("p_real", "P(real)", "pct", key=False, help=_P),
        _c("priority_score", "Priority", "rate", key=False, help=_PRI),
        _c("due_rule", "Deadline rule", "rule", key=False), _c("on_time", "On time", "bool", key=False),
        _c("work_order_id", "Work order", key=False), _c("wo_status", "Work order status", "label:wo_status",
                                                         key=False),
        _c("latitude", "Latitude", "coord", key=False), _c("longitude", "Longitude", "coord", key=False),
        _c("home_lat", "Yard latitude", "coord", key=False), _c("home_lon", "Yard longitude", "coord", key=False)],
    "obligations": [  # the key figures first and the long rule title narrow: all in view at 1400 px (issue: Started
        # by was cut off)
        _c("due_by", "Due by (UTC)", "datetime", pinned=True), _c("state", "State", "label:obligation_state"),
        _c("days_left", "Days left", "int", width="small"), _c("leak_id", "Leak"), _c("site", "Site"),
        _c("title", "Rule", width="medium"), _c("started_text", "Started by", width="medium"),
        _c("action", "Action", "label:action_noun"),
        _c("citation", "Citation", width="large"), _c("rank", "Rank", "int"),
        _c("status", "Leak status", "label:status"), _c("started_at", "Started (UTC)", "datetime", key=False),
        _c("met_at", "Met (UTC)", "datetime", key=False), _c("verified", "Rule text verified", "bool", key=False),
        _c("voluntary", "Voluntary", "bool", key=False), _c("due_rule", "Clock", "rule", key=False)],
    "clocks": [  # due date before the long clock title (half a page wide: "Due by" was off to the right)
        _c("state", "State", "label:obligation_state"), _c("due_by", "Due by (UTC)", "date"),
        _c("left", "Time left"), _c("due_rule", "Clock", "rule", width="medium"),
        _c("citation", "Citation", width="medium")],
    "validations": [
        _c("visited_at", "Visited (UTC)", "datetime"), _c("leak_id", "Leak"), _c("outcome", "Outcome", "label:outcome"),
        _c("measured_rate_kg_h", "Measured", "rate"), _c("component", "Component", width="medium"),
        _c("repaired_at", "Repaired (UTC)", "date"), _c("crew", "Crew", width="medium"),  # auto width clipped 'crew-1'
        _c("notes", "Notes", width="large"),
        _c("found_by", "Found by", "label:found_by", key=False), _c("rate_method", "Rate method", key=False),
        _c("repair_attempted_at", "Repair attempted (UTC)", "date", key=False),
        _c("delay_reason", "Delay reason", key=False), _c("recorded_by", "Recorded by"),
        _c("recorded_at", "Recorded (UTC)", "datetime", key=False)],
    "detections": [
        _c("observed_at", "Observed (UTC)", "datetime"), _c("source_name", "Sensor"),
        _c("source_type", "Kind", "label:sensor"), _c("rate_kg_h", "Rate", "rate"),
        _c("rate_uncertainty_kg_h", "± 1σ", "rate"), _c("confidence", "Confidence", "pct"),
        _c("location_uncertainty_m", "Location ± (m)", "number"), _c("detection_id", "Detection"),
        _c("asset_id", "Asset", key=False), _c("event_type", "Event", "label:event_type", key=False),
        _c("leak_id", "Leak", key=False), _c("latitude", "Latitude", "coord", key=False),
        _c("longitude", "Longitude", "coord", key=False),
        _c("wind_speed_m_s", "Wind speed (m/s)", "number", key=False),
        _c("ambiguous", "Ambiguous", "bool", key=False), _c("batch_id", "File batch", "int", key=False),
        _c("source_row", "File row", "int", key=False)],
    "story": [
        _c("at", "When (UTC)", "datetime"), _c("kind", "What happened", "label:story_kind"),
        _c("what", "Details", width="large"), _c("who", "Who"), _c("source", "Evidence", width="large")],
    "events": [
        _c("at", "When (UTC)", "datetime"), _c("event", "Event", "label:event"),
        _c("from_status", "From", "label:status"), _c("to_status", "To", "label:status"), _c("actor", "Who"),
        _c("source", "Source", "label:event_source"), _c("detail", "Details", "detail", width="large")],
    "audit": [
        _c("at", "When (UTC)", "seconds"), _c("actor", "Who"), _c("action", "Action", "label:action"),
        _c("target", "Target", "target"), _c("detail", "Details", "detail", width="large")],
    "batches": [
        _c("file_name", "File"), _c("kind", "Kind", "label:batch_kind"), _c("format", "Format", "label:format"),
        _c("sha256", "SHA-256 (short)"), _c("ingested_at", "Loaded (UTC)", "datetime"), _c("recorded_by", "By"),
        _c("n_rows", "Rows", "int"), _c("n_accepted", "Accepted", "int"), _c("n_rejected", "Rejected", "int"),
        _c("n_duplicate", "Already loaded", "int")],
    "rejects": [_c("row", "Row", "int"), _c("column", "Column"), _c("value", "Value"),
                _c("reason", "Reason", width="large")],
    "models": [
        _c("id", "Version", "version"), _c("created_at", "Created (UTC)", "datetime"),
        _c("kind", "Kind", "label:model_kind"), _c("active", "Live", "bool"), _c("promoted", "Promoted", "bool"),
        _c("n_train", "Trained on", "int"), _c("n_holdout", "Checked on", "int"),
        _c("decision", "Decision", width="large")],
    "lists": [
        _c("id", "List", "int"), _c("plan_date", "For"), _c("status", "Status", "label:list_status"),
        _c("n_items", "Stops", "int"), _c("total_km", "Driving (km)", "km"), _c("created_by", "Planned by"),
        _c("approved_by", "Approved by")],
    "candidates": [_c("asset_id", "Asset", pinned=True),  # half a page wide: operator and type in view
                   _c("p", "Likelihood", "pct", help="attribution likelihood: the chance the leak is this asset's"),
                   _c("operator", "Operator"), _c("asset_type", "Type", "label:asset_type"),
                   _c("distance_m", "Distance (m)", "number")],
    "overrides": [_c("leak_id", "Leak"), _c("override", "Rank set to", "int"), _c("reason", "Reason", width="large"),
                  _c("by", "By"), _c("at", "When (UTC)", "datetime")],
}
TABLES["review"] = [
    _c("leak_id", "Leak"), _c("was", "Rank then", "int"), _c("now", "Rank now", "int"), _c("moved", "Places", "int"),
    _c("risk_band", "Risk", "label:band"), _c("priority_score", "Priority", "rate"),
    _c("status now", "Status now", "label:status")]
TABLES["compare"] = [
    _c("leak_id", "Leak"), _c("rank_a", "Rank under A", "int"), _c("rank_b", "Rank under B", "int"),
    _c("change", "Places up under B", "int"), _c("p_real_a", "P(real) A", "pct"), _c("p_real_b", "P(real) B", "pct"),
    _c("priority_score_a", "Priority A", "rate"), _c("priority_score_b", "Priority B", "rate"),
    _c("risk_band_a", "Risk A", "label:band"), _c("risk_band_b", "Risk B", "label:band")]
TABLES["stops"] = [
    _c("crew", "Crew"), _c("stop", "Stop", "int"), _c("leak_id", "Leak"), _c("rank", "Rank", "int"),
    _c("risk_band", "Risk", "label:band"), _c("est_rate_kg_h", "Rate", "rate"), _c("due_by", "Due by (UTC)", "date")]
# the Site and Operator pages (issue 19)
TABLES["site_leaks"] = [
    _c("rank", "Rank", "int", width="small", help="1 = visit first"), _c("leak_id", "Leak"),
    _c("status", "Status", "label:status"), _c("risk_band", "Risk", "label:band", width="small"),
    _c("p_real", "P(real)", "pct", help=_P), _c("est_rate_kg_h", "Rate", "rate", help="best estimate"),
    _c("first_seen", "First seen (UTC)", "date"), _c("last_seen", "Last seen (UTC)", "date"),
    _c("n_detections", "Detections", "int"), _c("source_types", "Sensors", "sensors"),
    _c("top_reasons", "Why", width="large"),
    *[c for c in TABLES["leaks"] if c.name not in {"rank", "leak_id", "status", "risk_band", "p_real",
                                                    "est_rate_kg_h", "first_seen", "last_seen", "n_detections",
                                                    "source_types", "top_reasons"} and not c.key],
    _c("due_by", "Due by (UTC)", "date", key=False)]
TABLES["site_obligations"] = [
    _c("due_by", "Due by (UTC)", "datetime"), _c("outcome", "On time?", "label:ob_outcome"), _c("title", "Rule"),
    _c("action", "Action", "label:action_noun"), _c("leak_id", "Leak"),
    _c("started_text", "Started by", width="medium"), _c("met_at", "Met (UTC)", "datetime"),
    _c("late_days", "Days late", "number"), _c("citation", "Citation", width="large"),
    _c("state", "State", "label:obligation_state", key=False), _c("days_left", "Days left", "int", key=False),
    _c("started_at", "Started (UTC)", "datetime", key=False), _c("site", "Site", key=False),
    _c("verified", "Rule text verified", "bool", key=False), _c("voluntary", "Voluntary", "bool", key=False),
    _c("due_rule", "Clock", "rule", key=False)]
TABLES["worsening"] = [
    _c("asset_id", "Site"), _c("changed_on", "From", "date"), _c("ratio", "× emissions", "number"),
    _c("p_value", "p", "p", help="permutation test: the chance of so clear a change in a steady site"),
    _c("evidence", "Evidence", width="large"), _c("n_days", "Watched days", "int", key=False),
    _c("n_detected_days", "Days with a detection", "int", key=False),
    _c("z_count", "Change in detections (z)", "number", key=False),
    _c("z_rate", "Change in readings (z)", "number", key=False), _c("operator", "Operator", key=False),
    _c("worsening", "Worsening", "bool", key=False)]
TABLES["sensor_precision"] = [  # half a page wide: the precision and its interval right after the sensor
    _c("source_name", "Sensor", pinned=True),
    _c("precision", "Precision", "pct", help="the share of checked leaks a crew found real"),
    _c("precision_lo", "90 % low", "pct"), _c("precision_hi", "90 % high", "pct"), _c("checked", "Checked", "int"),
    _c("source_type", "Kind", "label:sensor"),
    _c("confirmed", "Confirmed", "int"), _c("already_repaired", "Already repaired", "int"),
    _c("not_found", "Not found", "int"),
    _c("n_detections", "Detections", "int", key=False), _c("confirmed_share", "Confirmed share", "pct", key=False)]
_ROLLUP = [
    _c("n_leaks", "Leaks", "int"), _c("n_open", "Open", "int"), _c("expected_kg_h", "Expected", "rate",
                                                                   help="summed P(real) × rate"),
    _c("est_rate_kg_h", "Rate", "rate"), _c("n_visited", "Visited", "int"), _c("n_confirmed", "Confirmed", "int"),
    _c("n_repaired", "Repaired", "int"), _c("median_days_to_repair", "Median days to repair", "number"),
    _c("obligations", "Clocks", "int"), _c("met_on_time", "Met on time", "int"), _c("met_late", "Met late", "int"),
    _c("overdue", "Overdue", "int"), _c("on_time_share", "On time", "pct"),
    _c("false_alarm_share", "False alarms", "pct")]
TABLES["operators"] = [_c("operator", "Operator"), _c("n_sites", "Sites", "int"), *_ROLLUP,
                       _c("n_worsening", "Worsening sites", "int")]
TABLES["op_sites"] = [
    _c("asset_id", "Site"), _c("asset_type", "Type", "label:asset_type"), _c("top_rank", "Best rank", "int"),
    _c("worst_band", "Worst risk", "label:band"), *_ROLLUP, _c("n_detections", "Detections", "int", key=False),
    _c("n_sensors", "Sensors", "int", key=False), _c("first_seen", "First seen (UTC)", "date", key=False),
    _c("last_seen", "Last seen (UTC)", "date", key=False), _c("operator", "Operator", key=False),
    _c("latitude", "Latitude", "coord", key=False), _c("longitude", "Longitude", "coord", key=False)]
# the Rankings page grouped by site or operator (sites.ranking_groups) and the Model page's hold-out figures
TABLES["rank_groups"] = [
    _c("asset_id", "Site"), _c("operator", "Operator"), _c("n_leaks", "Leaks", "int"),
    _c("n_ranked", "Ranked", "int", help="leaks of the group in the ranking (open)"),
    _c("best_rank", "Best rank", "int"), _c("priority_score", "Priority", "rate", help="summed over the group's leaks"),
    _c("expected_kg_h", "Expected", "rate", help="summed P(real) × rate"),
    _c("worst_band", "Worst risk", "label:band"), _c("due_by", "Soonest deadline (UTC)", "date"),
    _c("overdue", "Overdue", "bool"), _c("leak_ids", "Leaks (first five)", width="large", help="best rank first")]
# the regulator's report (mlpe_core.report): its PDF and workbook show these; its JSON keeps the codes and names
_IDS = [_c("validation_ids", "Validation ids"), _c("leak_event_ids", "Leak event ids"),
        _c("audit_event_ids", "Audit event ids")]
TABLES["report_notifications"] = [
    _c("notification_id", "Notice"), _c("program", "Program", "label:program"), _c("notifier", "Notifier"),
    _c("leak_id", "Leak"), _c("site", "Site"), _c("site_type", "Site type", "label:asset_type"),
    _c("received_at", "Received (UTC)", "datetime"), _c("investigate_due", "Investigate by (UTC)", "datetime"),
    _c("investigated_at", "Investigated (UTC)", "datetime"), _c("finding", "Finding", "label:outcome"),
    _c("found_at", "Found (UTC)", "datetime"), _c("repaired_at", "Repaired (UTC)", "datetime"),
    _c("report_due", "Report by (UTC)", "datetime"), _c("reported_at", "Reported (UTC)", "datetime"),
    _c("investigate_status", "Investigation", "label:ob_outcome"), _c("report_status", "Report", "label:ob_outcome"),
    _c("status", "Status", "label:ob_outcome"), _c("late_days", "Days late", "number"), _c("rule", "Rule", "rule"),
    _c("citation", "Citation", width="large"), _c("notification_row", "Notification row", "int"), *_IDS]
TABLES["report_ldar"] = [
    _c("leak_id", "Leak"), _c("site", "Site"), _c("site_type", "Site type", "label:asset_type"),
    _c("rule", "Rule", "rule"), _c("found_at", "Found (UTC)", "datetime"), _c("found_by_ref", "Found by"),
    _c("attempt_due", "First attempt by (UTC)", "datetime"), _c("attempted_at", "First attempt (UTC)", "datetime"),
    _c("repair_due", "Repair by (UTC)", "datetime"), _c("repaired_at", "Repaired (UTC)", "datetime"),
    _c("delay_of_repair", "Delay of repair", "bool"), _c("delay_reason", "Delay reason"),
    _c("status", "Status", "label:ob_outcome"), _c("late_days", "Days late", "number"),
    _c("citation", "Citation", width="large"), *_IDS]
TABLES["report_actions"] = [
    _c("site", "Site"), _c("site_type", "Site type", "label:asset_type"), _c("rule", "Rule", "rule"),
    _c("exceeded_on", "Exceeded on (UTC)", "datetime"), _c("exceedance", "Exceedance", width="large"),
    _c("investigate_due", "Investigate by (UTC)", "datetime"), _c("responded_at", "Responded (UTC)", "datetime"),
    _c("response", "Response", "label:outcome"), _c("leak_id", "Leak"), _c("status", "Status", "label:ob_outcome"),
    _c("late_days", "Days late", "number"), _c("citation", "Citation", width="large"), *_IDS]
_STATES = ((": on time", "_on_time"), (": late or overdue", "_late"), (": open", "_open"))
TABLES["report_totals"] = [
    _c("site_type", "Site type", "label:asset_type"), _c("n_sites", "Sites", "int"), _c("n_leaks", "Leaks", "int"),
    _c("notifications", "Notices", "int"), *[_c(f"notifications{k}", f"Notices{w}", "int") for w, k in _STATES],
    _c("ldar_findings", "LDAR finds", "int"), *[_c(f"ldar{k}", f"LDAR finds{w}", "int") for w, k in _STATES],
    _c("exceedances", "Exceedances", "int"), *[_c(f"exceedances{k}", f"Exceedances{w}", "int") for w, k in _STATES],
    _c("tonnes", "t CH4", "mass"), _c("tonnes_lo", "t CH4, 5 %", "mass"), _c("tonnes_hi", "t CH4, 95 %", "mass")]
TABLES["report_emissions"] = [
    _c("level", "Level"), _c("name", "Site or site type"), _c("site_type", "Site type", "label:asset_type"),
    _c("n_leaks", "Leaks", "int"), _c("tonnes", "t CH4", "mass"), _c("tonnes_lo", "t CH4, 5 %", "mass"),
    _c("tonnes_hi", "t CH4, 95 %", "mass"), _c("t_per_year", "t/yr", "mass"), _c("t_per_year_lo", "t/yr, 5 %", "mass"),
    _c("t_per_year_hi", "t/yr, 95 %", "mass")]
TABLES["holdout"] = [
    _c("model", "Model"), _c("brier", "Brier score", "p", help="lower is better"),
    _c("log_loss", "Log loss", "p", help="lower is better"), _c("auc", "AUC", "p", help="higher is better"),
    _c("n_visits", "Visits", "int")]
LABELS["ob_outcome"] = {"on_time": "On time", "late": "Late", "overdue": "Overdue", "running": "Running",
                        "open": "Open", "no clock": "No clock"}  # the last two: the regulator's report's states
LABELS["action_noun"] = {k: v[:1].upper() + v[1:] for k, v in ACTION_NOUNS.items()}
LABELS["event_source"] = {"validation": "Field outcome", "detections": "Seen again", "mark": "Marked for dispatch",
                          "release": "Released", "desk": "By hand", "dispatch": "Dispatch list"}
LABELS["batch_kind"] = {"detections": "Detections", "validations": "Field outcomes", "assets": "Assets",
                        "notifications": "Notifications", "coverage": "Sensor coverage"}
LABELS["format"] = {"canonical": "Canonical", "carbonmapper": "Carbon Mapper", "mars": "UNEP MARS"}
# the Runs page: what ran (store.models.RunRecord), how it ended, the connectors and the watched folder's files
LABELS["face"] = {"cli": "the command line", "app": "the app", "api": "the API", "watch": "the folder watcher",
                  "daemon": "the background service"}
LABELS["run_kind"] = {"ingest": "File load", "fuse": "Fusion", "score": "Scoring", "train": "Training",
                      "demo": "Demo basin", "watch": "Watch cycle", "pull": "Connector pull", "alerts": "Alert check"}
LABELS["run_outcome"] = {"ok": "Done", "nothing": "Nothing new", "failed": "Failed"}
LABELS["connector_kind"] = {"folder": "Watched folder", "stac": "STAC catalogue", "plumes_json": "Plume list (JSON)"}
LABELS["file_state"] = {"loading": "Loading", "loaded": "Loaded", "duplicate": "Already loaded",
                        "rejected": "Refused", "error": "Error"}
# the Alerts page (store.models.Alert, AlertDelivery; kinds of alerts.evaluate.RULE_KINDS); a rule's and a team's
# names are the alert configuration's own (a snake_case one is said in words)
LABELS["alert_kind"] = {"new_high_leak": "New high-risk leak", "obligation_due": "Deadline due or overdue",
                        "failed_repair": "Failed repair", "burst": "Burst of alarms",
                        "worsening_site": "Worsening site"}
LABELS["severity"] = {"high": "High", "medium": "Medium", "info": "Information"}
LABELS["alert_state"] = {"open": "Open", "acknowledged": "Acknowledged", "snoozed": "Snoozed"}
LABELS["delivery_state"] = {"pending": "Pending", "sent": "Sent", "failed": "Failed"}
LABELS["channel"] = {"webhook": "Webhook", "email": "E-mail"}
TABLES["alerts"] = [
    _c("id", "Alert", "int", width="small"), _c("created_at", "When (UTC)", "datetime"),
    _c("severity", "Severity", "label:severity"), _c("title", "What", width="large"),
    _c("rule", "Rule", "label:alert_rule"), _c("team", "Team", "label:team"), _c("state", "State", "label:alert_state"),
    _c("leak_id", "Leak"), _c("asset_id", "Site"), _c("operator", "Operator"), _c("deliveries", "Sent to"),
    _c("handled_by", "Handled by"), _c("reason", "Reason", width="medium"),
    _c("snoozed_until", "Snoozed until (UTC)", "datetime"), _c("kind", "Kind", "label:alert_kind", key=False),
    _c("event_at", "Happened (UTC)", "datetime", key=False), _c("handled_at", "Handled (UTC)", "datetime", key=False),
    _c("asset_type", "Asset type", "label:asset_type", key=False), _c("detail", "Details", "detail", key=False)]
TABLES["deliveries"] = [
    _c("id", "Delivery", "int", width="small"), _c("alert_id", "Alert", "int", width="small"),
    _c("channel", "Channel", "label:channel"), _c("target", "To"), _c("state", "State", "label:delivery_state"),
    _c("attempts", "Attempts", "int"), _c("next_attempt_at", "Next try (UTC)", "datetime"),
    _c("sent_at", "Sent (UTC)", "datetime"), _c("last_error", "Last error", width="large"),
    _c("created_at", "Created (UTC)", "datetime", key=False)]
TABLES["runs"] = [
    _c("id", "Run", "int", width="small"), _c("kind", "Kind", "label:run_kind"),
    _c("outcome", "Outcome", "label:run_outcome"), _c("started_at", "Started (UTC)", "seconds"),
    _c("seconds", "Took (s)", "number"), _c("n_in", "In", "int"), _c("n_out", "Out", "int"),
    _c("n_rejected", "Refused", "int"), _c("stages", "Stages (s)", width="large"), _c("actor", "Who"),
    _c("source", "From", key=False), _c("target", "On", key=False), _c("model_version", "Model", "version", key=False),
    _c("code_version", "Code", key=False), _c("config_hash", "Configuration (SHA-256)", key=False),
    _c("error", "Error", width="large", key=False), _c("ended_at", "Ended (UTC)", "seconds", key=False)]
LABELS["stage"] = {"ids": "Leak ids", "fit": "Model fit", "hash": "File hash", "files": "File list",
                   "scope": "What to re-score", "fetch": "Fetch", "record": "Record", "deliver": "Deliver"}
TABLES["run_stages"] = [_c("stage", "Stage", "label:stage"), _c("seconds", "Seconds", "number")]
TABLES["settings"] = [_c("setting", "Setting"), _c("variable", "Variable"), _c("value", "Value", width="large")]
TABLES["connectors"] = [
    _c("name", "Connector"), _c("kind", "Kind", "label:connector_kind"),
    _c("last_ok_at", "Last success (UTC)", "seconds"), _c("lag_s", "Since (s)", "int"),
    _c("last_run_at", "Last run (UTC)", "seconds"), _c("n_runs", "Runs", "int"), _c("n_failed", "Failed", "int"),
    _c("n_loaded", "Rows loaded", "int"), _c("last_error", "Last error", width="large"),
    _c("watermark", "Fetched up to (UTC)", "seconds", key=False)]
TABLES["watched_files"] = [
    _c("updated_at", "When (UTC)", "seconds"), _c("name", "File"), _c("state", "What became of it", "label:file_state"),
    _c("reason", "Why", width="large"), _c("batch_id", "File batch", "int"), _c("size", "Bytes", "int"),
    _c("attempts", "Attempts", "int"), _c("sha256", "SHA-256 (short)"), _c("folder", "Folder", key=False),
    _c("first_seen_at", "First seen (UTC)", "seconds", key=False), _c("id", "Id", "int", key=False)]


def header(name: str, unit: str = DEFAULT_UNIT, table: str | None = None) -> str:
    """A column's header for people: from the table's specification, else from any table, else its name in words
    (never snake_case); a rate header names the unit."""
    spec = next((c for c in TABLES.get(table or "", []) if c.name == name), None)
    spec = spec or next((c for cols in TABLES.values() for c in cols if c.name == name), None)
    if spec is None:
        if name.endswith("_kg_h"):
            return f"{words(name.removesuffix('_kg_h'))} ({unit_or_default(unit)})"
        suffix = next((s for s in UNIT_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)
        return f"{words(name.removesuffix(suffix))} ({UNIT_SUFFIXES[suffix]})" if suffix else words(name)
    return f"{spec.header} ({unit_or_default(unit)})" if spec.kind == "rate" else spec.header


# A column name's unit suffix as people write the unit (longest first: ``_m_s`` before ``_s``); ``_kg_h`` is a rate
# and says the reader's unit instead.
UNIT_SUFFIXES = {"_km_h": "km/h", "_m_s": "m/s", "_g_s": "g/s", "_t_h": "t/h", "_lb_h": "lb/h", "_scfh": "scf/h",
                 "_mcf_d": "Mcf/d", "_km": "km", "_m": "m", "_s": "s", "_h": "h", "_pct": "%"}
_COORD_NAME = re.compile(r"^(?:.*_)?(?:lat|lon|lng|latitude|longitude)$")

# Columns a frame may carry for the machine that no table for people shows: the scorer's log-odds terms and the
# attribution candidates are JSON (the leak page shows both in words), the band's reason is "Why this band" again.
INTERNAL = frozenset({"contributions", "asset_candidates", "band_reason"})


def columns(table: str, df: pd.DataFrame | None = None) -> list[Column]:
    """The specification of ``table``: its columns in order (only those ``df`` has, when given), key ones first,
    then any other column of ``df`` (but :data:`INTERNAL`) as a non-key column with a header in words."""
    spec = TABLES[table]
    have = set(df.columns) if df is not None else {c.name for c in spec}
    out = [c for c in spec if c.name in have]
    out = [c for c in out if c.key] + [c for c in out if not c.key]
    if df is not None:
        known = {c.name for c in out} | INTERNAL
        out += [Column(n, header(n), _guess(df[n], n), key=False) for n in df.columns if n not in known]
    return out


def _guess(s: pd.Series, name: str = "") -> str:
    """The kind of a column no table specifies: a ``*_kg_h`` number is a rate (shown in the reader's unit, as its
    header says), a latitude or longitude (``home_lat``) a coordinate, JSON text is a detail (in words)."""
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_numeric_dtype(s) and _COORD_NAME.match(name):
        return "coord"
    if pd.api.types.is_numeric_dtype(s):
        return "rate" if name.endswith("_kg_h") else "int" if pd.api.types.is_integer_dtype(s) else "number"
    if pd.api.types.is_datetime64_any_dtype(s) or isinstance(s.dtype, pd.DatetimeTZDtype):
        return "datetime"
    first = s.dropna()
    first = first[first.astype(str).str.strip() != ""].head(1)
    if len(first) and str(first.iloc[0]).lstrip()[:1] in ("{", "["):
        return "detail"
    return "text"


def _each(s: pd.Series, f: Callable[[object], object]) -> pd.Series:
    """``f`` of every value of ``s``, computed once per distinct value (a 50,000-row ranking holds a few hundred
    distinct codes, labels and dates); missing values get ``f(None)``."""
    codes, uniq = pd.factorize(s.astype(object), use_na_sentinel=True)
    vals = np.empty(len(uniq) + 1, dtype=object)
    vals[:-1] = [f(u) for u in uniq]
    vals[-1] = f(None)
    return pd.Series(vals[codes], index=s.index, dtype=object)


def _text(s: pd.Series) -> pd.Series:
    return _each(s, lambda v: "" if _missing(v) else str(v))


TIME_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M", "time": "%Y-%m-%d %H:%M",
                "seconds": "%Y-%m-%d %H:%M:%S"}
DIGITS = {"number": 1, "km": 1, "coord": 4, "p": 3, "mass": 3}


def _times(s: pd.Series, fmt: str) -> pd.Series:
    t = pd.to_datetime(s, utc=True, errors="coerce")
    return t.dt.strftime(fmt).astype(object).where(t.notna(), "")


def display_frame(df: pd.DataFrame, table: str, unit: str = DEFAULT_UNIT, text_times: bool = True) -> pd.DataFrame:
    """``df`` with its values ready for a table on a page, its column names kept (the face labels them from
    :func:`columns`): codes as labels, clock ids as titles, rates in ``unit`` rounded to the unit's decimals,
    probabilities in whole percent (0–100), other numbers to what they mean, JSON details in words, blanks instead
    of None/NaN, and times as UTC text ("2026-09-14 13:05"; sortable) unless ``text_times`` is False. What a grid
    keeps for screen readers is then what it shows. With ``text_times`` False (a workbook, :func:`people_frame`)
    numbers keep their precision (coordinates all their decimals): the cell's number format rounds what shows."""
    out = df.copy()
    for c in columns(table, df):
        s = out[c.name]
        if c.kind.startswith("label:"):
            vocab = c.kind.split(":", 1)[1]
            out[c.name] = _each(s, lambda v, vocab=vocab: label(vocab, v))
        elif c.kind == "rule":
            out[c.name] = _each(s, rule_title)
        elif c.kind == "sensors":
            out[c.name] = _each(s, sensors)
        elif c.kind == "detail":
            out[c.name] = _each(s, detail_text)
        elif c.kind == "target":
            out[c.name] = _each(s, target_text)
        elif c.kind == "rate":
            v = pd.to_numeric(s, errors="coerce").astype(float) * UNITS[unit_or_default(unit)]
            out[c.name] = v.round(UNIT_DIGITS[unit_or_default(unit)] if text_times else 6)
        elif c.kind == "pct":
            v = pd.to_numeric(s, errors="coerce").astype(float) * 100
            out[c.name] = v.round(0) if text_times else v
        elif c.kind in DIGITS and pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c.name] = s.astype(float).round(DIGITS[c.kind]) if text_times else s.astype(float)
        elif c.kind in TIME_FORMATS and text_times:
            out[c.name] = _times(s, TIME_FORMATS[c.kind])
        elif c.kind == "bool":
            out[c.name] = _each(s, lambda v: "" if _missing(v) else "Yes" if bool(v) else "No")
        elif c.kind == "text" and (s.dtype == object or pd.api.types.is_string_dtype(s) or s.isna().all()):
            out[c.name] = (_each(s, lambda v: estimates_in_text(rules_in_text(v), unit)) if c.name == "top_reasons"
                           else _each(s, rules_in_text) if c.name == "band_why" else _text(s))
        elif c.kind == "text" and pd.api.types.is_float_dtype(s):
            out[c.name] = s.round(2)
    return out


EXCEL_FORMATS = {"int": "0", "number": "#,##0.0", "km": "#,##0.0", "mass": "#,##0.000", "pct": "0%",
                 "coord": "0.000000", "p": "0.000",
                 "date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm", "time": "yyyy-mm-dd hh:mm",
                 "seconds": "yyyy-mm-dd hh:mm:ss", "version": "0"}


def excel_format(kind: str, unit: str = DEFAULT_UNIT) -> str | None:
    """The Excel number format of a column kind (rates by the unit's decimals)."""
    if kind == "rate":
        d = UNIT_DIGITS[unit_or_default(unit)]
        return "#,##0" + ("." + "0" * d if d else "")
    return EXCEL_FORMATS.get(kind)


def people_frame(df: pd.DataFrame, table: str, unit: str = DEFAULT_UNIT, key_only: bool = False
                 ) -> tuple[pd.DataFrame, list[str]]:
    """``df`` for a file people open (a workbook sheet): the table's columns in order (key ones first; only those
    with ``key_only``), values as :func:`display_frame` makes them but numbers unrounded (the number format rounds
    what shows: coordinates to 6 decimals, about 0.1 m), probabilities as the 0–1 fractions stored (a percent
    format shows them; never 0.8457000000000001 from a round trip through percent), times as naive UTC
    (spreadsheets have no time zones; the header says UTC) and human headers.
    Returns the frame and the Excel number format of each column (None for text)."""
    cols = [c for c in columns(table, df) if c.key or not key_only]
    shown = display_frame(df, table, unit, text_times=False)
    out, fmts = {}, []
    for c in cols:
        s = shown[c.name]
        if c.kind == "pct":
            s = pd.to_numeric(df[c.name], errors="coerce").astype(float)
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        elif c.kind in ("date", "datetime", "time", "seconds") and not pd.api.types.is_datetime64_any_dtype(s):
            s = pd.to_datetime(s, utc=True, errors="coerce").dt.tz_localize(None)
        if c.kind in ("int", "version"):
            s = pd.to_numeric(s, errors="coerce").astype("Int64")
        out[header(c.name, unit, table)] = s
        fmts.append(excel_format(c.kind, unit))
    frame = pd.DataFrame(out, index=df.index).reset_index(drop=True)
    return frame, fmts


def people_csv_frame(df: pd.DataFrame, table: str, unit: str = DEFAULT_UNIT) -> pd.DataFrame:
    """``df`` for a CSV people open: what the page's table shows, as text a spreadsheet keeps (a CSV has no number
    formats): the table's columns in order, human headers, labels, rates in ``unit`` at its decimals, percentages
    as "83%", times as UTC text ("2026-09-14 13:05"; the header says UTC), blanks for missing values."""
    shown = display_frame(df, table, unit)
    out = {}
    for c in columns(table, df):
        s = shown[c.name]
        if c.kind == "pct":
            s = _each(s, lambda v: "" if _missing(v) or v == "" else f"{float(v):.0f}%")
        elif c.kind == "version":
            s = _each(pd.to_numeric(s, errors="coerce"), lambda v: "" if _missing(v) else f"v{int(v)}")
        elif c.kind == "int":
            s = pd.to_numeric(s, errors="coerce").astype("Int64")
        out[header(c.name, unit, table)] = s
    return pd.DataFrame(out, index=df.index).reset_index(drop=True)


def text_table(df: pd.DataFrame, table: str, cols: list[str] | None = None, unit: str = DEFAULT_UNIT,
               max_colwidth: int = 60) -> str:
    """``df`` as a plain-text table for a terminal: the columns ``cols`` (default: the table's key columns) as
    :func:`people_csv_frame` writes them (human headers, labels, rule titles, UTC dates and times as text, rates in
    ``unit``, percentages), every missing value blank: never None, NaN, NaT or ``+00:00``."""
    names = [c for c in (cols or [c.name for c in columns(table, df) if c.key]) if c in df.columns]
    shown = people_csv_frame(df[names], table, unit)[[header(c, unit, table) for c in names]]
    shown = shown.astype(object).where(shown.notna(), "")
    return shown.to_string(index=False, max_colwidth=max_colwidth)


def html_table(pairs: list[tuple[str, str]]) -> str:
    """Label/value pairs as a small HTML table (KML balloons); values are escaped by the caller."""
    rows = "".join(f"<tr><th align='left'>{k}</th><td>{v}</td></tr>" for k, v in pairs if v not in (None, ""))
    return f"<table>{rows}</table>"


def coord(x) -> str:
    """A latitude or longitude with 4 decimals (about 10 m)."""
    return DASH if _missing(x) else f"{float(x):.4f}"


def finite(a) -> np.ndarray:
    """``a`` as floats with non-finite values as NaN (for sums people read)."""
    v = np.asarray(a, float)
    return np.where(np.isfinite(v), v, np.nan)


# --------------------------------------------------------------------------------------------- messages

_CODES = re.compile(r"\b(not_found|no_access|already_repaired|not_accessible|repair_attempted|repair_attempt|"
                    r"delay_of_repair|continuous_monitor)\b")


def codes_in_text(text) -> str:
    """A sentence with any status, outcome or sensor code in it said in words (``not_found`` → "not found") and
    any clock id as its title."""
    if _missing(text):
        return ""
    return rules_in_text(_CODES.sub(lambda m: m.group(0).replace("_", " "), str(text)))


def friendly(column, reason) -> str:
    """A refused value as a person should read it beside the field (the phone form): what to do, not the check."""
    col, why = str(column or ""), str(reason or "")
    if col == "outcome" and ("not one of" in why or "blank" in why):
        return "Choose what the crew found."
    if col == "leak_id" and "blank" in why:
        return "Pick the leak the crew visited."
    if col == "leak_id" and "unknown" in why:
        return "No leak has this id: pick one from the list (it may have been re-fused)."
    if col == "visited_at" and "future" in why:
        return "The visit time is in the future: check the date and time."
    if col == "visited_at":
        return "The visit date and time could not be read or are not plausible: check them."
    if col == "measured_rate_kg_h":
        return ("The measured rate must be a number of kg/h, 0 or more." if "number" in why
                else "The measured rate is above any plausible leak: check the unit (kg/h) and the value.")
    if col == "repaired_at":
        return "The repair date is not plausible: it must be a real date, not later than tomorrow."
    if "control character" in why:
        return "This text holds an invisible control character: retype it."
    return codes_in_text(why)[:1].upper() + codes_in_text(why)[1:]
