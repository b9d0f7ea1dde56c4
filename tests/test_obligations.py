"""Obligations (issues 15 and 21): the queue of what regulation requires and by when, the likely-notification watch
list beside it, action levels computed from monitor data, and the risk band defined once with its reason."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from mlpe_core.comply import action_level_series, deadlines, load_rules, obligations, watch_list
from mlpe_core.comply.rules import RuleSet
from mlpe_core.score import band_reasons, risk_band

D0 = pd.Timestamp("2025-03-01T00:00:00Z")
TEXAS = (32.0, -102.0)


def day(n: float) -> pd.Timestamp:
    return D0 + pd.Timedelta(days=n)


def dets(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame([{"leak_id": r["leak"], "detection_id": r.get("id", f"d{i}"),
                         "source_name": r.get("name", "Sat"), "source_type": r.get("type", "satellite"),
                         "rate_kg_h": r.get("rate", np.nan), "latitude": TEXAS[0], "longitude": TEXAS[1],
                         "observed_at": r.get("t", D0), "asset_id": r.get("asset"), "event_type": None}
                        for i, r in enumerate(rows)])
    out["observed_at"] = pd.to_datetime(out["observed_at"], utc=True)
    out["rate_kg_h"] = out["rate_kg_h"].astype(float)
    return out


def notes(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"notification_id": r["id"], "received_at": r["t"], "program": r.get("program",
                          "ooooB_super_emitter"), "notifier": "EPA", "leak_id": r.get("leak")} for r in rows])


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def with_settings(rules, **section) -> RuleSet:
    out = RuleSet(copy.deepcopy(list(rules)))
    out.settings = copy.deepcopy(rules.settings)
    for k, v in section.items():
        out.settings[k] = {**out.settings[k], **v}
    return out


# --------------------------------------------------------------------------------------------- action levels


def monitor(site: str, leak: str, levels: list[tuple[int, float]], every_min: int = 15, seed: int = 0) -> list[dict]:
    """A continuous monitor reporting every ``every_min`` minutes; ``levels`` = (days, kg/h) in turn, with
    ±1 kg/h of seeded noise (too little to move a 7-day mean by 0.1 kg/h)."""
    rng = np.random.default_rng(seed)
    rows, t = [], D0
    for n_days, rate in levels:
        for _ in range(n_days * 24 * 60 // every_min):
            rows.append(dict(leak=leak, type="continuous_monitor", rate=rate + rng.uniform(-1, 1), t=t, asset=site,
                             name="FenceCMS"))
            t += pd.Timedelta(minutes=every_min)
    return rows


def test_a_monitor_stream_crosses_the_7_day_level_on_a_known_day_and_the_clock_starts_then(rules):
    # 30 days at 5 kg/h, then 40 kg/h: the 7-day mean (5(7 − k) + 40k) / 7 is 20 kg/h after 3 high days and
    # 25 kg/h after 4, so it crosses the 21 kg/h level (a site that is not wellhead-only) on day 33
    d = dets(monitor("P1", "LP", [(30, 5.0), (10, 40.0)]))
    ob = obligations(d, None, rules, day(34))
    row = ob[ob["rule"] == "ooooB_cms_action"]
    assert row[["leak_id", "site", "action", "started_at", "due_by", "state", "started_by", "started_ref"]
               ].values.tolist() == [["LP", "P1", "investigate", day(33), day(38), "due soon", "exceedance",
                                      "P1:2025-04-03"]]
    assert row["started_text"].iloc[0].startswith("7-day average 25.0")
    s = action_level_series(d, rules, "P1").set_index(["rule", "day"])
    seven = s.loc["ooooB_cms_action"]
    assert seven.loc[day(32), "average_kg_h"] == pytest.approx(20.0, abs=0.1)
    assert seven.loc[day(33), "average_kg_h"] == pytest.approx(25.0, abs=0.1)
    assert seven["crossed"].sum() == 1 and bool(seven.loc[day(33), "crossed"])
    assert set(seven["threshold_kg_h"]) == {21.0} and set(seven["baseline_kg_h"]) == {0.0}
    assert seven.loc[day(3), "coverage"] == pytest.approx(4 / 7)


def test_a_visit_meets_the_exceedance_and_a_new_crossing_starts_a_new_clock(rules):
    d = dets(monitor("P1", "LP", [(30, 5.0), (10, 40.0), (10, 5.0), (10, 40.0)]))
    v = pd.DataFrame([{"leak_id": "LP", "outcome": "confirmed", "visited_at": day(35)}])
    ob = obligations(d, v, rules, day(55))
    seven = ob[ob["rule"] == "ooooB_cms_action"]
    # down again at day 44 (7-day mean 20), up again at day 53: a second crossing, a second clock
    assert seven[["started_at", "state", "met_at"]].values.tolist() == [
        [day(53), "due soon", pd.NaT], [day(33), "met", day(35)]]


def level_rule(**roll) -> RuleSet:
    rule = {"id": "lvl", "name": "test level", "citation": "none", "verified": False, "enabled": True,
            "voluntary": False, "trigger": {"event": "action_level", "source_types": ["continuous_monitor"],
                                            "rolling_mean_kg_h": {"days": 7, "above": 10.0, "fill": "zero",
                                                                  "sample_hours": 1.0, **roll}},
            "clocks": [{"action": "investigate", "days": 5, "calendar": "calendar"}]}
    out = RuleSet([rule])
    out.settings = load_rules().settings
    return out


def alerts(n_day: int) -> list[dict]:
    """An alert feed: 24 hourly alerts of 20 kg/h on one day, nothing else."""
    return [dict(leak="LQ", type="continuous_monitor", rate=20.0, t=day(n_day) + pd.Timedelta(hours=h), asset="Q1")
            for h in range(24)]


@pytest.mark.parametrize(("coverage", "roll", "started"), [
    (None, {}, [day(6)]),  # watched only while it alerted: the day's average is 20 kg/h
    ([(day(0), day(7))], {}, []),  # watched all week: 480 kg over 168 h = 2.9 kg/h
    ([(day(0), day(7))], {"days": 1}, [day(6)]),  # a 1-day window sees the day alone
    (None, {"min_coverage": 0.5}, []),  # one watched day of seven: too little to judge
    ([(day(0), day(2)), (day(5), day(7))], {}, []),  # offline days 2-4 are unknown, not zero: 480 / 96 h = 5
    ([(day(5), day(7))], {}, []),  # 480 kg over 48 h = 10 kg/h: at the level is not above it
    ([(day(5), day(7))], {"above": 9.9}, [day(6)]),
], ids=["default-coverage", "watched-all-week", "one-day-window", "min-coverage", "offline-days", "at-the-level",
        "just-above"])
def test_coverage_decides_what_a_silent_monitor_means(coverage, roll, started):
    cov = None if coverage is None else pd.DataFrame([{"site": "Q1", "start": s, "end": e} for s, e in coverage])
    ob = obligations(dets(alerts(6)), None, level_rule(**roll), day(8), coverage=cov)
    assert ob["started_at"].tolist() == started


def test_the_90_day_level_uses_the_operators_baseline_when_configured(rules):
    d = dets(monitor("P1", "LP", [(20, 2.0)], every_min=60))
    # no baseline of its own yet (fewer than 90 days), but the operator's 0.2 kg/h: 2.0 > 0.2 + 1.6 on day 0
    r = with_settings(rules, site_baselines_kg_h={"P1": 0.2})
    ob = obligations(d, None, r, day(20))
    assert ob.loc[ob["rule"] == "ooooB_cms_90day", ["started_at", "due_by"]].values.tolist() == [[day(0), day(5)]]
    s = action_level_series(d, r, "P1").set_index(["rule", "day"]).loc["ooooB_cms_90day"]
    assert set(s["baseline_kg_h"]) == {0.2} and np.allclose(s["threshold_kg_h"], 1.8)


def test_a_site_without_monitor_readings_has_no_series(rules):
    assert action_level_series(dets([dict(leak="L1", rate=500.0)]), rules, "P1").empty


# --------------------------------------------------------------------------------------------- the queue


def test_the_queue_lists_every_obligation_by_state_then_due_date(rules):
    d = dets([dict(leak="L1", rate=300.0), dict(leak="L2", rate=300.0), dict(leak="L3", rate=300.0),
              dict(leak="L4", rate=300.0), dict(leak="L5", type="ogi", t=day(2))])
    n = notes([dict(id="E1", leak="L1", t=day(1)), dict(id="E2", leak="L2", t=day(14)),
               dict(id="E3", leak="L3", t=day(4)), dict(id="E4", leak=None, t=day(10))])
    v = pd.DataFrame([{"leak_id": "L3", "outcome": "confirmed", "visited_at": day(6)}])
    ob = obligations(d, v, rules, day(15), notifications=n)
    assert ob[["leak_id", "rule", "action", "due_by", "state", "days_left", "started_ref"]].values.tolist() == [
        ["L1", "ooooB_super_emitter", "investigate", day(6), "overdue", -9, "E1"],
        [None, "ooooB_super_emitter", "investigate", day(15), "due soon", 0, "E4"],  # not matched: still runs
        ["L1", "ooooB_super_emitter", "report", day(16), "due soon", 1, "E1"],
        ["L2", "ooooB_super_emitter", "investigate", day(19), "due soon", 4, "E2"],
        [None, "ooooB_super_emitter", "report", day(25), "running", 10, "E4"],
        ["L2", "ooooB_super_emitter", "report", day(29), "running", 14, "E2"],
        ["L5", "ooooB_fugitive_ogi", "repair_attempt", day(32), "running", 17, "d4"],
        ["L5", "ooooB_fugitive_ogi", "repair", day(62), "running", 47, "d4"],
        ["L3", "ooooB_super_emitter", "investigate", day(9), "met", -6, "E3"],
        ["L3", "ooooB_super_emitter", "report", day(19), "met", 4, "E3"],
    ]
    first = ob.iloc[0]
    assert (first["title"], first["verified"], first["voluntary"], first["started_by"]) == (
        "OOOOb super-emitter", True, False, "notification")
    assert first["citation"].startswith("40 CFR 60.5371b")
    assert obligations(d, v, rules, day(15), notifications=n, include_met=False)["state"].tolist().count("met") == 0


def test_the_watch_list_holds_likely_notifications_and_never_a_deadline(rules):
    d = dets([dict(leak="L1", rate=100.0, t=day(50), id="p1"), dict(leak="L1", rate=700.0, t=day(40), id="p2"),
              dict(leak="L2", rate=99.9, t=day(50)),  # under the 100 kg/h a notice needs
              dict(leak="L3", type="aerial", rate=5000.0, t=day(50)),  # notified: an obligation, not a watch item
              dict(leak="L4", rate=400.0, t=day(5)),  # 95 days before as_of: a notice would not match it any more
              dict(leak="L5", type="scada", rate=400.0, t=day(50))])  # not a kind EPA would be notified of
    n = notes([dict(id="E3", leak="L3", t=day(55))])
    w = watch_list(d, rules, day(100), n)
    assert w[["leak_id", "rule", "label", "detection_id", "rate_kg_h", "n_qualifying", "watch_until"]
             ].values.tolist() == [["L1", "ooooB_super_emitter", "likely notification", "p2", 700.0, 2, day(140)]]
    assert w.loc[0, "note"] == ("satellite detection of 700 kg/h on 2025-04-10 meets OOOOb super-emitter's "
                                "notification threshold (100 kg/h); no ooooB_super_emitter notification received: no "
                                "legal clock until one is")
    dl = deadlines(d, None, rules, day(100), notifications=n)
    assert pd.isna(dl.loc["L1", "due_by"]) and not dl.loc["L1", "overdue"] and dl.loc["L1", "legal_state"] is None
    assert bool(dl.loc["L1", "watch"]) and dl.loc["L1", "urgency"] == 0.0  # the shipped policy adds no priority
    assert obligations(d, None, rules, day(100), notifications=n)["leak_id"].tolist() == ["L3", "L3"]


def test_a_watch_item_may_raise_priority_by_policy_but_never_sets_the_band(rules):
    r = with_settings(rules, candidates={"urgency": 0.5})
    dl = deadlines(dets([dict(leak="L1", rate=300.0, t=day(1))]), None, r, day(2))
    assert dl.loc["L1", "urgency"] == 0.5
    band, why = band_reasons([5.0], [0.5], dl["legal_state"], dl["legal_what"], dl["watch"])
    assert band.tolist() == ["MEDIUM"]
    assert why == ["MEDIUM: expected 5.0 kg/h found per visit; likely notification: on the watch list, no legal "
                   "clock until a notice is received"]


@pytest.mark.parametrize(("own", "source", "voluntary"), [([], "Sat", True), (["OwnAir"], "OwnAir", True),
                                                          (["OwnAir"], "Sat", False)],
                         ids=["every-source", "own-source", "third-party-source"])
def test_the_operators_policy_makes_its_own_qualifying_detections_voluntary_clocks(rules, own, source, voluntary):
    r = with_settings(rules, candidates={"own_detections_voluntary": True, "own_source_names": own})
    d = dets([dict(leak="L1", rate=300.0, t=day(1), name=source, id="own1")])
    ob = obligations(d, None, r, day(3))
    w = watch_list(d, r, day(3))
    if voluntary:
        assert ob[["due_rule", "voluntary", "started_by", "started_ref"]].values.tolist() == [
            ["ooooB_super_emitter:investigate (voluntary)", True, "own detection", "own1"],
            ["ooooB_super_emitter:report (voluntary)", True, "own detection", "own1"]]
        assert w.empty
        dl = deadlines(d, None, r, day(7))
        assert (bool(dl.loc["L1", "overdue"]), dl.loc["L1", "legal_state"]) == (True, None)
        assert risk_band([1.0], dl["overdue"] & ~dl["voluntary"]).tolist() == ["LOW"]
    else:
        assert ob.empty and w["leak_id"].tolist() == ["L1"]


# --------------------------------------------------------------------------------------------- the band


@pytest.mark.parametrize(("expected", "p", "state", "what", "watch", "vol", "band", "why"), [
    (0.3, 0.9, "overdue", "an OOOOb super-emitter investigation", False, None, "HIGH",
     "HIGH because an OOOOb super-emitter investigation is overdue; expected 0.3 kg/h found per visit"),
    (3.0, 0.9, "due soon", "a Colorado Reg. 7 repair first repair attempt", False, None, "HIGH",
     "HIGH because a Colorado Reg. 7 repair first repair attempt is due within 7 days; expected 3.0 kg/h found per "
     "visit"),
    (42.0, 0.5, None, None, False, None, "HIGH", "HIGH: expected 42.0 kg/h found per visit"),
    (24.0, 0.06, None, None, False, None, "MEDIUM",
     "MEDIUM: expected 24.0 kg/h found per visit, but only a 6% chance a crew finds it (HIGH needs 10%)"),
    (4.2, 0.5, "running", "an OOOOb repair (OGI) repair", False, None, "MEDIUM",
     "MEDIUM: expected 4.2 kg/h found per visit; an OOOOb repair (OGI) repair is running"),
    (1234.0, 0.5, None, None, False, None, "HIGH", "HIGH: expected 1,234 kg/h found per visit"),
    (0.5, 0.5, None, None, True, "overdue", "LOW",
     "LOW: expected 0.5 kg/h found per visit; a voluntary clock is overdue (voluntary: does not set the band); "
     "likely notification: on the watch list, no legal clock until a notice is received"),
], ids=["legal-overdue", "legal-due-soon", "methane", "methane-improbable", "legal-running", "thousands",
        "voluntary-and-watch-never-set-it"])
def test_the_band_and_its_reason(expected, p, state, what, watch, vol, band, why):
    b, w = band_reasons([expected], [p], [state], [what], [watch], [vol])
    assert (b.tolist(), w) == ([band], [why])
