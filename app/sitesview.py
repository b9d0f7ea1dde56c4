"""Pieces of the Site and Operator pages: cached reads of the desk's site and operator answers, the pickers (mirrored
into the URL), the trend box and the report downloads."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from app import common as c
from app import tables
from mlpe_core import desk
from mlpe_core.text import md


@st.cache_data(show_spinner=False, max_entries=32)
def site(asset_id: str, ver: tuple) -> dict:
    """``desk.site_detail`` of one site at store version ``ver``."""
    with c.session() as s:
        return desk.site_detail(s, asset_id)


@st.cache_data(show_spinner=False, max_entries=16)
def operator(name: str, ver: tuple) -> dict:
    """``desk.operator_detail`` of one operator at store version ``ver``."""
    with c.session() as s:
        return desk.operator_detail(s, name)


@st.cache_data(show_spinner=False, max_entries=8)
def report_files(name: str, start: date, end: date, user: str, ver: tuple) -> dict[str, bytes]:
    """The report of ``name`` for [start, end] as PDF, XLSX and JSON bytes, and its row counts."""
    with c.session() as s:
        rep = desk.report(s, name, start.isoformat(), end.isoformat(), user=user)
    return {"pdf": desk.render_report(rep, "pdf"), "xlsx": desk.render_report(rep, "xlsx"),
            "json": desk.render_report(rep, "json"),
            "counts": (len(rep.notifications), len(rep.ldar), len(rep.action_levels))}


def pick(label: str, options: list[str], key: str, param: str, where, fmt=None) -> str | None:
    """A picker whose choice follows ``?param=`` and is written back to it (a shareable link)."""
    ss = st.session_state
    want = st.query_params.get(param)
    if want in options and want != ss.get(key):
        ss[key] = want
    if ss.get(key) not in options:
        ss[key] = options[0] if options else None
    if not options:
        return None
    def _sync() -> None:  # the new choice goes to the URL before the rerun reads it
        st.query_params[param] = ss[key]

    choice = where.selectbox(label, options, key=key, format_func=fmt or (lambda x: x), on_change=_sync)
    if want is not None and want not in options:  # a hand-edited or stale link: say so, not silently another
        st.warning(f"No {label.lower()} {md(want)} in this store; showing {md(choice)} instead.",
                   icon=":material/link_off:")
    st.query_params[param] = choice
    return choice


def days(x) -> str:
    """Whole days, or a dash when there is nothing to count (no repair yet)."""
    return "–" if x is None or pd.isna(x) else f"{float(x):.0f}"


def trend_box(trend: dict | None, what: str) -> None:
    """The trend test's verdict with its evidence (or why there is none)."""
    if trend is None:
        st.caption(f":material/trending_flat: Too few watched days with detections to test whether this {what} is "
                   "getting worse.")
    elif trend["worsening"]:
        st.warning(f"**Worsening.** {md(trend['evidence'])}", icon=":material/trending_up:")
    else:
        st.caption(f":material/trending_flat: {md(trend['evidence'])}")


def obligations_table(ob: pd.DataFrame, key: str) -> None:
    if ob.empty:
        st.caption("No compliance clock has run here.")
        return
    tables.show(ob, "site_obligations", key, height=tables.height(len(ob), 420))
