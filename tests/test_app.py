"""Every page of the app through Streamlit's AppTest, on a small filled store (and on an empty one)."""

from __future__ import annotations

import ast
import json
from datetime import date

import pytest
from conftest_app import MAIN, ROOT, fill_store
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from mlpe_core import store
from mlpe_core.db import get_engine
from mlpe_core.dispatch import crew_capacity
from mlpe_core.schema import DISPATCH_EXPORT_COLUMNS

PAGES = ("map", "leak", "rankings", "dispatch", "validation", "upload", "model")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "mlpe.db"
    fill_store(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPE_DB", str(path))
        yield path


def frames(db, name: str):
    engine = get_engine(str(db))
    try:
        with Session(engine) as s:
            return getattr(store, f"{name}_frame")(s)
    finally:
        engine.dispose()


def open_page(name: str, **query) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page(f"../pages/{name}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def table(at: AppTest, *columns: str):
    """The first st.dataframe holding these columns (AppTest does not expose keys of read-only tables)."""
    for d in at.dataframe:
        if set(columns) <= set(d.value.columns):
            return d.value
    raise AssertionError(f"no table with columns {columns}")


def texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in getattr(at, kind))


def test_map_shows_open_leaks_and_opens_one(db):
    at = open_page("map")
    assert at.title[0].value == "Leak map"
    leaks = frames(db, "leaks")
    n_open = int(leaks["status"].isin(["open", "dispatched"]).sum())
    assert at.metric[0].label == "Leaks shown" and at.metric[0].value == f"{n_open:,}"
    assert len(at.get("deck_gl_json_chart")) == 1
    pick = leaks[leaks["status"] == "open"]["leak_id"].iloc[0]
    at.selectbox(key="map_pick").set_value(pick).run()
    assert pick in texts(at, "subheader")
    layers = json.loads(at.get("deck_gl_json_chart")[0].proto.json)["layers"]
    assert [ly["id"] for ly in layers][-2:] == ["leaks", "focus"]  # a ring around the picked leak
    assert len(layers[-2]["data"]) == n_open
    at.button(key="map_open").click().run()
    assert not at.exception
    assert at.title[0].value == f"Leak {pick}"


def test_leak_page_from_url(db):
    leaks = frames(db, "leaks")
    lid = leaks.loc[leaks["rank"] == 2, "leak_id"].iloc[0]
    at = open_page("leak", leak=lid)
    assert at.title[0].value == f"Leak {lid}"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rank"] == "#2"
    assert metrics["P(real)"].endswith("%") and metrics["Estimated rate"].endswith("kg/h")
    assert len(at.get("plotly_chart")) == 2  # contributions waterfall and detections timeline
    n_det = int(leaks.loc[leaks["leak_id"] == lid, "n_detections"].iloc[0])
    assert len(table(at, "detection_id", "observed_at")) == n_det


def test_rankings_table_filters_and_search(db):
    at = open_page("rankings")
    df = at.dataframe(key="rank_table").value
    assert len(df) > 0 and "leak_id" in df.columns
    assert df["rank"].tolist() == sorted(df["rank"].tolist())
    assert set(df["status"]) <= {"open", "dispatched"}
    one = df["leak_id"].iloc[-1]
    at.text_input(key="rank_search").set_value(one.lower()).run()
    assert at.dataframe(key="rank_table").value["leak_id"].tolist() == [one]


def test_filters_come_from_and_go_to_the_url(db):
    at = open_page("rankings", band="LOW", min_rate="1.5")
    df = at.dataframe(key="rank_table").value
    assert set(df["risk_band"]) <= {"LOW"} and (df["est_rate_kg_h"] >= 1.5).all()
    at.multiselect(key="f_status").set_value([]).run()  # empty = every status
    assert "status" not in at.query_params or at.query_params["status"] in ("", [""])
    assert len(at.dataframe(key="rank_table").value) >= len(df)
    at.multiselect(key="f_band").set_value(["HIGH", "MEDIUM"]).run()
    assert at.query_params["band"] in ("HIGH,MEDIUM", ["HIGH,MEDIUM"])


def test_dispatch_list_matches_contract(db):
    at = open_page("dispatch")
    df = table(at, *DISPATCH_EXPORT_COLUMNS)
    assert list(df.columns) == list(DISPATCH_EXPORT_COLUMNS)
    assert 0 < len(df) <= crew_capacity() and df["rank"].tolist() == list(range(1, len(df) + 1))
    assert len(at.get("download_button")) == 3
    at.number_input(key="dispatch_k").set_value(3).run()
    assert len(table(at, *DISPATCH_EXPORT_COLUMNS)) == min(3, len(df))


def test_upload_page_without_files_says_what_to_do(db):
    at = open_page("upload")
    assert "Choose one or more detection files" in texts(at, "info")
    assert table(at, "file_name", "sha256")["file_name"].str.startswith("demo").any()


def test_model_page_is_honest_then_trains(db):
    at = open_page("model")
    assert at.title[0].value == "Model & audit"
    assert "prior from instrument knowledge" in texts(at, "warning")
    assert len(table(at, "actor", "action")) > 0
    n_models = len(frames(db, "models"))
    at.button(key="train").click().run()
    assert not at.exception
    decision = texts(at, "success") + texts(at, "info")
    assert "promoted" in decision or "not trained" in decision or "kept" in decision
    if "not trained" not in decision:
        assert len(frames(db, "models")) == n_models + 1


def test_validation_form_records_a_visit(db):
    at = open_page("validation")
    before = len(frames(db, "validations"))
    at.button[0].click().run()  # no outcome chosen: refused, nothing written
    assert "outcome" in texts(at, "error") and len(frames(db, "validations")) == before
    lid = at.selectbox(key="val_leak").value
    at.radio(key="val_outcome").set_value("not_found")
    at.text_input(key="val_crew").set_value("crew-test")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception and not at.error
    assert "Recorded not found" in texts(at, "success")
    vals = frames(db, "validations")
    assert len(vals) == before + 1 and vals["leak_id"].iloc[-1] == lid and vals["crew"].iloc[-1] == "crew-test"
    leaks = frames(db, "leaks")
    assert leaks.loc[leaks["leak_id"] == lid, "status"].iloc[0] == "not_found"


def test_validation_form_records_a_repair(db):
    at = open_page("validation")
    lid = at.selectbox(key="val_leak").value
    at.radio(key="val_outcome").set_value("confirmed")
    at.number_input(key="val_rate").set_value(3.5)
    at.date_input(key="val_day").set_value(date(2026, 10, 1))
    at.date_input(key="val_repaired").set_value(date(2026, 10, 2))
    at.button[0].click().run()
    assert not at.exception and not at.error, texts(at, "error")
    vals = frames(db, "validations")
    row = vals.iloc[-1]
    assert row["leak_id"] == lid and row["measured_rate_kg_h"] == 3.5 and row["repaired_at"].day == 2
    leaks = frames(db, "leaks")
    assert leaks.loc[leaks["leak_id"] == lid, "status"].iloc[0] == "repaired"


def test_validation_form_shows_a_refused_move(db):
    """Confirmed leaking, then 'not found' for the same leak: the lifecycle refuses it and the page says why."""
    at = open_page("validation")
    lid = at.selectbox(key="val_leak").value
    at.radio(key="val_outcome").set_value("confirmed")
    at.button[0].click().run()
    assert "Recorded confirmed" in texts(at, "success")
    n = len(frames(db, "validations"))
    at.selectbox(key="val_leak").set_value(lid)
    at.radio(key="val_outcome").set_value("not_found")
    at.date_input(key="val_day").set_value(date(2026, 12, 1))
    at.button[0].click().run()
    assert not at.exception and at.error and lid in texts(at, "error")
    assert len(frames(db, "validations")) == n


def test_validation_csv_import_reports_rejects(db):
    at = open_page("validation")
    lid = at.selectbox(key="val_leak").value
    csv = f"leak_id,visited_at,outcome\n{lid},2026-01-02T10:00:00Z,confirmed\nL999999,2026-01-02T11:00:00Z,confirmed\n"
    at.file_uploader(key="val_file").set_value(("visits.csv", csv.encode(), "text/csv")).run()
    at.button(key="val_import").click().run()
    assert not at.exception
    assert "1 recorded" in texts(at, "success") and "1 rejected" in texts(at, "success")
    rej = table(at, "row", "column", "reason")
    assert rej[["row", "column"]].values.tolist() == [[3, "leak_id"]]


def test_upload_ingests_rejects_and_scores(db):
    at = open_page("upload")
    batches = len(frames(db, "batches"))
    good = ("detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h\n"
            "t1,aerial,TestPlane,2026-09-01T10:00:00Z,31.95,-102.55,12\n"
            "t2,aerial,TestPlane,2026-09-01T10:05:00Z,31.9501,-102.5501,14\n"
            "t3,aerial,TestPlane,2026-09-01T10:10:00Z,95,-102.55,9\n")
    at.file_uploader(key="up_files").set_value([("plane.csv", good.encode(), "text/csv"),
                                                ("junk.csv", b"foo,bar\n1,2\n", "text/csv")]).run()
    at.button(key="up_go").click().run()
    assert not at.exception
    assert "2 accepted, 1 rejected" in texts(at, "success")
    assert "junk.csv" in texts(at, "error")  # the IngestError names the file
    rej = table(at, "row", "column", "value", "reason")
    assert rej[["row", "column"]].values.tolist() == [[4, "latitude"]]
    assert len(frames(db, "batches")) == batches + 1  # the bad file wrote nothing
    at.button(key="up_fuse").click().run()
    assert not at.exception and "ranked" in texts(at, "success")
    dets = frames(db, "detections")
    assert dets.loc[dets["source_name"] == "TestPlane", "leak_id"].notna().all()


def test_no_page_writes_a_bare_expression():
    """Streamlit "magic" renders any bare non-call expression (e.g. ``a() if x else b()`` shows a DeltaGenerator)."""
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "app").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call | ast.Constant):
                pytest.fail(f"{path.name}:{node.lineno}: bare expression would be drawn by Streamlit magic")


@pytest.mark.parametrize("name", PAGES)
def test_pages_on_an_empty_store(tmp_path, monkeypatch, name):
    """Run a page without the entry point (which would load the demo) against an empty store."""
    monkeypatch.setenv("MLPE_DB", str(tmp_path / "empty.db"))
    at = AppTest.from_string(f"import sys, runpy\nsys.path.insert(0, {str(ROOT)!r})\n"
                             f"runpy.run_path({str(ROOT / 'pages' / f'{name}.py')!r})\n", default_timeout=30).run()
    assert not at.exception, [e.message for e in at.exception]
    if name in ("map", "leak", "rankings", "validation"):
        assert "mlpe demo" in texts(at, "info")


def test_entry_point_loads_the_demo_into_an_empty_store(tmp_path, monkeypatch):
    db = tmp_path / "fresh.db"
    monkeypatch.setenv("MLPE_DB", str(db))
    at = AppTest.from_file(str(MAIN), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Leak map"
    assert len(frames(db, "leaks")) > 0
