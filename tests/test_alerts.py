"""Alert rules (issue 18): what each finds, routing to teams, deduplication, acknowledging and snoozing (audited),
channel payloads, and deliveries that fail, retry and stay visible instead of being lost."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from live_helpers import SmtpSink, WebhookReceiver
from sqlmodel import Session

from mlpe_core import desk, store
from mlpe_core.alerts import AlertConfig, evaluate, load_alert_config, route, webhook_payload
from mlpe_core.settings import ConfigFileError

NOW = pd.Timestamp("2026-12-01T12:00:00Z")


def _cfg(**kw) -> AlertConfig:
    base = {"rules": [{"name": "burst", "kind": "burst", "count": 3, "within_minutes": 30,
                       "source_types": ["continuous_monitor"]},
                      {"name": "high", "kind": "new_high_leak"}]}
    return AlertConfig.model_validate({**base, **kw})


def _alarms(asset: str, minutes: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"asset_id": asset, "source_type": "continuous_monitor", "source_name": "Fence",
                         "observed_at": [NOW - pd.Timedelta(minutes=m) for m in minutes]})


def _run(cfg: AlertConfig, alarms=None, leaks=None, assets=None) -> list[dict]:
    empty = pd.DataFrame()
    return evaluate(cfg, leaks=leaks if leaks is not None else empty, obligations=empty,
                    alarms=alarms if alarms is not None else empty, worsening_sites=empty,
                    assets=assets if assets is not None else pd.DataFrame(), now=NOW)


def test_burst_needs_n_alarms_within_m_minutes_and_alerts_once_per_episode():
    cfg = _cfg()
    assert _run(cfg, _alarms("A1", [50, 40])) == []  # two alarms: no burst
    assert _run(cfg, _alarms("A1", [90, 50, 10])) == []  # three, but never three within 30 minutes
    one = _run(cfg, _alarms("A1", [60, 50, 40, 35]))
    assert len(one) == 1 and one[0]["detail"]["alarms"] == 4 and one[0]["asset_id"] == "A1"
    again = _run(cfg, _alarms("A1", [60, 50, 40, 35]))
    assert [a["key"] for a in again] == [a["key"] for a in one]  # the same episode, the same key
    two = _run(cfg, pd.concat([_alarms("A1", [300, 295, 290, 60, 50, 40]), _alarms("A2", [20, 10, 5])]))
    assert sorted((a["asset_id"], a["detail"]["alarms"]) for a in two) == [("A1", 3), ("A1", 3), ("A2", 3)]
    old = _alarms("A1", [60, 50, 40]).assign(observed_at=lambda d: d["observed_at"] - pd.Timedelta(days=30))
    assert _run(cfg, old) == []  # beyond the look-back: a backfill pages nobody


def test_routing_by_operator_area_asset_type_and_rule():
    cfg = _cfg(teams=[{"name": "north"}, {"name": "compressors"}, {"name": "acme"}, {"name": "highs"}],
               areas={"north": {"bbox": [-103, 33, -101, 34]}},
               routes=[{"team": "highs", "rules": ["high"]}, {"team": "acme", "operator": ["Acme"]},
                       {"team": "compressors", "asset_type": ["compressor_station"]},
                       {"team": "north", "area": "north"}], default_team="control-room")
    assets = pd.DataFrame({"asset_id": ["A1", "A2", "A3", "A4"], "latitude": [32, 32, 33.5, 32],
                           "longitude": [-102] * 4, "operator": ["Acme", "Other", "Other", "Other"],
                           "asset_type": ["well_pad", "compressor_station", "well_pad", "well_pad"]})
    got = {a["asset_id"]: a["team"] for a in _run(cfg, pd.concat([_alarms(x, [30, 20, 10]) for x in
                                                                   ("A1", "A2", "A3", "A4")]), assets=assets)}
    assert got == {"A1": "acme", "A2": "compressors", "A3": "north", "A4": "control-room"}
    assert route(cfg, {"rule": "high", "asset_id": "A1"}, assets) == "highs"


@pytest.mark.parametrize("bad, field", [
    ({"routes": [{"team": "nobody"}]}, "team 'nobody' is not defined"),
    ({"teams": [{"name": "t", "webhooks": ["slack"]}]}, "webhook 'slack' is not defined"),
    ({"rules": [{"name": "b", "kind": "burst"}]}, "a burst needs count and within_minutes"),
    ({"rules": [{"name": "b", "kind": "burst", "count": 3, "within_minutes": 5, "source_types": ["radar"]}]},
     "source type 'radar'"),
    ({"webhooks": [{"name": "w", "url": "ftp://x"}]}, "url must start with http"),
    ({"emails": [{"name": "e", "to": ["not an address"]}]}, "emails.0.to"),
    ({"rules": [{"name": "x", "kind": "new_high_leak", "within": 3}]}, "rules.0.within: Extra inputs"),
    ({"routes": [{"team": "unrouted", "area": "nowhere"}]}, "area 'nowhere' is not defined"),
])
def test_rules_file_is_validated_naming_the_file_and_what_is_wrong(tmp_path, bad, field):
    import yaml

    p = tmp_path / "alerts.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigFileError) as e:
        load_alert_config(p)
    assert str(p) in str(e.value) and field in str(e.value)


def test_the_packaged_rules_load():
    cfg = desk.alert_config()
    assert {r.kind for r in cfg.rules} == {"new_high_leak", "obligation_due", "failed_repair", "burst",
                                           "worsening_site"}
    with desk.open_session(desk.engine("sqlite://")) as s:  # what the worsening_site rule reads (issue 19's test)
        assert {"asset_id", "operator", "evidence"} <= set(desk.worsening_sites(s).columns)


def test_payloads_are_slack_teams_and_generic_json():
    a = {"id": 7, "key": "k", "rule": "high", "kind": "new_high_leak", "severity": "high", "title": "New HIGH leak L1",
         "team": "ops", "leak_id": "L1"}
    slack, teams, plain = (webhook_payload(a, f, "http://app") for f in ("slack", "teams", "json"))
    for p in (slack, teams, plain):
        assert "New HIGH leak L1" in p["text"] and "http://app/leak?leak=L1" in p["text"]
    assert slack["blocks"][0]["text"]["text"] == "*New HIGH leak L1*"
    assert teams["@type"] == "MessageCard" and teams["potentialAction"][0]["targets"][0]["uri"].endswith("L1")
    assert plain["alert"]["rule"] == "high"


@pytest.fixture
def burst_store(tmp_path, monkeypatch):
    """A store with 3 fence-line alarms at one asset just now, and an alert file routing to a webhook and e-mail."""
    db = tmp_path / "m.db"
    eng = desk.engine(str(db))
    t = pd.Timestamp.now(tz="UTC")
    rows = "".join(f"b{i},continuous_monitor,Fence,{(t - pd.Timedelta(minutes=20 - 5 * i)):%Y-%m-%dT%H:%M:%SZ},"
                   f"32.0,-102.0,1.0,A1\n" for i in range(3))
    f = tmp_path / "b.csv"
    f.write_text("detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h,asset_id\n" + rows)
    with Session(eng) as s:
        desk.ingest(s, "ana", [f])
    yield eng, tmp_path
    eng.dispose()
    desk._ALERT_CFG.clear()


def _alerts_file(tmp_path, monkeypatch, hook_url: str) -> None:
    (tmp_path / "alerts.yaml").write_text(f"""
