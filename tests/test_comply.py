"""Comply: rules are checked on load, and deadlines follow the rule text to the second."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import T0

from mlpe_core.comply import ACTIONS, EVENTS, RULES_PATH, RuleError, deadlines, load_rules
from mlpe_core.schema import NOTIFICATION_PROGRAMS, SOURCE_TYPES

TEXAS = (32.0, -102.0)
COLORADO = (39.5, -105.0)
FRIDAY = pd.Timestamp("2025-01-03T10:00:00Z")


def _dets(rows: list[dict]) -> pd.DataFrame:
    """Per-detection frame as ``deadlines`` reads it: leak_id, source_type, rate, position, time."""
    out = pd.DataFrame([{"leak_id": r["leak"], "source_type": r.get("type", "satellite"),
                         "rate_kg_h": r.get("rate", np.nan), "latitude": r.get("at", TEXAS)[0],
                         "longitude": r.get("at", TEXAS)[1], "observed_at": r.get("t", T0)} for r in rows])
    out["observed_at"] = pd.to_datetime(out["observed_at"], utc=True)
    out["rate_kg_h"] = out["rate_kg_h"].astype(float)
    return out


def _notes(rows: list[dict]) -> pd.DataFrame:
    """Notifications as ``deadlines`` reads them (already matched to a leak, or not: leak None)."""
    return pd.DataFrame([{"notification_id": r.get("id", f"N{i}"), "received_at": pd.Timestamp(r.get("t", T0)),
                          "program": r.get("program", "ooooB_super_emitter"), "notifier": "EPA",
                          "leak_id": r.get("leak")} for i, r in enumerate(rows)])


def _visits(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"leak_id": r["leak"], "outcome": r.get("outcome", "confirmed"),
                          "visited_at": pd.Timestamp(r.get("t", T0)), "repaired_at": r.get("repaired_at", pd.NaT)}
                         for r in rows])


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    return load_rules()


# --------------------------------------------------------------------------------------------- rule files


def test_the_shipped_rules_load(rules):
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    assert "ooooB_super_emitter" in ids
    for r in rules:
        assert r["trigger"]["event"] in EVENTS
        assert set(r["trigger"].get("source_types", [])) <= set(SOURCE_TYPES)
        assert set(r["trigger"].get("programs", [])) <= set(NOTIFICATION_PROGRAMS)
        for c in r["clocks"]:
            assert c["action"] in ACTIONS and isinstance(c["days"], int) and c["days"] >= 0


VALID_RULE = {
    "id": "test_rule",
    "name": "A test rule",
    "citation": "none",
    "verified": False,
    "enabled": True,
    "trigger": {"event": "detection", "source_types": ["satellite"], "min_rate_kg_h": 50},
    "clocks": [{"action": "investigate", "days": 5, "calendar": "calendar"}],
}


def _drop(key):
    def f(rule):
        del rule[key]
    return f


def _set(path, value):
    def f(rule):
        target = rule
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
    return f


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_drop("citation"), "citation"),
        (_drop("clocks"), "clocks"),
        (_drop("verified"), "verified"),
        (_set(("clocks", 0, "action"), "inspect"), "clocks.action"),
        (_set(("trigger", "source_types"), ["drone"]), "trigger.source_types"),
        (_set(("clocks", 0, "days"), 5.5), "clocks.days"),
        (_set(("clocks", 0, "days"), "5"), "clocks.days"),
        (_set(("clocks", 0, "days"), -1), "clocks.days"),
        (_set(("clocks", 0, "calendar"), "lunar"), "clocks.calendar"),
        (_set(("trigger", "min_rate_kg_h"), "lots"), "trigger.min_rate_kg_h"),
        (_set(("region",), [30, 40]), "region"),
        (lambda r: r["trigger"].pop("event"), "trigger.event"),
        (_set(("trigger", "event"), "overpass"), "trigger.event"),
        (_set(("trigger",), {"event": "notification"}), "trigger.programs"),
        (_set(("trigger",), {"event": "notification", "programs": ["epa"]}), "trigger.programs"),
        (_set(("trigger",), {"event": "notification", "programs": ["state"], "min_rate_kg_h": 5}),
         "trigger.min_rate_kg_h"),
        (_set(("trigger",), {"event": "action_level"}), "trigger.rolling_mean_kg_h"),
        (_set(("holidays",), "XX-ZZ"), "holidays"),
        (_set(("voluntary",), "yes"), "voluntary"),
    ],
    ids=["no-citation", "no-clocks", "no-verified", "bad-action", "bad-source-type", "float-days", "text-days",
         "negative-days", "bad-calendar", "bad-min-rate", "bad-region", "no-trigger-event", "unknown-event",
         "notification-without-programs", "unknown-program", "detection-field-on-notification",
         "action-level-without-average", "unknown-holidays", "voluntary-not-bool"],
)
def test_a_broken_rule_file_names_the_rule_and_the_field(tmp_path, mutate, field):
    good = copy.deepcopy(VALID_RULE)
    bad = copy.deepcopy(VALID_RULE)
    bad["id"] = "broken_one"
    mutate(bad)
    p = tmp_path / "rules.yaml"
    p.write_text(yaml.safe_dump({"rules": [good, bad]}), encoding="utf-8")
    with pytest.raises(RuleError) as err:
        load_rules(p)
    msg = str(err.value)
    assert "'broken_one'" in msg
    assert f"'{field}'" in msg


def test_a_repeated_rule_id_is_refused(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text(yaml.safe_dump({"rules": [VALID_RULE, VALID_RULE]}), encoding="utf-8")
    with pytest.raises(RuleError, match="test_rule"):
        load_rules(p)


def test_a_valid_custom_rule_file_loads(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text(yaml.safe_dump({"rules": [VALID_RULE]}), encoding="utf-8")
    assert [r["id"] for r in load_rules(p)] == ["test_rule"]


def test_a_file_that_is_not_a_rule_list_is_refused(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text("rules: {id: x}\n", encoding="utf-8")
    with pytest.raises(RuleError, match="rules"):
        load_rules(p)


def test_shipped_rules_path_is_the_config_file():
    assert RULES_PATH.name == "compliance.yaml" and RULES_PATH.exists()


# --------------------------------------------------------------------------------------------- clocks


def test_a_remote_detection_alone_starts_no_super_emitter_clock(rules):
    d = _dets([dict(leak="L1", rate=150.0, t=T0), dict(leak="L2", type="aerial", rate=5000.0, t=T0)])
    out = deadlines(d, None, rules, T0)
    assert out["due_by"].isna().all() and not out["overdue"].any()
    assert out["watch"].tolist() == [True, True] and out["legal_state"].isna().all()


def test_super_emitter_is_due_five_and_fifteen_days_after_the_notification_is_received(rules):
    d = _dets([
        dict(leak="L1", rate=150.0, t=T0),
        dict(leak="L2", rate=99.0, t=T0),  # below 100 kg/h, but EPA notified: the notice decides, not the size
        dict(leak="L3", type="aerial", rate=400.0, t=T0),  # no notice: a watch item only
    ])
    received = T0 + pd.Timedelta(days=12, hours=3)
    n = _notes([dict(id="EPA-1", leak="L1", t=received), dict(id="EPA-2", leak="L2", t=received)])
    out = deadlines(d, None, rules, T0, notifications=n)
    assert out.loc[["L1", "L2"], "due_by"].tolist() == [received + pd.Timedelta(days=5)] * 2
    assert out.loc["L1", "due_rule"] == "ooooB_super_emitter:investigate"
    assert out.loc["L1", "started_text"].startswith("notification EPA-1 (EPA OOOOb super-emitter, EPA) received")
    assert pd.isna(out.loc["L3", "due_by"]) and bool(out.loc["L3", "watch"])


def test_the_clock_starts_at_the_first_triggering_detection_not_the_first_detection():
    d = _dets([dict(leak="L1", rate=20.0, t=T0), dict(leak="L1", rate=120.0, t=T0 + pd.Timedelta(days=2))])
    out = deadlines(d, None, [copy.deepcopy(VALID_RULE)], T0)
    assert out.loc["L1", "due_by"] == T0 + pd.Timedelta(days=7)


def test_a_visited_leak_has_met_its_investigate_clock(rules):
    d = _dets([dict(leak="L1", rate=150.0), dict(leak="L2", rate=150.0)])
    n = _notes([dict(leak="L1"), dict(leak="L2")])
    out = deadlines(d, _visits([dict(leak="L1", t=T0 + pd.Timedelta(days=1))]), rules, T0, notifications=n)
    assert out.index.tolist() == ["L2"]  # notified, so not a watch item either


def test_a_visit_does_not_meet_a_repair_clock_but_a_repair_does(rules):
    d = _dets([dict(leak="L1", type="ogi"), dict(leak="L2", type="ogi"), dict(leak="L3", type="ogi")])
    v = _visits([dict(leak="L1", outcome="confirmed"),
                 dict(leak="L2", outcome="confirmed", repaired_at=T0 + pd.Timedelta(days=3)),
                 dict(leak="L3", outcome="already_repaired")])
    out = deadlines(d, v, rules, T0)
    assert out.index.tolist() == ["L1"]
    assert out.loc["L1", "due_by"] == T0 + pd.Timedelta(days=30)
    assert out.loc["L1", "due_rule"] == "ooooB_fugitive_ogi:repair_attempt"


def test_continuous_monitor_rolling_mean_above_the_action_level(rules):
    d = _dets([
        dict(leak="L1", type="continuous_monitor", rate=30.0, t=T0),
        dict(leak="L1", type="continuous_monitor", rate=25.0, t=T0 + pd.Timedelta(days=1)),
        dict(leak="L2", type="continuous_monitor", rate=10.0, t=T0),
        dict(leak="L2", type="continuous_monitor", rate=12.0, t=T0 + pd.Timedelta(days=1)),
    ])
    out = deadlines(d, None, rules, T0)
    assert out.index.tolist() == ["L1"]
    # the site's 7-day average (mean of the readings: 30 kg/h) passes 21 kg/h on T0's day: the clock starts that day
    assert out.loc["L1", "due_by"] == T0.floor("D") + pd.Timedelta(days=5)
    assert out.loc["L1", "due_rule"] == "ooooB_cms_action:investigate"
    assert out.loc["L1", "started_text"] == ("7-day average 30.00 kg/h over the 21.00 kg/h level at the site of "
                                             "leak L1 on 2025-03-03")


def test_a_disabled_rule_sets_no_clock():
    rule = dict(copy.deepcopy(VALID_RULE), enabled=False)
    assert deadlines(_dets([dict(leak="L1", rate=500.0)]), None, [rule], T0).empty


def test_working_day_clock_skips_the_weekend():
    rule = copy.deepcopy(VALID_RULE)
    rule["trigger"] = {"event": "detection", "source_types": ["ogi"]}
    rule["clocks"] = [{"action": "investigate", "days": 1, "calendar": "working"}]
    out = deadlines(_dets([dict(leak="L1", type="ogi", t=FRIDAY)]), None, [rule], FRIDAY)
    assert out.loc["L1", "due_by"] == pd.Timestamp("2025-01-06T10:00:00Z")  # Friday + 1 working day = Monday


@pytest.mark.parametrize(("found", "due"), [
    ("2025-01-03T10:00:00Z", "2025-01-10T10:00:00Z"),  # Friday + 5 working days, no holiday between
    ("2025-01-17T10:00:00Z", "2025-01-27T10:00:00Z"),  # Martin Luther King Jr. Day (Mon 20 Jan) is not a working day
    ("2025-03-28T10:00:00Z", "2025-04-07T10:00:00Z"),  # Cesar Chavez Day (Mon 31 Mar), a Colorado holiday
    ("2025-10-03T10:00:00Z", "2025-10-13T10:00:00Z"),  # Frances Xavier Cabrini Day (Mon 6 Oct), Colorado's own
], ids=["plain-week", "mlk-day", "cesar-chavez-day", "cabrini-day"])
def test_colorado_working_days_skip_colorado_public_holidays(rules, found, due):
    t = pd.Timestamp(found)
    out = deadlines(_dets([dict(leak="C1", type="ogi", at=COLORADO, t=t)]), None, rules, t)
    assert (out.loc["C1", "due_by"], out.loc["C1", "due_rule"]) == (pd.Timestamp(due), "co_reg7_repair:repair_attempt")


def test_colorado_leak_gets_the_five_working_day_repair_attempt(rules):
    d = _dets([dict(leak="C1", type="ogi", at=COLORADO, t=FRIDAY), dict(leak="T1", type="ogi", at=TEXAS, t=FRIDAY)])
    out = deadlines(d, None, rules, FRIDAY)
    assert out.loc["C1", "due_by"] == pd.Timestamp("2025-01-10T10:00:00Z")
    assert out.loc["C1", "due_rule"] == "co_reg7_repair:repair_attempt"
    assert out.loc["T1", "due_by"] == FRIDAY + pd.Timedelta(days=30)  # outside the region: federal clock only


@pytest.mark.parametrize(
    ("as_of", "overdue", "due_soon", "urgency"),
    [
        (T0 - pd.Timedelta(days=10), False, False, 0.0),  # due in 15 days
        (T0, False, True, 0.5),  # due in 5 days
        (T0 - pd.Timedelta(days=2), False, True, 0.5),  # due in exactly 7 days
        (T0 + pd.Timedelta(days=5), False, True, 0.5),  # due now
        (T0 + pd.Timedelta(days=5, seconds=1), True, False, 1.0),
        (T0 + pd.Timedelta(days=40), True, False, 1.0),
    ],
)
def test_overdue_due_soon_and_urgency(rules, as_of, overdue, due_soon, urgency):
    out = deadlines(_dets([dict(leak="L1", rate=150.0, t=T0)]), None, rules, as_of,
                    notifications=_notes([dict(leak="L1", t=T0)]))
    row = out.loc["L1"]
    assert (bool(row["overdue"]), bool(row["due_soon"]), float(row["urgency"])) == (overdue, due_soon, urgency)


def test_no_triggered_rule_gives_an_empty_frame_with_the_columns(rules):
    out = deadlines(_dets([dict(leak="L1", type="scada")]), None, rules, T0)
    assert out.empty
    assert list(out.columns) == ["due_by", "due_rule", "overdue", "due_soon", "urgency", "started_text", "voluntary",
                                 "legal_state", "legal_what", "watch"]


def test_deadlines_do_not_modify_their_input(rules):
    d = _dets([dict(leak="L1", rate=150.0), dict(leak="L2", type="ogi")])
    before = d.copy(deep=True)
    deadlines(d, None, rules, T0)
    pd.testing.assert_frame_equal(d, before)


def test_action_level_rules_share_their_daily_values_and_give_what_each_gives_alone(rules):
    """Two action-level rules over the same readings (the shipped 7-day and 90-day rules) compute the readings,
    daily values and baselines once through a shared memo, with the same exceedances as without it."""
    from mlpe_core.comply.action_levels import exceedances

    rng = np.random.default_rng(3)
    d = _dets([dict(leak=f"L{i % 3}", type="continuous_monitor", rate=float(r), t=T0 + pd.Timedelta(hours=6 * i))
               for i, r in enumerate(rng.lognormal(3.0, 1.0, 400))])
    levels = [r for r in rules if r["trigger"].get("event") == "action_level"]
    assert len(levels) >= 2
    memo: dict = {}
    shared = [exceedances(d, r, rules.settings, memo=memo) for r in levels]
    alone = [exceedances(d, r, rules.settings) for r in levels]
    for a, b in zip(shared, alone, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert sum(len(x) for x in alone) > 0  # the rules fire on these readings: the comparison is not of empties
    assert [k[0] for k in memo].count("readings") == 1 and [k[0] for k in memo].count("daily") == 1
