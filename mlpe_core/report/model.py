"""The regulator's report as data: what an operator did about each notice, each LDAR finding and each monitor
action-level exceedance in a period, with totals by site type and the emissions summary, every row citing the
store records it came from.

Why: an operator has to show a regulator, notice by notice and finding by finding, when it was told, when it
investigated, what it found, when it repaired and reported, and whether each was on time. The dates here are the
compliance clocks (``comply``: what started each clock, its due time and the field record that met it) and the
field records themselves; nothing is re-derived. Each row carries the ids behind it: the notification, the leak,
the validation (visit) that met the clock, the lifecycle events (``leakevent`` id) and audit events (``auditevent``
id) that recorded them, so every number can be followed into the hash-chained trail; the report states the chains'
heads when it was built. The PDF and XLSX writers (``report.pdf``, ``report.xlsx``) draw this model; the JSON is
the model itself (:meth:`Report.to_dict`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import sites
from ..errors import NotFound

NOTICE_COLUMNS = ["notification_id", "program", "notifier", "leak_id", "site", "site_type", "received_at",
                  "investigate_due", "investigated_at", "finding", "found_at", "repaired_at", "report_due",
                  "reported_at", "investigate_status", "report_status", "status", "late_days", "rule", "citation",
                  "notification_row", "validation_ids", "leak_event_ids", "audit_event_ids"]
LDAR_COLUMNS = ["leak_id", "site", "site_type", "rule", "found_at", "found_by_ref", "attempt_due", "attempted_at",
                "repair_due", "repaired_at", "delay_of_repair", "delay_reason", "status", "late_days", "citation",
                "validation_ids", "leak_event_ids", "audit_event_ids"]
ACTION_COLUMNS = ["site", "site_type", "rule", "exceeded_on", "exceedance", "investigate_due", "responded_at",
                  "response", "leak_id", "status", "late_days", "citation", "validation_ids", "leak_event_ids",
                  "audit_event_ids"]
TOTAL_COLUMNS = ["site_type", "n_sites", "n_leaks", "notifications", "notifications_on_time", "notifications_late",
                 "notifications_open", "ldar_findings", "ldar_on_time", "ldar_late", "ldar_open", "exceedances",
                 "exceedances_on_time", "exceedances_late", "exceedances_open", "tonnes", "tonnes_lo", "tonnes_hi"]
SECTIONS = ("notifications", "ldar", "action_levels", "totals", "emissions")
STATUS_ORDER = {"overdue": 0, "late": 1, "open": 2, "on_time": 3}


@dataclass
class Report:
    """One operator's report for one period. ``meta``: operator, period, clock, who built it and when, the audit
    chains' heads, the rules' citations and what is not in it; the sections are frames (``*_COLUMNS``)."""

    meta: dict
    notifications: pd.DataFrame
    ldar: pd.DataFrame
    action_levels: pd.DataFrame
    totals: pd.DataFrame
    emissions: pd.DataFrame  # by site type, then by site (``level`` says which)
    emissions_total: dict = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {k: getattr(self, k) for k in SECTIONS}

    def to_dict(self) -> dict:
        """The report as JSON-able data (times as ISO 8601 UTC, blanks as null)."""
        from ..export import json_records

        return json.loads(json.dumps({"meta": self.meta, "emissions_total": self.emissions_total,
                                      **{k: json_records(v) for k, v in self.frames().items()}}, default=_jsonable))


def _jsonable(v):
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, np.integer | np.floating):
        return v.item()
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)


def _status(met_at, due_by, as_of) -> str:
    if pd.notna(met_at):
        return "on_time" if met_at <= due_by else "late"
    return "overdue" if due_by < as_of else "open"


def _late(met_at, due_by, as_of) -> float | None:
    t = met_at if pd.notna(met_at) else as_of
    d = (t - due_by) / pd.Timedelta(days=1)
    return round(float(d), 2) if d > 0 else None


def _worst(*states: str) -> str:
    states = [s for s in states if s]
    return min(states, key=lambda s: STATUS_ORDER[s]) if states else "open"


class _Trail:
    """Finds the records behind a (leak, time): the validation rows, lifecycle events and audit events."""

    def __init__(self, vals: pd.DataFrame, events: pd.DataFrame, audit: pd.DataFrame):
        self.vals = vals
        self.events = events
        a = audit.copy()
        det = a["detail"].map(lambda x: json.loads(x or "{}")) if len(a) else pd.Series(dtype=object)
        a["visited_at"] = pd.to_datetime(det.map(lambda d: d.get("visited_at")), utc=True, errors="coerce") \
            if len(a) else pd.Series(dtype="datetime64[ns, UTC]")
        a["notification_id"] = det.map(lambda d: d.get("notification_id")) if len(a) else pd.Series(dtype=object)
        self.audit = a

    def visits(self, leak_id: str, times: list) -> pd.DataFrame:
        """The validation rows of ``leak_id`` whose visit, repair or repair-attempt time is one of ``times``."""
        v = self.vals[self.vals["leak_id"] == leak_id] if len(self.vals) else self.vals
        ts = {pd.Timestamp(t) for t in times if pd.notna(t)}
        if v.empty or not ts:
            return v.iloc[0:0] if len(v) else v
        hit = v["visited_at"].isin(ts)
        for c in ("repaired_at", "repair_attempted_at"):
            hit |= pd.to_datetime(v[c], utc=True).isin(ts)
        return v[hit]

    def ids(self, leak_id: str | None, visits: pd.DataFrame, notification_id: str | None = None) -> tuple:
        """(validation ids, leak event ids, audit event ids) of these visits (and the notice's audit event)."""
        vids = sorted(int(i) for i in visits["id"]) if len(visits) else []
        ev, au = [], []
        if leak_id is not None and len(self.events):
            e = self.events[self.events["leak_id"] == leak_id]
            src = {f"validation:{i}" for i in vids}
            at = set(visits["visited_at"]) | set(pd.to_datetime(visits["repaired_at"], utc=True).dropna()) \
                if len(visits) else set()
            ev = sorted(int(i) for i in e.loc[e["source"].isin(src) | e["at"].isin(at), "id"])
        a = self.audit
        if len(a):
            if leak_id is not None and len(visits):
                m = (a["action"] == "validation") & (a["target"] == leak_id) & a["visited_at"].isin(set(
                    visits["visited_at"]))
                au += [int(i) for i in a.loc[m, "id"]]
            if notification_id is not None:
                m = (a["action"] == "notification") & (a["notification_id"] == notification_id)
                au += [int(i) for i in a.loc[m, "id"]]
            if leak_id is not None and ev:  # each lifecycle event's audit record: same leak and move, written with it
                mine = a[a["action"].str.startswith("lifecycle_") & (a["target"] == leak_id)]
                for e in self.events[self.events["id"].isin(ev)].itertuples():
                    near = (mine["action"] == f"lifecycle_{e.event}") & \
                        ((mine["at"] - e.recorded_at).abs() <= pd.Timedelta(seconds=5))
                    au += [int(i) for i in mine.loc[near, "id"].head(1)]
        return vids, ev, sorted(set(au))


def _ids_text(xs: list[int]) -> str:
    return ", ".join(str(x) for x in xs)


def build(b: sites.Bundle, operator: str, start: pd.Timestamp, end: pd.Timestamp, rules: list[dict],
          notices: pd.DataFrame, events: pd.DataFrame, audit: pd.DataFrame, heads: dict, generated_by: str) -> Report:
    """The report of ``operator`` for clocks that started in [start, end) (UTC), as of the desk's clock ``b.as_of``.

    ``b`` is the desk's bundle (``obligations`` must include met clocks); ``notices`` the notifications table,
    ``events`` the lifecycle events and ``audit`` the notification, validation and lifecycle audit events of the
    operator's leaks; ``heads`` the audit chains' heads (``store.chain_heads``)."""
    assets = b.assets.set_index("asset_id")
    mine = set(assets.index[assets["operator"] == operator])
    if not mine:
        raise NotFound(f"no operator '{operator}'")
    lk = b.leaks[b.leaks["asset_id"].isin(mine)]
    leak_site = lk.set_index("leak_id")["asset_id"]
    stype = assets["asset_type"]
    by_rule = {r["id"]: r for r in rules}
    ob = sites.obligation_states(b.obligations) if len(b.obligations) else b.obligations
    if len(ob):
        ob = ob.assign(site_id=ob["leak_id"].map(leak_site).where(ob["leak_id"].notna(), ob["site"]))
        ob = ob[ob["site_id"].isin(mine) & (ob["started_at"] >= start) & (ob["started_at"] < end)]
        ob = ob.assign(kind=ob["rule"].map(lambda r: by_rule[r]["trigger"]["event"]))
    trail = _Trail(b.vals, events, audit)
    rep = sites.repairs(lk, b.vals)

    notes = _notices(ob, notices, lk, leak_site, stype, start, end, b, trail, rep, by_rule)
    ldar = _ldar(ob, stype, b, trail, by_rule)
    act = _action(ob, stype, b, trail, by_rule)
    emis = sites.emissions_summary(lk, b.vals[b.vals["leak_id"].isin(lk["leak_id"])] if len(b.vals) else b.vals,
                                   start, end, b.as_of)
    totals = _totals(mine, stype, lk, notes, ldar, act, emis)
    e_type = emis["by_category"].rename(columns={"category": "name"}).assign(level="site type")
    e_site = emis["by_site"].rename(columns={"site": "name"}).assign(level="site")
    e_site["site_type"] = e_site["name"].map(stype)
    emissions = pd.concat([e_type, e_site], ignore_index=True)
    unmatched = notices[notices["leak_id"].isna() & (notices["received_at"] >= start)
                        & (notices["received_at"] < end)] if len(notices) else notices
    meta = {
        "title": f"Methane compliance report: {operator}",
        "operator": operator, "period_start": start, "period_end": end - pd.Timedelta(days=1),
        "period_end_exclusive": end, "as_of": b.as_of, "generated_at": pd.Timestamp.now(tz="UTC").floor("s"),
        "generated_by": generated_by, "n_sites": len(mine), "n_sites_with_leaks": int(lk["asset_id"].nunique()),
        "n_leaks": len(lk), "audit_chain_heads": heads,
        "rules": {r["id"]: {"label": r.get("label", r["name"]), "citation": r["citation"],
                            "verified": bool(r["verified"])} for r in rules if r.get("enabled", True)},
        "unmatched_notifications_in_period": sorted(unmatched["notification_id"]) if len(unmatched) else [],
        "ogmp": emis["ogmp"],
        "method": ("A clock is in the period when the event that started it (a notice received, a field find, an "
                   "action level crossed) falls in it. Dates are UTC. On time: met by its due time; late: met "
                   "after it; overdue: not met and due before the report's clock; open: not yet due. Each row "
                   "cites the notification row, the validation rows (visits) that met its clocks, their lifecycle "
                   "events and audit events; `mlpe audit verify` checks the chains whose heads are stated here."),
        "not_included": ("Notices not matched to a leak are not attributed to an operator (listed by id); clocks of "
                         "rules disabled in config/compliance.yaml; emissions before a leak's first detection."),
    }
    return Report(meta, _times(notes), _times(ldar), _times(act), totals, emissions,
                  {k: (float(v) if isinstance(v, int | float | np.number) else v)
                   for k, v in emis["total"].iloc[0].to_dict().items()})


TIME_COLUMNS = {"received_at", "investigate_due", "investigated_at", "found_at", "repaired_at", "report_due",
                "reported_at", "attempt_due", "attempted_at", "repair_due", "exceeded_on", "responded_at"}


def _times(df: pd.DataFrame) -> pd.DataFrame:
    """Time columns as UTC datetimes (a column of None and times would otherwise stay object)."""
    for c in TIME_COLUMNS & set(df.columns):
        df[c] = pd.to_datetime(df[c], utc=True)
    return df


def _rows(first: pd.DataFrame, *more: pd.DataFrame) -> pd.DataFrame:
    """The validation rows of all these frames, each once; with ``first``'s columns and no rows when all are empty
    (``pd.concat`` of nothing raises)."""
    parts = [x for x in (first, *more) if len(x)]
    if not parts:
        return first.iloc[0:0]
    return (pd.concat(parts) if len(parts) > 1 else parts[0]).drop_duplicates("id")


def _first(s: pd.Series):
    return s.iloc[0] if len(s) else None


def _notices(ob, notices, lk, leak_site, stype, start, end, b, trail, rep, by_rule) -> pd.DataFrame:
    n = notices[notices["leak_id"].isin(set(lk["leak_id"])) & (notices["received_at"] >= start)
                & (notices["received_at"] < end)] if len(notices) else notices
    rows = []
    nob = ob[ob["started_by"] == "notification"] if len(ob) else ob
    for r in n.sort_values("received_at").itertuples():
        c = nob[nob["started_ref"] == r.notification_id] if len(nob) else nob
        inv = c[c["action"] == "investigate"] if len(c) else c
        rpt = c[c["action"] == "report"] if len(c) else c
        inv_due, inv_at = _first(inv["due_by"]) if len(inv) else None, _first(inv["met_at"]) if len(inv) else None
        rpt_due, rpt_at = _first(rpt["due_by"]) if len(rpt) else None, _first(rpt["met_at"]) if len(rpt) else None
        visit = trail.visits(r.leak_id, [inv_at]) if inv_at is not None and pd.notna(inv_at) else b.vals.iloc[0:0]
        visit = visit[visit["visited_at"] == inv_at] if len(visit) else visit
        repaired = rep["repaired_at"].get(r.leak_id) if r.leak_id in rep.index else None
        repaired = repaired if repaired is not None and pd.notna(repaired) and repaired >= r.received_at else None
        rv = trail.visits(r.leak_id, [repaired]) if repaired is not None else visit.iloc[0:0]
        both = _rows(visit, rv, trail.visits(r.leak_id, [rpt_at]) if pd.notna(rpt_at) else visit.iloc[0:0])
        vids, ev, au = trail.ids(r.leak_id, both, r.notification_id)
        s_inv = _status(inv_at, inv_due, b.as_of) if inv_due is not None else None
        s_rpt = _status(rpt_at, rpt_due, b.as_of) if rpt_due is not None else None
        rule = _first(c["rule"]) if len(c) else None
        late = [x for x in (_late(inv_at, inv_due, b.as_of) if inv_due is not None else None,
                            _late(rpt_at, rpt_due, b.as_of) if rpt_due is not None else None) if x]
        site = leak_site.get(r.leak_id)
        rows.append({"notification_id": r.notification_id, "program": r.program, "notifier": r.notifier,
                     "leak_id": r.leak_id, "site": site, "site_type": stype.get(site), "received_at": r.received_at,
                     "investigate_due": inv_due, "investigated_at": inv_at,
                     "finding": _first(visit["outcome"]) if len(visit) else None,
                     "found_at": _first(visit["visited_at"]) if len(visit) else None, "repaired_at": repaired,
                     "report_due": rpt_due, "reported_at": rpt_at, "investigate_status": s_inv,
                     "report_status": s_rpt, "status": _worst(s_inv, s_rpt) if rule else "no clock",
                     "late_days": max(late) if late else None, "rule": rule,
                     "citation": by_rule[rule]["citation"] if rule else "no enabled rule names this program",
                     "notification_row": int(r.id), "validation_ids": _ids_text(vids), "leak_event_ids": _ids_text(ev),
                     "audit_event_ids": _ids_text(au)})
    return pd.DataFrame(rows, columns=NOTICE_COLUMNS)


def _ldar(ob, stype, b, trail, by_rule) -> pd.DataFrame:
    rows = []
    f = ob[ob["kind"].isin(["field_find", "detection"])] if len(ob) else ob
    for (rule, lid, started), g in (f.groupby(["rule", "leak_id", "started_at"]) if len(f) else []):
        att = g[g["action"] == "repair_attempt"]
        fin = g[g["action"] == "repair"]
        a_due, a_at = _first(att["due_by"]), _first(att["met_at"])
        r_due, r_at = _first(fin["due_by"]), _first(fin["met_at"])
        delay = bool(fin["due_rule"].astype(str).str.contains("delay of repair").any()) if len(fin) else False
        v = trail.visits(lid, [started, a_at, r_at])
        reason = None
        if delay and len(b.vals):
            dv = b.vals[(b.vals["leak_id"] == lid) & b.vals["delay_reason"].notna()]
            reason = "; ".join(dv["delay_reason"].astype(str)) or None
            v = _rows(v, dv)
        vids, ev, au = trail.ids(lid, v)
        s = [(_status(a_at, a_due, b.as_of) if a_due is not None else None),
             (_status(r_at, r_due, b.as_of) if r_due is not None else None)]
        late = [x for x in ((_late(a_at, a_due, b.as_of) if a_due is not None else None),
                            (_late(r_at, r_due, b.as_of) if r_due is not None else None)) if x]
        site = _first(g["site_id"])
        rows.append({"leak_id": lid, "site": site, "site_type": stype.get(site), "rule": rule, "found_at": started,
                     "found_by_ref": _first(g["started_text"]), "attempt_due": a_due, "attempted_at": a_at,
                     "repair_due": r_due, "repaired_at": r_at, "delay_of_repair": delay, "delay_reason": reason,
                     "status": _worst(*s), "late_days": max(late) if late else None,
                     "citation": by_rule[rule]["citation"], "validation_ids": _ids_text(vids),
                     "leak_event_ids": _ids_text(ev), "audit_event_ids": _ids_text(au)})
    return pd.DataFrame(rows, columns=LDAR_COLUMNS).sort_values(["found_at", "leak_id"]).reset_index(drop=True) \
        if rows else pd.DataFrame(columns=LDAR_COLUMNS)


def _action(ob, stype, b, trail, by_rule) -> pd.DataFrame:
    rows = []
    f = ob[ob["kind"] == "action_level"] if len(ob) else ob
    for (rule, _ref), g in (f.groupby(["rule", "started_ref"]) if len(f) else []):
        g = g.sort_values("met_at", na_position="last")
        due, met = _first(g["due_by"]), _first(g["met_at"])
        lids = sorted(set(g["leak_id"].dropna()))
        v = _rows(b.vals.iloc[0:0], *(trail.visits(lid, [met]) for lid in lids)) if pd.notna(met) else b.vals.iloc[0:0]
        hit = v[v["visited_at"] == met] if len(v) else v
        lid = _first(hit["leak_id"]) if len(hit) else (lids[0] if lids else None)
        vids, ev, au = trail.ids(lid, hit)
        site = _first(g["site_id"])
        st = _status(met, due, b.as_of)
        rows.append({"site": site, "site_type": stype.get(site), "rule": rule, "exceeded_on": _first(g["started_at"]),
                     "exceedance": _first(g["started_text"]), "investigate_due": due, "responded_at": met,
                     "response": _first(hit["outcome"]) if len(hit) else None, "leak_id": lid, "status": st,
                     "late_days": _late(met, due, b.as_of), "citation": by_rule[rule]["citation"],
                     "validation_ids": _ids_text(vids), "leak_event_ids": _ids_text(ev),
                     "audit_event_ids": _ids_text(au)})
    return pd.DataFrame(rows, columns=ACTION_COLUMNS).sort_values(["exceeded_on", "site"]).reset_index(drop=True) \
        if rows else pd.DataFrame(columns=ACTION_COLUMNS)


def _totals(mine, stype, lk, notes, ldar, act, emis) -> pd.DataFrame:
    types = sorted({str(stype.get(a)) for a in mine})
    rows = []
    cat = emis["by_category"].set_index("category") if len(emis["by_category"]) else pd.DataFrame()
    for t in [*types, "all"]:
        def sel(df, t=t):
            return df if t == "all" else df[df["site_type"].astype(str) == t]

        def count(df, s):
            return int((df["status"] == s).sum()) if len(df) else 0

        n, l_, a = sel(notes), sel(ldar), sel(act)
        in_type = {x for x in mine if t == "all" or str(stype.get(x)) == t}
        e = cat.loc[t] if t in cat.index else None
        rows.append({"site_type": t, "n_sites": len(in_type), "n_leaks": int(lk["asset_id"].isin(in_type).sum()),
                     "notifications": len(n), "notifications_on_time": count(n, "on_time"),
                     "notifications_late": count(n, "late") + count(n, "overdue"),
                     "notifications_open": count(n, "open"), "ldar_findings": len(l_),
                     "ldar_on_time": count(l_, "on_time"), "ldar_late": count(l_, "late") + count(l_, "overdue"),
                     "ldar_open": count(l_, "open"), "exceedances": len(a), "exceedances_on_time": count(a, "on_time"),
                     "exceedances_late": count(a, "late") + count(a, "overdue"), "exceedances_open": count(a, "open"),
                     "tonnes": float(e["tonnes"]) if e is not None else
                     (float(emis["total"]["tonnes"].iloc[0]) if t == "all" else 0.0),
                     "tonnes_lo": float(e["tonnes_lo"]) if e is not None else
                     (float(emis["total"]["tonnes_lo"].iloc[0]) if t == "all" else 0.0),
                     "tonnes_hi": float(e["tonnes_hi"]) if e is not None else
                     (float(emis["total"]["tonnes_hi"].iloc[0]) if t == "all" else 0.0)})
    return pd.DataFrame(rows, columns=TOTAL_COLUMNS)
