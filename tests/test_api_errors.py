"""The API's refusals and formats on a filled store: a refused NaN never becomes a 500, a body that is not JSON is a
400 saying where, JSON bodies have one size limit (413) and one content type (415), a 304 only for a leak that
exists, 404 messages as written, one time format, the contract's rounding, the API's own field names in its
errors, and unknown query parameters and body fields refused."""

from __future__ import annotations

import json
import re

import pytest
from conftest_app import copy_store
from fastapi.testclient import TestClient

from mlpe_core import desk
from mlpe_core.api import create_app
from mlpe_core.store.db import get_engine

J = {"Content-Type": "application/json"}
Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def api(filled_db, tmp_path):
    eng = get_engine(str(copy_store(filled_db, tmp_path / "mlpe.db")))
    with desk.open_session(eng) as s, desk.recorded(s, "score", "test"):
        pass  # a run for /health to report
    with TestClient(create_app(engine=eng), raise_server_exceptions=False) as c:
        yield c
    eng.dispose()


def a_leak(api) -> str:
    return api.get("/leaks", params={"limit": 1}).json()["leaks"][0]["leak_id"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/tokens", '{"username":"ana","label":"x","expires_days":NaN}', "expires_days"),
    ("/dispatch/lists", '{"top":NaN}', "top"),
    ("/alerts/1/snooze", '{"hours":Infinity,"reason":"x"}', "hours"),
    ("/validations", '[{"leak_id":NaN,"outcome":"confirmed"}]', "leak_id"),
    ("/leaks/L000001/override", '{"rank":-Infinity,"reason":"x"}', "rank"),
])
def test_a_refused_nan_or_infinity_is_a_json_422_not_a_500(api, path, body, field):
    r = api.post(path, content=body, headers=J)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]
    assert r.json()["errors"][0]["input"] in ("NaN", "Infinity", "-Infinity")


def test_a_nan_measured_rate_is_refused_naming_the_field(api):
    row = {"leak_id": a_leak(api), "visited_at": "2025-03-04T10:00:00Z", "outcome": "confirmed"}
    for value in ("NaN", "Infinity"):
        r = api.post("/validations", content=json.dumps([row])[:-2] + f', "measured_rate_kg_h": {value}}}]',
                     headers=J)
        assert r.status_code == 422, r.text
        assert "measured_rate_kg_h" in r.json()["detail"] and "finite" in r.json()["detail"]


def test_a_refused_large_body_is_not_echoed_back(api):
    rows = [{"leak_id": "L000001", "notes": "x" * 50}] * 10_001  # one over the 10,000 rows a request may carry
    r = api.post("/validations", json=rows)
    assert r.status_code == 422, r.text[:300]
    assert len(r.content) < 5_000
    r = api.post("/validations", json=[{"leak_id": "L1", "notes": 5}] * 200)  # 200 errors: at most 50 listed
    assert r.status_code == 422 and len(r.json()["errors"]) <= 50 and "199 more" in r.json()["detail"]


@pytest.mark.parametrize(("path", "body"), [("/dispatch/lists", '{"top":\n  5,,}'), ("/validations", '[\n{"x": }]'),
                                            ("/tokens", '{\n"username" "ana"}'),
                                            ("/workorders/status", '{"status": "done"\n\n')])
def test_a_body_that_is_not_json_is_a_400_saying_where(api, path, body):
    r = api.post(path, content=body, headers=J)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail.startswith("the body is not valid JSON") and re.search(r"line \d+, column \d+", detail)
    assert "line 1," not in detail


