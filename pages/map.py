"""Map: where the leaks are (colour = risk, size = rate), replayed through time; click leaks to inspect them."""

import streamlit as st

from app import common as c
from app import filters, mapview

st.title("Leak map")
lk = c.leaks_with_operator()
if lk.empty:
    c.empty_store_hint()
    st.stop()
shown = filters.apply_filters(lk)
opts = mapview.layer_toggles(len(shown))
mapview.map_and_panel(lk, shown, opts)
