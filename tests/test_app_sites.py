"""The Site and Operator pages and the Rankings page's grouped view through Streamlit's AppTest (issue 19), on the
simulated operator-quarter (read only)."""

from __future__ import annotations

import pytest
from conftest_app import MAIN
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from mlpe_core import desk


@pytest.fixture(scope="module")
def answers(quarter_store):
    db, ids = quarter_store
    eng = desk.engine(str(db))
    with Session(eng) as s:
        out = {"sites": desk.sites(s), "operators": desk.operators(s), "ranking": desk.ranking(s)}
    eng.dispose()
    return out, ids


@pytest.fixture
def app_db(quarter_store, monkeypatch):
    monkeypatch.setenv("MLPE_DB", str(quarter_store[0]))
    return quarter_store


def open_page(name: str, **query) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=120)
    at.query_params.update(query)
    at.run()
    at.switch_page(f"../pages/{name}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_site_page_from_the_url_shows_its_numbers(app_db, answers):
    ans, ids = answers
    site = ids["cms_site"]
    at = open_page("site", site=site)
    assert at.title[0].value == "Site"
    assert at.selectbox(key="site_pick").value == site and at.query_params["site"] in (site, [site])
    row = ans["sites"].set_index("asset_id").loc[site]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Leaks (open)"] == f"{int(row['n_leaks'])} ({int(row['n_open'])})"
    assert metrics["Clocks on time / late"] == f"{int(row['met_on_time'])} / {int(row['met_late'] + row['overdue'])}"
    assert len(at.get("plotly_chart")) == 2
    ob = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert (ob["outcome"] == "Overdue").any()  # the action level nobody answered (in words, not its code)
    other = ans["sites"]["asset_id"].iloc[0]
    at.selectbox(key="site_pick").set_value(other).run()
    assert not at.exception and at.query_params["site"] in (other, [other])


def test_operator_page_rolls_up_and_prepares_the_report(app_db, answers):
    ans, _ = answers
    at = open_page("operator", op="Op North")
    assert at.selectbox(key="op_pick").value == "Op North"
    row = ans["operators"].set_index("operator").loc["Op North"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Open leaks"] == f"{int(row['n_open'])} of {int(row['n_leaks'])}"
    assert metrics["Confirmed / repaired"] == f"{int(row['n_confirmed'])} / {int(row['n_repaired'])}"
    sensors = next(d.value for d in at.dataframe if "precision" in d.value.columns)
    assert len(sensors) and sensors["precision"].between(0, 100).all()  # shown in percent
    at.date_input(key="rep_from").set_value(__import__("datetime").date(2026, 7, 1))
    at.date_input(key="rep_to").set_value(__import__("datetime").date(2026, 9, 30))
    at.button(key="rep_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert "2 notifications" in " ".join(c.value for c in at.caption)
    assert len(at.get("download_button")) >= 4  # PDF, Excel, JSON (and the operators CSV)
    at.selectbox(key="op_pick").set_value("Op South").run()
    assert at.query_params["op"] in ("Op South", ["Op South"]) and not at.exception


def test_rankings_group_by_site_and_operator(app_db, answers):
    ans, _ = answers
    at = open_page("rankings")
    at.segmented_control(key="rank_group").set_value("operator").run()
    assert not at.exception and at.query_params["group"] in ("operator", ["operator"])
    g = next(d.value for d in at.dataframe if "best_rank" in d.value.columns)
    rk = ans["ranking"]
    shown = rk[rk["status"].isin(["open", "dispatched"])]  # the sidebar's default status filter
    assert g["n_leaks"].sum() == shown["operator"].notna().sum() and g["best_rank"].iloc[0] == 1
    at.segmented_control(key="rank_group").set_value("site").run()
    g = next(d.value for d in at.dataframe if "best_rank" in d.value.columns)
    assert "asset_id" in g.columns and g["n_leaks"].sum() == shown["asset_id"].notna().sum()
    at.segmented_control(key="rank_group").set_value("leak").run()
    assert "group" not in at.query_params and not at.exception

