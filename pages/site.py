"""Site: one asset through time — its leaks, detections per sensor, estimated emissions with bounds, visits and
repairs, obligations, and whether it is getting worse (with the evidence)."""

import streamlit as st

from app import charts, tables
from app import common as c
from app import sitesview as v
from mlpe_core.text import md

st.title("Site")
roll = c.load("sites")
if roll.empty:
    c.empty_store_hint()
    st.stop()
ver = c.version()
head, picker = st.columns([3, 1], vertical_alignment="bottom")
labels = {r.asset_id: f"{r.asset_id} · {r.operator or '–'} · {r.n_leaks} leak{'s' if r.n_leaks != 1 else ''}"
          + (" · worsening" if r.worsening else "") for r in roll.itertuples()}
asset_id = v.pick("Site", list(roll["asset_id"]), "site_pick", "site", picker, fmt=lambda a: labels.get(a, a))
d = v.site(asset_id, ver)
S = d["site"]
head.subheader(f"{md(asset_id)} · {md(str(S.get('asset_type') or 'unregistered').replace('_', ' '))} · "
               f"{md(S.get('operator') or 'no operator')}")
st.caption(f"As of {d['as_of']:%Y-%m-%d %H:%M} UTC · {S['latitude']:.4f}, {S['longitude']:.4f} · the site's leaks are "
           "those fusion attributed to this asset; its detections are theirs and the site-level sensors' own.")
m = st.columns(6)
m[0].metric("Leaks (open)", f"{int(S['n_leaks'])} ({int(S['n_open'])})")
m[1].metric(c.rate_label("Expected"), c.rate(S["expected_kg_h"]), help="P(real) × rate, summed over its open leaks")
m[2].metric("Confirmed / repaired", f"{int(S['n_confirmed'])} / {int(S['n_repaired'])}")
m[3].metric("Days to repair", v.days(S["median_days_to_repair"]), help="median, from first detection to repair")
m[4].metric("Clocks on time / late", f"{int(S['met_on_time'])} / {int(S['met_late']) + int(S['overdue'])}",
            help="late counts clocks met late and clocks overdue")
m[5].metric("Detections", f"{int(S['n_detections']):,}", help=f"{int(S['n_sensors'])} sensors")
v.trend_box(d["trend"], "site")

left, right = st.columns(2)
with left:
    st.subheader("Estimated emissions through time")
    charts.plot(charts.site_emissions(d["emissions"], d["weekly"], c.unit()), "site_emissions", f"{asset_id}_emissions")
    st.caption("The line is the summed rate of the site's leaks while they emitted (from first detection to repair), "
               "weighted by P(real), with their ±1σ band; the points are each sensor's weekly geometric-mean reading "
               "with a 90 % interval, as the sensor reported it (monitors read low: each on its own scale).")
with right:
    st.subheader("Detections per sensor")
    charts.plot(charts.detected_days(d["weekly"]), "site_detected", f"{asset_id}_detections")
    st.caption("Share of the days each sensor watched the site that had a detection: an offline week is not a quiet "
               "one. Satellites watch on their pass days; aircraft readings have no known watched days.")

tabs = st.tabs(["Leaks", "Visits and repairs", "Obligations", "Status history"])
with tabs[0]:
    lk = d["leaks"]
    ev = tables.show(lk, "site_leaks", "site_leaks", on_select="rerun", selection_mode="single-row",
                     height=tables.height(len(lk), 420))
    bar = st.container(horizontal=True)
    bar.download_button("Download CSV", tables.people_csv(lk, "site_leaks"), f"mlpe_site_{asset_id}_leaks.csv",
                        "text/csv", key="site_csv", icon=":material/download:", on_click="ignore",
                        help=tables.PEOPLE_CSV_HELP)
    if ev and ev.selection.rows:
        pick = lk.iloc[ev.selection.rows[0]]["leak_id"]
        if bar.button(f"Open {pick} in Leak detail", key="site_open", type="primary", icon=":material/arrow_forward:"):
            st.session_state["leak_id"] = pick
            st.switch_page(c.PAGES["leak"], query_params={"leak": pick})
with tabs[1]:
    if len(d["visits"]):
        tables.show(d["visits"], "validations", "site_visits", height=tables.height(len(d["visits"]), 420))
    else:
        st.caption("No field visit recorded at this site.")
with tabs[2]:
    v.obligations_table(d["obligations"], "site_ob")
with tabs[3]:
    if len(d["events"]):
        tables.show(d["events"], "events", "site_events", height=tables.height(len(d["events"]), 420))
    else:
        st.caption("No status change recorded at this site.")
