"""Today's dispatch for the Dispatch and Rankings pages: the stored list (draft or approved), else a proposal."""

from __future__ import annotations

import pandas as pd
import pydeck as pdk
import streamlit as st

from app import common as c
from app import mapping as m
from mlpe_core import desk
from mlpe_core.export import routes

CREW_RGB = [[15, 110, 110], [240, 140, 0], [122, 60, 200], [42, 127, 168], [200, 35, 35], [90, 143, 41]]
ROUTE_FIRST = ["stop", "leak_id", "risk_band", "est_rate_kg_h", "leg_km", "due_by", "asset_id", "rank",
               "top_reasons"]
YARD = "■"  # a crew's yard on the route map, and in its caption


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


@st.cache_data(show_spinner=False, max_entries=8)
def todays_list(ver: tuple) -> tuple[dict, pd.DataFrame]:
    """Today's approved list, else today's draft; no proposal is routed (``desk.plan(proposal=False)``)."""
    with c.session() as s:
        return desk.plan(s, proposal=False)


def _file(meta: dict, k: int, fmt: str, unit: str):
    """The dispatch file, built only when someone clicks its button (``desk.dispatch_download``: the very bytes
    ``mlpe dispatch show ID`` or ``mlpe export dispatch --top K`` writes)."""
    def build():
        with c.session() as s:
            return desk.dispatch_download(s, fmt, top=None if meta["list_id"] else k, list_id=meta["list_id"],
                                          unit=unit)
    return build


def downloads(meta: dict, k: int, bar) -> None:
    """CSV and GeoJSON (for machines: the contract's columns, kg/h), KML and Excel (for people: labels, the unit
    chosen, a folder or sheet per crew, routes from the yards) and the work orders; each built on click."""
    name = f"mlpe_dispatch_{meta.get('plan_date') or today()}"
    dl = dict(icon=":material/download:", on_click="ignore")
    unit = c.unit()
    bar.download_button("CSV", _file(meta, k, "csv", unit), f"{name}.csv", "text/csv",
                        key="dispatch_csv", type="primary" if meta["list_id"] else "secondary", **dl,
                        help="for machines and the maintenance system: the contract's dispatch columns, kg/h (as "
                             "`mlpe export dispatch`); the Excel file is the one for people")
    bar.download_button("GeoJSON", _file(meta, k, "geojson", unit), f"{name}.geojson", "application/geo+json",
                        key="dispatch_geojson", **dl)
    bar.download_button("KML", _file(meta, k, "kml", unit), f"{name}.kml", "application/vnd.google-earth.kml+xml",
                        key="dispatch_kml", **dl)
    bar.download_button("Excel", _file(meta, k, "xlsx", unit), f"{name}.xlsx",
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="dispatch_xlsx",
                        **dl)
    bar.download_button("Work orders (JSON)", _file(meta, k, "workorder", unit), f"{name}_workorders.json",
                        "application/json", key="dispatch_wo", **dl)


