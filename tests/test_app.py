"""Every page of the app through Streamlit's AppTest, on a small filled store (and on an empty one).

Tests that change the store run on their own copy of it (``store_copy``), so their order does not matter.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import shutil
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from browser_checks import raw_values, table_texts
from conftest_app import MAIN, ROOT, fill_store
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from mlpe_core import auth, desk, dispatch, learn, pipeline, present, store
from mlpe_core.dispatch import crew_capacity
from mlpe_core.lifecycle import apply_event
from mlpe_core.outcomes import record_validations
from mlpe_core.schema import DISPATCH_EXPORT_COLUMNS
from mlpe_core.score import FEATURES, ColdStartScorer
from mlpe_core.store.db import get_engine
from mlpe_core.store.models import Leak, LeakEvent, LeakRank

PAGES = ("map", "leak", "rankings", "obligations", "site", "operator", "dispatch", "validation", "upload", "model",
         "audit")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "mlpe.db"
    fill_store(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPE_DB", str(path))
        yield path


@pytest.fixture
def store_copy(db, tmp_path, monkeypatch):
    """A private copy of the filled store for a test that writes."""
    path = tmp_path / "copy.db"
    shutil.copy(db, path)
    monkeypatch.setenv("MLPE_DB", str(path))
    return path


def frames(db, name: str):
    engine = get_engine(str(db))
    try:
        with Session(engine) as s:
            return getattr(store, f"{name}_frame")(s)
    finally:
        engine.dispose()


def with_session(db, fn):
    engine = get_engine(str(db))
    try:
        with Session(engine) as s:
            return fn(s)
    finally:
        engine.dispose()


def open_page(name: str, at: AppTest | None = None, **query) -> AppTest:
    at = at or AppTest.from_file(str(MAIN), default_timeout=60)
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


def submit(at: AppTest, form: str, label: str) -> AppTest:
    return at.button(key=f"FormSubmitter:{form}-{label}").click().run()


def deck(at: AppTest, i: int = 0) -> dict:
    return json.loads(at.get("deck_gl_json_chart")[i].proto.json)


# --------------------------------------------------------------------------------------------- map


def test_map_shows_open_leaks_and_opens_one(db):
    at = open_page("map")
    assert at.title[0].value == "Leak map"
    leaks = frames(db, "leaks")
    n_open = int(leaks["status"].isin(["open", "dispatched"]).sum())
    assert at.metric[0].label == "Leaks shown" and at.metric[0].value == f"{n_open:,}"
    assert "hexagons" not in [ly["id"] for ly in deck(at)["layers"]]  # a small basin: every leak is a point
    ranked = leaks[leaks["status"] == "open"].sort_values("rank")["leak_id"]
    pick = ranked.iloc[-1]  # not the leak page's default (the best-ranked leak): the link must carry the choice
    at.selectbox(key="map_pick").set_value(pick).run()
    assert pick in texts(at, "subheader")
    layers = deck(at)["layers"]
    assert [ly["id"] for ly in layers][-2:] == ["leaks", "focus"]  # a ring around the picked leak
    assert len(layers[-2]["data"]) == n_open
    link = next(x.proto for x in at.get("page_link") if x.proto.label == "Open leak detail")
    assert (link.page, link.query_string, link.external) == ("leak", f"leak={pick}", False)  # AppTest cannot click
    at.switch_page("../pages/leak.py").query_params.update(leak=pick)  # where it goes: the leak page at that leak
    at.run()
    assert not at.exception
    assert at.title[0].value == f"Leak {pick}" and pick != ranked.iloc[0]


def test_map_multi_select_replay_and_layers(db):
    at = open_page("map")
    leaks = frames(db, "leaks")
    shown = leaks[leaks["status"].isin(["open", "dispatched"])].sort_values("rank")
    at.session_state["map_sel"] = shown["leak_id"].head(3).tolist()  # what three clicks on the map leave
    at.run()
    assert "3 leaks selected" in texts(at, "subheader")
    assert len(deck(at)["layers"][-1]["data"]) == 3 and at.get("download_button")
    assert deck(at)["layers"][-1]["id"] == "focus"
    at.toggle(key="map_unc").set_value(True)
    at.toggle(key="map_dets").set_value(True).run()
    by_id = {ly["id"]: ly for ly in deck(at)["layers"]}
    assert {"uncertainty", "detections"} <= set(by_id)
    dets = frames(db, "detections")
    n_amb = int(dets.loc[dets["leak_id"].isin(shown["leak_id"]), "ambiguous"].sum())
    assert ("ambiguous" in by_id) == (n_amb > 0)  # coarse detections that fit several leaks: hollow rings
    if n_amb:
        assert len(by_id["ambiguous"]["data"]) == n_amb and by_id["ambiguous"]["filled"] is False
    slider = next(s for s in at.slider if s.key.startswith("map_replay"))
    first = shown["first_seen"].min().date()
    slider.set_value(first + timedelta(days=1)).run()  # replay to the second day of the window
    n_then = int((shown["first_seen"].dt.date <= first + timedelta(days=1)).sum())
    assert at.metric[0].value == f"{n_then:,}" and n_then < len(shown)


@pytest.mark.parametrize("query", [{"min_rate": "100000"},
                                   {"status": "repaired", "band": "HIGH", "operator": "Op North"}])
def test_map_with_no_leak_matching_says_so_and_does_not_crash(db, query):
    at = open_page("map", **query)  # open_page asserts no exception
    assert "No leak matches the sidebar filters" in texts(at, "info")
    assert at.metric[0].value == "0"
    at = open_page("map")
    at.number_input(key="f_min_rate").set_value(100000.0).run()  # the sidebar, as the reviewer did
    assert not at.exception, [e.message for e in at.exception]
    assert "No leak matches the sidebar filters" in texts(at, "info")


def test_map_time_window_filter_persists_across_pages(db):
    at = open_page("map")
    leaks = frames(db, "leaks")
    lo, hi = leaks["first_seen"].min().date(), leaks["last_seen"].max().date()
    mid = lo + (hi - lo) / 2
    at.date_input(key="f_window").set_value((mid, hi)).run()
    assert at.query_params["window"] in (f"{mid},{hi}", [f"{mid},{hi}"])
    at.switch_page("../pages/rankings.py").run()
    df = at.dataframe(key="rank_table").value
    ranked = leaks[leaks["status"].isin(["open", "dispatched"])]
    assert 0 < len(df) < len(ranked) or (ranked["last_seen"].dt.date >= mid).all()
    assert (pd.to_datetime(df["last_seen"]).dt.date >= mid).all()  # shown as UTC dates (text)


def _big_store(path, n: int) -> None:
    """``n`` scored leaks, each with one satellite detection: a big basin for the map (bulk inserts: fast)."""
    from sqlalchemy import insert

    from mlpe_core.store.models import Detection

    rng = np.random.default_rng(0)
    now = pd.Timestamp("2026-06-01", tz="UTC").to_pydatetime()
    lat, lon = 31.5 + rng.uniform(0, 1, n), -103 + rng.uniform(0, 1, n)
    rate, p = rng.lognormal(1.0, 1.2, n), rng.uniform(0.05, 0.95, n)
    pri = p * rate
    rank = np.empty(n, int)
    rank[np.argsort(-pri)] = np.arange(1, n + 1)
    leaks = [dict(leak_id=f"L{i:06d}", latitude=float(lat[i]), longitude=float(lon[i]), radius_m=50.0,
                  n_detections=1, n_sources=1, source_types="satellite", first_seen=now, last_seen=now,
                  p_real=float(p[i]), est_rate_kg_h=float(rate[i]), priority_score=float(pri[i]),
                  risk_band="HIGH" if pri[i] >= 20 else "MEDIUM" if pri[i] >= 2 else "LOW",
                  top_reasons="synthetic", status="open", active=True, rate_quantified=True, n_ambiguous=0,
                  failed_repair=False) for i in range(n)]
    dets = [dict(detection_id=f"D{i}", source_type="satellite", source_name="BigSat", observed_at=now,
                 latitude=float(lat[i]), longitude=float(lon[i]), location_uncertainty_m=50.0,
                 rate_kg_h=float(rate[i]), leak_id=f"L{i:06d}") for i in range(n)]
    engine = get_engine(str(path))
    with Session(engine) as s:
        s.execute(insert(Leak), leaks)
        s.execute(insert(LeakRank), [{"leak_id": f"L{i:06d}", "rank": int(rank[i])} for i in range(n)])
        s.execute(insert(Detection), dets)
        s.commit()
    engine.dispose()


def test_map_aggregates_a_big_basin(tmp_path, monkeypatch):
    from app.mapping import AGGREGATE_ABOVE, POINTS_WHEN_AGGREGATED

    path = tmp_path / "big.db"
    _big_store(path, AGGREGATE_ABOVE + 1000)
    monkeypatch.setenv("MLPE_DB", str(path))
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    layers = {ly["id"]: ly for ly in deck(at)["layers"]}
    hexes = layers["hexagons"]["data"]  # binned in Python: one row per hexagon, every leak counted once
    assert sum(h["n"] for h in hexes) == AGGREGATE_ABOVE + 1000 and len(hexes) < (AGGREGATE_ABOVE + 1000) / 2
    assert len(layers["leaks"]["data"]) == POINTS_WHEN_AGGREGATED  # the highest-priority ones stay clickable
    assert set(layers["leaks"]["data"][0]) <= {"leak_id", "longitude", "latitude", "radius_m", "colour", "radius",
                                                "title", "line1", "line2"}  # lean rows
    at.toggle(key="map_agg").set_value(False).run()
    layers = {ly["id"]: ly for ly in deck(at)["layers"]}
    assert "hexagons" not in layers and len(layers["leaks"]["data"]) == AGGREGATE_ABOVE + 1000


# --------------------------------------------------------------------------------------------- leak detail


def test_leak_page_from_url(db):
    leaks = frames(db, "leaks")
    lid = leaks.loc[leaks["rank"] == 2, "leak_id"].iloc[0]
    at = open_page("leak", leak=lid)
    assert at.title[0].value == f"Leak {lid}"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rank"] == "#2"
    assert metrics["P(real)"].endswith("%") and metrics["Estimated rate"].endswith("kg/h")
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # contributions waterfall and detections timeline, both with a PNG download
    assert all(json.loads(c.proto.config)["toImageButtonOptions"]["format"] == "png" for c in charts)
    n_det = int(leaks.loc[leaks["leak_id"] == lid, "n_detections"].iloc[0])
    assert len(table(at, "detection_id", "observed_at")) == n_det
    story = table(at, "kind", "what", "who", "source")
    assert (story["kind"] == "Detection").sum() == n_det and "row" in story["source"].iloc[0]  # labels, not codes


def test_an_unknown_leak_in_the_link_is_named_not_silently_replaced(db):
    leaks = frames(db, "leaks")
    top = leaks.loc[leaks["rank"] == 1, "leak_id"].iloc[0]
    at = open_page("leak", leak="L999999")
    assert texts(at, "warning") == f"No leak L999999 in this store; showing the top-ranked leak {top}."
    assert at.title[0].value == f"Leak {top}"
    at = open_page("leak", leak="*L9*")  # escaped: the stars are text, not emphasis
    assert "No leak \\*L9\\* in this store" in texts(at, "warning")


@pytest.mark.parametrize("page, param, unknown", [("site", "site", "A999999"), ("operator", "op", "Nobody")])
def test_an_unknown_site_or_operator_in_the_link_is_named(db, page, param, unknown):
    at = open_page(page, **{param: unknown})
    shown = at.selectbox(key="site_pick" if page == "site" else "op_pick").value
    what = "site" if page == "site" else "operator"
    assert texts(at, "warning").startswith(f"No {what} {unknown} in this store; showing {shown} instead.")
    assert at.query_params[param] in (shown, [shown])


def test_leak_note_and_mark_for_dispatch_are_recorded(store_copy):
    leaks = frames(store_copy, "leaks")
    lid = leaks.loc[leaks["status"] == "open", "leak_id"].iloc[0]
    at = open_page("leak", leak=lid)
    at.text_input(key="open_name").set_value("dana")
    at.text_input(key="leak_note_text").set_value("operator says the hatch seal was replaced")
    submit(at, "leak_note", "Add note")
    assert not at.exception and "Note recorded" in texts(at, "success")
    notes = with_session(store_copy, lambda s: store.audit_events(s, action="note", target=lid))
    assert len(notes) == 1 and notes["actor"].iloc[0] == "dana"
    assert json.loads(notes["detail"].iloc[0])["note"] == "operator says the hatch seal was replaced"
    assert "hatch seal" in texts(at, "caption")  # shown under the actions
    at.button(key="leak_move").click().run()
    assert "mark for dispatch recorded" in texts(at, "success")
    ev = with_session(store_copy, lambda s: s.query(LeakEvent).filter(LeakEvent.leak_id == lid).all())
    assert [(e.event, e.actor) for e in ev][-1] == ("dispatch", "dana")
    assert frames(store_copy, "leaks").set_index("leak_id").loc[lid, "status"] == "dispatched"
    assert at.button(key="leak_move").label == "Release from dispatch"


def test_leak_page_shows_compliance_clock_and_assets(store_copy):
    leaks = frames(store_copy, "leaks")
    visited = set(frames(store_copy, "validations")["leak_id"])
    lid = leaks.loc[(leaks["status"] == "open") & ~leaks["leak_id"].isin(visited), "leak_id"].iloc[0]
    v = pd.DataFrame([{"leak_id": lid, "visited_at": pd.Timestamp("2026-10-01T09:00Z"), "outcome": "confirmed",
                       "measured_rate_kg_h": 2.0, "component": "valve", "repaired_at": pd.NaT, "crew": "c1",
                       "notes": None, "found_by": "ogi"}])
    with_session(store_copy, lambda s: record_validations(s, v, "test"))  # found by OGI: a repair clock
    at = open_page("leak", leak=lid)
    ck = table(at, "state", "due_rule", "due_by", "citation")
    assert len(ck) >= 1 and set(ck["state"]) <= {"Overdue", "Due soon", "Running"}
    assert ck["due_rule"].str.contains("repair").any()
    if leaks.set_index("leak_id").loc[lid, "asset_candidates"] not in (None, "[]"):
        assert len(table(at, "asset_id", "p", "distance_m")) >= 1
    assert len(table(at, "leak_id", "visited_at", "outcome")) == 1  # validation history


# --------------------------------------------------------------------------------------------- rankings


def test_rankings_table_filters_and_search(db):
    at = open_page("rankings")
    df = at.dataframe(key="rank_table").value
    assert len(df) > 0 and "leak_id" in df.columns
    assert df["rank"].tolist() == sorted(df["rank"].tolist())
    assert set(df["status"]) <= {"Open", "Dispatched"}  # labels (mlpe_core.present), not codes
    one = df["leak_id"].iloc[-1]
    at.text_input(key="rank_search").set_value(one.lower()).run()
    assert at.dataframe(key="rank_table").value["leak_id"].tolist() == [one]


@pytest.mark.parametrize("how", ["cells", "rows"])
def test_a_click_on_a_ranking_cell_or_box_opens_the_leak(db, how):
    at = open_page("rankings")
    assert "Click a cell of a row (or tick its box) to open the leak" in texts(at, "caption")
    third = at.dataframe(key="rank_table").value["leak_id"].iloc[2]
    at.session_state["rank_table"] = {"selection": {"cells": [[2, "status"]]} if how == "cells" else {"rows": [2]}}
    at.run()  # what the browser sends after a click on the third row's status cell (or its box)
    assert not at.exception and at.title[0].value == f"Leak {third}"


def test_a_search_that_matches_nothing_says_the_search_did_it(db):
    at = open_page("rankings")
    at.text_input(key="rank_search").set_value("L999999*").run()
    assert at.dataframe(key="rank_table").value.empty
    note = texts(at, "caption")
    assert "No leak matches the search 'L999999\\*'" in note and "match the sidebar filters" not in note


def test_filters_come_from_and_go_to_the_url(db):
    at = open_page("rankings", band="LOW", min_rate="1.5")
    df = at.dataframe(key="rank_table").value
    assert set(df["risk_band"]) <= {"Low"} and (df["est_rate_kg_h"] >= 1.5).all()
    at.multiselect(key="f_status").set_value([]).run()  # empty = every status
    assert "status" not in at.query_params or at.query_params["status"] in ("", [""])
    assert len(at.dataframe(key="rank_table").value) >= len(df)
    at.multiselect(key="f_band").set_value(["HIGH", "MEDIUM"]).run()
    assert at.query_params["band"] in ("HIGH,MEDIUM", ["HIGH,MEDIUM"])


def test_rank_override_needs_a_reason_and_is_recorded(store_copy):
    at = open_page("rankings")
    df = at.dataframe(key="rank_table").value
    last = df["leak_id"].iloc[-1]
    at.selectbox(key="ovr_leak").set_value(last)
    at.number_input(key="ovr_rank").set_value(1)
    submit(at, "override", "Record override")
    assert "reason" in texts(at, "error")  # refused: nothing recorded
    assert with_session(store_copy, lambda s: store.audit_events(s, action="rank_override")).empty
    at.selectbox(key="ovr_leak").set_value(last)
    at.number_input(key="ovr_rank").set_value(1)
    at.text_input(key="ovr_reason").set_value("operator reports a tank blowdown there")
    submit(at, "override", "Record override")
    assert not at.exception and f"{last} moved" in texts(at, "success")
    ev = with_session(store_copy, lambda s: store.audit_events(s, action="rank_override", target=last))
    d = json.loads(ev["detail"].iloc[0])
    assert d["after"] == 1 and d["before"] == len(df) and d["reason"] == "operator reports a tank blowdown there"
    df = at.dataframe(key="rank_table").value
    assert df["leak_id"].iloc[0] == last and df["override_reason"].iloc[0].startswith("operator reports")
    assert df["rank"].iloc[0] == 1 and df["model_rank"].iloc[0] == d["model_rank"]  # the model's rank stays beside


def test_since_last_review_shows_new_moved_and_dropped(store_copy):
    at = open_page("rankings")
    assert "Nobody has marked" in texts(at, "info")
    at.button(key="rev_mark").click().run()
    assert "marked as reviewed" in texts(at, "success")
    leaks = frames(store_copy, "leaks")
    back = leaks.loc[leaks["status"] == "not_found", "leak_id"].iloc[0]  # a leak outside the ranking
    top = leaks.loc[leaks["rank"] == 1, "leak_id"].iloc[0]

    def change(s):
        apply_event(s, back, "reopen", actor="test")  # seen again: back in the ranking
        v = pd.DataFrame([{"leak_id": top, "visited_at": pd.Timestamp("2026-12-01", tz="UTC"), "outcome": "confirmed",
                           "measured_rate_kg_h": np.nan, "component": None, "repaired_at": pd.NaT, "crew": None,
                           "notes": None}])
        record_validations(s, v, "test")  # the first-ranked leak is visited: it leaves the ranking
        pipeline.run_score(s, user="test")

    with_session(store_copy, change)
    at.run()
    new = table(at, "now", "risk_band", "priority_score")
    dropped = table(at, "was", "status now")
    assert back in new["leak_id"].tolist()
    assert dropped.set_index("leak_id").loc[top, "status now"] == "Confirmed leaking"
    assert f"{len(new)} new" in texts(at, "caption")  # the line above the tabs
    moved = table(at, "was", "now", "moved")
    assert (moved["moved"] > 0).all() and (moved["moved"] == moved["was"] - moved["now"]).all()


def test_dispatch_list_planned_then_approved(store_copy):
    at = open_page("dispatch")
    assert "Proposed" in texts(at, "info")
    at.button(key="dispatch_plan").click().run()
    assert "planned as a draft" in texts(at, "success") and "draft" in texts(at, "warning")
    at.switch_page("../pages/rankings.py").run()
    lists = with_session(store_copy, lambda s: dispatch.lists_frame(s))
    lid = int(lists["id"].iloc[0])
    at.button(key=f"appr_{lid}_ok").click().run()  # a confirmation first (st.dialog)
    assert not at.exception and dispatch_lists(store_copy)["approved_by"].isna().all()
    at.button(key="dlg_approve").click().run()
    assert not at.exception and f"List {lid} approved" in texts(at, "success")
    items = with_session(store_copy, lambda s: dispatch.list_frame(s, lid))
    status = frames(store_copy, "leaks").set_index("leak_id")["status"]
    assert (status[items["leak_id"]] == "dispatched").all()
    at.switch_page("../pages/dispatch.py").run()
    assert "approved" in texts(at, "success")


def dispatch_lists(db):
    return with_session(db, lambda s: dispatch.lists_frame(s))


def test_compare_two_model_versions(store_copy):
    def second(s):
        m = ColdStartScorer(prior_real=0.6).fit()
        store.save_model(s, "cold_start", learn.dumps(m), {}, list(FEATURES), "", "test: a more trusting prior",
                         promote=False, user="test")

    with_session(store_copy, second)
    at = open_page("rankings")
    at.toggle(key="cmp_on").set_value(True).run()
    cmp = table(at, "rank_a", "rank_b", "change")
    n_open = int(frames(store_copy, "leaks")["status"].isin(["open", "dispatched"]).sum())
    assert len(cmp) == n_open and sorted(cmp["rank_a"]) == list(range(1, n_open + 1))
    assert (cmp["change"] == cmp["rank_a"] - cmp["rank_b"]).all()
    assert any(m.label.startswith("Shared in both top") for m in at.metric)


# --------------------------------------------------------------------------------------------- dispatch, field


def test_dispatch_shows_routes_per_crew_and_downloads(db):
    at = open_page("dispatch")
    crews = [t for t in at.tabs if t.label.startswith("crew-")]
    assert crews, "one tab per crew"
    stops = table(at, "stop", "leak_id", "leg_km")
    assert stops["stop"].tolist() == list(range(1, len(stops) + 1))  # the first crew's visits in route order
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["CSV", "GeoJSON", "KML", "Excel", "Work orders (JSON)"]
    layers = [ly["id"] for ly in deck(at)["layers"]]
    assert layers == ["scale_bar", "scale_label", "routes", "yards", "stops", "stop_numbers"]
    routes = {r["crew"]: r["path"] for r in deck(at)["layers"][2]["data"]}
    assert all(p[0] == p[-1] and len(p) >= 3 for p in routes.values())  # from the yard and back to it
    n = sum(int(t.label.split("(")[1].rstrip(")")) for t in crews)
    assert 0 < n <= crew_capacity()
    at.number_input(key="dispatch_k").set_value(3).run()
    assert sum(int(t.label.split("(")[1].rstrip(")")) for t in at.tabs if t.label.startswith("crew-")) == min(3, n)
    assert set(DISPATCH_EXPORT_COLUMNS) <= set(stops.columns) or "rank" in stops.columns


def test_dispatch_map_draws_each_crews_yard_and_the_tables_are_not_cut(db):
    at = open_page("dispatch")
    crews = [t.label.split(" (")[0] for t in at.tabs if t.label.startswith("crew-")]
    yards = next(ly for ly in deck(at)["layers"] if ly["id"] == "yards")
    assert sorted(d["crew"] for d in yards["data"]) == sorted(crews)  # one yard per crew
    glyph = "\u25a0"  # the caption's square
    assert glyph in texts(at, "caption") and all(d["glyph"] == glyph for d in yards["data"])
    assert yards["getText"] == "@@=glyph" and glyph in yards["characterSet"]  # deck.gl's atlas is ASCII otherwise
    # the crews' tables span the page under the map (beside it the Rate column was cut to "20"), without the crew
    assert not any(col.get("arrow_data_frame") for col in at.columns)
    stops = table(at, "stop", "leak_id", "est_rate_kg_h")
    assert "crew" not in stops.columns


def test_validation_form_records_a_visit(store_copy):
    at = open_page("validation")
    before = len(frames(store_copy, "validations"))
    submit(at, "visit", "Record visit")  # no outcome chosen: refused beside the field, nothing written
    assert texts(at, "error") == "Choose what the crew found." and len(frames(store_copy, "validations")) == before
    lid = at.selectbox(key="val_leak").value
    at.radio(key="val_outcome").set_value("not_found")
    at.text_input(key="val_crew").set_value("crew-test")
    at.text_input(key="val_photo").set_value("IMG_0412")
    at.segmented_control(key="val_found_by").set_value("ogi")
    submit(at, "visit", "Record visit")
    assert not at.exception and not at.error
    assert "Recorded not found" in texts(at, "success")
    vals = frames(store_copy, "validations")
    row = vals.iloc[-1]
    assert len(vals) == before + 1 and row["leak_id"] == lid and row["crew"] == "crew-test"
    assert row["recorded_by"] == "app" and "photo: IMG_0412" in row["notes"] and row["found_by"] == "ogi"
    leaks = frames(store_copy, "leaks")
    assert leaks.loc[leaks["leak_id"] == lid, "status"].iloc[0] == "not_found"
    # the form offers the next leak, its outcome and photo emptied, the crew kept for the crew's next visit
    assert at.selectbox(key="val_leak").value not in (lid, None) and at.radio(key="val_outcome").value is None
    assert at.text_input(key="val_photo").value == "" and at.text_input(key="val_crew").value == "crew-test"
    at.run()  # another run of the page (a rerun) does not wipe the answer before it is read
    assert "Recorded not found" in texts(at, "success")
    open_page("map", at)
    open_page("validation", at)  # entered again from another page: a fresh form, not the old answer
    assert "Recorded" not in texts(at, "success") and not at.error
    assert at.text_input(key="val_crew").value == "crew-test"  # but the crew who recorded is still filled in


@pytest.mark.parametrize("sent, expected", [
    ("L000140", "L000140"),
    (" L000140 ", "L000140"),
    ("L000140 · #1 medium · 26.9 kg/h", "L000140"),  # the label the browser sent
    ("crew-1 stop 2 · L000140 · #1 medium · 26.9 kg/h", "L000140"),  # a stop of today's list
    ("L999999 · #1 medium · 1.0 kg/h", "L999999 · #1 medium · 1.0 kg/h"),  # no known leak: the desk refuses it
    ("", ""),
])
def test_the_field_form_reads_the_label_the_browser_sends(sent, expected):
    from app.fieldform import leak_of

    assert leak_of(sent, {"L000140", "L000141"}) == expected


def test_recent_visits_are_newest_visit_first_not_last_recorded(store_copy):
    leaks = frames(store_copy, "leaks")["leak_id"]
    old = pd.DataFrame([{"leak_id": leaks.iloc[0], "visited_at": pd.Timestamp("2020-01-02T08:00Z"),
                         "outcome": "not_found", "measured_rate_kg_h": np.nan, "component": None,
                         "repaired_at": pd.NaT, "crew": "paper-sheet", "notes": None, "found_by": None}])
    with_session(store_copy, lambda s: record_validations(s, old, "test"))  # recorded last, visited first
    at = open_page("validation")
    recent = table(at, "visited_at", "leak_id", "outcome", "crew")
    assert recent["visited_at"].tolist() == sorted(recent["visited_at"], reverse=True)  # "2026-…" text sorts
    assert "paper-sheet" not in recent["crew"].head(1).tolist()


def test_validation_form_records_a_repair(store_copy):
    at = open_page("validation")
    lid = at.selectbox(key="val_leak").value
    at.radio(key="val_outcome").set_value("confirmed")
    at.number_input(key="val_rate").set_value(3.5)
    at.date_input(key="val_day").set_value(date(2026, 10, 1))
    at.date_input(key="val_repaired").set_value(date(2026, 10, 2))
    submit(at, "visit", "Record visit")
    assert not at.exception and not at.error, texts(at, "error")
    row = frames(store_copy, "validations").iloc[-1]
    assert row["leak_id"] == lid and row["measured_rate_kg_h"] == 3.5 and row["repaired_at"].day == 2
    leaks = frames(store_copy, "leaks")
    assert leaks.loc[leaks["leak_id"] == lid, "status"].iloc[0] == "repaired"


def test_validation_form_shows_a_refused_move(store_copy):
    """Confirmed leaking, then 'not found' for the same leak: the lifecycle refuses it and the page says why."""
    at = open_page("validation")
    lid = at.selectbox(key="val_leak").value
    at.radio(key="val_outcome").set_value("confirmed")
    submit(at, "visit", "Record visit")
    assert "Recorded confirmed" in texts(at, "success")
    n = len(frames(store_copy, "validations"))
    at.selectbox(key="val_leak").set_value(lid)
    at.radio(key="val_outcome").set_value("not_found")
    at.date_input(key="val_day").set_value(date(2026, 12, 1))
    submit(at, "visit", "Record visit")
    assert not at.exception and at.error and lid in texts(at, "error")
    assert len(frames(store_copy, "validations")) == n
    assert at.radio(key="val_outcome").value == "not_found"  # a refused visit keeps what was entered
    assert at.selectbox(key="val_leak").value == lid


def test_validation_csv_import_reports_rejects(store_copy):
    at = open_page("validation")
    lid = at.selectbox(key="val_leak").value
    csv = f"leak_id,visited_at,outcome\n{lid},2026-01-02T10:00:00Z,confirmed\nL999999,2026-01-02T11:00:00Z,confirmed\n"
    at.file_uploader(key="val_file").set_value(("visits.csv", csv.encode(), "text/csv")).run()
    at.button(key="val_import").click().run()
    assert not at.exception
    assert "1 recorded" in texts(at, "success") and "1 rejected" in texts(at, "success")
    rej = table(at, "row", "column", "reason")
    assert rej[["row", "column"]].values.tolist() == [[3, "leak_id"]]


def test_upload_page_without_files_says_what_to_do(db):
    at = open_page("upload")
    assert "Choose one or more detection files" in texts(at, "info")
    assert table(at, "file_name", "sha256")["file_name"].str.startswith("demo").any()


def test_upload_ingests_rejects_and_scores(store_copy):
    at = open_page("upload")
    batches = len(frames(store_copy, "batches"))
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
    assert len(frames(store_copy, "batches")) == batches + 1  # the bad file wrote nothing
    at.button(key="up_fuse").click().run()
    assert not at.exception and "ranked" in texts(at, "success")
    assert "Fused 2 new detections incrementally" in texts(at, "success")  # only the new area was re-fused
    dets = frames(store_copy, "detections")
    assert dets.loc[dets["source_name"] == "TestPlane", "leak_id"].notna().all()
    at.checkbox(key="up_full").check().run()
    at.button(key="up_fuse").click().run()
    assert "full re-fuse: asked for" in texts(at, "success")


def test_model_page_is_honest_then_trains(store_copy):
    at = open_page("model")
    assert at.title[0].value == "Model"
    assert "prior from instrument knowledge" in texts(at, "warning")
    n_models = len(frames(store_copy, "models"))
    at.button(key="train").click().run()
    assert not at.exception
    decision = texts(at, "success") + texts(at, "info")
    assert "promoted" in decision or "not trained" in decision or "kept" in decision
    if "not trained" not in decision:
        assert len(frames(store_copy, "models")) == n_models + 1
        held = table(at, "model", "brier", "auc", "n_visits")  # the hold-out figures, in the presentation layer's words
        assert held["model"].str.contains("candidate").any() and not raw_values(table_texts(at.dataframe))
        # the caption's counts agree with the versions table's "Trained on" (a promoted model is fitted again on all)
        assert "fitted on the" in texts(at, "caption"), texts(at, "caption")
        if "not promoted" not in decision and "promoted" in decision:
            assert "fitted again on all" in texts(at, "caption")


@pytest.mark.parametrize(("by", "head"), [("site", "Site"), ("operator", "Operator")])
def test_the_grouped_ranking_reads_as_words(db, by, head):
    at = open_page("rankings", group=by)
    g = next(d for d in at.dataframe if "n_leaks" in d.value.columns)
    heads = [x["text"] for x in table_texts([g]) if x["kind"] == "header"]
    assert len(g.value) and heads[0] == head and "Worst risk" in heads and not raw_values(table_texts([g]))
    assert set(g.value["worst_band"]) <= {"High", "Medium", "Low"}
    grouped = with_session(db, lambda s: desk.ranking_groups(s, "asset_id" if by == "site" else by))
    csv_heads = list(present.people_frame(grouped, "rank_groups", "kg/h")[0].columns)  # the Download CSV's headers
    assert csv_heads[0] == head and "Priority (kg/h)" in csv_heads and not any("_" in h for h in csv_heads)


@pytest.mark.parametrize("table, frame", [
    ("obligations", lambda s: desk.obligations(s, include_met=True)),  # the met ones too: this store has few
    ("operators", lambda s: desk.operators(s)),
    ("site_leaks", lambda s: desk.site_detail(s, desk.ranking(s)["asset_id"].dropna().iloc[0])["leaks"]),
    ("story", lambda s: desk.leak_story(s, desk.ranking(s)["leak_id"].iloc[0])),
])
def test_the_pages_csvs_read_as_words(db, table, frame):
    """The Obligations, Operator, Site and Audit pages' Download CSV: the table as shown, not the stored codes."""
    from app.tables import people_csv

    rows = list(csv.reader(io.StringIO(people_csv(with_session(db, frame), table, "kg/h")())))
    assert len(rows) > 1 and len(set(map(len, rows))) == 1, table
    assert not [h for h in rows[0] if re.search(r"[a-z]_[a-z]", h)], rows[0]
    cells = [v for r in rows[1:] for v in r]
    assert not [v for v in cells if v in ("None", "nan", "NaT") or re.fullmatch(r"[a-z]+_[a-z_]+", v)
                or "+00:00" in v or v.startswith("{") or re.search(r"\d\.\d{5,}", v)], table
    pct = [i for i, h in enumerate(rows[0]) if h in ("P(real)", "On time")]  # as the page shows them: 83%
    assert all(re.fullmatch(r"\d{1,3}%|", r[i]) for r in rows[1:] for i in pct), table


