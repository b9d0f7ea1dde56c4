"""Sites and operators: roll-ups of leaks, visits, repairs, obligations and sensors per site and per operator, a
site's story through time, and the emissions summary mapped to OGMP 2.0 reporting levels.

Why: every other view is about one leak or one list; the people above the analyst ask which sites keep leaking,
which operator is getting worse, how fast repairs come, how often each sensor is right and whether every clock was
met. Each answer is computed here once, from the desk's frames (:class:`Bundle`: the effective ranking, detections,
field outcomes, every clock with its state, the monitors' coverage), as of one clock; the desk hands it to every
face. Whether a site is getting worse is ``trends``' test. A site is an asset of the registry: a leak belongs to the
asset fusion attributed it to, and to that asset's operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import trends
from .errors import NotFound
from .learn import sensor_precision

TREND_DAYS = 120  # the trend test looks at this many days before the clock
SITE_COLUMNS = ["asset_id", "n_leaks", "n_open", "expected_kg_h", "est_rate_kg_h", "n_detections", "n_sensors",
                "first_seen", "last_seen", "n_visited", "n_confirmed", "n_repaired", "median_days_to_repair",
                "obligations", "met_on_time", "met_late", "overdue", "on_time_share", "false_alarm_share", "top_rank",
                "worst_band", "operator", "asset_type", "latitude", "longitude"]
OPERATOR_COLUMNS = ["operator", "n_leaks", "n_sites", "n_open", "expected_kg_h", "est_rate_kg_h", "n_visited",
                    "n_confirmed", "n_repaired", "median_days_to_repair", "obligations", "met_on_time", "met_late",
                    "overdue", "on_time_share", "false_alarm_share", "n_worsening"]
BANDS = ("HIGH", "MEDIUM", "LOW")
REAL = ("confirmed", "already_repaired")
CHECKED = (*REAL, "not_found")


@dataclass
class Bundle:
    """What the roll-ups read, fetched once by the desk: ``leaks`` is the effective ranking (every active leak with
    its asset's operator and type), ``obligations`` every clock (met ones too) with state, due_by and met_at."""

    as_of: pd.Timestamp
    leaks: pd.DataFrame
    assets: pd.DataFrame
    dets: pd.DataFrame
    vals: pd.DataFrame
    coverage: pd.DataFrame
    obligations: pd.DataFrame


# --------------------------------------------------------------------------------------------- per leak facts


def repairs(leaks: pd.DataFrame, vals: pd.DataFrame) -> pd.DataFrame:
    """Per leak: first field visit, whether a crew found it real (confirmed or already repaired), not found, when it
    was repaired (the leak's lifecycle, else the earliest ``repaired_at`` on its visits) and days from its first
    detection to that repair."""
    out = leaks[["leak_id", "first_seen"]].set_index("leak_id")
    v = vals[vals["leak_id"].isin(out.index)] if len(vals) else vals
    if len(v):
        g = v.groupby("leak_id")
        out["visited_at"] = g["visited_at"].min()
        last = v.sort_values("visited_at").groupby("leak_id")["outcome"].last()
        out["outcome"] = last
        out["real"] = g["outcome"].agg(lambda s: bool(set(s) & set(REAL)))
        out["repaired_v"] = pd.to_datetime(g["repaired_at"].min(), utc=True)
    else:
        out["visited_at"], out["outcome"], out["real"], out["repaired_v"] = pd.NaT, None, False, pd.NaT
    lk = leaks.set_index("leak_id")
    rep = pd.to_datetime(lk["repaired_at"], utc=True) if "repaired_at" in lk else pd.Series(pd.NaT, index=lk.index)
    out["repaired_at"] = pd.to_datetime(rep.reindex(out.index), utc=True).fillna(
        pd.to_datetime(out["repaired_v"], utc=True))
    out["visited_at"] = pd.to_datetime(out["visited_at"], utc=True)
    out["real"] = out["real"].fillna(False).astype(bool)
    out["days_to_repair"] = (out["repaired_at"] - out["first_seen"]) / pd.Timedelta(days=1)
    return out.drop(columns=["repaired_v"])


def obligation_states(ob: pd.DataFrame) -> pd.DataFrame:
    """Each clock's outcome: ``on_time`` (met by its due time), ``late`` (met after it), ``overdue`` (not met, due
    passed), ``open`` (running); ``late_days`` how late."""
    ob = ob.copy()
    met = ob["met_at"].notna()
    ob["outcome"] = np.select([met & (ob["met_at"] <= ob["due_by"]), met, ob["state"] == "overdue"],
                              ["on_time", "late", "overdue"], "open")
    ob["late_days"] = np.where(met, (ob["met_at"] - ob["due_by"]) / pd.Timedelta(days=1), np.nan)
    return ob


def _site_of_obligations(ob: pd.DataFrame, leaks: pd.DataFrame) -> pd.Series:
    site = ob["leak_id"].map(leaks.set_index("leak_id")["asset_id"]) if len(ob) else pd.Series(dtype=object)
    return site.where(site.notna(), ob["site"]) if len(ob) else site


# --------------------------------------------------------------------------------------------- roll-ups


def _rollup(leaks: pd.DataFrame, rep: pd.DataFrame, ob: pd.DataFrame, dets: pd.DataFrame, by: str) -> pd.DataFrame:
    lk = leaks.drop(columns=["repaired_at"], errors="ignore").join(rep.drop(columns=["first_seen"]), on="leak_id")
    lk = lk[lk[by].notna()]
    open_ = lk["status"].isin(["open", "dispatched"])
    lk = lk.assign(_open=open_, _exp=np.where(open_, lk["p_real"].fillna(0) * lk["est_rate_kg_h"].fillna(0), 0.0),
                   _rate=np.where(open_, lk["est_rate_kg_h"].fillna(0), 0.0), _visited=lk["visited_at"].notna(),
                   _checked=lk["outcome"].isin(CHECKED), _nf=lk["outcome"] == "not_found",
                   _rep=lk["repaired_at"].notna(), _band=lk["risk_band"].map({b: i for i, b in enumerate(BANDS)}))
    g = lk.groupby(by)
    out = pd.DataFrame({
        "n_leaks": g.size(), "n_open": g["_open"].sum(), "expected_kg_h": g["_exp"].sum(),
        "est_rate_kg_h": g["_rate"].sum(), "n_detections": g["n_detections"].sum(), "first_seen": g["first_seen"].min(),
        "last_seen": g["last_seen"].max(), "n_visited": g["_visited"].sum(), "n_confirmed": g["real"].sum(),
        "n_repaired": g["_rep"].sum(), "median_days_to_repair": g["days_to_repair"].median(),
        "false_alarm_share": g["_nf"].sum() / g["_checked"].sum().replace(0, np.nan),
        "top_rank": g["rank"].min(), "worst_band": g["_band"].min().map(dict(enumerate(BANDS)))})
    if len(dets):
        d = dets[dets["leak_id"].isin(lk["leak_id"])]
        d = d.assign(**{by: d["leak_id"].map(lk.set_index("leak_id")[by])})
        out["n_sensors"] = d.groupby(by)["source_name"].nunique()
    else:
        out["n_sensors"] = 0
    if len(ob):
        c = ob.groupby([by, "outcome"]).size().unstack(fill_value=0)
        for k in ("on_time", "late", "overdue", "open"):
            out[{"on_time": "met_on_time", "late": "met_late"}.get(k, k)] = c.get(k, pd.Series(dtype=int))
        out["obligations"] = ob.groupby(by).size()
    for k in ("obligations", "met_on_time", "met_late", "overdue", "n_sensors"):
        out[k] = out.get(k, pd.Series(dtype=float)).reindex(out.index).fillna(0).astype(int)
    due = out["met_on_time"] + out["met_late"] + out["overdue"]
    out["on_time_share"] = (out["met_on_time"] / due.replace(0, np.nan)).astype(float)
    out["top_rank"] = out["top_rank"].astype("Int64")
    for k in ("n_open", "n_visited", "n_confirmed", "n_repaired", "n_detections"):
        out[k] = out[k].astype(int)
    return out


def site_rollup(b: Bundle) -> pd.DataFrame:
    """One row per site with at least one active leak (``SITE_COLUMNS``), most expected methane first: its leaks,
    open ones and the expected kg/h a visit finds there (sum of P(real) × rate over open leaks), detections and
    sensors, visits, confirmed (a crew found it real) and repaired leaks, the median days from first detection to
    repair, its clocks met on time, late or overdue, the false-alarm share of its checked leaks (not found), its best
    rank and worst band."""
    rep = repairs(b.leaks, b.vals)
    ob = obligation_states(b.obligations)
    ob = ob.assign(asset_id=_site_of_obligations(ob, b.leaks)) if len(ob) else ob.assign(asset_id=None)
    out = _rollup(b.leaks, rep, ob, b.dets, "asset_id")
    a = b.assets.set_index("asset_id")
    for c in ("operator", "asset_type", "latitude", "longitude"):
        out[c] = a[c].reindex(out.index) if c in a else None
    out = out.rename_axis("asset_id").reset_index()
    return out.sort_values(["expected_kg_h", "n_leaks", "asset_id"], ascending=[False, False, True])[
        SITE_COLUMNS].reset_index(drop=True)


def operator_rollup(b: Bundle, worsening: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per operator (``OPERATOR_COLUMNS``): the site roll-up's sums over its sites, the median days to
    repair over its leaks, its clocks and the number of its sites the trend test calls worsening."""
    rep = repairs(b.leaks, b.vals)
    ob = obligation_states(b.obligations)
    if len(ob):
        site = _site_of_obligations(ob, b.leaks)
        ob = ob.assign(operator=site.map(b.assets.set_index("asset_id")["operator"]))
    else:
        ob = ob.assign(operator=None)
    out = _rollup(b.leaks, rep, ob, b.dets, "operator")
    out["n_sites"] = b.leaks[b.leaks["operator"].notna()].groupby("operator")["asset_id"].nunique()
    out["n_worsening"] = 0
    if worsening is not None and len(worsening):
        out["n_worsening"] = worsening.groupby("operator").size().reindex(out.index).fillna(0).astype(int)
    out = out.rename_axis("operator").reset_index()
    return out.sort_values(["expected_kg_h", "operator"], ascending=[False, True])[OPERATOR_COLUMNS].reset_index(
        drop=True)


def ranking_groups(ranked: pd.DataFrame, by: str) -> pd.DataFrame:
    """The (filtered) ranking grouped by site (``asset_id``) or ``operator``: leaks, open leaks, the best effective
    rank, summed priority and expected kg/h, the worst band and the soonest deadline, best group first."""
    if by not in ("asset_id", "operator"):
        raise ValueError(f"group by 'asset_id' or 'operator', not '{by}'")
    r = ranked[ranked[by].notna()]
    cols = [by, "n_leaks", "n_ranked", "best_rank", "priority_score", "expected_kg_h", "worst_band", "due_by",
            "overdue", "leak_ids"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    r = r.assign(_exp=r["p_real"].fillna(0) * r["est_rate_kg_h"].fillna(0),
                 _band=r["risk_band"].map({b: i for i, b in enumerate(BANDS)}))
    g = r.sort_values("rank", na_position="last").groupby(by)
    out = pd.DataFrame({"n_leaks": g.size(), "n_ranked": g["rank"].count(), "best_rank": g["rank"].min(),
                        "priority_score": g["priority_score"].sum(), "expected_kg_h": g["_exp"].sum(),
                        "worst_band": g["_band"].min().map(dict(enumerate(BANDS))), "due_by": g["due_by"].min(),
                        "overdue": g["overdue"].any(), "leak_ids": g["leak_id"].agg(lambda s: ", ".join(s[:5]) +
                                                                                    (" …" if len(s) > 5 else ""))})
    out["best_rank"] = out["best_rank"].astype("Int64")
    out = out.rename_axis(by).reset_index()
    return out.sort_values(["best_rank", "priority_score"], ascending=[True, False], na_position="last")[cols] \
        .reset_index(drop=True)


# --------------------------------------------------------------------------------------------- trends


def trend_window(as_of: pd.Timestamp, days: int = TREND_DAYS) -> tuple[pd.Timestamp, pd.Timestamp]:
    end = pd.Timestamp(as_of).floor("D")
    return end - pd.Timedelta(days=days), end


def trend_days(b: Bundle, by: str = "site", days: int = TREND_DAYS) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """The watched sensor-days (``trends.sensor_days``) of every site, grouped by site or by operator."""
    start, end = trend_window(b.as_of, days)
    groups = None
    if by == "operator":
        groups = b.assets.dropna(subset=["operator"]).set_index("asset_id")["operator"].to_dict()
    return trends.sensor_days(b.dets, b.leaks, b.coverage, start, end, groups=groups), start, end


def worsening(b: Bundle, by: str = "site", days: int = TREND_DAYS, all_tested: bool = False) -> pd.DataFrame:
    """Sites (or operators) whose emissions got worse in the last ``days`` days (``trends.change_test``), most
    certain first: the group (``asset_id`` or ``operator``), the site's operator, p_value, ratio, changed_on and the
    evidence in words. ``all_tested`` keeps the groups that were tested and not flagged too."""
    d, start, end = trend_days(b, by, days)
    res = trends.change_test(d, start, end)
    key = "asset_id" if by == "site" else "operator"
    res = res.rename(columns={"group": key})
    if by == "site":
        res.insert(1, "operator", res[key].map(b.assets.set_index("asset_id")["operator"]) if len(res) else None)
    if not all_tested:
        res = res[res["worsening"].astype(bool)]
    return res.sort_values(["p_value", "ratio"], ascending=[True, False]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------- one site


def site_detail(b: Bundle, asset_id: str, events: pd.DataFrame | None = None) -> dict:
    """Everything the Site page shows about one asset: ``site`` (registry fields and its roll-up row, or zeros),
    ``leaks`` (its rows of the ranking), ``detections`` (its detections with their site), ``weekly`` (per sensor and
    week: watched and detected days and the geometric-mean reading with a 90 % interval, ``trends.weekly``),
    ``emissions`` (per week, the summed rate of its leaks that were emitting, with ±1σ bounds: their estimated rates
    over the time from first detection to repair, or to the last sighting of a leak not found, or to the clock),
    ``visits``, ``events`` (lifecycle events of its leaks, when given), ``obligations`` and ``trend`` (the change test,
    or None when the site has too little data)."""
    a = b.assets[b.assets["asset_id"] == asset_id]
    lk = b.leaks[b.leaks["asset_id"] == asset_id]
    if a.empty and lk.empty:
        raise NotFound(f"no site '{asset_id}'")
    roll = site_rollup(Bundle(b.as_of, lk, b.assets, b.dets[b.dets["leak_id"].isin(lk["leak_id"])],
                              b.vals[b.vals["leak_id"].isin(lk["leak_id"])] if len(b.vals) else b.vals,
                              b.coverage, _site_obligations(b, asset_id, lk)))
    site = roll.iloc[0].to_dict() if len(roll) else {c: 0 for c in SITE_COLUMNS} | {"asset_id": asset_id}
    if len(a):
        site.update({k: a.iloc[0][k] for k in ("operator", "asset_type", "latitude", "longitude") if k in a})
    sited = b.dets.assign(site=trends.detection_sites(b.dets, b.leaks))
    dets = sited[sited["site"] == asset_id]
    start, end = trend_window(b.as_of)
    cov = b.coverage[b.coverage["asset_id"] == asset_id] if len(b.coverage) else b.coverage
    days = trends.sensor_days(b.dets, b.leaks, cov, start, end, only={asset_id})
    res = trends.change_test(days, start, end)
    first = pd.Timestamp(min(dets["observed_at"].min(), start)) if len(dets) else start
    d_all = trends.sensor_days(b.dets, b.leaks, cov, first, b.as_of + pd.Timedelta(days=1), only={asset_id})
    vals = b.vals[b.vals["leak_id"].isin(lk["leak_id"])] if len(b.vals) else b.vals
    return {"site": site, "as_of": b.as_of, "leaks": lk.reset_index(drop=True), "detections": dets,
            "weekly": trends.weekly(d_all, first.floor("D")), "emissions": leak_emissions(lk, vals, b.as_of, first),
            "visits": vals.sort_values("visited_at").reset_index(drop=True) if len(vals) else vals,
            "events": events if events is not None else pd.DataFrame(),
            "obligations": obligation_states(_site_obligations(b, asset_id, lk)),
            "trend": res.iloc[0].to_dict() if len(res) else None}


def _site_obligations(b: Bundle, asset_id: str, lk: pd.DataFrame) -> pd.DataFrame:
    ob = b.obligations
    if ob.empty:
        return ob
    return ob[ob["leak_id"].isin(lk["leak_id"]) | (ob["site"] == asset_id)].reset_index(drop=True)


def emitting_span(leaks: pd.DataFrame, vals: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per leak, the time we take it to have emitted: from its first detection (earlier emission is not known and
    not counted) to its repair when it is repaired or closed after one, to its last sighting when a crew found
    nothing (not found, or closed unrepaired), else to the clock (open, dispatched, confirmed, under repair; a leak
    re-opened after a repair counts from its first detection on, the weeks between included)."""
    rep = repairs(leaks, vals) if len(leaks) else pd.DataFrame(columns=["repaired_at"])
    lk = leaks.set_index("leak_id")
    r = pd.to_datetime(rep["repaired_at"].reindex(lk.index), utc=True) if len(rep) else \
        pd.Series(pd.NaT, index=lk.index, dtype="datetime64[ns, UTC]")
    done = lk["status"].isin(["repaired", "closed"]) & r.notna()
    unfound = lk["status"].eq("not_found") | (lk["status"].eq("closed") & r.isna())
    stop = pd.Series(pd.Timestamp(as_of), index=lk.index)
    stop = stop.where(~unfound, lk["last_seen"]).where(~done, r.clip(upper=pd.Timestamp(as_of)))
    stop = pd.to_datetime(stop, utc=True)
    return pd.DataFrame({"start": lk["first_seen"], "stop": stop.where(stop >= lk["first_seen"], lk["first_seen"])})


def leak_emissions(leaks: pd.DataFrame, vals: pd.DataFrame, as_of: pd.Timestamp, start: pd.Timestamp) -> pd.DataFrame:
    """Per week from ``start``: the summed estimated rate (kg/h) of the site's leaks emitting that week
    (:func:`emitting_span`), weighted by P(real), with the sums of their ±1σ bounds."""
    cols = ["week", "rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h", "n_leaks"]
    if leaks.empty:
        return pd.DataFrame(columns=cols)
    span = emitting_span(leaks, vals, as_of)
    lk = leaks.set_index("leak_id")
    p = lk["p_real"].fillna(0)
    weeks = pd.date_range(pd.Timestamp(start).floor("D"), as_of, freq="7D")
    rows = []
    for w in weeks:
        on = (span["start"] < w + pd.Timedelta(days=7)) & (span["stop"] >= w)
        rows.append((w, float((p * lk["est_rate_kg_h"].fillna(0))[on].sum()),
                     float((p * lk["rate_lo_kg_h"].fillna(0))[on].sum()),
                     float((p * lk["rate_hi_kg_h"].fillna(0))[on].sum()), int(on.sum())))
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------- emissions, OGMP 2.0

OGMP_NOTE = (
    "OGMP 2.0 (UNEP IMEO, 2020) reports at five levels: 1 one figure per venture; 2 generic emission factors by core "
    "source category; 3 generic factors by detailed source type; 4 source-level emission factors or measurements for "
    "each source; 5 level 4 reconciled with site-level measurements. These figures are measurement-based estimates "
    "of the emissions MLPE's sensors detected: the rates of fused leaks, measured at the site or plume (satellite, "
    "aircraft, fence-line monitors) or, where a crew measured it, at the source. They support the site-level "
    "measurement side of a Level 5 reconciliation, and Level 4 only for the leaks a crew quantified at the source "
    "(a measured rate recorded with the visit). They are not by themselves an inventory at any level: emissions "
    "below the sensors' detection limits, routine venting and combustion, and any time before a leak's first "
    "detection are not in them, and the operator's Level 4 source inventory is not in the store to reconcile with.")


def ogmp_basis(leaks: pd.DataFrame, vals: pd.DataFrame) -> pd.Series:
    """Per leak, what its rate rests on, in OGMP 2.0 terms: ``source measurement`` (a crew measured it: level 4
    data), ``site measurement`` (a quantified remote or monitor rate: the site-level side of level 5) or
    ``unquantified`` (detected without a rate: an estimate from the sensors' priors)."""
    out = pd.Series(np.where(leaks["rate_quantified"].fillna(False).astype(bool), "site measurement",
                             "unquantified"), index=leaks["leak_id"], dtype=object)
    if len(vals):
        measured = set(vals.loc[vals["measured_rate_kg_h"].notna(), "leak_id"])
        out[out.index.isin(measured)] = "source measurement"
    return out


def emissions_summary(leaks: pd.DataFrame, vals: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                      as_of: pd.Timestamp, n_draws: int = 2000, seed: int = 0) -> dict:
    """Estimated emissions of the fused leaks in [start, end), by site and by source category (the asset type), with
    a 90 % interval, in tonnes CH4 and annualised (t/yr = t × 8760 / hours in the period).

    Each leak emits its estimated rate (kg/h, time-averaged) over the part of :func:`emitting_span` inside the
    period (which ends at the clock ``as_of`` at the latest), times P(real). The interval draws, per leak, real or
    not with P(real) and its rate lognormally around the estimate with the ±1σ of its rate (``rate_lo_kg_h`` /
    ``rate_hi_kg_h``), ``n_draws`` times, and sums the draws. Returns ``by_leak``, ``by_site``, ``by_category``,
    ``total`` (one row), ``ogmp`` (the level statement) and ``basis`` (leak counts and tonnes by OGMP basis)."""
    start, end = pd.Timestamp(start), min(pd.Timestamp(end), pd.Timestamp(as_of))
    hours = max((end - start) / pd.Timedelta(hours=1), 1e-9)
    lk = leaks[leaks["first_seen"] < end].copy()
    if len(lk):
        span = emitting_span(lk, vals, pd.Timestamp(as_of))
        s0 = span["start"].clip(lower=start)
        s1 = span["stop"].clip(upper=end)
        h = ((s1 - s0) / pd.Timedelta(hours=1)).clip(lower=0)
        lk["hours"] = lk["leak_id"].map(h).fillna(0.0)
    else:
        lk["hours"] = 0.0
    lk["p_real"] = lk["p_real"].fillna(0.0)
    rate = lk["est_rate_kg_h"].fillna(0.0)
    sigma = np.log(lk["rate_hi_kg_h"] / lk["est_rate_kg_h"]).replace([np.inf, -np.inf], np.nan).fillna(1.0).clip(
        lower=0.05)
    lk["basis"] = lk["leak_id"].map(ogmp_basis(lk, vals)) if len(lk) else []
    lk["tonnes"] = lk["p_real"] * rate * lk["hours"] / 1000.0
    rng = np.random.default_rng(seed)
    real = rng.random((n_draws, len(lk))) < lk["p_real"].to_numpy()
    mult = np.exp(rng.normal(0.0, 1.0, (n_draws, len(lk))) * sigma.to_numpy() - 0.5 * sigma.to_numpy() ** 2)
    draws = real * mult * (rate * lk["hours"]).to_numpy() / 1000.0  # tonnes per leak per draw
    lk["category"] = lk["asset_type"].fillna("unattributed") if "asset_type" in lk else "unattributed"
    lk["site"] = lk["asset_id"].fillna("unattributed")
    scale = 8760.0 / hours

    def group(key: str) -> pd.DataFrame:
        rows = []
        for k, ix in lk.groupby(key).indices.items():
            s = draws[:, ix].sum(axis=1)
            t = float(lk["tonnes"].iloc[ix].sum())
            rows.append({key: k, "n_leaks": len(ix), "tonnes": t, "tonnes_lo": float(np.quantile(s, 0.05)),
                         "tonnes_hi": float(np.quantile(s, 0.95)), "t_per_year": t * scale,
                         "t_per_year_lo": float(np.quantile(s, 0.05)) * scale,
                         "t_per_year_hi": float(np.quantile(s, 0.95)) * scale})
        cols = [key, "n_leaks", "tonnes", "tonnes_lo", "tonnes_hi", "t_per_year", "t_per_year_lo", "t_per_year_hi"]
        return pd.DataFrame(rows, columns=cols).sort_values("tonnes", ascending=False).reset_index(drop=True)

    tot = draws.sum(axis=1) if len(lk) else np.zeros(1)
    total = pd.DataFrame([{"n_leaks": len(lk), "tonnes": float(lk["tonnes"].sum()),
                           "tonnes_lo": float(np.quantile(tot, 0.05)), "tonnes_hi": float(np.quantile(tot, 0.95)),
                           "t_per_year": float(lk["tonnes"].sum()) * scale,
                           "t_per_year_lo": float(np.quantile(tot, 0.05)) * scale,
                           "t_per_year_hi": float(np.quantile(tot, 0.95)) * scale, "hours": hours}])
    basis = lk.groupby("basis").agg(n_leaks=("leak_id", "size"), tonnes=("tonnes", "sum")).reset_index() \
        if len(lk) else pd.DataFrame(columns=["basis", "n_leaks", "tonnes"])
    by_leak = lk[["leak_id", "site", "category", "p_real", "est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h", "hours",
                  "tonnes", "basis"]].sort_values("tonnes", ascending=False).reset_index(drop=True)
    return {"by_leak": by_leak, "by_site": group("site"), "by_category": group("category"), "total": total,
            "basis": basis, "ogmp": OGMP_NOTE, "start": start, "end": end}


# --------------------------------------------------------------------------------------------- one operator


def operator_detail(b: Bundle, operator: str, worsening_sites: pd.DataFrame | None = None) -> dict:
    """Everything the Operator page shows: ``operator`` (its roll-up row), ``sites`` (its site roll-up rows),
    ``sensors`` (per sensor: how often the leaks it saw at this operator's sites were real when checked,
    ``learn.sensor_precision``), ``obligations`` (its clocks with their outcome), ``weekly`` (detected and watched
    days and readings per sensor and week, over its sites), ``worsening`` (its sites the trend test flags) and
    ``trend`` (the same test over all its sites pooled, or None)."""
    ops = set(b.assets["operator"].dropna())
    if operator not in ops:
        raise NotFound(f"no operator '{operator}'")
    mine = set(b.assets.loc[b.assets["operator"] == operator, "asset_id"])
    lk = b.leaks[b.leaks["asset_id"].isin(mine)]
    sub = Bundle(b.as_of, lk, b.assets, b.dets[b.dets["leak_id"].isin(lk["leak_id"])],
                 b.vals[b.vals["leak_id"].isin(lk["leak_id"])] if len(b.vals) else b.vals, b.coverage,
                 b.obligations[b.obligations["leak_id"].isin(lk["leak_id"]) | b.obligations["site"].isin(mine)]
                 if len(b.obligations) else b.obligations)
    worse = worsening_sites[worsening_sites["operator"] == operator] if worsening_sites is not None and len(
        worsening_sites) else pd.DataFrame(columns=["asset_id"])
    roll = operator_rollup(sub, worse)
    row = roll[roll["operator"] == operator]
    start, end = trend_window(b.as_of)
    days = trends.sensor_days(b.dets, b.leaks, b.coverage, start, end, groups=dict.fromkeys(mine, operator),
                              only=mine)
    res = trends.change_test(days, start, end, n_perm=199)
    return {"operator": row.iloc[0].to_dict() if len(row) else {"operator": operator},
            "as_of": b.as_of, "sites": site_rollup(sub), "leaks": lk,
            "sensors": sensor_precision(sub.dets, sub.vals),
            "obligations": obligation_states(sub.obligations) if len(sub.obligations) else sub.obligations,
            "weekly": trends.weekly(days, start), "worsening": worse.reset_index(drop=True),
            "trend": res.iloc[0].to_dict() if len(res) else None}
