"""Compliance rules of issue 7: each shipped rule's clock to the second, and broken rule files refused
with the rule and field named. (tests/test_comply.py covers the original rules and the clock basics.)"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpe_core.comply import RULES_PATH, RuleError, deadlines, leak_clocks, load_rules

T0 = pd.Timestamp("2025-03-03T10:00:00Z")  # a Monday
TEXAS = (32.0, -102.0)
COLORADO = (39.5, -105.0)


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def dets(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame([{"leak_id": r["leak"], "source_type": r.get("type", "ogi"), "rate_kg_h": r.get("rate", np.nan),
                         "latitude": r.get("at", TEXAS)[0], "longitude": r.get("at", TEXAS)[1],
                         "observed_at": r.get("t", T0), "event_type": r.get("event"),
                         "asset_id": r.get("asset")} for r in rows])
    out["observed_at"] = pd.to_datetime(out["observed_at"], utc=True)
    out["rate_kg_h"] = out["rate_kg_h"].astype(float)
    return out


def visits(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"leak_id": r["leak"], "outcome": r.get("outcome", "confirmed"), "visited_at": r["t"],
                          "repaired_at": r.get("repaired"), "repair_attempted_at": r.get("attempted"),
                          "found_by": r.get("found_by"), "delay_reason": r.get("delay")} for r in rows])


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def notes(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"notification_id": f"N{i}", "received_at": r["t"], "program": "ooooB_super_emitter",
                          "notifier": None, "leak_id": r["leak"]} for i, r in enumerate(rows)])


def clocks(rules, d, v=None, as_of=T0, **kw) -> dict[tuple[str, str], pd.Timestamp]:
    c = leak_clocks(d, v, rules, as_of, **kw)
    return {(r.leak_id, r.due_rule): r.due_by for r in c.itertuples()}


# --------------------------------------------------------------------------------------------- the shipped file


def test_shipped_rules_cover_issue_7_with_citations(rules):
    by_id = {r["id"]: r for r in rules}
    assert {"ooooB_super_emitter", "program_notification", "ooooB_fugitive_ogi", "ooooB_fugitive_avo",
            "ooooB_cms_action", "ooooB_cms_90day",
            "co_reg7_repair", "eu_2024_1787_art14"} <= set(by_id)
    for r in rules:
        assert r["citation"].strip()
        if not r["verified"]:
            assert r.get("note") or "not verified" in r["citation"], r["id"]
    eu = by_id["eu_2024_1787_art14"]
    assert (eu["enabled"], eu["verified"]) == (False, False)
    assert rules.settings["default_site_class"] == "other"
    assert "wellhead" in rules.settings["site_classes"]["wellhead_only"]


def test_the_eu_rule_sets_no_clock_while_disabled(rules):
    d = dets([dict(leak="E1", type="ogi", at=(48.0, 10.0))])
    assert [k[1] for k in clocks(rules, d)] == ["ooooB_fugitive_ogi:repair_attempt", "ooooB_fugitive_ogi:repair"]


# --------------------------------------------------------------------------------------------- fugitive repair


def test_ogi_found_leak_first_attempt_30_days_final_repair_30_days_after_it(rules):
    d = dets([dict(leak="L1", t=T0)])
    assert clocks(rules, d) == {("L1", "ooooB_fugitive_ogi:repair_attempt"): day(30),
                                ("L1", "ooooB_fugitive_ogi:repair"): day(60)}
    v = visits([dict(leak="L1", t=day(10), attempted=day(10) + pd.Timedelta(hours=2))])
    assert clocks(rules, d, v) == {("L1", "ooooB_fugitive_ogi:repair"): day(40) + pd.Timedelta(hours=2)}
    out = deadlines(d, v, rules, day(39))
    assert (out.loc["L1", "due_by"], out.loc["L1", "due_rule"]) == (day(40) + pd.Timedelta(hours=2),
                                                                    "ooooB_fugitive_ogi:repair")
    v = visits([dict(leak="L1", t=day(10), attempted=day(10), repaired=day(12))])
    assert clocks(rules, d, v) == {}


def test_avo_found_leak_runs_15_plus_15_days(rules):
    d = dets([dict(leak="A1", t=T0, event="AVO")])
    c = clocks(rules, d)
    assert c[("A1", "ooooB_fugitive_avo:repair_attempt")] == day(15)
    assert c[("A1", "ooooB_fugitive_avo:repair")] == day(30)
    assert deadlines(d, None, rules, T0).loc["A1", "due_rule"] == "ooooB_fugitive_avo:repair_attempt"
    v = visits([dict(leak="A1", t=day(3), attempted=day(3))])
    assert deadlines(d, v, rules, T0).loc["A1", "due_by"] == day(18)


@pytest.mark.parametrize(("found_by", "rule", "days"), [("ogi", "ooooB_fugitive_ogi", 30),
                                                        ("method21", "ooooB_fugitive_ogi", 30),
                                                        ("avo", "ooooB_fugitive_avo", 15)])
def test_a_crew_finding_the_leak_starts_the_repair_clock_of_its_method(rules, found_by, rule, days):
    d = dets([dict(leak="S1", type="aerial", rate=20.0, t=T0)])  # a remote detection sets no repair clock
    assert clocks(rules, d) == {}
    v = visits([dict(leak="S1", t=day(2), found_by=found_by)])
    assert clocks(rules, d, v)[("S1", f"{rule}:repair_attempt")] == day(2 + days)
    assert clocks(rules, d, visits([dict(leak="S1", t=day(2), found_by=found_by, outcome="not_found")])) == {}


def test_delay_of_repair_is_recorded_and_moves_the_final_repair(rules):
    d = dets([dict(leak="L1", t=T0)])
    v = visits([dict(leak="L1", t=day(5), attempted=day(5), delay="needs a compressor shutdown")])
    out = deadlines(d, v, rules, day(100))
    assert out.loc["L1", "due_by"] == day(730)
    assert out.loc["L1", "due_rule"] == "ooooB_fugitive_ogi:repair (delay of repair)"
    assert not out.loc["L1", "overdue"]


def test_a_leak_seen_again_after_its_repair_runs_a_new_clock(rules):
    d = dets([dict(leak="L1", t=T0), dict(leak="L1", t=day(20))])
    v = visits([dict(leak="L1", t=day(5), attempted=day(5), repaired=day(5))])
    assert clocks(rules, d, v) == {("L1", "ooooB_fugitive_ogi:repair_attempt"): day(50),
                                   ("L1", "ooooB_fugitive_ogi:repair"): day(80)}


def test_a_record_before_the_notice_does_not_meet_its_clock(rules):
    d = dets([dict(leak="L1", type="satellite", rate=200.0, t=day(1))])
    n = notes([dict(leak="L1", t=day(10))])  # received nine days after the overpass
    v = visits([dict(leak="L1", t=day(2))])  # a visit after the overpass but before the notice
    assert clocks(rules, d, v, notifications=n)[("L1", "ooooB_super_emitter:investigate")] == day(15)
    v = visits([dict(leak="L1", t=day(10) - pd.Timedelta(hours=5))])  # same day as the notice: counts
    assert ("L1", "ooooB_super_emitter:investigate") not in clocks(rules, d, v, notifications=n)


def test_no_access_does_not_meet_an_investigation(rules):
    d = dets([dict(leak="L1", type="satellite", rate=200.0)])
    v = visits([dict(leak="L1", t=day(1), outcome="not_accessible")])
    out = deadlines(d, v, rules, T0, notifications=notes([dict(leak="L1", t=T0)]))
    assert out.loc["L1", "due_rule"] == "ooooB_super_emitter:investigate"


def test_colorado_visit_found_leak_uses_working_days(rules):
    friday = pd.Timestamp("2025-01-03T10:00:00Z")
    d = dets([dict(leak="C1", type="scada", at=COLORADO, t=friday - pd.Timedelta(days=1))])  # sets no clock
    v = visits([dict(leak="C1", t=friday, found_by="avo")])
    c = clocks(rules, d, v)
    assert c[("C1", "co_reg7_repair:repair_attempt")] == pd.Timestamp("2025-01-10T10:00:00Z")
    # 30 working days: 14 Feb without holidays; Colorado's MLK Day (20 Jan) and Washington-Lincoln Day (17 Feb) move
    # it to Tuesday 18 Feb
    assert c[("C1", "co_reg7_repair:repair")] == pd.Timestamp("2025-02-18T10:00:00Z")


# --------------------------------------------------------------------------------------------- CMS action levels


ASSETS = pd.DataFrame({"asset_id": ["W1", "P1"], "asset_type": ["wellhead", "compressor_station"]})


def cms(leak: str, asset: str, rate: float, hours: int, every_h: float = 1.0) -> list[dict]:
    return [dict(leak=leak, type="continuous_monitor", rate=rate, t=T0 + pd.Timedelta(hours=h * every_h), asset=asset)
            for h in range(hours)]


def test_seven_day_level_is_15_at_wellhead_only_sites_and_21_elsewhere(rules):
    d = dets(cms("LW", "W1", 18.0, 3, every_h=8) + cms("LP", "P1", 18.0, 3, every_h=8))
    leaks = pd.DataFrame({"leak_id": ["LW", "LP"], "asset_id": ["W1", "P1"], "latitude": TEXAS[0],
                          "longitude": TEXAS[1]})
    start = T0.floor("D")  # the site's average passes its level on T0's day: the clock starts that day
    c = clocks(rules, d, assets=ASSETS, leaks=leaks)
    assert c == {("LW", "ooooB_cms_action:investigate"): start + pd.Timedelta(days=5)}
    # without the asset registry the site class is unknown: the default class (other, 21 kg/h) applies
    assert clocks(rules, d) == {}
    # the asset may also come from the detections themselves (a monitor knows its site)
    assert clocks(rules, d, assets=ASSETS) == {("LW", "ooooB_cms_action:investigate"): start + pd.Timedelta(days=5)}


def test_ninety_day_level_is_judged_over_the_sites_own_baseline(rules):
    # an hourly monitor: 0.5 kg/h for its first 90 days (the baseline), then 3 kg/h. The 90-day average
    # (0.5 × (90 − k) + 3k) / 90 passes 0.5 + 1.6 = 2.1 kg/h once k = 58 days are high: day 90 + 57
    midnight = T0.floor("D") - T0
    low = [dict(r, t=r["t"] + midnight) for r in cms("LP", "P1", 0.5, 90 * 24)]
    high = [dict(r, rate=3.0, t=r["t"] + midnight + pd.Timedelta(days=90)) for r in cms("LP", "P1", 0.0, 80 * 24)]
    d = dets(low + high)
    c = clocks(rules, d, assets=ASSETS)
    assert c == {("LP", "ooooB_cms_90day:investigate"): T0.floor("D") + pd.Timedelta(days=147 + 5)}
    # the wellhead-only level (1.2 over 0.5) is passed sooner: k > 43.2 → day 90 + 43
    dw = dets([dict(r, asset="W1") for r in low + high])
    assert clocks(rules, dw, assets=ASSETS) == {("LP", "ooooB_cms_90day:investigate"):
                                                T0.floor("D") + pd.Timedelta(days=133 + 5)}
    # an operator's baseline of 1.5 kg/h lifts the level to 3.1 kg/h: never reached
    assert clocks(rules, d, assets=ASSETS, baselines={"P1": 1.5}) == {}
    # before the site's first 90 days end there is no baseline, and nothing is judged
    assert clocks(rules, dets(cms("LQ", "P1", 2.0, 2000)), assets=ASSETS) == {}


# --------------------------------------------------------------------------------------------- broken rule files


def _rule(**over) -> dict:
    r = {"id": "r1", "name": "n", "citation": "c", "verified": False, "enabled": True,
         "trigger": {"event": "field_find", "source_types": ["ogi"]},
         "clocks": [{"action": "repair_attempt", "days": 30}, {"action": "repair", "days": 30,
                                                               "after": "repair_attempt"}]}
    r.update(over)
    return r


def _write(tmp_path, data) -> str:
    p = tmp_path / "rules.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def test_a_good_file_with_every_new_field_loads(tmp_path):
    good = _rule(delay_of_repair={"max_days": 365}, note="n", region=[30.0, 40.0, -110.0, -100.0], holidays="US-CO",
                 label="R one", trigger={"event": "field_find", "source_types": ["ogi"], "event_types": ["alarm"],
                                         "found_by": ["ogi"]})
    level = _rule(id="r2", trigger={"event": "action_level", "rolling_mean_kg_h": {
        "days": 7, "above": {"wellhead_only": 1, "other": 2}, "over_baseline": True, "baseline_days": 30,
        "fill": "zero", "sample_hours": 0.25, "min_coverage": 0.5}})
    notice = _rule(id="r3", voluntary=True, trigger={"event": "notification", "programs": ["imeo_mars", "state"],
                                                     "candidate": {"source_types": ["satellite"], "min_rate_kg_h": 10}})
    rules = load_rules(_write(tmp_path, {"settings": {"site_classes": {"wellhead_only": ["WH"]},
                                                      "site_baselines_kg_h": {"A1": 0.3},
                                                      "candidates": {"urgency": 0.5, "own_detections_voluntary": True,
                                                                     "own_source_names": ["OwnAir"]},
                                                      "notifications": {"match_distance_m": 250, "match_days": 30}},
                                         "rules": [good, level, notice]}))
    assert [r["id"] for r in rules] == ["r1", "r2", "r3"]
    assert rules[1]["trigger"]["source_types"] == ["continuous_monitor"]  # what an action level reads by default
    assert rules.settings["candidates"] == {"urgency": 0.5, "own_detections_voluntary": True,
                                            "own_source_names": ["OwnAir"]}
    assert rules.settings["notifications"] == {"match_distance_m": 250.0, "match_days": 30}
    assert rules.settings["site_classes"]["wellhead_only"] == ["wh"]
    assert rules.settings["site_baselines_kg_h"] == {"A1": 0.3}


ROLL = {"event": "action_level"}


@pytest.mark.parametrize(("over", "field"), [
    ({"trigger": {"event": "field_find", "source_types": ["ogi"], "found_by": ["drone"]}}, "trigger.found_by"),
    ({"trigger": {"event": "field_find", "source_types": ["ogi"], "event_types": "avo"}}, "trigger.event_types"),
    ({"trigger": {"event": "field_find", "source_types": ["ogi"], "min_rate": 5}}, "trigger.min_rate"),
    ({"trigger": {"source_types": ["ogi"]}}, "trigger.event"),
    ({"trigger": {"event": "field_find"}}, "trigger.found_by"),
    ({"trigger": {"event": "detection"}}, "trigger.source_types"),
    ({"trigger": {"event": "detection", "source_types": ["ogi"], "found_by": ["ogi"]}}, "trigger.found_by"),
    ({"trigger": {"event": "detection", "source_types": ["ogi"], "rolling_mean_kg_h": {"days": 7, "above": 1}}},
     "trigger.rolling_mean_kg_h"),
    ({"trigger": {"event": "notification", "programs": ["state"], "candidate": {"min_rate_kg_h": 100}}},
     "trigger.candidate"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 7}}}, "trigger.rolling_mean_kg_h"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 0, "above": 1}}}, "trigger.rolling_mean_kg_h.days"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 7, "above": {"wellhead_only": 1}}}},
     "trigger.rolling_mean_kg_h.above"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 7, "above": 1, "fill": "mean"}}},
     "trigger.rolling_mean_kg_h.fill"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 7, "above": 1, "sample_hours": -1}}},
     "trigger.rolling_mean_kg_h.sample_hours"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 7, "above": 1, "baseline_days": 30}}},
     "trigger.rolling_mean_kg_h.baseline_days"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 7, "above": 1, "min_coverage": 2}}},
     "trigger.rolling_mean_kg_h.min_coverage"),
    ({"trigger": {**ROLL, "rolling_mean_kg_h": {"days": 7, "above": 1, "window": 2}}},
     "trigger.rolling_mean_kg_h.window"),
    ({"clocks": [{"action": "investigate", "days": 5, "after": "repair_attempt"}]}, "clocks.after"),
    ({"clocks": [{"action": "repair", "days": 5}, {"action": "repair", "days": 9}]}, "clocks.action"),
    ({"delay_of_repair": {"max_days": "2y"}}, "delay_of_repair"),
    ({"enabled": "yes"}, "enabled"),
    ({"citaton": "typo"}, "citaton"),
    ({"region": [40, 30, -110, -100]}, "region"),
    ({"verified": "true"}, "verified"),
    ({"holidays": "Narnia"}, "holidays"),
    ({"label": 5}, "label"),
])
def test_a_broken_rule_names_the_rule_and_the_field(tmp_path, over, field):
    bad = _rule(id="broken_rule", **over)
    with pytest.raises(RuleError) as err:
        load_rules(_write(tmp_path, {"rules": [_rule(), bad]}))
    assert "'broken_rule'" in str(err.value) and f"'{field}'" in str(err.value)


@pytest.mark.parametrize(("settings", "field"), [({"site_classes": {"wellhead": ["x"]}}, "site_classes"),
                                                 ({"default_site_class": "tiny"}, "default_site_class"),
                                                 ({"site_baselines_kg_h": {"A1": -1}}, "site_baselines_kg_h"),
                                                 ({"candidates": {"urgency": 2}}, "candidates.urgency"),
                                                 ({"candidates": {"voluntary": True}}, "candidates.voluntary"),
                                                 ({"candidates": {"own_detections_voluntary": 1}},
                                                  "candidates.own_detections_voluntary"),
                                                 ({"notifications": {"match_distance_m": 0}},
                                                  "notifications.match_distance_m"),
                                                 ({"notifications": {"match_days": 1.5}}, "notifications.match_days")])
def test_broken_settings_name_the_field(tmp_path, settings, field):
    with pytest.raises(RuleError, match=f"settings: field '{field}'"):
        load_rules(_write(tmp_path, {"settings": settings, "rules": [_rule()]}))


def test_the_shipped_file_breaks_loudly_when_a_rule_is_damaged(tmp_path):
    data = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    ogi = next(r for r in broken["rules"] if r["id"] == "ooooB_fugitive_ogi")
    ogi["clocks"][1]["after"] = "first_visit"
    with pytest.raises(RuleError, match="'ooooB_fugitive_ogi': field 'clocks.after'"):
        load_rules(_write(tmp_path, broken))