# --------------------------------------------------------------------------------------------- audit, sign-in


def test_audit_filters_narrow_and_story_goes_back_to_file_rows(db):
    at = open_page("audit")
    all_rows = table(at, "actor", "action", "target", "detail")
    assert len(all_rows) > 1 and all_rows["action"].nunique() > 1
    at.selectbox(key="au_action").set_value("validation").run()
    rows = table(at, "actor", "action", "target", "detail")
    assert 0 < len(rows) < len(all_rows) and set(rows["action"]) == {"Field outcome recorded"}
    one = rows["target"].iloc[0]
    at.text_input(key="au_target").set_value(one).run()
    rows = table(at, "actor", "action", "target", "detail")
    assert set(rows["target"]) == {one}
    assert [b.label for b in at.get("download_button")][0] == "Download CSV"
    story = table(at, "kind", "what", "who", "source")  # the targeted leak's story, picked for us
    assert {"Detection", "Field visit"} <= set(story["kind"])
    assert story["source"][story["kind"] == "Detection"].str.contains(r"\.csv row \d+", regex=True).all()


@pytest.fixture
def users(store_copy):
    """The copy with an admin, an analyst and a supervisor: open mode is over."""
    def add(s):
        auth.add_user(s, "bootstrap", "ada", "admin", "admin-pass-1")
        auth.add_user(s, "ada", "ana", "analyst", "analyst-pass-1")
        auth.add_user(s, "ada", "sam", "supervisor", "supervisor-pass-1")

    with_session(store_copy, add)
    return store_copy


