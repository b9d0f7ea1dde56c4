"""Dispatch: today's list per crew in route order, on a map, with downloads for the crews and work orders."""

import streamlit as st

from app import common as c
from app import dispatching as dsp
from app import tables
from mlpe_core import desk
from mlpe_core.desk import crew_capacity
from mlpe_core.text import md

st.title("Dispatch")
cap, ver = crew_capacity(), c.version()
c.flashed("dispatch_flash")
k = int(st.session_state.get("dispatch_k", cap))
meta, stops = dsp.todays(ver, k)
if meta["status"] == "empty":
    st.info("Nothing to dispatch today: no open, unvisited, ranked leak. Upload detections and run *Fuse and score "
            "now* on the Upload page (or `mlpe demo` for a simulated basin), or record outcomes on Field validation "
            "to see what is left.", icon=":material/info:")
    st.stop()
crews = sorted(stops["crew"].dropna().unique())
summary = (f"{c.plural(len(stops), 'stop')} for {c.plural(len(crews), 'crew')} · "
           f"{meta.get('total_km') or 0:,.0f} km of driving")
if meta["status"] == "approved":
    st.success(f"Today's list {meta['list_id']} ({meta['plan_date']}) is **approved** by {md(meta['approved_by'])}: "
               f"{summary}. Its leaks are dispatched.", icon=":material/verified:")
elif meta["status"] == "draft":
    st.warning(f"Today's list {meta['list_id']} is a **draft** planned by {md(meta['created_by'])}: {summary}. It goes "
               "out once a supervisor approves it.", icon=":material/pending:")
    dsp.approve_controls(meta["list_id"], "dispatch_flash", "dispatch_appr")
else:
    st.info(f"**Proposed** routes for today from the current ranking, not planned yet: {summary}. Planning stores "
            "it as a draft for a supervisor to approve.", icon=":material/route:")
bar = st.container(horizontal=True, vertical_alignment="bottom")
if meta["status"] == "proposal":
    bar.number_input("Stops (K)", min_value=1, max_value=cap, value=cap, step=1, key="dispatch_k", width=160,
                     help=f"default = one day of the crews' visits (config/dispatch.yaml: {cap})")
    if c.can("plan_dispatch") and bar.button("Plan today's list", key="dispatch_plan", type="primary",
                                      icon=":material/edit_calendar:"):
        with st.spinner("Planning routes…"):
            lid = c.act("plan_dispatch", lambda s: desk.plan_list(s, c.user(), k, dsp.today()))
        c.flash("dispatch_flash", lid and f"List {lid} planned as a draft: a supervisor approves it.")
dsp.downloads(meta, k, bar)
st.caption(f"For {dsp.today()}. The files are the ones `mlpe dispatch show` / `mlpe export dispatch` write: CSV and "
           "GeoJSON for machines (contract columns, kg/h), KML and Excel for people (rates in your unit, a folder or "
           "sheet per crew, routes from the yards). The sidebar filters do not apply here.")
st.pydeck_chart(dsp.route_map(stops), key="dispatch_map", height=460)
st.caption(f"Lines are each crew's route from its yard ({dsp.YARD}) and back, numbers the visit order; north is up. "
           "Crews: " + dsp.crew_legend(stops), unsafe_allow_html=True)
# the crews' tables under the map, the page's width: beside it (two fifths) they were cut after the Risk column
# ("205.7" showed as "20"); the tab names the crew, so its column is left out
for tab, crew in zip(st.tabs([f"{cr} ({(stops['crew'] == cr).sum()})" for cr in crews]), crews, strict=True):
    g = stops[stops["crew"] == crew].sort_values("stop")
    tab.caption(f"{c.plural(len(g), 'stop')} in this order · {g['leg_km'].sum():,.1f} km between stops · "
                f"{c.rate(g['priority_score'].sum())} expected to be found")
    tables.show(g.drop(columns="crew"), "dispatch", f"dispatch_{crew}", where=tab,
                height=tables.height(len(g), 420))
