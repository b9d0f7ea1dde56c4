"""Today's dispatch for the Dispatch and Rankings pages: the stored list (draft or approved), else a proposal."""

from __future__ import annotations

import json

import pandas as pd
import pydeck as pdk
import streamlit as st

from app import common as c
from mlpe_core import desk
from mlpe_core.export import to_csv_text, to_geojson, to_kml

CREW_RGB = [[15, 110, 110], [240, 140, 0], [122, 60, 200], [42, 127, 168], [200, 35, 35], [90, 143, 41]]
ROUTE_FIRST = ["stop", "leak_id", "risk_band", "est_rate_kg_h", "leg_km", "due_by", "asset_id", "rank",
               "top_reasons"]


def today() -> str:
    """The plan day: the clock's date (``desk.as_of``), the day every "today" counts from."""
    return c.as_of().date().isoformat()


@st.cache_data(show_spinner=False, max_entries=8)
def lists(ver: tuple) -> pd.DataFrame:
    with c.session() as s:
        return desk.lists(s)


@st.cache_data(show_spinner="Routing the crews…", max_entries=8)
def todays(ver: tuple, k: int) -> tuple[dict, pd.DataFrame]:
    """``desk.plan``: today's approved list, else today's draft, else the routed proposal of the top ``k``."""
    with c.session() as s:
        return desk.plan(s, k)


def work_orders(ver: tuple, meta: dict, stops: pd.DataFrame) -> str:
    with c.session() as s:
        doc = desk.work_orders(s, meta["list_id"], len(stops) or None)
    return json.dumps(doc, indent=1, default=str)


def downloads(meta: dict, stops: pd.DataFrame, ver: tuple, bar) -> None:
    """CSV, GeoJSON, KML and work-order JSON of the stops (contract columns first, then the route)."""
    name = f"mlpe_dispatch_{meta.get('plan_date') or today()}"
    dl = dict(icon=":material/download:", on_click="ignore")
    bar.download_button("CSV", to_csv_text(stops), f"{name}.csv", "text/csv",
                        key="dispatch_csv", type="primary" if meta["list_id"] else "secondary", **dl)
    bar.download_button("GeoJSON", json.dumps(to_geojson(stops), default=str), f"{name}.geojson",
                        "application/geo+json", key="dispatch_geojson", **dl)
    bar.download_button("KML", to_kml(stops), f"{name}.kml", "application/vnd.google-earth.kml+xml",
                        key="dispatch_kml", **dl)
    bar.download_button("Work orders (JSON)", work_orders(ver, meta, stops), f"{name}_workorders.json",
                        "application/json", key="dispatch_wo", **dl)


def route_map(stops: pd.DataFrame) -> pdk.Deck:
    """Each crew's route as a coloured line through numbered stops (the number is the visit order)."""
    crews = sorted(stops["crew"].dropna().unique())
    rgb = {cr: CREW_RGB[i % len(CREW_RGB)] for i, cr in enumerate(crews)}
    pts = stops[["crew", "stop", "leak_id", "latitude", "longitude", "risk_band", "est_rate_kg_h"]].copy()
    pts["colour"] = pts["crew"].map(lambda cr: rgb.get(cr, [120, 120, 120]) + [235])
    pts["label"] = pts["stop"].astype(str)
    pts["rate_txt"] = pts["est_rate_kg_h"].map(c.rate)
    paths = [{"crew": cr, "path": g.sort_values("stop")[["longitude", "latitude"]].values.tolist(),
              "colour": rgb[cr] + [170]} for cr, g in pts.groupby("crew")]
    layers = [pdk.Layer("PathLayer", paths, id="routes", get_path="path", get_color="colour", width_min_pixels=3,
                        get_width=4, joint_rounded=True, cap_rounded=True),
              pdk.Layer("ScatterplotLayer", pts, id="stops", get_position=["longitude", "latitude"],
                        get_fill_color="colour", get_line_color=[255, 255, 255], stroked=True,
                        line_width_min_pixels=1.5, get_radius=80, radius_min_pixels=11, radius_max_pixels=16,
                        pickable=True),
              pdk.Layer("TextLayer", pts, id="stop_numbers", get_position=["longitude", "latitude"],
                        get_text="label", get_size=13, get_color=[255, 255, 255], font_weight=700,
                        get_alignment_baseline="'center'")]
    return pdk.Deck(layers=layers, initial_view_state=c.view_for(pts, 1000, 420), map_provider="carto",
                    map_style="light", tooltip={"text": "{crew} stop {stop}: {leak_id}\n{risk_band} · {rate_txt}"})


def crew_legend(stops: pd.DataFrame) -> str:
    crews = sorted(stops["crew"].dropna().unique())
    return c.legend({cr: CREW_RGB[i % len(CREW_RGB)] for i, cr in enumerate(crews)})


def approve_controls(list_id: int, flash_key: str, key: str) -> None:
    """Approve (the leaks become dispatched) or withdraw a draft list: supervisors only, recorded with the name."""
    if not c.can("approve_dispatch"):
        st.caption("Waiting for a supervisor's approval.")
        return
    row = st.container(horizontal=True)
    if row.button("Approve list", key=f"{key}_ok", type="primary", icon=":material/verified:",
                  help="the list becomes final and its leaks move to dispatched"):
        c.flash(flash_key, c.act("approve_dispatch", lambda s: "List {list_id} approved: {items} leaks dispatched."
                                 .format(**desk.approve_list(s, c.user(), list_id))))
    if row.button("Withdraw", key=f"{key}_withdraw", icon=":material/delete:", help="discard this draft"):
        c.flash(flash_key, c.act("approve_dispatch", lambda s: "List {list_id} withdrawn ({released} leaks back to "
                                 "open).".format(**desk.withdraw_list(s, c.user(), list_id))))