def sign_in(name: str, password: str) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=60).run()
    assert at.title[0].value == "Sign in" and not at.metric  # no page before signing in
    at.text_input(key="signin_name").set_value(name)
    at.text_input(key="signin_password").set_value(password)
    return submit(at, "signin", "Sign in")


def test_sign_in_is_required_once_a_user_exists(users):
    at = sign_in("ana", "wrong-password")
    assert "Wrong user name or password" in texts(at, "error") and at.title[0].value == "Sign in"
    at = sign_in("ana", "analyst-pass-1")
    assert not at.exception and at.title[0].value == "Leak map"
    assert "**ana** · analyst" in texts(at.sidebar, "markdown")
    assert "Open mode" not in texts(at.sidebar, "caption")
    at.button(key="signout").click().run()
    assert at.title[0].value == "Sign in"


def test_roles_see_only_their_actions_and_the_user_is_recorded(users):
    at = sign_in("ana", "analyst-pass-1")
    at.session_state["auth_role"] = "admin"  # a forged role in the session is corrected from the store
    at.switch_page("../pages/validation.py").run()
    assert "does not record field outcomes" in texts(at, "info")
    at.switch_page("../pages/rankings.py").run()
    assert not [b for b in at.button if b.key and b.key.endswith("Record override")]
    leaks = frames(users, "leaks")
    lid = leaks.loc[leaks["status"] == "open", "leak_id"].iloc[0]
    at = open_page("leak", at=at, leak=lid)
    # an analyst may mark a leak for dispatch (auth: mark_dispatch), so the page offers it (issue 15)
    assert [b.label for b in at.button if b.key == "leak_move"] == ["Mark for dispatch"]
    assert not [b for b in at.button if b.key == "dispatch_plan"]
    at.text_input(key="leak_note_text").set_value("checked the plume image")
    submit(at, "leak_note", "Add note")
    notes = with_session(users, lambda s: store.audit_events(s, action="note", target=lid))
    assert notes["actor"].tolist() == ["ana"]
    sup = sign_in("sam", "supervisor-pass-1")
    sup = open_page("rankings", at=sup)
    assert sup.button(key="rev_mark") and sup.button(key="FormSubmitter:override-Record override")


