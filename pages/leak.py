"""Leak detail: one leak's score and why, its detections, clocks, assets, field outcomes, story and actions."""

import math

import streamlit as st

from app import charts, tables
from app import common as c
from app import leakview as v
from mlpe_core import desk
from mlpe_core.text import md

lk = c.load("leaks")
if lk.empty:
    st.title("Leak detail")
    c.empty_store_hint()
    st.stop()
head, picker = st.columns([3, 1], vertical_alignment="bottom")
leak_id = v.pick_leak(lk, picker)
head.title(f"Leak {leak_id}")  # before the detail is read: the page shows whose it is at once
d = v.detail(leak_id, c.version())
events, story, L = d["events"], d["story"], d["leak"]
st.caption(f"{c.plural(L['n_detections'], 'detection')} from {c.plural(L['n_sources'], 'sensor')} "
           f"({md(c.present.sensors(L['source_types']))}) · first seen {L['first_seen']:%Y-%m-%d} · last seen "
           f"{L['last_seen']:%Y-%m-%d} · status **{md(c.label('status', L['status']))}** · "
           f"{c.present.coord(L['latitude'])}, {c.present.coord(L['longitude'])} (±{L['radius_m']:.0f} m)")
v.metrics(L, d["as_of"])
st.info(f"**Why:** {md(c.present.rules_in_text(L['top_reasons'])) or 'not scored yet'}", icon=":material/lightbulb:")

c.flashed("leak_flash")
bar = st.container(horizontal=True, vertical_alignment="bottom")
move = {"open": ("dispatch", "Mark for dispatch", ":material/local_shipping:"),
        "no_access": ("dispatch", "Mark for dispatch", ":material/local_shipping:"),
        "dispatched": ("release", "Release from dispatch", ":material/undo:")}.get(L["status"])
if move and move[0] in d["allowed_events"] and c.can("mark_dispatch"):
    if bar.button(move[1], key="leak_move", icon=move[2], help="a status change, recorded with your name; a marked "
                  "leak goes on the next plan whatever its rank"):
        act = desk.mark_for_dispatch if move[0] == "dispatch" else desk.release
        done = c.act("mark_dispatch", lambda s: act(s, c.user(), leak_id))
        c.flash("leak_flash", done and f"{leak_id}: {move[1].lower()} recorded.")
if c.can("note"):
    with bar.form("leak_note", clear_on_submit=True, border=False, width=640):
        row = st.container(horizontal=True, vertical_alignment="bottom")
        note = row.text_input("Add a note", key="leak_note_text", placeholder="e.g. operator replaced the valve")
        sent = row.form_submit_button("Add note", icon=":material/edit_note:")
    if sent:
        c.flash("leak_flash", c.act("note", lambda s: v.add_note(s, leak_id, note)))
v.notes(d["notes"])

left, right = st.columns(2)
with left:
    st.subheader("What moved the score")
    if d["contributions"]:
        fig, total = charts.waterfall(d["contributions"])
        charts.plot(fig, "waterfall", f"{leak_id}_contributions")
        st.caption("Red bars made a real leak more likely, blue bars less; the total gives P(real) = "
                   f"{c.pct(1 / (1 + math.exp(-total)))} (the bars add on the log-odds scale).")
    else:
        st.caption("No score yet: run *Fuse and score now* on the Upload page.")
    st.subheader("Nearby assets")
    v.assets(L, d["candidates"])
with right:
    st.subheader("Detections over time")
    charts.plot(charts.timeline(d["detections"], c.unit()), "timeline", f"{leak_id}_detections")
    st.caption("Unquantified detections sit on the zero line. Error bars are ±1σ.")
    st.subheader("Compliance clock")
    v.clocks(d["clocks"], d["as_of"])

vals = d["validations"]
tabs = st.tabs([f"Story ({len(story)})", f"Detections ({len(d['detections'])})",
                f"Field validations ({len(vals)})", f"Status history ({len(events)})", f"Audit ({len(d['history'])})"])
with tabs[0]:
    st.caption("Everything that happened to this leak, oldest first: the file rows that created it, its score, "
               "status changes, field visits and every recorded action.")
    tables.show(story, "story", "story", height=tables.height(len(story), 420))
with tabs[1]:
    v.detections_table(d["detections"])
with tabs[2]:
    if len(vals):
        tables.show(vals, "validations", "vals", height=tables.height(len(vals), 300))
    else:
        st.caption("No field visit recorded yet: the Field validation page records one.")
with tabs[3]:
    if len(events):
        tables.show(events, "events", "events", height=tables.height(len(events), 300))
    else:
        st.caption("No status change recorded yet: the leak is as fusion created it.")
with tabs[4]:
    tables.show(d["history"], "audit", "hist", height=tables.height(len(d["history"]), 300))
