"""Clocks: when each rule's clock starts for a leak (the event its trigger names), what meets it, when it is due,
and what started it, so a deadline can always be traced to the notice, detection, visit or exceedance behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from ..frames import isin
from ..present import SENSOR_WORDS, label
from .action_levels import exceedances, site_words
from .candidates import watch_list, watch_urgency
from .rules import ACTIONS, DEFAULT_SETTINGS, DUE_SOON_DAYS

ACTION_NOUNS = {"investigate": "investigation", "report": "report", "repair_attempt": "first repair attempt",
                "repair": "repair"}

CLOCK_COLUMNS = ["leak_id", "site", "rule", "action", "due_by", "due_rule", "started_at", "started_by", "started_ref",
                 "started_text", "met_at", "voluntary", "legal"]


@lru_cache(maxsize=32)
def _holiday_days(code: str, first_year: int, last_year: int) -> np.ndarray:
    """Public holidays of ``code`` (``US-CO``: country-subdivision) as datetime64[D], from the ``holidays``
    package (a maintained calendar: moved and observed days included)."""
    import holidays

    country, _, subdiv = code.partition("-")
    cal = holidays.country_holidays(country, subdiv=subdiv or None, years=range(first_year, last_year + 1))
    return np.array(sorted(cal.keys()), dtype="datetime64[D]")


def add_days(start: pd.Timestamp, days: int, calendar: str, holidays: str | None = None) -> pd.Timestamp:
    """``start`` + ``days`` calendar days, or working days (Monday-Friday, less ``holidays``' public holidays;
    a start on a day off rolls to the next working day), keeping the time of day."""
    if calendar == "working":
        day = np.datetime64(start.tz_convert("UTC").tz_localize(None).floor("D").date(), "D")
        hol = _holiday_days(holidays, start.year, start.year + 1 + days // 200) if holidays else None
        due = np.busday_offset(day, days, roll="forward", holidays=hol if hol is not None else [])
        return pd.Timestamp(due).tz_localize("UTC") + (start - start.floor("D"))
    return start + pd.Timedelta(days=days)


_add = add_days  # the name the earlier code used


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


@dataclass
class _Context:
    """Everything the triggers read, prepared once per call."""

    dets: pd.DataFrame
    visits: pd.DataFrame
    positions: pd.DataFrame
    asset: pd.Series
    settings: dict
    baselines: dict
    notifications: pd.DataFrame
    assets: pd.DataFrame | None
    leaks: pd.DataFrame | None
    coverage: pd.DataFrame | None
    memo: dict = field(default_factory=dict)  # what the action-level rules share (``action_levels.rule_series``)


EVENT_COLUMNS = ["key", "leak_id", "site", "at", "kind", "ref", "text", "voluntary"]


def _fmt(t: pd.Timestamp) -> str:
    return f"{pd.Timestamp(t):%Y-%m-%d %H:%M} UTC"


def _detections(trig: dict, d: pd.DataFrame) -> pd.DataFrame:
    d = d[d["source_type"].isin(trig.get("source_types", []))]
    if trig.get("event_types"):
        ev = d["event_type"] if "event_type" in d else pd.Series("", index=d.index)
        d = d[ev.fillna("").astype(str).str.strip().str.lower().isin([e.lower() for e in trig["event_types"]])]
    if "min_rate_kg_h" in trig:
        d = d[d["rate_kg_h"].fillna(-1) >= float(trig["min_rate_kg_h"])]
    return d


def _detection_events(d: pd.DataFrame, ctx: _Context, kind: str = "detection", voluntary: bool = False
                      ) -> pd.DataFrame:
    ids = d["detection_id"].astype(str) if "detection_id" in d else pd.Series("", index=d.index)
    rate = d["rate_kg_h"] if "rate_kg_h" in d else pd.Series(np.nan, index=d.index)
    text = [f"{'own ' if voluntary else ''}{SENSOR_WORDS.get(st, str(st).replace('_', ' '))} detection {i}"
            + (f" of {r:,.0f} kg/h" if pd.notna(r) else "")
            + f" on {_fmt(t)}" for st, i, r, t in zip(d["source_type"], ids, rate, d["observed_at"], strict=True)]
    return pd.DataFrame({"key": d["leak_id"], "leak_id": d["leak_id"], "site": d["leak_id"].map(ctx.asset),
                         "at": d["observed_at"], "kind": kind, "ref": ids, "text": text, "voluntary": voluntary})


def _trigger_events(rule: dict, ctx: _Context) -> pd.DataFrame:
    """Every event that starts ``rule``'s clocks: key (the leak, or ``notification:<id>`` for a notice not yet
    matched to a leak), leak_id, site, at, kind, ref, text, voluntary."""
    trig = rule["trigger"]
    event = trig["event"]
    region = rule.get("region")
    parts = []
    if event == "notification":
        n = ctx.notifications
        n = n[n["program"].isin(trig["programs"])] if len(n) else n
        if len(n):
            matched = n["leak_id"].notna()
            key = n["leak_id"].where(matched, "notification:" + n["notification_id"].astype(str))
            text = [f"notification {i} ({label('program', p)}{', ' + str(w) if isinstance(w, str) and w else ''}) "
                    f"received {_fmt(t)}"
                    + ("" if m else "; not yet matched to a leak")
                    for i, p, w, t, m in zip(n["notification_id"], n["program"], n["notifier"], n["received_at"],
                                             matched, strict=True)]
            parts.append(pd.DataFrame({"key": key, "leak_id": n["leak_id"].where(matched, None),
                                       "site": n["leak_id"].map(ctx.asset), "at": n["received_at"],
                                       "kind": "notification", "ref": n["notification_id"].astype(str),
                                       "text": text, "voluntary": False}))
        cand = trig.get("candidate")
        pol = ctx.settings.get("candidates", {})
        if cand and pol.get("own_detections_voluntary"):
            d = _detections(cand, ctx.dets)
            if pol.get("own_source_names"):
                d = d[d["source_name"].isin(pol["own_source_names"])] if "source_name" in d else d.iloc[0:0]
            if region:
                d = d[_in_region(d["latitude"], d["longitude"], region)]
            parts.append(_detection_events(d, ctx, "own detection", voluntary=True))
    elif event in ("detection", "field_find"):
        if trig.get("source_types"):
            d = _detections(trig, ctx.dets)
            if region:
                d = d[_in_region(d["latitude"], d["longitude"], region)]
            parts.append(_detection_events(d, ctx))
        v = ctx.visits
        if trig.get("found_by") and len(v):
            v = v[(v["outcome"] == "confirmed") & v["found_by"].isin(trig["found_by"])]
            if region and len(v):
                pos = ctx.positions.reindex(v["leak_id"])
                v = v[_in_region(pos["latitude"], pos["longitude"], region).to_numpy()]
            ref = v["id"].astype(str) if "id" in v else v["visited_at"].map(_fmt)
            text = [f"visit {_fmt(t)} found it by {f}" for t, f in zip(v["visited_at"], v["found_by"], strict=True)]
            parts.append(pd.DataFrame({"key": v["leak_id"], "leak_id": v["leak_id"],
                                       "site": v["leak_id"].map(ctx.asset), "at": v["visited_at"], "kind": "visit",
                                       "ref": ref, "text": text, "voluntary": False}))
    elif event == "action_level":
        ex = exceedances(ctx.dets, rule, ctx.settings, ctx.leaks, ctx.assets, ctx.coverage, ctx.baselines,
                         ctx.memo)
        if region and len(ex):
            pos = ctx.positions.reindex(ex["leak_ids"].map(lambda x: x[0] if x else None))
            ex = ex[_in_region(pos["latitude"], pos["longitude"], region).fillna(False).to_numpy()]
        days = int(rule["trigger"]["rolling_mean_kg_h"]["days"])
        rows = []
        for x in ex.itertuples():
            for lk in x.leak_ids:
                base = f" (baseline {x.baseline_kg_h:.2f})" if x.baseline_kg_h else ""
                rows.append((lk, lk, x.site, x.day, "exceedance", f"{x.site}:{x.day:%Y-%m-%d}",
                             f"{days}-day average {x.average_kg_h:.2f} kg/h over the {x.threshold_kg_h:.2f} kg/h "
                             f"level{base} at {site_words(x.site)} on {x.day:%Y-%m-%d}", False))
        parts.append(pd.DataFrame(rows, columns=EVENT_COLUMNS))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["at"] = pd.to_datetime(out["at"], utc=True)
    return out[out["at"].notna()]


def _np(times) -> np.ndarray:
    """UTC times as sorted naive datetime64[ns] (what the clock arithmetic searches)."""
    return np.sort(pd.to_datetime(pd.Series(times), utc=True).dt.tz_localize(None).to_numpy().astype("datetime64[ns]"))


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


def _instances(starts: np.ndarray, met: np.ndarray | None) -> list[tuple[int, pd.Timestamp | None]]:
    """Each instance of a clock: (index of its start in ``starts``, the record that met it or None).

    A record on or after an instance's start day meets it; the next instance starts at the first triggering
    event after that record (a leak seen again after its repair runs a new repair clock)."""
    out: list[tuple[int, pd.Timestamp | None]] = []
    i = 0
    while True:
        t = pd.Timestamp(starts[i]).tz_localize("UTC")
        m = _first_at_or_after(met, t)
        out.append((i, m))
        if m is None:
            return out
        later = np.flatnonzero(starts > max(m, t).tz_localize(None).to_datetime64())
        if not len(later):
            return out
        i = int(later[0])


def _visits(validations: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["leak_id", "outcome", "visited_at", "repaired_at", "repair_attempted_at", "found_by", "delay_reason"]
    if validations is None or not len(validations):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    v = validations.reindex(columns=cols + (["id"] if "id" in validations else [])).copy()
    for c in ("visited_at", "repaired_at", "repair_attempted_at"):
        v[c] = _utc(v[c])
    v["outcome"] = v["outcome"].astype(str)
    v["found_by"] = v["found_by"].where(v["found_by"].notna(), "").astype(str).str.lower()
    v["delay_reason"] = v["delay_reason"].where(v["delay_reason"].astype(str).str.strip().ne("")
                                                & v["delay_reason"].notna(), None)
    return v


def _notifications(notifications: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["notification_id", "received_at", "program", "notifier", "leak_id"]
    if notifications is None or not len(notifications):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    n = notifications.reindex(columns=cols).copy()
    n["received_at"] = _utc(n["received_at"])
    n["leak_id"] = n["leak_id"].where(n["leak_id"].notna() & n["leak_id"].astype(str).str.strip().ne(""), None)
    return n[n["received_at"].notna()]


def _site_meets(meets: dict, events: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """For site-level clocks (action levels): a visit to any leak holding the site's readings meets them."""
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in meets}
    live = {kind: per for kind, per in meets.items() if per}  # a kind no record meets stays empty (None = none)
    if not live:
        return out
    for _site, g in events.groupby("site"):
        leaks = sorted(set(g["leak_id"].dropna()))
        for kind, per in live.items():
            arrs = [per[lk] for lk in leaks if lk in per]
            joined = np.sort(np.concatenate(arrs)) if arrs else np.array([], dtype="datetime64[ns]")
            for lk in leaks:
                out[kind][lk] = joined
    return out