def test_a_refused_action_is_shown_not_raised(users, monkeypatch):
    def script():
        import streamlit as st

        from app import common as c

        st.session_state["auth_user"], st.session_state["auth_role"] = "ana", "analyst"
        assert c.act("approve_dispatch", lambda s: st.success("should not get here")) is None

    at = AppTest.from_function(script, default_timeout=30)
    monkeypatch.syspath_prepend(str(ROOT))
    at.run()
    assert not at.exception and not at.success
    assert "'ana' (analyst) may not approve dispatch" in texts(at, "error")


# --------------------------------------------------------------------------------------------- every page


def test_no_page_writes_a_bare_expression():
    """Streamlit "magic" renders any bare non-call expression (e.g. ``a() if x else b()`` shows a DeltaGenerator)."""
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "app").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call | ast.Constant):
                pytest.fail(f"{path.name}:{node.lineno}: bare expression would be drawn by Streamlit magic")


def test_every_table_goes_through_the_presentation_layer():
    """Every table of the app is drawn by ``app.tables.show`` (headers, labels and formats from ``present``), which
    passes ``placeholder``: st.dataframe draws a missing value as "None" on its canvas, where the DOM the browser
    test reads keeps it empty."""
    calls = []
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "app").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("dataframe", "data_editor")):
                calls.append(f"{path.name}:{node.lineno}")
                assert "placeholder" in {k.arg for k in node.keywords}, f"{path.name}:{node.lineno}: no placeholder"
    assert calls and all(x.startswith("tables.py:") for x in calls), calls


