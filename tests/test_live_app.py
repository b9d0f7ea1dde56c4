"""The Runs and Alerts pages and the sidebar's live corner through Streamlit's AppTest (issue 18)."""

from __future__ import annotations

import pytest
from browser_checks import raw_values, table_texts
from conftest_app import MAIN, fill_store
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from mlpe_core import desk
from mlpe_core.store.db import get_engine


@pytest.fixture(scope="module")
def live_db(tmp_path_factory):
    """A small filled store with recorded runs and open alerts."""
    path = tmp_path_factory.mktemp("live_app") / "mlpe.db"
    fill_store(path)
    eng = get_engine(str(path))
    with Session(eng) as s:
        desk.fuse(s, "ana")
        desk.score(s, "ana")
        desk.check_alerts(s, "ana")
    eng.dispose()
    return path


def _open(name: str, monkeypatch, db) -> AppTest:
    monkeypatch.setenv("MLPE_DB", str(db))
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.run()
    at.switch_page(f"../pages/{name}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _with(db, fn):
    eng = get_engine(str(db))
    try:
        with Session(eng) as s:
            return fn(s)
    finally:
        eng.dispose()


@pytest.mark.parametrize("name", ["runs", "alerts"])
def test_their_tables_read_as_words(live_db, monkeypatch, name):
    """Headers and text cells of every table, hidden columns and rows out of view included (tests/test_app.py has
    the same for the other pages)."""
    at = _open(name, monkeypatch, live_db)
    assert at.dataframe, name
    assert not raw_values(table_texts(at.dataframe)), name


def test_runs_page_lists_runs_with_their_stages(live_db, monkeypatch):
    at = _open("runs", monkeypatch, live_db)
    assert at.title[0].value == "Runs"
    table = next(d for d in at.dataframe if "stages" in d.value.columns)
    kinds = set(table.value["kind"])
    assert {"Fusion", "Scoring", "Alert check"} <= kinds  # kinds in words
    fuse = table.value[table.value["kind"] == "Fusion"].iloc[0]
    assert "Cluster" in fuse["stages"] and "Write" in fuse["stages"]  # per-stage timings as recorded
    assert set(table.value["outcome"]) <= {"Done", "Nothing new", "Failed"}
    assert not at.json  # the configuration snapshot reads as a table, not raw JSON
    conf = next(d for d in at.dataframe if "variable" in d.value.columns).value
    assert list(conf.columns) == ["setting", "variable", "value"] and conf["variable"].str.startswith("MLPE_").all()
    assert not conf["value"].isin(["None", "nan", "null"]).any() and "not set" in set(conf["value"])


def test_alerts_page_acknowledges_with_a_reason(live_db, monkeypatch, tmp_path):
    import shutil

    db = tmp_path / "copy.db"
    shutil.copy(live_db, db)
    n_before = _with(db, desk.open_alert_count)
    assert n_before > 0
    at = _open("alerts", monkeypatch, db)
    table = next(d for d in at.dataframe if "title" in d.value.columns)
    first = int(table.value["id"].iloc[0])
    at.selectbox(key="al_pick").set_value(first).run()
    at.button(key="al_ack").click().run()  # no reason: refused, nothing changes
    assert _with(db, desk.open_alert_count) == n_before
    assert any("needs a reason" in e.value for e in at.error)
    at.text_input(key="al_reason").input("crew on site today").run()
    at.button(key="al_ack").click().run()
    assert not at.exception
    assert _with(db, desk.open_alert_count) == n_before - 1
    trail = _with(db, lambda s: desk.audit_trail(s, action="alert_ack"))
    assert len(trail) == 1 and "crew on site today" in trail["detail"].iloc[0]


def test_sidebar_counts_open_alerts_and_says_what_is_new(live_db, monkeypatch, tmp_path):
    import shutil

    db = tmp_path / "copy.db"
    shutil.copy(live_db, db)
    at = _open("map", monkeypatch, db)
    n = _with(db, desk.open_alert_count)
    links = [p for p in at.sidebar if type(p).__name__ == "PageLink"]
    assert any(f"{n} open alert" in p.label for p in links), [p.label for p in links]
    before = _with(db, desk.live_stamp)
    _with(db, lambda s: desk.score(s, "ana"))  # a new run lands while the page is open
    first = int(_with(db, lambda s: desk.alerts_inbox(s)["id"].iloc[0]))
    _with(db, lambda s: desk.acknowledge_alert(s, "ana", first, "handled"))
    news = _with(db, lambda s: desk.changes_since(s, before))
    assert news["runs"] == 1 and news["kinds"] == {"score": 1}
    assert news["message"].startswith("1 new run since you opened this page (1 score)")
    at.run()  # AppTest has no timer (the browser test watches the fragment tick): a full run shows the new count
    links = [p.label for p in at.sidebar if type(p).__name__ == "PageLink"]
    assert any(f"{n - 1} open alert" in x for x in links), links
