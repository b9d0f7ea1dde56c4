"""Candidates: detections that would likely be notified, kept apart from obligations.

Under a notification rule (OOOOb super-emitter) a clock starts only when the operator receives the notice. A
satellite or aerial detection of 100 kg/h or more that has none yet is a *likely notification*: a watch item
with its own label, which the ranking may weigh by policy (``settings.candidates.urgency``) but which never shows
a legal deadline or an overdue and never sets the risk band. It stays on the watch list for
``settings.notifications.match_days`` after the detection (a notice later than that would not be matched to it),
and leaves it when a notice of the rule's programs is matched to the leak, or when the operator's policy makes
its own such detections voluntary triggers (``own_detections_voluntary``), which then run labelled clocks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .rules import DEFAULT_SETTINGS

LIKELY = "likely notification"

WATCH_COLUMNS = ["leak_id", "site", "rule", "title", "label", "detection_id", "source_name", "source_type",
                 "observed_at", "rate_kg_h", "n_qualifying", "watch_until", "note"]


def watch_list(dets: pd.DataFrame, rules: list[dict], as_of: pd.Timestamp, notifications: pd.DataFrame | None = None,
               leaks: pd.DataFrame | None = None) -> pd.DataFrame:
    """The likely-notification watch list: one row per leak and notification rule whose candidate description
    (``trigger.candidate``: source types, minimum rate) a recent detection of the leak meets, while no notice of
    the rule's programs is matched to the leak. The row names the largest such detection (``WATCH_COLUMNS``)."""
    settings = {**DEFAULT_SETTINGS, **getattr(rules, "settings", {})}
    days = int(settings["notifications"]["match_days"])
    pol = settings["candidates"]
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    out = []
    d_all = dets[dets["leak_id"].notna()]
    if d_all.empty:
        return pd.DataFrame(columns=WATCH_COLUMNS)
    observed = pd.to_datetime(d_all["observed_at"], utc=True)
    recent = d_all[(observed <= as_of) & (observed > as_of - pd.Timedelta(days=days))]
    site = leaks.set_index("leak_id")["asset_id"] if leaks is not None and "asset_id" in leaks else pd.Series(
        dtype=object)
    for rule in rules:
        trig = rule["trigger"]
        cand = trig.get("candidate")
        if not rule.get("enabled", True) or trig.get("event") != "notification" or not cand:
            continue
        d = recent[recent["source_type"].isin(cand["source_types"])]
        if "min_rate_kg_h" in cand:
            d = d[d["rate_kg_h"].fillna(-1) >= float(cand["min_rate_kg_h"])]
        region = rule.get("region")
        if region:
            d = d[d["latitude"].between(region[0], region[1]) & d["longitude"].between(region[2], region[3])]
        if pol.get("own_detections_voluntary"):  # these run voluntary clocks instead (comply.clocks)
            own = pol.get("own_source_names") or []
            d = d[~d["source_name"].isin(own)] if own and "source_name" in d else d.iloc[0:0]
        if notifications is not None and len(notifications):
            n = notifications[notifications["program"].isin(trig["programs"]) & notifications["leak_id"].notna()]
            d = d[~d["leak_id"].isin(set(n["leak_id"]))]
        if d.empty:
            continue
        d = d.assign(observed_at=pd.to_datetime(d["observed_at"], utc=True))
        top = d.sort_values(["rate_kg_h", "observed_at"], ascending=[False, False], kind="stable")
        first = top.groupby("leak_id", sort=True).head(1).set_index("leak_id")
        count = d.groupby("leak_id").size()
        last = d.groupby("leak_id")["observed_at"].max()
        title = rule.get("label", rule["name"])
        progs = ", ".join(trig["programs"])
        for lk, r in first.iterrows():
            note = (f"{r['source_type']} detection of {r['rate_kg_h']:,.0f} kg/h on {r['observed_at']:%Y-%m-%d} "
                    f"meets {title}'s notification threshold ({cand.get('min_rate_kg_h', 0):g} kg/h); no {progs} "
                    "notification received: no legal clock until one is")
            out.append((lk, site.get(lk) if isinstance(site.get(lk), str) else None, rule["id"], title, LIKELY,
                        r.get("detection_id"), r.get("source_name"), r["source_type"], r["observed_at"],
                        float(r["rate_kg_h"]), int(count[lk]), last[lk] + pd.Timedelta(days=days), note))
    if not out:
        return pd.DataFrame(columns=WATCH_COLUMNS)
    w = pd.DataFrame(out, columns=WATCH_COLUMNS)
    w["rate_kg_h"] = w["rate_kg_h"].astype(float)
    return w.sort_values(["rate_kg_h", "leak_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def watch_urgency(rules: list[dict]) -> float:
    """The priority urgency a watch item adds by policy (``settings.candidates.urgency``; 0 by default)."""
    settings = {**DEFAULT_SETTINGS, **getattr(rules, "settings", {})}
    return float(np.clip(settings["candidates"]["urgency"], 0.0, 1.0))