def test_every_csv_download_is_for_people_or_says_it_is_for_machines():
    """A page's CSV download is the table as people read it (``tables.people_csv``), or its help says it is the
    machines' file (stored codes, the contract's columns): nobody opens snake_case headers by surprise."""
    machine = re.compile(r"for machines|for evidence and scripts|as `mlpe export")
    found = []
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "app").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "download_button"):
                continue
            src = ast.unparse(node)
            if "text/csv" not in src:
                continue
            found.append(path.name)
            assert "people_csv(" in src or machine.search(src), f"{path.name}:{node.lineno}: {src[:120]}"
    assert {"obligations.py", "site.py", "operator.py", "audit.py", "upload.py", "rankings.py"} <= set(found)


@pytest.mark.parametrize("name", PAGES)
def test_every_table_of_every_page_reads_as_words(db, name):
    """Every header and text cell of every table, hidden columns and rows out of view included (the browser test
    reads only what the grid has in view): no code, None, nan, JSON, rule id, +00:00 or snake_case header."""
    at = open_page(name)
    assert not raw_values(table_texts(at.dataframe)), name


def test_the_ranking_table_sends_what_people_read(db):
    at = open_page("rankings")
    sent = table(at, "rank", "leak_id", "top_reasons")
    assert not {"contributions", "asset_candidates", "band_reason"} & set(sent.columns)  # JSON stays on the server
    assert all(d.proto.HasField("placeholder") and d.proto.placeholder == "" for d in at.dataframe)
    assert sent["asset_type"].isin(["Well pad", "Tank battery", "Compressor station", "Processing plant",
                                    "Pipeline valve"]).all()


