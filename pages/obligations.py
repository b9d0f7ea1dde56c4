"""Obligations: what regulation requires and by when, soonest first, whatever each leak's place in the ranking."""

import streamlit as st

from app import common as c
from app import tables

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
                        key="ob_state", placeholder="every state", format_func=lambda x: c.label("obligation_state", x))
shown = ob[ob["state"].isin(states)] if states else ob
ev = tables.show(shown, "obligations", "ob_table", on_select="rerun", selection_mode="single-row",
                 height=tables.height(len(shown)))
if ev and ev.selection.rows:  # one click opens the leak
    pick = shown.iloc[ev.selection.rows[0]]["leak_id"]
    if isinstance(pick, str) and pick:
        st.session_state["leak_id"] = pick
        st.switch_page(c.PAGES["leak"], query_params={"leak": pick})
bar = st.container(horizontal=True)
bar.download_button("Download CSV", tables.people_csv(shown, "obligations"), "mlpe_obligations.csv", "text/csv",
                    key="ob_csv", icon=":material/download:", on_click="ignore", help=tables.PEOPLE_CSV_HELP)
bar.caption("Click a row to open its leak.")

