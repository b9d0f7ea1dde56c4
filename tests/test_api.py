"""The HTTP API (``mlpe serve``): round-trips through FastAPI's test client on an in-memory store, and the
real server started by the command line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from mlpe_core import auth
from mlpe_core.api import create_app
from mlpe_core.schema import DISPATCH_EXPORT_COLUMNS, LEAK_EXPORT_COLUMNS
from mlpe_core.store.models import Detection, Leak, LeakRank, Notification

T = pd.Timestamp("2025-03-03T10:00:00Z")
SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "workorder.schema.json"


@pytest.fixture
def store(engine):
    with Session(engine) as s:
        for i in range(1, 9):
            s.add(Leak(leak_id=f"L{i:06d}", latitude=32 + i / 50, longitude=-102 - i / 50, radius_m=10.0,
                       n_detections=1, n_sources=1, source_types="aerial,satellite" if i % 2 else "ogi",
                       first_seen=T.to_pydatetime(), last_seen=T.to_pydatetime(),
                       risk_band="HIGH" if i <= 3 else "LOW", priority_score=50.0 - i, p_real=0.7,
                       est_rate_kg_h=120.0 - i, asset_id=f"A{i}", top_reasons=f"reason {i}",
                       due_by=(T + pd.Timedelta(days=5)).to_pydatetime() if i == 2 else None,
                       due_rule="ooooB_super_emitter:investigate" if i == 2 else None))
            s.add(LeakRank(leak_id=f"L{i:06d}", rank=i))
        s.add(Leak(leak_id="L000099", latitude=32, longitude=-102, radius_m=10.0, n_detections=1, n_sources=1,
                   source_types="aerial", first_seen=T.to_pydatetime(), last_seen=T.to_pydatetime(),
                   status="not_found"))
        s.add(Detection(detection_id="d1", source_type="satellite", source_name="PointSat",
                        observed_at=T.to_pydatetime(), latitude=32.02, longitude=-102.02, location_uncertainty_m=25,
                        rate_kg_h=150.0, leak_id="L000001"))
        s.add(Notification(notification_id="EPA-1", received_at=T.to_pydatetime(), program="ooooB_super_emitter",
                           detection_ref="d1", leak_id="L000001", match_method="reference",
                           recorded_at=T.to_pydatetime()))
        s.commit()
    return engine


@pytest.fixture
def client(store):
    with TestClient(create_app(engine=store)) as c:
        yield c


def test_openapi_docs_describe_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    assert {"/leaks", "/leaks/{leak_id}", "/dispatch", "/validations", "/workorders/status", "/dispatch/lists",
            "/dispatch/lists/{list_id}/approve", "/dispatch/lists/{list_id}/workorders"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_ranked_leaks_with_filters(client):
    r = client.get("/leaks", params={"top": 3}).json()
    assert r["count"] == 8  # ranked only: the not-found leak has no rank
    assert [x["leak_id"] for x in r["leaks"]] == ["L000001", "L000002", "L000003"]
    assert set(LEAK_EXPORT_COLUMNS) <= set(r["leaks"][0])
    assert r["leaks"][1]["due_by"] == "2025-03-08T10:00:00Z" and r["leaks"][1]["overdue"] is True
    assert [x["leak_id"] for x in client.get("/leaks", params={"band": "HIGH", "source_type": "ogi"}).json()["leaks"]] \
        == ["L000002"]
    assert client.get("/leaks", params={"overdue": "true"}).json()["count"] == 1
    assert client.get("/leaks", params={"ranked": "false", "status": "not_found"}).json()["leaks"][0]["leak_id"] \
        == "L000099"
    page = client.get("/leaks", params={"top": 2, "offset": 6}).json()
    assert [x["rank"] for x in page["leaks"]] == [7, 8]
    assert client.get("/leaks", params={"band": "PURPLE"}).status_code == 422
    assert client.get("/leaks", params={"top": -1}).status_code == 422


def test_one_leak_with_deadlines_and_history(client):
    r = client.get("/leaks/L000001").json()
    assert r["leak"]["leak_id"] == "L000001" and r["leak"]["status"] == "open"
    assert r["allowed_events"] == ["dispatch", "visit"]
    assert [d["due_rule"] for d in r["deadlines"]] == ["ooooB_super_emitter:investigate",
                                                       "ooooB_super_emitter:report"]
    assert r["deadlines"][0]["due_by"] == "2025-03-08T10:00:00Z" and "60.5371b" in r["deadlines"][0]["citation"]
    assert r["detections"][0]["detection_id"] == "d1" and r["history"] == []
    assert client.get("/leaks/L404").status_code == 404


def test_dispatch_list_has_the_contract_columns(client):
    r = client.get("/dispatch", params={"top": 5}).json()
    assert r["count"] == 5 and list(r["items"][0]) == list(DISPATCH_EXPORT_COLUMNS)
    assert [x["rank"] for x in r["items"]] == [1, 2, 3, 4, 5]
    routed = client.get("/dispatch", params={"top": 5, "routed": "true"}).json()["items"]
    assert {"crew", "stop", "route_km"} <= set(routed[0]) and {x["leak_id"] for x in routed} == {
        x["leak_id"] for x in r["items"]}


def test_validations_round_trip_with_row_rejects(client):
    rows = [{"leak_id": "L000001", "visited_at": "2025-03-04T10:00:00Z", "outcome": "confirmed",
             "measured_rate_kg_h": 130, "component": "thief hatch", "crew": "crew-1", "found_by": "ogi"},
            {"leak_id": "L404", "visited_at": "2025-03-04T10:00:00Z", "outcome": "confirmed"},
            {"leak_id": "L000002", "visited_at": "yesterday", "outcome": "found"},
            {"leak_id": "L000003", "visited_at": "2025-03-04T11:00:00Z", "outcome": "not_found",
             "repaired_at": "2025-03-04T12:00:00Z"}]
    r = client.post("/validations", json=rows, headers={"X-MLPE-User": "lead-7"})
    assert r.status_code == 200
    body = r.json()
    assert (body["rows"], body["recorded"], body["rejected"]) == (4, 1, 3)
    assert [(x["index"], x["column"]) for x in body["rejects"]] == [(1, "leak_id"), (2, "visited_at"),
                                                                    (2, "outcome"), (3, "repaired_at")]
    assert "not found cannot be repaired" in body["rejects"][-1]["reason"]
    leak = client.get("/leaks/L000001").json()
    assert leak["leak"]["status"] == "confirmed"
    assert leak["validations"][0]["recorded_by"] == "lead-7" and leak["validations"][0]["measured_rate_kg_h"] == 130
    assert leak["history"][0]["event"] == "visit"
    assert [d["rule"] for d in leak["deadlines"]] == ["ooooB_fugitive_ogi", "ooooB_fugitive_ogi"]
    again = client.post("/validations", json=rows[:1]).json()
    assert (again["recorded"], again["duplicates"]) == (0, 1)
    illegal = client.post("/validations", json=[{"leak_id": "L000001", "visited_at": "2025-03-05T10:00:00Z",
                                                 "outcome": "not_found"}]).json()
    assert illegal["rejected"] == 1 and "record its repair" in illegal["rejects"][0]["reason"]
    assert client.post("/validations", json=[]).status_code == 422


def test_plan_approve_work_orders_and_status_back(client):
    jsonschema = pytest.importorskip("jsonschema")
    created = client.post("/dispatch/lists", json={"top": 6, "plan_date": "2025-03-05"},
                          headers={"X-MLPE-User": "planner"})
    assert created.status_code == 201
    lid = created.json()["list_id"]
    assert len(created.json()["items"]) == 6
    assert client.get(f"/dispatch/lists/{lid}").json()["list"]["status"] == "draft"
    ok = client.post(f"/dispatch/lists/{lid}/approve", json={"note": "go"}, headers={"X-MLPE-User": "boss"})
    assert ok.status_code == 200 and ok.json()["approved_by"] == "boss"
    again = client.post(f"/dispatch/lists/{lid}/approve", headers={"X-MLPE-User": "boss"})  # no longer a draft
    assert again.status_code == 409 and "only a draft can be approved" in again.json()["detail"]
    doc = client.get(f"/dispatch/lists/{lid}/workorders").json()
    jsonschema.validate(doc, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert doc["status"] == "approved" and len(doc["work_orders"]) == 6
    wo = next(w["work_order_id"] for w in doc["work_orders"] if w["leak_id"] == "L000004")
    r = client.post("/workorders/status", json={"work_order_id": wo, "status": "repaired",
                                                "at": "2025-03-05T15:00:00Z", "crew": "crew-2"})
    assert r.status_code == 200 and r.json()["leak_status"] == "repaired"
    assert client.get("/leaks/L000004").json()["leak"]["repaired_at"] == "2025-03-05T15:00:00Z"
    assert client.post("/workorders/status", json={"work_order_id": wo, "status": "repaired"}).status_code == 409
    assert client.post("/workorders/status", json={"leak_id": "L000005", "status": "closed"}).status_code == 409
    assert client.post("/workorders/status", json={"work_order_id": "MLPE-00009-X", "status": "closed"}
                       ).status_code == 404
    assert client.post("/workorders/status", json={"leak_id": "L000005", "status": "fixed"}).status_code == 422
    assert client.post("/workorders/status", json={"leak_id": "L000005", "status": "closed", "at": "soon"}
                       ).status_code == 422
    closed = client.post("/workorders/status", json={"work_order_id": wo, "status": "closed"}).json()
    assert closed["leak_status"] == "closed"
    assert [e["to_status"] for e in client.get("/leaks/L000004/history").json()["events"]] == [
        "dispatched", "confirmed", "repaired", "closed"]
    assert client.get("/dispatch/lists").json()["lists"][0]["id"] == lid


def test_once_users_exist_requests_need_credentials_and_roles(client, store):
    with Session(store) as s:
        auth.add_user(s, "setup", "root", "admin", "password-1")
        auth.add_user(s, "root", "lee", "field_lead", "password-2")
        auth.add_user(s, "root", "ann", "analyst", "password-3")
    assert client.get("/leaks").status_code == 401
    assert client.get("/leaks", auth=("ann", "password-3")).status_code == 401  # Basic only at /login
    assert client.post("/login", auth=("lee", "wrong-password")).status_code == 401
    ann = {"Authorization": "Bearer " + client.post("/login", auth=("ann", "password-3")).json()["token"]}
    lee_login = client.post("/login", auth=("lee", "password-2")).json()
    assert lee_login["role"] == "field_lead" and lee_login["expires_at"]
    lee = {"Authorization": "Bearer " + lee_login["token"]}
    assert client.get("/leaks", headers=ann).status_code == 200
    row = [{"leak_id": "L000006", "visited_at": "2025-03-04T10:00:00Z", "outcome": "not_found"}]
    assert client.post("/validations", json=row, headers=ann).status_code == 403
    r = client.post("/validations", json=row, headers={**lee, "X-MLPE-User": "someone-else"})
    assert r.status_code == 200 and r.json()["recorded"] == 1
    assert client.get("/leaks/L000006", headers=lee).json()["validations"][0]["recorded_by"] == "lee"
    assert client.get("/health").status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not shutil.which("mlpe") and not (Path(sys.prefix) / "bin" / "mlpe").exists(),
                    reason="the `mlpe` console script is not installed")
def test_mlpe_serve_answers_on_the_given_port(tmp_path, store):
    port = _free_port()
    exe = shutil.which("mlpe") or str(Path(sys.prefix) / "bin" / "mlpe")
    proc = subprocess.Popen([exe, "--db", str(tmp_path / "api.db"), "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("mlpe serve did not answer within 60 s")
        assert r.json()["status"] == "ok"
        got = httpx.get(f"http://127.0.0.1:{port}/leaks").json()
        assert (got["count"], got["offset"], got["leaks"]) == (0, 0, [])
        assert httpx.get(f"http://127.0.0.1:{port}/leaks", headers={"X-MLPE-User": "system"}).status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)