@pytest.mark.parametrize("name", PAGES)
def test_pages_on_an_empty_store(tmp_path, monkeypatch, name):
    """Run a page without the entry point (which would load the demo) against an empty store."""
    monkeypatch.setenv("MLPE_DB", str(tmp_path / "empty.db"))
    at = AppTest.from_string(f"import sys, runpy\nsys.path.insert(0, {str(ROOT)!r})\n"
                             f"runpy.run_path({str(ROOT / 'pages' / f'{name}.py')!r})\n", default_timeout=30).run()
    assert not at.exception, [e.message for e in at.exception]
    says = texts(at, "info")
    if name in ("map", "leak", "rankings", "validation", "dispatch", "audit"):
        assert "mlpe demo" in says  # the empty state says what to do next


def test_entry_point_loads_the_demo_into_an_empty_store(tmp_path, monkeypatch):
    db = tmp_path / "fresh.db"
    monkeypatch.setenv("MLPE_DB", str(db))
    at = AppTest.from_file(str(MAIN), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Leak map"
    assert len(frames(db, "leaks")) > 0
    assert "Open mode: no users yet" in texts(at.sidebar, "caption")


def test_ambiguous_detections_are_hollow_rings_naming_their_leak():
    from app import mapping

    dets = pd.DataFrame({
        "longitude": [-102.5, -102.501, -102.52], "latitude": [32.0, 32.001, 32.02],
        "source_type": ["aerial", "scada", "satellite"], "source_name": ["AirLidar", "SCADA", "CoarseSat"],
        "observed_at": pd.to_datetime(["2026-06-01", "2026-06-02", "2026-06-03"], utc=True),
        "rate_kg_h": [12.0, np.nan, 900.0], "leak_id": ["L000001", "L000001", "L000002"],
        "ambiguous": [False, True, False]})
    before = dets.copy()
    solid, rings = mapping.detections_layer(dets)
    assert len(solid.data) == 2 and len(rings.data) == 1 and rings.filled is False
    assert rings.data[0]["line2"].startswith("ambiguous: fits several leaks; attached to L000001")
    assert [r["line2"] for r in solid.data] == ["leak L000001", "leak L000002"]
    assert len(mapping.detections_layer(dets.assign(ambiguous=False))) == 1  # no rings layer when none is ambiguous
    pd.testing.assert_frame_equal(dets, before)


def test_leak_circles_are_sized_in_screen_pixels_area_proportional_to_rate():
    # in metres with a pixel cap, every big leak was the same size when zoomed on a pad
    import json

    import pydeck as pdk

    from app import mapping

    leaks = pd.DataFrame({"leak_id": ["L1", "L2", "L3", "L4"], "longitude": [-102.5] * 4, "latitude": [32.0] * 4,
                          "radius_m": [5.0] * 4, "risk_band": ["HIGH"] * 4, "est_rate_kg_h": [0.5, 16.0, 64.0, 900.0],
                          "rank": [1, 2, 3, 4], "p_real": [0.9] * 4, "asset_id": ["A"] * 4, "status": ["open"] * 4,
                          "top_reasons": [""] * 4})
    pts = mapping.leak_points(leaks)
    assert pts["radius"].tolist() == [3.0, 8.0, 16.0, 18.0]  # 64 kg/h has 4x the area of 16 kg/h
    deck = json.loads(pdk.Deck(layers=[mapping.leaks_layer(pts), mapping.focus_layer(pts)]).to_json())
    assert [layer["radiusUnits"] for layer in deck["layers"]] == ["pixels", "pixels"]


def test_obligations_page_lists_every_running_clock_soonest_first(db):
    at = open_page("obligations")
    ob = frames_desk(db, "obligations")
    if ob.empty:
        assert "No regulatory clock is running" in texts(at, "info")
        return
    at.multiselect(key="ob_state").set_value([]).run()  # every state
    shown = at.dataframe(key="ob_table").value
    assert shown["leak_id"].tolist() == ob["leak_id"].tolist()  # the desk's queue, in its order
    assert shown["due_by"].is_monotonic_increasing
    assert at.metric[0].value == f"{int((ob['state'] == 'overdue').sum()):,}"


def frames_desk(db, name: str):
    return with_session(db, lambda s: getattr(desk, name)(s))


# --------------------------------------------------------------------------------------------- review fixes (fix5)


def _headers(at: AppTest) -> list[str]:
    """The headers every table of the page shows (its column config labels)."""
    out = []
    for d in at.dataframe:
        cfg = json.loads(d.proto.columns or "{}")
        out += [str(v.get("label")) for v in cfg.values() if isinstance(v, dict) and v.get("label")]
    return out


@pytest.mark.parametrize("name", ["site", "operator", "rankings"])
def test_rate_labels_name_the_unit_chosen(db, name):
    at = open_page(name, unit="scf/h")
    metrics = {m.label: m.value for m in at.metric}
    labels = list(metrics) + _headers(at)
    assert labels and not [x for x in labels if "kg/h" in x], labels
    for label_, value in metrics.items():
        if str(value).endswith("scf/h"):
            assert "kg/h" not in label_
    if name in ("site", "operator"):
        assert metrics["Expected (scf/h)"].endswith("scf/h")
    assert any("(scf/h)" in h for h in _headers(at))
    if name == "rankings":  # the Why sentences' rate estimates too
        why = " ".join(table(at, "leak_id", "top_reasons")["top_reasons"])
        assert "kg/h" not in why and "scf/h" in why


def test_reason_estimates_read_in_the_unit_chosen():
    said = "1 detection by AirLidar; ~25 kg/h (±18); not quantified (~393 kg/h expected from what detected it)"
    assert present.estimates_in_text(said, "kg/h") == said
    assert present.estimates_in_text(said, "scf/h") == ("1 detection by AirLidar; ~1,300 scf/h (±940); not quantified "
                                                        "(~20,500 scf/h expected from what detected it)")
    assert present.estimates_in_text("~0.4 kg/h", "t/yr") == "~3.5 t/yr"


def test_site_emissions_chart_is_in_the_unit_chosen():
    from app import charts
    em = pd.DataFrame({"week": pd.to_datetime(["2026-09-07"], utc=True), "rate_kg_h": [1.0], "rate_lo_kg_h": [0.5],
                       "rate_hi_kg_h": [2.0]})
    fig = charts.site_emissions(em, pd.DataFrame(), "scf/h")
    assert fig.layout.yaxis.title.text == "scf/h"
    assert round(float(fig.data[1].y[0])) == round(1 / present.SCF_KG)


def test_alerts_say_the_rules_were_never_checked_then_when(store_copy):
    at = open_page("alerts")
    page = texts(at, "info") + texts(at, "warning")
    assert "nothing needs you" not in page
    assert "never been checked" in texts(at, "warning")
    at.button(key="al_check").click().run()
    assert not at.exception
    assert "never been checked" not in texts(at, "warning")
    boxes = [n for n in at.number_input if n.key == "al_hours"]  # the check raised alerts: each can be snoozed
    assert boxes and boxes[0].proto.format == "%g"  # in whole hours: "24", not "24.00"
    assert "last checked" in texts(at, "caption")


def test_narrow_tables_put_their_key_figures_first_and_pin_the_row_name():
    from app import tables
    expect = {"sensor_precision": ("source_name", ["precision", "precision_lo", "precision_hi"]),
              "clocks": ("state", ["due_by"]), "candidates": ("asset_id", ["p", "operator", "asset_type"]),
              "obligations": ("due_by", ["state", "days_left", "leak_id", "site", "title", "started_text"])}
    for table_, (first, key) in expect.items():
        df = pd.DataFrame(columns=[c.name for c in present.TABLES[table_]])
        order, cfg = tables.config(df, table_, "kg/h")
        assert order[0] == first and order[1:1 + len(key)] == key, (table_, order)
    for table_, col in (("sensor_precision", "source_name"), ("candidates", "asset_id"), ("obligations", "due_by")):
        assert tables.config(pd.DataFrame(columns=[c.name for c in present.TABLES[table_]]), table_, "kg/h"
                             )[1][col]["pinned"] is True
    # the obligations' long texts have fixed widths: the key columns before "Started by" fit 1400 px
    _, cfg = tables.config(pd.DataFrame(columns=[c.name for c in present.TABLES["obligations"]]), "obligations",
                           "kg/h")
    assert cfg["title"]["width"] == tables.WIDTH["medium"] and cfg["started_text"]["width"] == tables.WIDTH["medium"]


VISITS_BAD = {"nonsense_val.csv": b"nonsense\n", "junk_columns.csv": b"foo,bar,baz\n1,2,3\n4,5,6\n"}


@pytest.mark.parametrize("name", sorted(VISITS_BAD))
def test_visits_with_the_wrong_columns_name_the_missing_ones(store_copy, tmp_path, name):
    at = open_page("validation")
    at.file_uploader(key="val_file").set_value((name, VISITS_BAD[name], "text/csv")).run()
    at.button(key="val_import").click().run()
    assert not at.exception
    err = texts(at, "error").replace("\\", "")  # markdown-escaped
    assert "required column missing: leak_id, visited_at, outcome" in err and "no rows" not in err
    (tmp_path / name).write_bytes(VISITS_BAD[name])  # the CLI says the same (the message is mlpe_core's)
    with pytest.raises(Exception, match="required column missing: leak_id, visited_at, outcome"):
        with_session(store_copy, lambda s: desk.import_outcomes(s, "admin", tmp_path / name))


def test_a_binary_visits_file_names_only_the_formats_accepted_there(store_copy):
    at = open_page("validation")
    at.file_uploader(key="val_file").set_value(("binary.csv", bytes(range(256)) * 4, "text/csv")).run()
    at.button(key="val_import").click().run()
    err = texts(at, "error").replace("\\", "")
    assert "expected CSV or XLSX" in err and "Parquet" not in err


def test_a_visits_file_with_every_row_rejected_is_not_a_success(store_copy):
    at = open_page("validation")
    bad = b"leak_id,visited_at,outcome\nL000075,yesterday,maybe\nL999999,2026-12-01,confirmed\n"
    at.file_uploader(key="val_file").set_value(("bad_validations.csv", bad, "text/csv")).run()
    at.button(key="val_import").click().run()
    assert not at.exception and not texts(at, "success")
    assert "0 recorded" in texts(at, "error") and "2 rejected" in texts(at, "error")


def test_a_detection_file_with_every_row_rejected_is_not_a_success(store_copy):
    at = open_page("upload")
    bad = ("detection_id,observed_at,latitude,longitude,source_type,source_name,rate_kg_h\n"
           "X1,not-a-date,31.9,-102.5,satellite,Test,12\nX2,2026-12-01T10:00:00Z,999,-102.5,satellite,Test,12\n")
    at.file_uploader(key="up_files").set_value([("bad_rows.csv", bad.encode(), "text/csv")]).run()
    at.button(key="up_go").click().run()
    assert not at.exception and not texts(at, "success")
    assert "0 accepted, 2 rejected" in texts(at, "error") and "Nothing was loaded" in texts(at, "error")


def test_an_audit_filter_matching_nothing_says_what_to_do(db):
    at = open_page("audit")
    at.text_input(key="au_target").set_value("L999999").run()
    assert not at.exception
    assert "No recorded action matches these filters" in texts(at, "info")
    assert not any({"actor", "action", "target", "detail"} <= set(d.value.columns) for d in at.dataframe)


def test_a_leak_without_recorded_actions_says_so_in_its_audit_tab(db):
    leaks = frames(db, "leaks")
    acted = set(with_session(db, lambda s: store.audit_events(s))["target"])
    lid = leaks.loc[~leaks["leak_id"].isin(acted), "leak_id"].iloc[0]
    at = open_page("leak", leak=lid)
    assert not at.exception
    assert "No recorded action here yet" in texts(at, "info")