def route_map(stops: pd.DataFrame) -> pdk.Deck:
    """Each crew's route as a coloured line from its yard (a square) through numbered stops (the visit order) and
    back, with the scale bar, on a view that fits stops and yards."""
    crews = sorted(stops["crew"].dropna().unique())
    rgb = {cr: CREW_RGB[i % len(CREW_RGB)] for i, cr in enumerate(crews)}
    pts = stops[["crew", "stop", "leak_id", "latitude", "longitude", "risk_band", "est_rate_kg_h"]].copy()
    pts["colour"] = pts["crew"].map(lambda cr: rgb.get(cr, [120, 120, 120]) + [235])
    pts["label"] = pts["stop"].astype(str)
    pts["title"] = pts["crew"].astype(str) + " stop " + pts["stop"].astype(str) + ": " + pts["leak_id"]
    pts["line1"] = pts["risk_band"].map(lambda b: c.label("band", b) + " risk") + " · " + \
        pts["est_rate_kg_h"].map(c.rate)
    pts["line2"] = ""
    routes = routing(stops)
    paths = [{"crew": r["crew"], "path": r["path"], "colour": rgb.get(r["crew"], [120, 120, 120]) + [170],
              "title": f"{r['crew']} route", "line1": f"{r['km']:,.1f} km, {c.plural(len(r['stops']), 'stop')}",
              "line2": "from the yard and back" if r["home"] else ""} for r in routes]
    yards = pd.DataFrame([{"longitude": r["home"][0], "latitude": r["home"][1], "crew": r["crew"],
                           "colour": rgb.get(r["crew"], [120, 120, 120]) + [255], "title": f"{r['crew']} yard",
                           "line1": "routes start and end here", "line2": ""} for r in routes if r["home"]])
    layers = [*m.scale_layers(pd.concat([pts, yards]) if len(yards) else pts),
              pdk.Layer("PathLayer", paths, id="routes", get_path="path", get_color="colour", width_min_pixels=3,
                        get_width=4, joint_rounded=True, cap_rounded=True, pickable=True)]
    if len(yards):
        # deck.gl's font atlas holds ASCII only unless told: without characterSet the ■ drew nothing (and a constant
        # getText is no accessor), so the glyph is a column and the atlas is asked for it
        yards["glyph"] = YARD
        layers.append(pdk.Layer("TextLayer", yards, id="yards", get_position=["longitude", "latitude"],
                                get_text="glyph", character_set=f'"{YARD}"', get_size=22, get_color="colour",
                                get_alignment_baseline="'center'", pickable=True))
    layers += [pdk.Layer("ScatterplotLayer", pts, id="stops", get_position=["longitude", "latitude"],
                         get_fill_color="colour", get_line_color=[255, 255, 255], stroked=True,
                         line_width_min_pixels=1.5, get_radius=80, radius_min_pixels=11, radius_max_pixels=16,
                         pickable=True),
               pdk.Layer("TextLayer", pts, id="stop_numbers", get_position=["longitude", "latitude"],
                         get_text="label", get_size=13, get_color=[255, 255, 255], font_weight=700,
                         get_alignment_baseline="'center'")]
    view = c.view_for(pd.concat([pts[["latitude", "longitude"]], yards[["latitude", "longitude"]]]) if len(yards)
                      else pts, 1000, 420)
    return m.deck(layers, view)


def routing(stops: pd.DataFrame) -> list[dict]:
    """Each crew's path (yard → stops → yard) as ``mlpe_core.export.routes`` draws it in GeoJSON and KML."""
    return routes(stops)


def crew_legend(stops: pd.DataFrame) -> str:
    crews = sorted(stops["crew"].dropna().unique())
    return c.legend({cr: CREW_RGB[i % len(CREW_RGB)] for i, cr in enumerate(crews)})


def approve_controls(list_id: int, flash_key: str, key: str) -> None:
    """Approve (the leaks become dispatched) or withdraw a draft list: supervisors only, recorded with the name,
    each after a confirmation (``st.dialog``)."""
    if not c.can("approve_dispatch"):
        st.caption("Waiting for a supervisor's approval.")
        return
    row = st.container(horizontal=True)
    if row.button("Approve list", key=f"{key}_ok", type="primary", icon=":material/verified:",
                  help="the list becomes final and its leaks move to dispatched"):
        c.ask("approve", list_id, flash_key)
    if row.button("Withdraw", key=f"{key}_withdraw", icon=":material/delete:", help="discard this draft"):
        c.ask("withdraw", list_id, flash_key)
    if (a := c.asked("approve")) and a[0] == list_id:
        confirm_approve(*a)
    if (a := c.asked("withdraw")) and a[0] == list_id:
        confirm_withdraw(*a)


@st.dialog("Approve this dispatch list?", on_dismiss=c.answered)
def confirm_approve(list_id: int, flash_key: str) -> None:
    st.write(f"List {list_id} becomes final: its leaks move to *dispatched* and the crews get their work orders. "
             "Your name is recorded with the approval.")
    if st.button("Approve", key="dlg_approve", type="primary", icon=":material/verified:"):
        c.answered()
        c.flash(flash_key, c.act("approve_dispatch", lambda s: "List {list_id} approved: {items} leaks dispatched."
                                 .format(**desk.approve_list(s, c.user(), list_id))))


@st.dialog("Withdraw this dispatch list?", on_dismiss=c.answered)
def confirm_withdraw(list_id: int, flash_key: str) -> None:
    st.write(f"List {list_id} is discarded; its leaks not yet visited go back to *open*. The withdrawal is recorded.")
    if st.button("Withdraw", key="dlg_withdraw", type="primary", icon=":material/delete:"):
        c.answered()
        c.flash(flash_key, c.act("approve_dispatch", lambda s: "List {list_id} withdrawn ({released} leaks back to "
                                 "open).".format(**desk.withdraw_list(s, c.user(), list_id))))
