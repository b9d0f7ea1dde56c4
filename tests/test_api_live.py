"""The API's always-on endpoints (issue 18): POST /detections with idempotency keys, /runs, /alerts with
acknowledge and snooze, the SSE stream, /health and /metrics; and who may call them once users exist."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from mlpe_core import auth, desk
from mlpe_core.api import create_app

CSV = ("detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h\n"
       "c1,aerial,Air,2025-03-03T10:00:00Z,32.0,-102.0,40\nc2,aerial,Air,2025-03-03T10:05:00Z,32.0001,-102.0,45\n"
       "c3,aerial,Air,not a time,32.0,-102.0,1\n")


@pytest.fixture
def client(tmp_path):
    eng = desk.engine(str(tmp_path / "api.db"))
    yield TestClient(create_app(engine=eng)), eng
    eng.dispose()


def test_post_csv_then_replay_then_conflict(client):
    c, eng = client
    r = c.post("/detections", content=CSV, headers={"Content-Type": "text/csv", "Idempotency-Key": "k-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows"], body["accepted"], body["rejected"], body["replayed"]) == (3, 2, 1, False)
    assert body["rejects"] == [{"row": 4, "column": "observed_at", "reason": body["rejects"][0]["reason"]}]
    again = c.post("/detections", content=CSV, headers={"Content-Type": "text/csv", "Idempotency-Key": "k-1"})
    assert again.json()["replayed"] and again.headers["Idempotent-Replayed"] == "true"
    assert {k: v for k, v in again.json().items() if k != "replayed"} == \
        {k: v for k, v in body.items() if k != "replayed"}
    other = c.post("/detections", content=CSV + "c4,aerial,Air,2025-03-03T10:00:00Z,32,-102,1\n",
                   headers={"Content-Type": "text/csv", "Idempotency-Key": "k-1"})
    assert other.status_code == 409 and "different body" in other.json()["detail"]
    nokey = c.post("/detections", content=CSV, headers={"Content-Type": "text/csv"})  # same bytes, no key
    assert nokey.json()["already_ingested"] and nokey.json()["accepted"] == 0
    with Session(eng) as s:
        assert desk.status(s)["detections"] == 2
        runs = desk.runs(s, kind="ingest")
        assert set(runs["source"]) == {"api"} and runs["target"].iloc[-1] == "api-k-1.csv"


def test_post_json_and_process(client):
    c, eng = client
    rows = [{"detection_id": "j1", "source_type": "satellite", "source_name": "Sat",
             "observed_at": "2025-03-03T10:00:00Z", "latitude": 32.0, "longitude": -102.0, "rate_kg_h": 900}]
    r = c.post("/detections", json={"detections": rows}, params={"process": "true"})
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["processed"] and r.json()["leaks"] == 1
    with Session(eng) as s:
        assert {"ingest", "fuse", "score", "alerts"} <= set(desk.runs(s)["kind"])


@pytest.mark.parametrize("body, ctype, code", [
    (b"<x/>", "application/xml", 415), (b"", "text/csv", 422), (b"{not json", "application/json", 422),
    (b"[]", "application/json", 422), (b"a,b\n1,2\n", "text/csv", 422)])
def test_post_refusals(client, body, ctype, code):
    c, eng = client
    r = c.post("/detections", content=body, headers={"Content-Type": ctype})
    assert r.status_code == code and r.json()["detail"]
    with Session(eng) as s:
        assert desk.status(s)["detections"] == 0


def test_runs_alerts_ack_snooze_metrics_health_and_stream(client):
    c, eng = client
    t = "2026-12-01T10:{:02d}:00Z"
    with Session(eng):
        import pandas as pd

        now = pd.Timestamp.now(tz="UTC")
        rows = "".join(f"b{i},continuous_monitor,Fence,{(now - pd.Timedelta(minutes=9 - 3 * i)):%Y-%m-%dT%H:%M:%SZ},"
                       f"32,-102,1,A9\n" for i in range(3))
    csv = "detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h,asset_id\n" + rows
    assert t  # (times are relative to now: the burst rule looks back 24 h)
    assert c.post("/detections", content=csv, headers={"Content-Type": "text/csv"},
                  params={"process": "true"}).json()["new_alerts"] == 1
    runs = c.get("/runs", params={"limit": 10}).json()
    assert runs["count"] >= 4 and all(r["stages"] for r in runs["runs"])
    fuse = next(r for r in runs["runs"] if r["kind"] == "fuse")
    assert {s["stage"] for s in fuse["stages"]} >= {"read", "cluster", "ids", "write"}
    inbox = c.get("/alerts").json()
    assert inbox["open"] == 1 and inbox["alerts"][0]["rule"] == "burst"
    aid = inbox["alerts"][0]["id"]
    with c.stream("GET", "/alerts/stream", params={"after": 0, "timeout": 1}) as r:
        text = r.read().decode()
    assert r.headers["content-type"].startswith("text/event-stream")
    assert f"id: {aid}\nevent: alert\ndata: " in text
    assert json.loads(text.split("data: ")[1].split("\n")[0])["id"] == aid
    assert c.post(f"/alerts/{aid}/ack", json={"reason": ""}).status_code == 422
    assert c.post("/alerts/99999/ack", json={"reason": "x"}).status_code == 404
    assert c.post(f"/alerts/{aid}/snooze", json={"reason": "later", "hours": 0}).status_code == 422
    sn = c.post(f"/alerts/{aid}/snooze", json={"reason": "later", "hours": 3}).json()
    assert sn["state"] == "snoozed" and sn["snoozed_until"]
    assert c.get("/alerts").json()["open"] == 0 and c.get("/alerts", params={"state": "snoozed"}).json()["count"] == 1
    ack = c.post(f"/alerts/{aid}/ack", json={"reason": "crew there"}).json()
    assert ack["state"] == "acknowledged" and ack["handled_by"] == "api"
    m = c.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain")
    assert "# TYPE mlpe_runs_total counter" in m.text and 'mlpe_runs_total{kind="fuse",outcome="ok"} 1' in m.text
    assert "mlpe_alerts_open_total 0" in m.text and "mlpe_detections 3" in m.text
    h = c.get("/health").json()
    assert h["status"] == "ok" and h["store"] == "ok" and h["last_run"]["kind"] in ("alerts", "score", "fuse")


def test_once_users_exist_posting_needs_a_token(client):
    c, eng = client
    with Session(eng) as s:
        auth.add_user(s, "setup", "ada", "admin", "admin-pass-1")
        token, _ = auth.create_token(s, "ada", "ada", "feed")
    r = c.post("/detections", content=CSV, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401
    assert c.get("/metrics").status_code == 401 and c.get("/alerts").status_code == 401
    assert c.get("/health").status_code == 200  # health needs no sign-in
    r = c.post("/detections", content=CSV, headers={"Content-Type": "text/csv", "Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["accepted"] == 2
