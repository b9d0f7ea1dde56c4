"""MLPE app entry point: `streamlit run app/main.py` (from the repo root). Routing and shared set-up only."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import common, filters  # noqa: E402
from mlpe_core import pipeline, store  # noqa: E402

st.set_page_config(layout="wide", page_title="MLPE", page_icon=":material/heat:")
st.html("<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem}</style>")  # less empty space on top

if not st.session_state.get("demo_checked"):  # an empty store gets the simulated demo basin, once
    with common.session() as s:
        if store.counts(s)["detections"] == 0:
            with st.spinner("Empty store: loading the simulated demo basin (about 10 seconds)…"):
                pipeline.ensure_demo(s)
    st.session_state["demo_checked"] = True

P = common.PAGES
nav = st.navigation({
    "Triage": [st.Page(P["map"], title="Map", icon=":material/map:", default=True),
               st.Page(P["leak"], title="Leak detail", icon=":material/location_searching:")],
    "Review": [st.Page(P["rankings"], title="Rankings", icon=":material/format_list_numbered:"),
               st.Page(P["dispatch"], title="Dispatch", icon=":material/local_shipping:")],
    "Field": [st.Page(P["validation"], title="Field validation", icon=":material/fact_check:"),
              st.Page(P["upload"], title="Upload", icon=":material/upload_file:")],
    "Model": [st.Page(P["model"], title="Model & audit", icon=":material/model_training:")],
})
with st.sidebar:
    st.caption(f"Store: `{common.resolve_url().split('/')[-1]}`")
filters.sidebar_filters()
nav.run()
