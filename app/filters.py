"""The shared sidebar filters: held in session state, seeded from and mirrored into the URL (shareable views)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from app.common import OPEN, STATUSES, as_of, load, unit
from mlpe_core import desk, present
from mlpe_core.desk import RISK_BANDS, SOURCE_TYPES

# session key -> (query parameter, default); lists are multiselects where empty means "all"
FILTERS = {"f_band": ("band", []), "f_src": ("source", []), "f_status": ("status", OPEN),
           "f_min_rate": ("min_rate", 0.0), "f_op": ("operator", [])}


def sidebar_filters() -> None:
    """Shared filters: session state first, else the URL, else defaults; mirrored back into the URL."""
    qp = st.query_params
    for key, (param, default) in FILTERS.items():
        if key not in st.session_state:
            raw = qp.get(param)
            if raw is None:
                st.session_state[key] = default
            elif isinstance(default, float):
                try:
                    st.session_state[key] = max(float(raw), 0.0)
                except ValueError:
                    st.session_state[key] = default
            else:
                st.session_state[key] = [v for v in raw.split(",") if v]
    span = data_span()
    _seed_window(span)
    ops = sorted(load("assets").get("operator", pd.Series(dtype=str)).dropna().unique())
    options = {"f_band": list(RISK_BANDS), "f_src": list(SOURCE_TYPES), "f_status": list(STATUSES), "f_op": ops}
    for key, opts in options.items():  # drop values a hand-edited URL may carry that are not options
        st.session_state[key] = [v for v in st.session_state[key] if v in opts]
    with st.sidebar:
        st.subheader("Filters")
        if span:
            st.date_input("Time window", key="f_window", min_value=span[0], max_value=span[1], format="YYYY-MM-DD",
                          help="leaks detected in this window (first to last detection overlaps it)")
        st.multiselect("Risk band", RISK_BANDS, key="f_band", placeholder="all bands",
                       format_func=lambda b: present.label("band", b))
        st.multiselect("Source type", SOURCE_TYPES, key="f_src", placeholder="all sensors",
                       format_func=lambda s: present.label("sensor", s))
        st.multiselect("Status", STATUSES, key="f_status", placeholder="all statuses",
                       help="open and dispatched leaks still need a visit",
                       format_func=lambda s: present.label("status", s))
        st.number_input("Minimum rate (kg/h)", min_value=0.0, step=1.0, key="f_min_rate", format="%.1f")
        if ops:
            st.multiselect("Operator", ops, key="f_op", placeholder="all operators")
        unit_picker()
    for key, (param, default) in FILTERS.items():
        value = st.session_state[key]
        if value == default:
            if param in qp:
                del qp[param]
        else:
            qp[param] = ",".join(value) if isinstance(value, list) else f"{value:g}"
    win = window()
    if span and win and win != span:
        qp["window"] = f"{win[0]},{win[1]}"
    elif "window" in qp:
        del qp["window"]


def unit_picker() -> None:
    """*Rates in*: the unit every rate on every page, and the workbook and KML downloads, is shown in; remembered
    in the session and in the URL (``?unit=``)."""
    ss = st.session_state
    unit()  # seeds the session from the URL
    if ss.get("unit") not in present.UNITS:  # a click on the chosen one clears it: keep the default
        ss["unit"] = present.DEFAULT_UNIT
    st.segmented_control("Rates in", list(present.UNITS), key="unit", help="kg/h of methane; scf/h and Mcf/d at 60 °F "
                         "and 1 atm (1 scf = 0.01920 kg); t/yr over a 365-day year", width="stretch")
    chosen = present.unit_or_default(ss.get("unit"))
    if chosen == present.DEFAULT_UNIT:
        st.query_params.pop("unit", None)
    else:
        st.query_params["unit"] = chosen


def data_span() -> tuple[date, date] | None:
    """First and last day any active leak was detected."""
    lk = load("leaks")
    if lk.empty:
        return None
    return lk["first_seen"].min().date(), lk["last_seen"].max().date()


def _seed_window(span: tuple[date, date] | None) -> None:
    """The window from session state, else the URL, else the whole span; kept inside the span. A window the user
    never narrowed follows the data when new detections extend it."""
    ss = st.session_state
    if span is None:
        return
    cur, old = ss.get("f_window"), ss.get("f_window_span")
    if cur is None:
        cur = span
        raw = st.query_params.get("window", "")
        try:
            a, b = (date.fromisoformat(x) for x in raw.split(","))
            cur = (min(a, b), max(a, b))
        except ValueError:
            pass
    elif old and tuple(cur) == old:
        cur = span
    ss["f_window_span"] = span
    if len(cur) != 2:  # a range still being picked: window() runs it to the end of the data
        return
    lo, hi = max(cur[0], span[0]), min(cur[1], span[1])
    ss["f_window"] = (lo, hi) if lo <= hi else span


def window() -> tuple[date, date] | None:
    """The chosen window as two dates (a range still being picked runs to the end of the data)."""
    w, span = st.session_state.get("f_window"), st.session_state.get("f_window_span")
    if not w or not span:
        return span
    return (w[0], w[1] if len(w) > 1 else span[1])


def current() -> desk.LeakFilter:
    """The sidebar's filters as the desk's :class:`~mlpe_core.desk.LeakFilter` (the same one the API takes)."""
    ss = st.session_state
    win = window()
    return desk.LeakFilter(bands=list(ss.get("f_band") or []), source_types=list(ss.get("f_src") or []),
                           statuses=list(ss.get("f_status") or []), operators=list(ss.get("f_op") or []),
                           min_rate_kg_h=float(ss.get("f_min_rate") or 0.0) or None,
                           window=win if win and win != ss.get("f_window_span") else None)


def apply_filters(leaks: pd.DataFrame) -> pd.DataFrame:
    """The sidebar filters applied to a ranking frame (``desk.LeakFilter.apply``, as of the scores' clock)."""
    return current().apply(leaks, as_of())


def filter_note(n_shown: int, n_total: int) -> None:
    if n_shown < n_total:
        st.caption(f"{n_shown:,} of {n_total:,} leaks match the sidebar filters.")
