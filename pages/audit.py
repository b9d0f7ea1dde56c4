"""Audit trail: every recorded action filtered by who, what, which and when, exported; a leak's full story."""

from datetime import datetime, time

import pandas as pd
import streamlit as st

from app import common as c
from app import tables
from mlpe_core import desk
from mlpe_core.export import to_csv_text
from mlpe_core.text import md


@st.cache_data(show_spinner=False, max_entries=16)
def events(ver: tuple, actor: str | None, action: str | None, target: str | None, since, until) -> pd.DataFrame:
    with c.session() as s:
        return desk.audit_trail(s, actor, action, target, since, until)


@st.cache_data(show_spinner=False, max_entries=16)
def story(ver: tuple, leak_id: str) -> pd.DataFrame:
    with c.session() as s:
        return desk.leak_story(s, leak_id)


st.title("Audit trail")
ver = c.version()
every = events(ver, None, None, None, None, None)
if every.empty:
    st.info("Nothing recorded yet. Every ingest, fuse and score run, field outcome, override, approval, model "
            "change and note lands here: start on the Upload page, or `mlpe demo` for a simulated basin.",
            icon=":material/info:")
    st.stop()
st.caption("Append-only: who did what, when, to which leak, list or model, with the values before and after.")
f = st.columns([1, 1, 1, 2])
actor = f[0].selectbox("Who", sorted(every["actor"].unique()), index=None, key="au_actor", placeholder="anyone")
action = f[1].selectbox("Action", sorted(every["action"].unique(), key=lambda a: c.label("action", a)), index=None,
                        key="au_action", placeholder="any action", format_func=lambda a: c.label("action", a))
target = f[2].text_input("Target", key="au_target", placeholder="e.g. L000012").strip() or None
lo, hi = every["at"].min().date(), every["at"].max().date()
when = f[3].date_input("When", value=(lo, hi), min_value=lo, max_value=hi, key="au_when", format="YYYY-MM-DD")
since = datetime.combine(when[0], time.min) if len(when) > 0 and when[0] > lo else None
until = datetime.combine(when[1], time.max) if len(when) > 1 and when[1] < hi else None  # the end: up to now
rows = events(ver, actor, action, target, since, until)
st.caption(f"{len(rows):,} of {len(every):,} events.")
bar = st.container(horizontal=True)
bar.download_button("Download CSV", lambda: to_csv_text(rows), "mlpe_audit.csv", "text/csv", key="au_csv",
                    icon=":material/download:", on_click="ignore", type="primary",
                    help="the recorded events as they are stored (codes and JSON details), for evidence and scripts")
tables.show(rows.head(2000), "audit", "au_table", height=380,
            empty="No recorded action matches these filters: the Target must be an id exactly as recorded (e.g. "
                  "L000012); clear it, or widen Who, Action or When.")
if len(rows) > 2000:
    st.caption("The newest 2,000 are shown; the CSV has them all.")

st.subheader("A leak's full story")
st.caption("From the file rows that created it to its repair: detections with their file, row and hash, the "
           "score, every status change, field visit and recorded action.")
lk = c.load("leaks")
ids = lk.sort_values(["rank", "leak_id"], na_position="last")["leak_id"].tolist()
if not ids:
    st.caption("No leak yet.")
    st.stop()
ss = st.session_state
if target in ids and target != ss.get("au_leak_followed"):  # a leak typed in Target above: its story here
    ss["au_leak"] = ss["au_leak_followed"] = target
elif ss.get("au_leak") not in ids:
    ss["au_leak"] = ss.get("leak_id") if ss.get("leak_id") in ids else ids[0]
pick = st.selectbox("Leak", c.capped(ids, ss.get("au_leak")), key="au_leak",
                    accept_new_options=len(ids) > c.MAX_OPTIONS)
if pick not in set(ids):
    st.error(f"No leak '{md(pick)}'.")
    st.stop()
sto = story(ver, pick)
tables.show(sto, "story", "au_story", height=tables.height(len(sto), 420))
st.download_button("Download story CSV", tables.people_csv(sto, "story"), f"mlpe_story_{pick}.csv",
                   "text/csv", key="au_story_csv", icon=":material/download:", on_click="ignore",
                   help=tables.PEOPLE_CSV_HELP)
