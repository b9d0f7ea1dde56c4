"""Alerts: the inbox of conditions someone must act on, routed to teams; acknowledge or snooze with a reason."""

import pandas as pd
import streamlit as st

from app import common as c
from app import tables
from mlpe_core import desk
from mlpe_core.text import md

STATES = {"open": "Open", "acknowledged": "Acknowledged", "snoozed": "Snoozed", "all": "All"}


@st.cache_data(show_spinner=False, max_entries=16)
def inbox(ver: tuple, state: str) -> pd.DataFrame:
    with c.session() as s:
        return desk.alerts_inbox(s, None if state == "all" else state, limit=2000)


@st.cache_data(show_spinner=False, max_entries=8)
def deliveries(ver: tuple) -> pd.DataFrame:
    with c.session() as s:
        return desk.alert_deliveries(s)


st.title("Alerts")
st.caption("A new HIGH leak, a deadline due or overdue, a failed repair, a burst of alarms at one asset, a site "
           "whose emissions worsen: each alerts once, goes to the team that owns it (inbox, webhook, e-mail) and "
           "stays here until someone acknowledges or snoozes it, with the reason, in the audit trail.")
c.flashed("al_flash")
ver = c.version()
state = st.segmented_control("Show", list(STATES), format_func=STATES.get, default="open", key="al_state") or "open"
rows = inbox(ver, state)
dl = deliveries(ver)
with c.session() as s:
    n_open = desk.open_alert_count(s)
    checked = desk.last_alert_check(s)
failed = dl[dl["state"] == "failed"] if len(dl) else dl
m = st.columns(4)
m[0].metric("Open", f"{n_open:,}")
m[1].metric("Shown", f"{len(rows):,}")
m[2].metric("Deliveries failed", f"{len(failed):,}", help="gave up after every retry: see the table below")
m[3].metric("Deliveries waiting", f"{int((dl['state'] == 'pending').sum()) if len(dl) else 0:,}")
if c.can("alerts") and st.button("Check the rules now", key="al_check", icon=":material/rule:"):
    r = c.act("alerts", lambda s: desk.check_alerts(s, c.user()))
    if r is not None:
        c.flash("al_flash", f"{r['found']} conditions found, {r['new']} new alerts.")
now = "check them now" if c.can("alerts") else "ask an analyst or a supervisor to check them"
if checked is None:
    st.warning(f"The alert rules have never been checked: deadlines, failed repairs and new HIGH leaks are not in "
               f"this inbox yet; {now}.", icon=":material/rule:")
else:
    st.caption(f"The alert rules were last checked {c.present.when(checked)}.")
if rows.empty:
    if state != "open":
        st.info("Nothing here.", icon=":material/notifications_off:")
    elif checked is not None:
        st.info(f"No open alert as of the last check of the rules ({c.present.when(checked)}); anything since then "
                f"shows after the next check ({now}).", icon=":material/notifications_off:")
else:
    teams = sorted(rows["team"].dropna().unique())
    team = st.selectbox("Team", teams, index=None, placeholder="every team", key="al_team",
                        format_func=lambda t: c.label("team", t)) if len(teams) > 1 else None
    if team:
        rows = rows[rows["team"] == team]
    tables.show(rows.drop(columns=["key"], errors="ignore"), "alerts", "al_table", height=360)  # key: dedup only
    if c.can("alerts"):
        st.subheader("Act on an alert")
        ids = rows["id"].tolist()
        by = rows.set_index("id")
        pick = st.selectbox("Alert", ids, key="al_pick", format_func=lambda i: f"{i}: {by.at[i, 'title'][:90]}")
        if pick is not None:
            a = by.loc[pick]
            st.markdown(f"**{md(a['title'])}** — rule *{md(c.label('alert_rule', a['rule']))}*, team "
                        f"**{md(c.label('team', a['team']))}**, {md(c.label('alert_state', a['state']).lower())}; "
                        f"sent to: {md(a['deliveries'])}")
            if isinstance(a.get("leak_id"), str) and a["leak_id"]:
                st.page_link(c.PAGES["leak"], label=f"Open leak {a['leak_id']}", icon=":material/open_in_new:",
                             query_params={"leak": a["leak_id"]})
            reason = st.text_input("Reason (recorded in the audit trail)", key="al_reason")
            b = st.columns([1, 1, 2])
            hours = b[2].number_input("Snooze for (hours)", min_value=0.5, max_value=8760.0, value=24.0, step=1.0,
                                      key="al_hours", format="%g")  # "24", not "24.00"
            if b[0].button("Acknowledge", key="al_ack", type="primary", icon=":material/done:"):
                c.flash("al_flash", c.act("alerts", lambda s: desk.acknowledge_alert(s, c.user(), pick, reason)
                                          and f"Alert {pick} acknowledged."))
            if b[1].button("Snooze", key="al_snooze", icon=":material/snooze:"):
                c.flash("al_flash", c.act("alerts", lambda s: desk.snooze_alert(s, c.user(), pick, reason, hours=hours)
                                          and f"Alert {pick} snoozed for {hours:g} h."))

st.subheader("Deliveries")
if dl.empty:
    st.caption("Nothing sent yet: alerts reach webhooks and e-mail when a team in the alert rules file names them "
               "(`MLPE_ALERTS_CONFIG`); the inbox always has them.")
else:
    tables.show(dl, "deliveries", "al_deliveries")
