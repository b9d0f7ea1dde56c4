"""Obligations: what regulation requires and by when, soonest first, whatever each leak's place in the ranking."""

import streamlit as st

from app import common as c
from mlpe_core.export import to_csv_text

st.title("Obligations")
ob = c.load("obligations")
now = c.as_of()
st.caption(f"What regulation requires and by when, as of {now:%Y-%m-%d %H:%M} UTC (the scores' clock). Independent "
           "of the methane ranking: a leak ranked low still owes its deadline, and the day's plan puts overdue and "
           "due-today obligations first.")
if ob.empty:
    st.info("No regulatory clock is running as of the scores' clock: no leak is under a rule in the compliance "
            "rules. Clocks start when a rule's trigger happens (a notification received, an OGI find, an "
            "action level crossed).", icon=":material/gavel:")
    st.stop()
counts = ob["state"].value_counts()
m = st.columns(3)
m[0].metric("Overdue", f"{counts.get('overdue', 0):,}")
m[1].metric("Due within 7 days", f"{counts.get('due soon', 0):,}")
m[2].metric("Running", f"{counts.get('running', 0):,}")
states = st.multiselect("State", ["overdue", "due soon", "running"], default=["overdue", "due soon"],
                        key="ob_state", placeholder="every state")
shown = ob[ob["state"].isin(states)] if states else ob
N = st.column_config.NumberColumn
ev = st.dataframe(shown, hide_index=True, key="ob_table", on_select="rerun", selection_mode="single-row",
                  column_order=["due_by", "state", "days_left", "title", "action", "leak_id", "site", "started_text",
                                "citation", "rank", "status"],
                  column_config={"due_by": st.column_config.DatetimeColumn("due by (UTC)", format="YYYY-MM-DD HH:mm"),
                                 "days_left": N("days left", format="%.1f"), "leak_id": "leak", "site": "site",
                                 "title": "rule", "started_text": st.column_config.TextColumn("started by",
                                                                                              width="medium"),
                                 "rank": N("rank", format="%d"),
                                 "citation": st.column_config.TextColumn(width="large")})
bar = st.container(horizontal=True)
bar.download_button("Download CSV", to_csv_text(shown), "mlpe_obligations.csv", "text/csv",
                    key="ob_csv", icon=":material/download:", on_click="ignore")
if ev and ev.selection.rows:
    pick = shown.iloc[ev.selection.rows[0]]["leak_id"]
    if bar.button(f"Open {pick} in Leak detail", key="ob_open", type="primary", icon=":material/arrow_forward:"):
        st.session_state["leak_id"] = pick
        st.switch_page(c.PAGES["leak"], query_params={"leak": pick})

