"""Leak detail: one leak's score and why, its detections, clocks, assets, field outcomes, story and actions."""

import math

import streamlit as st

from app import charts
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
d = v.detail(leak_id, c.version())
events, story, L = d["events"], d["story"], d["leak"]
head.title(f"Leak {leak_id}")
st.caption(f"{c.plural(L['n_detections'], 'detection')} from {c.plural(L['n_sources'], 'sensor')} "
           f"({md(L['source_types'].replace('_', ' ').replace(',', ', '))}) · "
           f"first seen {L['first_seen']:%Y-%m-%d} · last seen {L['last_seen']:%Y-%m-%d} · "
           f"status **{md(L['status'])}** · "
           f"{L['latitude']:.5f}, {L['longitude']:.5f} (±{L['radius_m']:.0f} m)")
v.metrics(L, d["as_of"])
st.info(f"**Why:** {md(L['top_reasons']) or 'not scored yet'}", icon=":material/lightbulb:")

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
        st.caption("Red terms raise, blue terms lower the log-odds that a crew finds a real leak; P(real) = "
                   f"1 / (1 + e^−total) = {c.pct(1 / (1 + math.exp(-total)))}.")
    else:
        st.caption("No score yet: run *Fuse and score now* on the Upload page.")
    st.subheader("Nearby assets")
    v.assets(L, d["candidates"])
with right:
    st.subheader("Detections over time")
    charts.plot(charts.timeline(d["detections"]), "timeline", f"{leak_id}_detections")
    st.caption("Unquantified detections sit on the zero line. Error bars are ±1σ.")
    st.subheader("Compliance clock")
    v.clocks(d["clocks"], d["as_of"])

vals = d["validations"].drop(columns=["id", "batch_id"], errors="ignore")
tabs = st.tabs([f"Story ({len(story)})", f"Detections ({len(d['detections'])})",
                f"Field validations ({len(vals)})", f"Status history ({len(events)})", f"Audit ({len(d['history'])})"])
with tabs[0]:
    st.caption("Everything that happened to this leak, oldest first: the file rows that created it, its score, "
               "status changes, field visits and every recorded action.")
    st.dataframe(story, hide_index=True, key="story", column_config={
        "at": st.column_config.DatetimeColumn("when (UTC)", format="YYYY-MM-DD HH:mm"),
        "what": st.column_config.TextColumn(width="large"), "source": st.column_config.TextColumn(width="large")})
with tabs[1]:
    v.detections_table(d["detections"])
with tabs[2]:
    if len(vals):
        st.dataframe(vals, hide_index=True, key="vals")
    else:
        st.caption("No field visit recorded yet: the Field validation page records one.")
with tabs[3]:
    if len(events):
        st.dataframe(events.assign(detail=events["detail"].map(v.words)).drop(columns=["id", "leak_id"],
                                                                               errors="ignore"), hide_index=True,
                     key="events")
    else:
        st.caption("No status change recorded yet: the leak is as fusion created it.")
with tabs[4]:
    h = d["history"]
    st.dataframe(h.assign(detail=h["detail"].map(v.words)).drop(columns=["id", "target"]), hide_index=True,
                 key="hist", column_config={"at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
