"""MLPE app entry point: `streamlit run app/main.py` (from the repo root). Routing and shared set-up only."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import common, filters, live, mapping, signin  # noqa: E402
from mlpe_core import desk  # noqa: E402

st.set_page_config(layout="wide", page_title="MLPE", page_icon=":material/heat:")
desk.set_face("app")
if not st.session_state.get("settings_checked"):  # every MLPE_* variable, once per session: a bad one is named
    try:
        desk.settings(reload=True)
    except desk.SettingsError as e:
        st.error(str(e), icon=":material/error:")
        st.stop()
    st.session_state["settings_checked"] = True
st.html("<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem}"  # less empty space on top
        "[data-testid='stMetricValue']{font-size:1.75rem}</style>")  # six metrics fit a laptop row
st.html(mapping.CHROME, unsafe_allow_javascript=True)  # maps: a north arrow, tooltips kept inside the map

if not st.session_state.get("demo_checked"):  # an empty store gets the simulated demo basin, once
    with common.session() as s:
        if desk.status(s)["detections"] == 0 and desk.is_open(s):  # never into a store with users
            with st.spinner("Empty store: loading the simulated demo basin (about 10 seconds)…"):
                desk.ensure_demo(s)
    st.session_state["demo_checked"] = True

if not signin.signed_in():  # a store with users: nothing but the sign-in form until then
    st.navigation([st.Page(signin.page, title="Sign in", icon=":material/login:")]).run()
    st.stop()
P = common.PAGES
live.mark_drawn()
n_open = st.session_state[live.BASE]["open_alerts"]
nav = st.navigation({
    "Triage": [st.Page(P["map"], title="Map", icon=":material/map:", default=True),
               st.Page(P["leak"], title="Leak detail", icon=":material/location_searching:")],
    "Review": [st.Page(P["rankings"], title="Rankings", icon=":material/format_list_numbered:"),
               st.Page(P["obligations"], title="Obligations", icon=":material/gavel:"),
               st.Page(P["site"], title="Site", icon=":material/factory:"),
               st.Page(P["operator"], title="Operator", icon=":material/domain:"),
               st.Page(P["dispatch"], title="Dispatch", icon=":material/local_shipping:")],
    "Field": [st.Page(P["validation"], title="Field validation", icon=":material/fact_check:"),
              st.Page(P["upload"], title="Upload", icon=":material/upload_file:")],
    "Live": [st.Page(P["alerts"], title=f"Alerts ({n_open})" if n_open else "Alerts",
                     icon=":material/notifications:", url_path="alerts"),
             st.Page(P["runs"], title="Runs", icon=":material/timer:", url_path="runs")],
    "Model & audit": [st.Page(P["model"], title="Model", icon=":material/model_training:"),
                      st.Page(P["audit"], title="Audit trail", icon=":material/history:")],
}, expanded=True)  # every page in sight: a collapsed "View 3 more" hid Runs, Model and Audit trail
# whether this run entered its page from another one (a page may then forget what it last said)
st.session_state["page_entered"] = st.session_state.get("page_now") != nav.url_path
st.session_state["page_now"] = nav.url_path
with st.sidebar:
    live.panel()
filters.sidebar_filters()
try:
    nav.run()
finally:  # who is acting, at the foot of the sidebar, under the page's own controls (also after st.stop)
    signin.sidebar()
    st.sidebar.caption(f"Scores as of **{common.as_of():%Y-%m-%d %H:%M} UTC**: every \"days ago\", \"overdue\" "
                       "and \"today\" counts from it.")
    st.sidebar.caption(f"Store: `{common.resolve_url().split('/')[-1]}`")
