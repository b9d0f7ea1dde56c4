"""Dispatch settings (``config/dispatch.yaml``): crews, home bases, visits a day, speeds and limits,
checked field by field."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ..config import config_path

SETTINGS = config_path("dispatch.yaml")  # the packaged default; MLPE_CONFIG_DIR may override it


class DispatchConfigError(ValueError):
    """``config/dispatch.yaml`` cannot be used: names the field."""


def load_settings(path: str | Path | None = None) -> dict:
    """Crews (name, home base or auto, visits a day), speeds and limits, the working day's start and time zone,
    checked field by field (``day_start`` comes back as (hour, minute))."""
    p = Path(path) if path else config_path("dispatch.yaml")
    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DispatchConfigError(f"{p}: cannot read dispatch settings ({exc})") from exc

    def num(key: str, default: float, lo: float = 0.0) -> float:
        v = cfg.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > lo:
            raise DispatchConfigError(f"{p}: field '{key}' must be a number > {lo:g}")
        return float(v)

    visits = cfg.get("visits_per_crew_per_day", 4)
    if isinstance(visits, bool) or not isinstance(visits, int) or visits < 1:
        raise DispatchConfigError(f"{p}: field 'visits_per_crew_per_day' must be a whole number ≥ 1")
    crews = cfg.get("crews", 3)
    if isinstance(crews, int) and not isinstance(crews, bool):
        if crews < 1:
            raise DispatchConfigError(f"{p}: field 'crews' must be ≥ 1")
        crews = [{"name": f"crew-{i + 1}"} for i in range(crews)]
    if not isinstance(crews, list) or not crews:
        raise DispatchConfigError(f"{p}: field 'crews' must be a number or a list of crews")
    out_crews, names = [], set()
    for i, c in enumerate(crews):
        if not isinstance(c, dict) or not isinstance(c.get("name", f"crew-{i + 1}"), str):
            raise DispatchConfigError(f"{p}: field 'crews[{i}]' must be a mapping with a name")
        name = c.get("name", f"crew-{i + 1}")
        if name in names:
            raise DispatchConfigError(f"{p}: field 'crews[{i}].name' repeats '{name}'")
        names.add(name)
        home = c.get("home")
        if home is not None and not (isinstance(home, list) and len(home) == 2
                                     and all(isinstance(x, int | float) and not isinstance(x, bool) for x in home)
                                     and abs(home[0]) <= 90 and abs(home[1]) <= 180):
            raise DispatchConfigError(f"{p}: field 'crews[{i}].home' must be [latitude, longitude]")
        v = c.get("visits_per_day", visits)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise DispatchConfigError(f"{p}: field 'crews[{i}].visits_per_day' must be a whole number ≥ 1")
        out_crews.append({"name": name, "home": tuple(map(float, home)) if home else None, "visits": v})
    start = cfg.get("day_start", "07:00")
    if isinstance(start, int) and not isinstance(start, bool) and 0 <= start <= 23:
        start = f"{start:02d}:00"
    try:
        hh, mm = (int(x) for x in str(start).split(":")) if isinstance(start, str) else (-1, -1)
    except ValueError:
        hh, mm = -1, -1
    if not (0 <= hh <= 23 and 0 <= mm <= 59):
        # unquoted 7:00 reaches here as 420 (YAML 1.1 reads it as base 60)
        raise DispatchConfigError(f"{p}: field 'day_start' must be a local time in quotes, e.g. \"07:00\", or an hour")
    tz = cfg.get("time_zone", "UTC")
    try:
        ZoneInfo(tz if isinstance(tz, str) else "")
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise DispatchConfigError(f"{p}: field 'time_zone' must be a time zone name such as UTC or "
                                  "America/Chicago") from exc
    appr = cfg.get("approval", {}) or {}
    if not isinstance(appr, dict) or not isinstance(appr.get("separate_approver", True), bool):
        raise DispatchConfigError(f"{p}: field 'approval.separate_approver' must be true or false")
    return {"crews": out_crews, "visits_per_crew_per_day": visits, "speed_km_h": num("speed_km_h", 50.0),
            "road_factor": num("road_factor", 1.3), "visit_hours": num("visit_hours", 1.0),
            "day_hours": num("day_hours", 8.0), "day_start": (hh, mm), "time_zone": tz,
            "separate_approver": appr.get("separate_approver", True)}


def crew_capacity(path: str | Path | None = None) -> int:
    """Visits per day for all crews together (``config/dispatch.yaml``)."""
    return int(sum(c["visits"] for c in load_settings(path)["crews"]))
