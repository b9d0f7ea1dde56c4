"""What the alert rules find: a pure function of the store's frames and a clock (no store, no network).

Each alert has a ``key`` naming the condition (the rule, the leak or asset, and what makes this occurrence
itself: the due date, the repair it followed, the burst's first alarm), so checking again finds the same
keys and the store adds nothing twice. ``lookback_hours`` keeps old events quiet: loading last year's data
does not page anyone about last year.

Rules:

* ``new_high_leak``: an open leak ranked HIGH, seen within the look-back: once per leak.
* ``obligation_due``: a legal deadline due within ``within_days`` (one alert), and again once overdue.
* ``failed_repair``: a leak seen again after its repair: once per re-opening.
* ``burst``: ``count`` alarms within ``within_minutes`` at one asset (sensors of ``source_types``); one alert
  per episode (alarms that keep coming within the window belong to the same episode).
* ``worsening_site``: a site ``desk.worsening_sites`` names (its trend worsens): at most once a week per site.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import AlertConfig, Rule

RULE_KINDS = ("new_high_leak", "obligation_due", "failed_repair", "burst", "worsening_site")


def _iso(t) -> str:
    return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") if pd.notna(t) else ""


def _val(v):
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v.item() if hasattr(v, "item") else v


def _rate(v) -> str:
    v = _val(v)
    return "unknown rate" if v is None else f"about {float(v):,.0f} kg/h"


def new_high(rule: Rule, leaks: pd.DataFrame, now: pd.Timestamp, open_statuses) -> list[dict]:
    if leaks.empty:
        return []
    recent = now - pd.Timedelta(hours=rule.lookback_hours)
    sel = leaks[(leaks["risk_band"] == "HIGH") & leaks["status"].isin(open_statuses) & (leaks["last_seen"] >= recent)]
    out = []
    for r in sel.itertuples():
        where = f" at {r.asset_id}" if _val(r.asset_id) else ""
        p = _val(getattr(r, "p_real", None))
        out.append({"key": f"{rule.name}:{r.leak_id}", "title": f"New HIGH leak {r.leak_id}{where}: "
                    f"{_rate(r.est_rate_kg_h)}" + (f", P(real) {100 * float(p):.0f}%" if p is not None else ""),
                    "leak_id": r.leak_id, "asset_id": _val(r.asset_id), "event_at": r.last_seen,
                    "latitude": _val(r.latitude), "longitude": _val(r.longitude),
                    "detail": {"rank": _val(r.rank), "est_rate_kg_h": _val(r.est_rate_kg_h), "p_real": p,
                               "first_seen": _iso(r.first_seen), "last_seen": _iso(r.last_seen),
                               "n_sources": _val(r.n_sources), "source_types": _val(r.source_types)}})
    return out


def obligation_due(rule: Rule, obligations: pd.DataFrame, now: pd.Timestamp) -> list[dict]:
    if obligations.empty:
        return []
    due = pd.to_datetime(obligations["due_by"], utc=True)
    soon = now + pd.Timedelta(days=float(rule.within_days or 0))
    sel = obligations[due.notna() & (due <= soon) & ~obligations["state"].isin(["met"])].assign(due_ts=due)
    out = []
    for r in sel.itertuples():
        overdue = r.due_ts < now
        what = _val(r.leak_id) or _val(getattr(r, "site", None)) or "?"
        state = "overdue" if overdue else "due"
        when = f"OVERDUE since {r.due_ts:%Y-%m-%d %H:%M} UTC" if overdue else f"Due {r.due_ts:%Y-%m-%d %H:%M} UTC"
        title = f"{when}: {_val(r.title) or _val(r.action) or 'obligation'} for {what}"
        out.append({"key": f"{rule.name}:{what}:{_val(r.title)}:{_iso(r.due_ts)}:{state}", "title": title,
                    "leak_id": _val(r.leak_id), "asset_id": _val(getattr(r, "site", None)), "event_at": r.due_ts,
                    "detail": {"due_by": _iso(r.due_ts), "state": state, "action": _val(getattr(r, "action", None)),
                               "citation": _val(getattr(r, "citation", None))}})
    return out


def failed_repair(rule: Rule, leaks: pd.DataFrame, now: pd.Timestamp) -> list[dict]:
    if leaks.empty or "failed_repair" not in leaks:
        return []
    reopened = pd.to_datetime(leaks.get("reopened_at"), utc=True) if "reopened_at" in leaks else \
        pd.Series(pd.NaT, index=leaks.index)
    recent = now - pd.Timedelta(hours=rule.lookback_hours)
    sel = leaks[leaks["failed_repair"].fillna(False).astype(bool) & (reopened.isna() | (reopened >= recent))]
    out = []
    for r in sel.itertuples():
        at = _val(getattr(r, "reopened_at", None))
        out.append({"key": f"{rule.name}:{r.leak_id}:{_iso(at) if at is not None else 'seen'}",
                    "title": f"Failed repair? {r.leak_id}" + (f" at {r.asset_id}" if _val(r.asset_id) else "") +
                    " was seen again after its repair", "leak_id": r.leak_id, "asset_id": _val(r.asset_id),
                    "event_at": at or r.last_seen, "latitude": _val(r.latitude), "longitude": _val(r.longitude),
                    "detail": {"repaired_at": _iso(getattr(r, "repaired_at", None)), "reopened_at": _iso(at),
                               "last_seen": _iso(r.last_seen)}})
    return out


def bursts(rule: Rule, alarms: pd.DataFrame, now: pd.Timestamp) -> list[dict]:
    """Episodes of at least ``count`` alarms within ``within_minutes`` at one asset."""
    if alarms.empty:
        return []
    a = alarms[alarms["asset_id"].notna() & alarms["source_type"].isin(rule.source_types)]
    a = a[a["observed_at"] >= now - pd.Timedelta(hours=rule.lookback_hours)]
    win = np.timedelta64(int(float(rule.within_minutes) * 60e9), "ns")
    n = int(rule.count)
    out = []
    for asset, g in a.sort_values("observed_at").groupby("asset_id", sort=True):
        t = g["observed_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        if len(t) < n:
            continue
        start = np.searchsorted(t, t - win, side="left")  # first alarm inside the window ending at each alarm
        hit = np.flatnonzero(np.arange(len(t)) - start + 1 >= n)
        if not len(hit):
            continue
        episodes: list[list[int]] = []
        for i in hit:
            if episodes and t[i] - t[episodes[-1][-1]] <= win:
                episodes[-1].append(i)
            else:
                episodes.append([i])
        for ep in episodes:
            first, last = int(start[ep[0]]), int(ep[-1])
            t0 = pd.Timestamp(t[first], tz="UTC")
            t1 = pd.Timestamp(t[last], tz="UTC")
            k = last - first + 1
            sensors = sorted(set(g["source_name"].iloc[first:last + 1].astype(str)))
            out.append({"key": f"{rule.name}:{asset}:{_iso(t0)}", "asset_id": asset, "event_at": t1,
                        "title": f"Burst at {asset}: {k} alarms between {t0:%H:%M} and {t1:%H:%M} UTC "
                                 f"({t0:%Y-%m-%d}; {n} within {rule.within_minutes:g} min alert)",
                        "detail": {"alarms": k, "first": _iso(t0), "last": _iso(t1), "sensors": sensors}})
    return out


def worsening(rule: Rule, sites: pd.DataFrame, now: pd.Timestamp) -> list[dict]:
    if sites is None or sites.empty:
        return []
    week = f"{now.isocalendar().year}-W{now.isocalendar().week:02d}"
    return [{"key": f"{rule.name}:{r.asset_id}:{week}", "asset_id": r.asset_id,
             "title": f"Emissions at {r.asset_id} are worsening", "event_at": now,
             "detail": {"evidence": _val(r.evidence)}} for r in sites.itertuples()]


def route(cfg: AlertConfig, alert: dict, assets: pd.DataFrame | None = None) -> str:
    """The team of an alert: the first route whose rule, operator, asset type and area all match."""
    lat, lon = alert.get("latitude"), alert.get("longitude")
    if (lat is None or lon is None) and assets is not None and len(assets) and alert.get("asset_id"):
        hit = assets[assets["asset_id"] == alert["asset_id"]]
        if len(hit):
            lat, lon = float(hit["latitude"].iloc[0]), float(hit["longitude"].iloc[0])
    for r in cfg.routes:
        if r.rules and alert["rule"] not in r.rules:
            continue
        if r.operator and alert.get("operator") not in r.operator:
            continue
        if r.asset_type and alert.get("asset_type") not in r.asset_type:
            continue
        if r.area is not None and not cfg.areas[r.area].contains(lat, lon):
            continue
        return r.team
    return cfg.default_team


def evaluate(cfg: AlertConfig, *, leaks: pd.DataFrame, obligations: pd.DataFrame, alarms: pd.DataFrame,
             worsening_sites: pd.DataFrame, assets: pd.DataFrame, now: pd.Timestamp,
             open_statuses=("open", "dispatched")) -> list[dict]:
    """Every alert the enabled rules find now (routed, not deduplicated: the store skips keys it has)."""
    now = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    owner = assets.set_index("asset_id")[["operator", "asset_type"]] if len(assets) else None
    out = []
    for rule in cfg.rules:
        if not rule.enabled:
            continue
        if rule.kind == "new_high_leak":
            found = new_high(rule, leaks, now, open_statuses)
        elif rule.kind == "obligation_due":
            found = obligation_due(rule, obligations, now)
        elif rule.kind == "failed_repair":
            found = failed_repair(rule, leaks, now)
        elif rule.kind == "burst":
            found = bursts(rule, alarms, now)
        else:
            found = worsening(rule, worsening_sites, now)
        for a in found:
            a.update(rule=rule.name, kind=rule.kind, severity=rule.severity)
            aid = a.get("asset_id")
            if owner is not None and aid in owner.index:
                a.setdefault("operator", _val(owner.at[aid, "operator"]))
                a.setdefault("asset_type", _val(owner.at[aid, "asset_type"]))
            a["team"] = route(cfg, a, assets)
            out.append(a)
    return out