def test_json_bodies_have_one_size_limit_and_one_content_type(api, monkeypatch):
    monkeypatch.setenv("MLPE_MAX_JSON_BYTES", "1000")
    big = json.dumps([{"leak_id": "L000001", "notes": "x" * 2000}])
    r = api.post("/validations", content=big, headers=J)
    assert r.status_code == 413 and "MLPE_MAX_JSON_BYTES" in r.json()["detail"] and "1,000 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield big[:600].encode()
        yield big[600:].encode()

    assert api.post("/validations", content=chunks(), headers=J).status_code == 413
    monkeypatch.delenv("MLPE_MAX_JSON_BYTES")
    r = api.post("/validations", content='[{"leak_id": "L000001"}]', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"] and "text/plain" in r.json()["detail"]
    assert api.post("/dispatch/lists/1/approve").status_code != 415  # no body: nothing to type


def test_a_304_only_for_a_leak_that_exists(api):
    lid = a_leak(api)
    tag = api.get(f"/leaks/{lid}").headers["etag"]
    assert api.get(f"/leaks/{lid}", headers={"If-None-Match": tag}).status_code == 304
    for sent in (tag, "*"):
        for _ in range(2):  # the second time too (the short path must not have remembered it)
            r = api.get("/leaks/ZZZ9", headers={"If-None-Match": sent})
            assert r.status_code == 404 and r.json()["detail"] == "no leak 'ZZZ9'"


def test_not_found_messages_keep_their_quotes(api):
    assert api.get("/leaks/NOPE").json()["detail"] == "no leak 'NOPE'"
    assert api.get("/leaks/NOPE/history").json()["detail"] == "no leak 'NOPE'"
    assert api.get("/sites/NOPE").json()["detail"].endswith("'NOPE'")
    assert api.get("/operators/NOPE").json()["detail"].endswith("'NOPE'")
    r = api.post("/workorders/status", json={"work_order_id": "MLPE-NOPE", "status": "in_progress"})
    assert r.status_code == 404 and r.json()["detail"].endswith("'MLPE-NOPE'"), r.text
    r = api.post("/tokens", json={"username": "nobody"})
    assert r.status_code == 404 and r.json()["detail"].endswith("'nobody'"), r.text


def test_every_time_is_iso_utc_z_to_the_second(api):
    lid = a_leak(api)
    op = api.get("/operators").json()["operators"][0]["operator"]
    asset = api.get("/sites").json()["sites"][0]["asset_id"]
    times = [api.get("/leaks").json()["as_of"], api.get(f"/leaks/{lid}").json()["as_of"],
             api.get("/obligations").json()["as_of"], api.get("/sites").json()["as_of"],
             api.get(f"/sites/{asset}").json()["as_of"], api.get("/operators").json()["as_of"],
             api.get(f"/operators/{op}").json()["as_of"], api.get("/health").json()["last_run"]["ended_at"],
             *(api.get("/emissions").json()[k] for k in ("start", "end"))]
    assert all(Z.match(t) for t in times), times


def decimals(x: float) -> int:
    return len(repr(x).split(".")[1]) if "." in repr(x) and "e" not in repr(x) else 0


def test_numbers_are_rounded_as_the_contract_and_counts_are_integers(api):
    wo = api.get("/dispatch/workorders").json()["work_orders"]
    assert wo
    for w in wo:
        assert decimals(w["location"]["latitude"]) <= 6 and decimals(w["location"]["longitude"]) <= 6
        assert decimals(w["p_real"]) <= 4 and decimals(w["priority_score"]) <= 3
    plain = {r["leak_id"]: r for r in api.get("/dispatch").json()["items"]}
    routed = {r["leak_id"]: r for r in api.get("/dispatch", params={"routed": "true"}).json()["items"]}
    for lid in set(plain) & set(routed):
        assert routed[lid]["p_real"] == plain[lid]["p_real"]
        assert routed[lid]["latitude"] == plain[lid]["latitude"]
    leaks = {r["leak_id"]: r for r in api.get("/leaks", params={"limit": 1000}).json()["leaks"]}
    for lid in set(plain) & set(leaks):
        assert leaks[lid]["p_real"] == plain[lid]["p_real"]
    op = api.get("/operators").json()["operators"][0]["operator"]
    rep = api.get("/report", params={"operator": op, "format": "json"}).json()
    assert isinstance(rep["meta"]["n_leaks"], int)
    for row in rep["totals"]:
        assert isinstance(row["n_leaks"], int) and isinstance(row["n_sites"], int)
        assert row["tonnes"] is None or decimals(row["tonnes"]) <= 10


def test_errors_name_the_api_fields_not_command_line_flags(api):
    r = api.post("/dispatch/lists", json={"plan_date": "tomorrow"})
    assert r.status_code == 422 and r.json()["detail"].startswith("plan_date 'tomorrow'"), r.text
    r = api.post("/dispatch/lists", json={"top": 999})
    assert r.status_code == 422 and r.json()["detail"].startswith("top must be"), r.text
    r = api.get("/report", params={"operator": "x", "from": "bad"})
    assert r.status_code == 422 and r.json()["detail"].startswith("from/to must be"), r.text
    r = api.get("/report", params={"operator": "x", "from": "2025-02-01", "to": "2025-01-01"})
    assert r.status_code == 422 and "--" not in r.json()["detail"], r.text


@pytest.mark.parametrize(("path", "bad"), [("/leaks", "lmit"), ("/dispatch", "routd"), ("/alerts", "stat"),
                                           ("/runs", "limt"), ("/sites", "x"), ("/dispatch/lists", "page")])
def test_unknown_query_parameters_are_refused_naming_the_accepted_ones(api, path, bad):
    r = api.get(path, params={bad: "5"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert f"'{bad}'" in detail and "accepts" in detail
    if path == "/leaks":
        assert "limit" in detail and "offset" in detail


def test_unknown_body_fields_are_refused(api):
    r = api.post("/dispatch/lists", json={"top": 5, "bogus": 1})
    assert r.status_code == 422 and "bogus" in r.json()["detail"]
    r = api.post("/tokens", json={"username": "ana", "role": "admin"})
    assert r.status_code == 422 and "role" in r.json()["detail"]
    r = api.post("/validations", json=[{"leak_id": "L000001", "outcome": "confirmed", "mesured_rate_kg_h": 3}])
    assert r.status_code == 422 and "mesured_rate_kg_h" in r.json()["detail"]