def clock_instances(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict],
                    assets: pd.DataFrame | None = None, leaks: pd.DataFrame | None = None,
                    baselines: dict | None = None, notifications: pd.DataFrame | None = None,
                    coverage: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every instance of every clock, running or met (``CLOCK_COLUMNS``).

    ``started_by`` is the kind of event that started it (notification, detection, own detection, visit,
    exceedance), ``started_ref`` its id (notification id, detection id, validation id, ``site:day``) and
    ``started_text`` a sentence for people. ``met_at`` is the record that met it (NaT while it runs).
    ``voluntary`` clocks come from a rule marked voluntary or from the operator's own qualifying detections
    (``settings.candidates.own_detections_voluntary``); ``legal`` is the others. A notice not yet matched to a
    leak runs with a blank ``leak_id``.
    """
    settings = getattr(rules, "settings", DEFAULT_SETTINGS)
    settings = {**DEFAULT_SETTINGS, **settings}
    base = dict(settings.get("site_baselines_kg_h", {}))
    base.update(baselines or {})
    dets = dets.assign(observed_at=pd.to_datetime(dets["observed_at"], utc=True))
    dets = dets[dets["leak_id"].notna()]
    visits = _visits(validations)
    meets = _meets(visits)
    notifications = _notifications(notifications)
    if leaks is not None and len(leaks):  # the leaks an event can name (a scoring of some leaks gives them all)
        named = pd.concat([dets["leak_id"], visits["leak_id"], notifications["leak_id"]]).dropna()
        leaks = leaks[isin(leaks["leak_id"], named.astype(str))]
    asset, _klass = _leak_sites(dets, assets, leaks, settings)
    ctx = _Context(dets=dets, visits=visits, positions=_leak_positions(dets, leaks), asset=asset, settings=settings,
                   baselines=base, notifications=notifications, assets=assets, leaks=leaks,
                   coverage=coverage)
    rows = []
    for rule in rules:
        if not rule.get("enabled", True):
            continue
        events = _trigger_events(rule, ctx)
        if events.empty:
            continue
        rule_meets = _site_meets(meets, events) if rule["trigger"]["event"] == "action_level" else meets
        by_clock = {c["action"]: c for c in rule["clocks"]}
        delay = rule.get("delay_of_repair")
        hol = rule.get("holidays")
        # each clock's events in time order, as arrays: one sort and one conversion per rule, not per clock (a
        # re-score of 3,000 leaks has ~600 clocks; per-clock frames took half a second)
        events = events.sort_values("at", kind="stable").reset_index(drop=True)
        gid = events.groupby(["key", "voluntary"], sort=True).ngroup().to_numpy()
        order = np.argsort(gid, kind="stable")
        at = events["at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
        leak_of, vol_of = events["leak_id"].to_numpy(dtype=object), events["voluntary"].to_numpy(dtype=object)
        site_of, kind_of = events["site"].to_numpy(dtype=object), events["kind"].to_numpy(dtype=object)
        ref_of, text_of = events["ref"].to_numpy(dtype=object), events["text"].to_numpy(dtype=object)
        for pos in np.split(order, np.flatnonzero(np.diff(gid[order])) + 1):
            starts = at[pos]
            lid = leak_of[pos[0]]
            lid = None if lid is None or (isinstance(lid, float) and np.isnan(lid)) else lid
            voluntary = bool(vol_of[pos[0]]) or bool(rule.get("voluntary"))
            for clock in rule["clocks"]:
                action, days, cal = clock["action"], clock["days"], clock.get("calendar", "calendar")
                kind = "any" if ACTIONS[action] == {"any"} else ("attempt" if action == "repair_attempt" else "repair")
                met = rule_meets[kind].get(lid) if lid is not None else None
                for i, met_at in _instances(starts, met):
                    start = pd.Timestamp(starts[i]).tz_localize("UTC")
                    j = pos[i]
                    label = f"{rule['id']}:{action}"
                    if clock.get("after") == "repair_attempt":
                        attempt = _first_at_or_after(rule_meets["attempt"].get(lid), start) if lid else None
                        first = by_clock["repair_attempt"]
                        origin = attempt if attempt is not None else add_days(
                            start, first["days"], first.get("calendar", "calendar"), hol)
                        due = add_days(origin, days, cal, hol)
                    else:
                        due = add_days(start, days, cal, hol)
                    if delay and action == "repair" and lid is not None and \
                            _first_at_or_after(rule_meets["delay"].get(lid), start) is not None:
                        due = add_days(start, int(delay["max_days"]), "calendar")
                        label += " (delay of repair)"
                    if voluntary:
                        label += " (voluntary)"
                    rows.append((lid, site_of[j] if isinstance(site_of[j], str) else None, rule["id"], action, due,
                                 label, start, kind_of[j], ref_of[j], text_of[j], met_at, voluntary, not voluntary))
    out = pd.DataFrame(rows, columns=CLOCK_COLUMNS)
    for c in ("due_by", "started_at", "met_at"):
        out[c] = pd.to_datetime(out[c], utc=True)
    return out


def _flags(df: pd.DataFrame, as_of) -> None:
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    df["overdue"] = df["due_by"] < as_of
    df["due_soon"] = ~df["overdue"] & (df["due_by"] <= as_of + pd.Timedelta(days=DUE_SOON_DAYS))
    df["urgency"] = np.where(df["overdue"], 1.0, np.where(df["due_soon"], 0.5, 0.0))


def _running(inst: pd.DataFrame) -> pd.DataFrame:
    """The clock instances still running: not met by a field record."""
    return inst[inst["met_at"].isna()].copy()


def what(rule: dict, action: str) -> str:
    """A clock in words, for the band's reason: 'an OOOOb super-emitter investigation'."""
    phrase = f"{rule.get('label', rule['name'])} {ACTION_NOUNS[action]}"
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def deadlines(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict],
              as_of: pd.Timestamp, assets: pd.DataFrame | None = None, leaks: pd.DataFrame | None = None,
              baselines: dict[str, float] | None = None, notifications: pd.DataFrame | None = None,
              coverage: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per leak with a running clock or on the likely-notification watch list: due_by, due_rule, overdue, due_soon,
    urgency (0, 0.5 or 1) of its earliest clock (NaT / False / the policy's watch urgency for a watch item alone),
    started_text (what started that clock), voluntary (that clock is voluntary), the state of its legal clocks for
    the risk band: legal_state (overdue, due soon, running, or None) and legal_what (the most urgent legal clock in
    words, e.g. 'an OOOOb super-emitter investigation'), and watch (on the watch list, ``comply.candidates``).

    ``notifications`` (the store's, matched to leaks) start notification rules; ``assets`` (asset_id,
    asset_type) and ``leaks`` (leak_id, asset_id, latitude, longitude) tell wellhead-only sites from other sites;
    ``baselines`` (asset_id → kg/h) override the sites' own baselines; ``coverage`` (site, start, end) says when
    each site's monitor watched (``comply.action_levels``).
    """
    cols = ["due_by", "due_rule", "overdue", "due_soon", "urgency", "started_text", "voluntary", "legal_state",
            "legal_what", "watch"]
    inst = clock_instances(dets, validations, rules, assets, leaks, baselines, notifications, coverage)
    run = _running(inst)
    run = run[run["leak_id"].notna()]
    watch = watch_list(dets, rules, as_of, _notifications(notifications), leaks)
    watched = pd.Index(sorted(set(watch["leak_id"])), name="leak_id")
    if run.empty and not len(watched):
        return pd.DataFrame(columns=cols, index=pd.Index([], name="leak_id"))
    _flags(run, as_of)
    first = run.sort_values(["due_by", "due_rule"], kind="stable").groupby("leak_id").first()
    by_id = {r["id"]: r for r in rules}
    legal = run[run["legal"]].copy()
    first["legal_state"] = None
    first["legal_what"] = None
    if len(legal):
        legal["state"] = np.where(legal["overdue"], "overdue", np.where(legal["due_soon"], "due soon", "running"))
        legal["order"] = legal["state"].map({"overdue": 0, "due soon": 1, "running": 2})
        worst = legal.sort_values(["order", "due_by"], kind="stable").groupby("leak_id").first()
        first.loc[worst.index, "legal_state"] = worst["state"]
        first.loc[worst.index, "legal_what"] = [what(by_id[r], a) for r, a in zip(worst["rule"], worst["action"],
                                                                                  strict=True)]
    first = first.reindex(first.index.union(watched))
    first["watch"] = first.index.isin(watched)
    first["urgency"] = np.maximum(first["urgency"].fillna(0.0).astype(float),
                                  np.where(first["watch"], watch_urgency(rules), 0.0))
    for c in ("overdue", "due_soon", "voluntary"):
        first[c] = first[c].fillna(False).astype(bool)
    first["legal_state"] = first["legal_state"].astype(object).where(first["legal_state"].notna(), None)
    first["legal_what"] = first["legal_what"].astype(object).where(first["legal_what"].notna(), None)
    return first[cols].rename_axis("leak_id")


def _leak_and_site_detections(dets: pd.DataFrame, leak_id: str, leaks: pd.DataFrame | None) -> pd.DataFrame:
    """The leak's detections plus the monitor readings of its site (a site-level action level needs them)."""
    own = dets[dets["leak_id"] == leak_id]
    sites = set(own["asset_id"].dropna()) if "asset_id" in own else set()
    if leaks is not None and len(leaks) and "asset_id" in leaks:
        sites |= set(leaks.loc[leaks["leak_id"] == leak_id, "asset_id"].dropna())
        neighbours = set(leaks.loc[leaks["asset_id"].isin(sites), "leak_id"])
    else:
        neighbours = set()
    if not sites:
        return own
    cm = dets["source_type"] == "continuous_monitor"
    at_site = dets["leak_id"].isin(neighbours) | (dets["asset_id"].isin(sites) if "asset_id" in dets else False)
    return dets[(dets["leak_id"] == leak_id) | (cm & at_site)]


def leak_clocks(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict], as_of: pd.Timestamp,
                leak_id: str | None = None, **kw) -> pd.DataFrame:
    """Every running clock (of one leak, or all), not only the earliest: for the leak page, API and work orders.

    Columns: leak_id, rule, action, due_by, due_rule, overdue, due_soon, citation, verified, started_at, started_by,
    started_ref, started_text, voluntary. Keywords as :func:`deadlines` (assets, leaks, baselines, notifications,
    coverage). With ``leak_id``, a site-level clock (action level) still sees the site's other monitor readings.
    """
    if leak_id is not None:
        dets = _leak_and_site_detections(dets, leak_id, kw.get("leaks"))
        if validations is not None and len(validations):
            validations = validations[validations["leak_id"].isin(set(dets["leak_id"].dropna()))]
    notes = kw.get("notifications")
    if leak_id is not None and notes is not None and len(notes):
        notes = notes[notes["leak_id"] == leak_id]
    inst = clock_instances(dets, validations, rules, kw.get("assets"), kw.get("leaks"), kw.get("baselines"), notes,
                           kw.get("coverage"))
    out = _running(inst)
    out = out[out["leak_id"].notna()]
    if leak_id is not None:
        out = out[out["leak_id"] == leak_id]
    by_id = {r["id"]: r for r in rules}
    _flags(out, as_of)
    out["citation"] = out["rule"].map(lambda r: by_id[r]["citation"])
    out["verified"] = out["rule"].map(lambda r: bool(by_id[r]["verified"]))
    return out.sort_values(["leak_id", "due_by"]).reset_index(drop=True)[
        ["leak_id", "rule", "action", "due_by", "due_rule", "overdue", "due_soon", "citation", "verified",
         "started_at", "started_by", "started_ref", "started_text", "voluntary"]]
