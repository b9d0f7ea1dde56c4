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


def clocks(rules, d, v=None, as_of=T0, **kw) -> dict[tuple[str, str], pd.Timestamp]:
    c = leak_clocks(d, v, rules, as_of, **kw)
    return {(r.leak_id, r.due_rule): r.due_by for r in c.itertuples()}


# --------------------------------------------------------------------------------------------- the shipped file


def test_shipped_rules_cover_issue_7_with_citations(rules):
    by_id = {r["id"]: r for r in rules}
    assert {"ooooB_super_emitter", "ooooB_fugitive_ogi", "ooooB_fugitive_avo", "ooooB_cms_action", "ooooB_cms_90day",
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
    d = dets([dict(leak="L1", type="satellite", rate=200.0, t=day(10))])
    v = visits([dict(leak="L1", t=day(2))])
    assert clocks(rules, d, v)[("L1", "ooooB_super_emitter:investigate")] == day(15)
    v = visits([dict(leak="L1", t=day(10) - pd.Timedelta(hours=5))])  # same day as the notice: counts
    assert ("L1", "ooooB_super_emitter:investigate") not in clocks(rules, d, v)


def test_no_access_does_not_meet_an_investigation(rules):
    d = dets([dict(leak="L1", type="satellite", rate=200.0)])
    v = visits([dict(leak="L1", t=day(1), outcome="not_accessible")])
    assert deadlines(d, v, rules, T0).loc["L1", "due_rule"] == "ooooB_super_emitter:investigate"


def test_colorado_visit_found_leak_uses_working_days(rules):
    friday = pd.Timestamp("2025-01-03T10:00:00Z")
    d = dets([dict(leak="C1", type="scada", at=COLORADO, t=friday - pd.Timedelta(days=1))])  # sets no clock
    v = visits([dict(leak="C1", t=friday, found_by="avo")])
    c = clocks(rules, d, v)
    assert c[("C1", "co_reg7_repair:repair_attempt")] == pd.Timestamp("2025-01-10T10:00:00Z")
    assert c[("C1", "co_reg7_repair:repair")] == pd.Timestamp("2025-02-14T10:00:00Z")  # 30 working days


# --------------------------------------------------------------------------------------------- CMS action levels


ASSETS = pd.DataFrame({"asset_id": ["W1", "P1"], "asset_type": ["wellhead", "compressor_station"]})


def cms(leak: str, asset: str, rate: float, hours: int, every_h: float = 1.0) -> list[dict]:
    return [dict(leak=leak, type="continuous_monitor", rate=rate, t=T0 + pd.Timedelta(hours=h * every_h), asset=asset)
            for h in range(hours)]


def test_seven_day_level_is_15_at_wellhead_only_sites_and_21_elsewhere(rules):
    d = dets(cms("LW", "W1", 18.0, 3, every_h=8) + cms("LP", "P1", 18.0, 3, every_h=8))
    leaks = pd.DataFrame({"leak_id": ["LW", "LP"], "asset_id": ["W1", "P1"], "latitude": TEXAS[0],
                          "longitude": TEXAS[1]})
    c = clocks(rules, d, assets=ASSETS, leaks=leaks)
    assert c == {("LW", "ooooB_cms_action:investigate"): day(5)}
    # without the asset registry the site class is unknown: the default class (other, 21 kg/h) applies
    assert clocks(rules, d) == {}
    # the asset may also come from the detections themselves (a monitor knows its site)
    assert clocks(rules, d, assets=ASSETS) == {("LW", "ooooB_cms_action:investigate"): day(5)}


def test_ninety_day_average_over_baseline(rules):
    # an hourly monitor reading 2 kg/h: the 90-day average (missing hours count as zero) passes 1.6 kg/h
    # with the 1729th reading and 1.2 kg/h (wellhead-only) with the 1297th
    d = dets(cms("LP", "P1", 2.0, 2000) + cms("LW", "W1", 2.0, 2000))
    c = clocks(rules, d, assets=ASSETS)
    assert c[("LP", "ooooB_cms_90day:investigate")] == T0 + pd.Timedelta(hours=1728, days=5)
    assert c[("LW", "ooooB_cms_90day:investigate")] == T0 + pd.Timedelta(hours=1296, days=5)
    # a site baseline of 0.5 kg/h lifts the level to 2.1 kg/h: never reached
    c = clocks(rules, d, assets=ASSETS, baselines={"P1": 0.5})
    assert ("LP", "ooooB_cms_90day:investigate") not in c
    # a few alerts a day do not make a 90-day average (they do pass the 7-day level of the alerts' mean)
    c = clocks(rules, dets(cms("LQ", "P1", 50.0, 30, every_h=8)), assets=ASSETS)
    assert c == {("LQ", "ooooB_cms_action:investigate"): day(5)}


# --------------------------------------------------------------------------------------------- broken rule files


def _rule(**over) -> dict:
    r = {"id": "r1", "name": "n", "citation": "c", "verified": False, "enabled": True,
         "trigger": {"source_types": ["ogi"]},
         "clocks": [{"action": "repair_attempt", "days": 30}, {"action": "repair", "days": 30,
                                                               "after": "repair_attempt"}]}
    r.update(over)
    return r


def _write(tmp_path, data) -> str:
    p = tmp_path / "rules.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def test_a_good_file_with_every_new_field_loads(tmp_path):
    good = _rule(delay_of_repair={"max_days": 365}, note="n", region=[30.0, 40.0, -110.0, -100.0],
                 trigger={"source_types": ["continuous_monitor"], "event_types": ["alarm"], "found_by": ["ogi"],
                          "rolling_mean_kg_h": {"days": 7, "above": {"wellhead_only": 1, "other": 2},
                                                "over_baseline": True, "fill": "zero", "sample_hours": 0.25}})
    rules = load_rules(_write(tmp_path, {"settings": {"site_classes": {"wellhead_only": ["WH"]},
                                                      "site_baselines_kg_h": {"A1": 0.3}}, "rules": [good]}))
    assert [r["id"] for r in rules] == ["r1"]
    assert rules.settings["site_classes"]["wellhead_only"] == ["wh"]
    assert rules.settings["site_baselines_kg_h"] == {"A1": 0.3}


@pytest.mark.parametrize(("over", "field"), [
    ({"trigger": {"source_types": ["ogi"], "found_by": ["drone"]}}, "trigger.found_by"),
    ({"trigger": {"source_types": ["ogi"], "event_types": "avo"}}, "trigger.event_types"),
    ({"trigger": {"source_types": ["ogi"], "min_rate": 5}}, "trigger.min_rate"),
    ({"trigger": {"source_types": ["ogi"], "rolling_mean_kg_h": {"days": 7}}}, "trigger.rolling_mean_kg_h"),
    ({"trigger": {"source_types": ["ogi"], "rolling_mean_kg_h": {"days": 0, "above": 1}}},
     "trigger.rolling_mean_kg_h.days"),
    ({"trigger": {"source_types": ["ogi"], "rolling_mean_kg_h": {"days": 7, "above": {"wellhead_only": 1}}}},
     "trigger.rolling_mean_kg_h.above"),
    ({"trigger": {"source_types": ["ogi"], "rolling_mean_kg_h": {"days": 7, "above": 1, "fill": "mean"}}},
     "trigger.rolling_mean_kg_h.fill"),
    ({"trigger": {"source_types": ["ogi"], "rolling_mean_kg_h": {"days": 7, "above": 1, "sample_hours": -1}}},
     "trigger.rolling_mean_kg_h.sample_hours"),
    ({"clocks": [{"action": "investigate", "days": 5, "after": "repair_attempt"}]}, "clocks.after"),
    ({"clocks": [{"action": "repair", "days": 5}, {"action": "repair", "days": 9}]}, "clocks.action"),
    ({"delay_of_repair": {"max_days": "2y"}}, "delay_of_repair"),
    ({"enabled": "yes"}, "enabled"),
    ({"citaton": "typo"}, "citaton"),
    ({"region": [40, 30, -110, -100]}, "region"),
    ({"verified": "true"}, "verified"),
])
def test_a_broken_rule_names_the_rule_and_the_field(tmp_path, over, field):
    bad = _rule(id="broken_rule", **over)
    with pytest.raises(RuleError) as err:
        load_rules(_write(tmp_path, {"rules": [_rule(), bad]}))
    assert "'broken_rule'" in str(err.value) and f"'{field}'" in str(err.value)


@pytest.mark.parametrize(("settings", "field"), [({"site_classes": {"wellhead": ["x"]}}, "site_classes"),
                                                 ({"default_site_class": "tiny"}, "default_site_class"),
                                                 ({"site_baselines_kg_h": {"A1": -1}}, "site_baselines_kg_h")])
def test_broken_settings_name_the_field(tmp_path, settings, field):
    with pytest.raises(RuleError, match=f"settings: field '{field}'"):
        load_rules(_write(tmp_path, {"settings": settings, "rules": [_rule()]}))


def test_the_shipped_file_breaks_loudly_when_a_rule_is_damaged(tmp_path):
    data = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    broken["rules"][1]["clocks"][1]["after"] = "first_visit"
    with pytest.raises(RuleError, match="'ooooB_fugitive_ogi': field 'clocks.after'"):
        load_rules(_write(tmp_path, broken))
