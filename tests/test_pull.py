"""The pull connector against a stub catalogue on loopback (never the network): a Carbon-Mapper-shaped JSON plume
list with limit/offset paging and a ``since`` watermark, a STAC item search with POST ``next`` links, retries with
back-off on 503s, and a failure that is recorded on the connector without moving its watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from live_helpers import StubCatalogue
from sqlmodel import Session

from mlpe_core import desk, store
from mlpe_core.connectors import PullConnector, PullError, fetch, load_watch_config
from mlpe_core.settings import ConfigFileError

T0 = datetime(2025, 5, 1, tzinfo=UTC)


def _plume(i: int, t: datetime) -> dict:
    return {"plume_id": f"tan{i:05d}-A", "plume_latitude": 31.3 + i * 1e-3, "plume_longitude": -102.1,
            "datetime": t.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "emission_auto": 100 + i,
            "emission_uncertainty_auto": 20.0, "platform": "Tanager", "instrument": "tan", "gas": "CH4"}


def _item(i: int, t: datetime) -> dict:
    return {"type": "Feature", "id": f"item-{i}", "collection": "plumes",
            "geometry": {"type": "Polygon", "coordinates": [[[-102.0, 32.0 + i * 1e-3], [-101.99, 32.0 + i * 1e-3],
                                                             [-101.99, 32.01 + i * 1e-3], [-102.0, 32.0 + i * 1e-3]]]},
            "properties": {"datetime": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "platform": "EMIT", "emission_rate": 50 + i,
                           "nested": {"a": 1}}}


def _conn(url: str, **kw) -> PullConnector:
    return PullConnector.model_validate({"name": "cm", "kind": "plumes_json", "url": f"{url}/plumes", "every": "6h",
                                         "page_size": 100, "backoff_s": 0, **kw})


@pytest.fixture
def db_session(tmp_path):
    eng = desk.engine(str(tmp_path / "m.db"))
    with Session(eng) as s:
        yield s
    eng.dispose()


def test_plume_list_pages_and_the_watermark_moves(db_session):
    s = db_session
    plumes = [_plume(i, T0 + timedelta(hours=i)) for i in range(250)]
    with StubCatalogue(plumes) as cat:
        conn = _conn(cat.url)
        r = desk.pull(s, "ana", conn)
        assert (r["records"], r["pages"], r["accepted"]) == (250, 3, 250)
        st = store.connectors.connector_state(s, "pull:cm")
        assert st.watermark.replace(tzinfo=UTC) == T0 + timedelta(hours=249) and st.n_loaded == 250
        plumes += [_plume(1000 + i, T0 + timedelta(hours=300 + i)) for i in range(10)]
        cat.log.clear()
        r2 = desk.pull(s, "ana", conn)
        assert "since=2025-05-11T09%3A00%3A00Z" in cat.log[0]  # asked from the watermark, not from the start
        assert r2["records"] == 11 and r2["accepted"] == 10 and r2["duplicate"] == 1  # the one at the watermark
        assert store.counts(s)["detections"] == 260
        d = desk.detections(s)
        assert set(d["source_type"]) == {"satellite"} and d["rate_kg_h"].max() == 100 + 1009
        pulls = desk.runs(s, kind="pull")
        assert len(pulls) == 2 and dict(pulls["stages"].iloc[0])["fetch"] > 0 and pulls["n_out"].tolist() == [10, 250]
        r3 = desk.pull(s, "ana", conn)  # nothing newer: nothing loaded, recorded as such
        assert r3["accepted"] == 0 and desk.runs(s, 1)["outcome"].iloc[0] == "nothing"


def test_retries_with_back_off_then_succeeds(db_session):
    waits: list[float] = []
    with StubCatalogue([_plume(1, T0)], fail=2) as cat:
        res = fetch(_conn(cat.url, retries=3, backoff_s=0.5), None, sleep=waits.append)
    assert len(res.records) == 1 and res.retries == 2
    assert waits == [0.0, 0.0]  # Retry-After: 0 from the server wins over the 0.5 s, 1 s back-off


def test_back_off_doubles_without_retry_after():
    from mlpe_core.connectors.pull import request_json

    waits: list[float] = []
    conn = _conn("http://127.0.0.1:9", retries=3, backoff_s=0.5, timeout_s=1)  # port 9 (discard): refused
    with pytest.raises(PullError, match="failed after 4 tries"):
        request_json("http://127.0.0.1:9/plumes", conn, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]


def test_a_failed_pull_is_recorded_and_keeps_its_watermark(db_session):
    s = db_session
    with StubCatalogue([_plume(1, T0)]) as cat:
        desk.pull(s, "ana", _conn(cat.url))
    before = store.connectors.connector_state(s, "pull:cm").watermark
    with StubCatalogue([_plume(2, T0 + timedelta(days=1))], fail=10) as cat, pytest.raises(PullError, match="503"):
        desk.pull(s, "ana", _conn(cat.url, retries=1))
    st = store.connectors.connector_state(s, "pull:cm")
    assert st.watermark == before and st.n_failed == 1 and "503" in st.last_error
    assert desk.runs(s, 1)["outcome"].iloc[0] == "failed"
    assert 'mlpe_connector_failures_total{connector="pull:cm"} 1' in desk.metrics_text(s)


def test_a_404_is_not_retried():
    waits: list[float] = []
    with StubCatalogue([]) as cat, pytest.raises(PullError, match="404"):
        fetch(_conn(cat.url).model_copy(update={"url": f"{cat.url}/nothing"}), None, sleep=waits.append)
    assert waits == []


def test_stac_search_follows_next_links_and_maps_items(db_session):
    s = db_session
    items = [_item(i, T0 + timedelta(minutes=i)) for i in range(25)]
    with StubCatalogue([], items) as cat:
        conn = PullConnector.model_validate({"name": "emit", "kind": "stac", "url": f"{cat.url}/stac", "every": "1d",
                                             "page_size": 10, "params": {"collections": ["plumes"]}})
        res = fetch(conn, T0 + timedelta(minutes=5))
        assert res.pages == 2 and len(res.records) == 20
        assert res.records[0]["source_name"] == "EMIT" and res.records[0]["rate_kg_h"] == 55
        r = desk.pull(s, "ana", conn.model_copy(update={"since": T0}))
    assert r["accepted"] == 25
    d = desk.detections(s)
    assert d["detection_id"].str.startswith("item-").all() and (d["latitude"] > 32).all()


def test_watch_file_is_validated_naming_the_file_and_field(tmp_path):
    bad = tmp_path / "watch.yaml"
    bad.write_text("connectors:\n  - {name: cm, kind: plumes_json, url: 'ftp://x', every: 5 minutes}\n")
    with pytest.raises(ConfigFileError) as e:
        load_watch_config(bad)
    assert str(bad) in str(e.value) and "connectors.0.url" in str(e.value) and "connectors.0.every" in str(e.value)
    bad.write_text("watch: {settle: 2}\n")
    with pytest.raises(ConfigFileError, match=r"watch\.settle: Extra inputs are not permitted"):
        load_watch_config(bad)
    bad.write_text("connectors: [\n")
    with pytest.raises(ConfigFileError, match="not valid YAML"):
        load_watch_config(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("watch: {settle_s: 0.5}\nconnectors:\n  - {name: cm, kind: stac, url: 'http://h/stac', every: 15m}\n")
    cfg = load_watch_config(ok)
    assert cfg.watch.settle_s == 0.5 and cfg.connectors[0].every == 900