rules: [{{name: burst, kind: burst, count: 3, within_minutes: 30, source_types: [continuous_monitor]}}]
teams: [{{name: ops, webhooks: [hook], emails: [leads]}}]
routes: [{{team: ops}}]
webhooks: [{{name: hook, url: "{hook_url}", format: json}}]
emails: [{{name: leads, to: [ops@example.com]}}]
""")
    monkeypatch.setenv("MLPE_ALERTS_CONFIG", str(tmp_path / "alerts.yaml"))


def test_check_records_once_routes_and_delivers_to_webhook_and_smtp(burst_store, monkeypatch):
    eng, tmp = burst_store
    with WebhookReceiver() as hook, SmtpSink() as smtp:
        _alerts_file(tmp, monkeypatch, f"{hook.url}/x")
        monkeypatch.setenv("MLPE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("MLPE_SMTP_PORT", str(smtp.port))
        desk.settings(reload=True)
        with Session(eng) as s:
            r = desk.check_alerts(s, "ana")
            assert r["new"] == 1 and r["delivery"] == {"sent": 2, "retrying": 0, "failed": 0}
            assert desk.check_alerts(s, "ana")["new"] == 0  # the same burst never alerts twice
            inbox = desk.alerts_inbox(s)
            assert len(inbox) == 1 and inbox["team"].iloc[0] == "ops"
            assert inbox["deliveries"].iloc[0] == "webhook:hook sent, email:leads sent" or \
                inbox["deliveries"].iloc[0] == "email:leads sent, webhook:hook sent"
        assert hook.bodies[0]["alert"]["rule"] == "burst" and "Burst at A1: 3 alarms" in hook.bodies[0]["text"]
        assert smtp.messages[0]["To"] == "ops@example.com" and "Burst at A1" in smtp.messages[0]["Subject"]
    desk.settings(reload=True)


def test_failed_deliveries_retry_with_back_off_then_are_marked_failed_and_visible(burst_store, monkeypatch):
    eng, tmp = burst_store
    with WebhookReceiver(fail_first=1) as hook:
        _alerts_file(tmp, monkeypatch, f"{hook.url}/x")
        monkeypatch.delenv("MLPE_SMTP_HOST", raising=False)  # no SMTP server configured: e-mail fails
        monkeypatch.setenv("MLPE_DELIVERY_ATTEMPTS", "2")
        desk.settings(reload=True)
        with Session(eng) as s:
            r = desk.check_alerts(s, "ana")
            assert r["delivery"] == {"sent": 0, "retrying": 2, "failed": 0}
            dl = desk.alert_deliveries(s)
            assert (dl["next_attempt_at"] > pd.Timestamp.now(tz="UTC") + timedelta(seconds=20)).all()
            assert "HTTP 503" in " ".join(dl["last_error"]) and "MLPE_SMTP_HOST" in " ".join(dl["last_error"])
            assert desk.deliver_alerts(s) == {"sent": 0, "retrying": 0, "failed": 0}  # not due yet
            for d in store.alerts.due_deliveries(s, at=store.now() + timedelta(hours=2)):
                d.next_attempt_at = store.now() - timedelta(seconds=1)  # time passes
            s.commit()
            assert desk.deliver_alerts(s) == {"sent": 1, "retrying": 0, "failed": 1}
            dl = desk.alert_deliveries(s).set_index("channel")
            assert dl.at["webhook", "state"] == "sent" and dl.at["email", "state"] == "failed"
            assert dl.at["email", "attempts"] == 2
            assert "email:leads failed" in desk.alerts_inbox(s)["deliveries"].iloc[0]
            assert 'mlpe_alert_deliveries{state="failed"} 1' in desk.metrics_text(s)
    desk.settings(reload=True)


def test_acknowledge_and_snooze_need_a_reason_are_audited_and_snoozes_wake(burst_store, monkeypatch):
    eng, tmp = burst_store
    _alerts_file(tmp, monkeypatch, "http://127.0.0.1:9/x")
    with Session(eng) as s:
        desk.check_alerts(s, "ana", deliver=False)
        aid = int(desk.alerts_inbox(s)["id"].iloc[0])
        with pytest.raises(ValueError, match="needs a reason"):
            desk.snooze_alert(s, "ana", aid, " ", hours=2)
        desk.snooze_alert(s, "ana", aid, "waiting for the operator", hours=2)
        assert desk.open_alert_count(s) == 0 and len(desk.alerts_inbox(s, "snoozed")) == 1
        a = store.alerts.get_alert(s, aid)
        a.snoozed_until = store.now() - timedelta(minutes=1)  # two hours later
        s.commit()
        assert desk.open_alert_count(s) == 1 and desk.alerts_inbox(s)["id"].tolist() == [aid]
        desk.acknowledge_alert(s, "ana", aid, "crew dispatched")
        assert desk.open_alert_count(s) == 0
        trail = desk.audit_trail(s)
        acts = trail[trail["target"] == f"alert:{aid}"]
        assert acts["action"].tolist() == ["alert_ack", "alert_snoozed"]
        assert "crew dispatched" in acts["detail"].iloc[0] and "waiting for the operator" in acts["detail"].iloc[1]
        with pytest.raises(KeyError):
            desk.acknowledge_alert(s, "ana", 999, "x")


def test_a_cycle_checks_what_new_detections_set_off_and_the_timer_checks_the_rest(burst_store, monkeypatch):
    """After fuse and score (``process_new``: every watch cycle) the burst is alerted at once; the deadline and
    trend rules, which read the whole store, wait for the full check (the watcher's timer, ``mlpe alerts check``)."""
    eng, tmp = burst_store
    (tmp / "alerts.yaml").write_text("""
rules:
  - {name: burst, kind: burst, count: 3, within_minutes: 30, source_types: [continuous_monitor]}
  - {name: deadline, kind: obligation_due, within_days: 2}
  - {name: worse, kind: worsening_site}
teams: [{name: ops}]
routes: [{team: ops}]
""")
    monkeypatch.setenv("MLPE_ALERTS_CONFIG", str(tmp / "alerts.yaml"))
    desk.settings(reload=True)
    read = []
    for name in ("obligations", "worsening_sites"):
        real = getattr(desk, name)
        monkeypatch.setattr(desk, name, lambda *a, _n=name, _r=real, **k: read.append(_n) or _r(*a, **k))
    with Session(eng) as s:
        r = desk.process_new(s, "system")
        assert r["alerts"]["new"] == 1 and read == []  # the burst, without reading deadlines or trends
        assert desk.alerts_inbox(s)["rule"].tolist() == ["burst"]
        full = desk.check_alerts(s, "system", deliver=False)
        assert sorted(read) == ["obligations", "worsening_sites"] and full["new"] == 0  # nothing due here
    monkeypatch.undo()
    desk.settings(reload=True)


def test_the_inbox_puts_high_alerts_before_newer_medium_ones(burst_store):
    eng, _ = burst_store
    rows = [{"key": f"k{i}", "rule": "r", "kind": k, "severity": sev, "title": f"{sev} {i}", "team": "ops"}
            for i, (sev, k) in enumerate([("high", "obligation_due"), ("info", "burst"), ("high", "failed_repair"),
                                          *[("medium", "worsening_site")] * 3])]
    with Session(eng) as s:
        store.alerts.insert_alerts(s, rows)  # ids in this order: the medium ones are the newest
        s.commit()
        inbox = desk.alerts_inbox(s)
        assert inbox["severity"].tolist() == ["high", "high", "medium", "medium", "medium", "info"]
        assert inbox["title"].tolist()[:2] == ["high 2", "high 0"]  # newest first within a severity
        assert desk.alerts_inbox(s, limit=2)["severity"].tolist() == ["high", "high"]
        assert desk.last_alert_check(s) is None  # never checked
        desk.check_alerts(s, "ana", deliver=False)
        assert desk.last_alert_check(s) is not None
