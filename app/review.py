"""The supervisor's review, cached per store version: overrides, what changed since the last review, model comparison.

Everything is decided in ``mlpe_core.desk``; this module only caches its answers for the Rankings page.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import common as c
from mlpe_core import desk


@st.cache_data(show_spinner=False, max_entries=8)
def overrides(ver: tuple) -> pd.DataFrame:
    """The latest override of each leak still in force: leak_id, override (rank), reason, by, at."""
    with c.session() as s:
        return desk.overrides(s)


@st.cache_data(show_spinner=False, max_entries=8)
def changes(ver: tuple) -> dict | None:
    """``desk.review_changes``: None before the first review, else who, when and the change tables."""
    with c.session() as s:
        return desk.review_changes(s)


@st.cache_data(show_spinner=False, max_entries=8)
def compare(a: int, b: int, ver: tuple) -> tuple[pd.DataFrame, dict]:
    """``desk.compare_models``: how versions ``a`` and ``b`` rank today's open leaks, side by side."""
    with c.session() as s:
        return desk.compare_models(s, a, b)
