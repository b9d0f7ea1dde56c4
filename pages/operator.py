"""Operator: roll-ups for the people above the analyst — open leaks, expected kg/h, confirmed and repaired, time to
repair, clocks met on time, per-sensor precision from field outcomes, false alarms, worsening sites — and the
regulator's report for a period (PDF, XLSX, JSON)."""

import streamlit as st

from app import charts, tables
from app import common as c
from app import sitesview as v
from mlpe_core import desk
from mlpe_core.text import md

st.title("Operator")
ops = c.load("operators")
if ops.empty:
    c.empty_store_hint()
    st.stop()
ver = c.version()
head, picker = st.columns([3, 1], vertical_alignment="bottom")
name = v.pick("Operator", list(ops["operator"]), "op_pick", "op", picker)  # ?operator= is the sidebar filter
d = v.operator(name, ver)
R = d["operator"]
head.subheader(md(name))
st.caption(f"As of {d['as_of']:%Y-%m-%d %H:%M} UTC · {int(R['n_sites'])} sites with leaks. Every operator side by "
           "side in the table at the foot of the page.")
m = st.columns(6)
m[0].metric("Open leaks", f"{int(R['n_open'])} of {int(R['n_leaks'])}")
m[1].metric(c.rate_label("Expected"), c.rate(R["expected_kg_h"]), help="P(real) × rate over its open leaks")
m[2].metric("Confirmed / repaired", f"{int(R['n_confirmed'])} / {int(R['n_repaired'])}")
m[3].metric("Days to repair", v.days(R["median_days_to_repair"]), help="median, from first detection to repair")
m[4].metric("Clocks met on time", c.pct(R["on_time_share"]), help=f"{int(R['met_on_time'])} on time, "
            f"{int(R['met_late'])} late, {int(R['overdue'])} overdue")
m[5].metric("False alarms", c.pct(R["false_alarm_share"]), help="checked leaks the crew did not find")
v.trend_box(d["trend"], "operator's sites, pooled,")

st.subheader(f"Worsening sites ({len(d['worsening'])})")
w = d["worsening"]
if len(w):
    ev = tables.show(w, "worsening", "op_worse", on_select="rerun", selection_mode="single-row",
                     height=tables.height(len(w), 420))
    if ev and ev.selection.rows:
        pick = w.iloc[ev.selection.rows[0]]["asset_id"]
        if st.button(f"Open site {pick}", key="op_open_site", type="primary", icon=":material/arrow_forward:"):
            st.switch_page(c.PAGES["site"], query_params={"site": pick})
else:
    st.caption("No site of this operator got measurably worse over the trend window (docs/sites.md: the test).")

left, right = st.columns(2)
with left:
    st.subheader("Sensor precision from field outcomes")
    tables.show(d["sensors"], "sensor_precision", "op_sensors", height=tables.height(len(d["sensors"]), 420))
    st.caption("Of the checked leaks each sensor saw at this operator's sites, the share a crew found real (confirmed "
               "or already repaired), with a 90 % Jeffreys interval.")
with right:
    st.subheader("Detections through time")
    charts.plot(charts.detected_days(d["weekly"]), "op_detected",
                f"{name}_detections")

st.subheader("The regulator's report")
d0, d1 = desk.default_period(d["as_of"])
a, b, go = st.columns([1, 1, 2], vertical_alignment="bottom")
start = a.date_input("From", value=d0, key="rep_from", format="YYYY-MM-DD")
end = b.date_input("To", value=d1, key="rep_to", format="YYYY-MM-DD")
st.caption("Every super-emitter notice with its dates of notice, investigation, finding, repair and report, on time or "
           "late; LDAR findings and repairs with delays and reasons; action-level exceedances and responses; totals "
           "by site type; emissions. Each row cites the notification, visit, lifecycle and audit records behind it.")
if go.button("Prepare report", key="rep_go", icon=":material/description:") or st.session_state.get("rep_ready") == (
        name, start, end):
    if start > end:
        st.error("The period's start is after its end.")
    else:
        files = v.report_files(name, start, end, c.user(), ver)
        st.session_state["rep_ready"] = (name, start, end)
        n, f, x = files["counts"]
        st.caption(f"{n} notifications, {f} LDAR findings, {x} action-level exceedances.")
        bar = st.container(horizontal=True)
        stem = f"mlpe_report_{name.replace(' ', '_')}_{start}_{end}"
        bar.download_button("PDF", files["pdf"], f"{stem}.pdf", "application/pdf", key="rep_pdf",
                            icon=":material/picture_as_pdf:", on_click="ignore")
        bar.download_button("Excel", files["xlsx"], f"{stem}.xlsx", key="rep_xlsx", icon=":material/table:",
                            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                            on_click="ignore")
        bar.download_button("JSON", files["json"], f"{stem}.json", "application/json", key="rep_json",
                            icon=":material/data_object:", on_click="ignore")

with st.expander("Sites of this operator", expanded=False):
    tables.show(d["sites"], "op_sites", "op_sites", height=tables.height(len(d["sites"]), 420))
st.subheader("All operators")
tables.show(ops, "operators", "op_all", height=tables.height(len(ops), 420))
st.download_button("Download CSV", tables.people_csv(ops, "operators"), "mlpe_operators.csv", "text/csv", key="op_csv",
                   icon=":material/download:", on_click="ignore", help=tables.PEOPLE_CSV_HELP)
