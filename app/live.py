"""The live corner of the sidebar: the open-alert count and what changed since this page was drawn.

A fragment re-runs on its own every ``MLPE_LIVE_POLL_S`` seconds without redrawing the page: it asks the desk
for its cheap version stamp (six primary-key lookups) and only when that moved, for what is new. The page's
own content stays as drawn until the reader presses *Show the news* (or moves on): nothing jumps under the
cursor, yet nobody has to reload to learn that a new run or alert has arrived.
"""

from __future__ import annotations

import streamlit as st

from app import common as c
from mlpe_core import desk

BASE = "live_base"  # the stamp of the store when the page was last drawn in full


def mark_drawn() -> None:
    """Called on every full run of the app: what the page shows is the store as of now."""
    with c.session() as s:
        st.session_state[BASE] = desk.live_stamp(s)


def poll_s() -> float:
    try:
        return float(desk.settings().live_poll_s)
    except desk.SettingsError:
        return 5.0


@st.fragment(run_every=poll_s())
def panel() -> None:
    """The alert count (a link to the inbox) and, when runs or alerts arrived since the page was drawn, which."""
    ss = st.session_state
    with c.session() as s:
        ver = desk.version(s)
        if ss.get("live_ver") != ver or "live_now" not in ss:
            ss["live_ver"], ss["live_now"] = ver, desk.live_stamp(s)
        now = ss["live_now"]
        base = ss.get(BASE, now)
        news = desk.changes_since(s, base) if (now["run"], now["alert"]) != (base["run"], base["alert"]) else None
    n = int(now["open_alerts"])
    st.page_link(c.PAGES["alerts"], label=f"{n} open alert{'s' if n != 1 else ''}",
                 icon=":material/notifications_active:" if n else ":material/notifications:")
    if news and news["message"]:
        st.info(news["message"] + ".", icon=":material/update:")
        if st.button("Show the news", key="live_refresh", icon=":material/refresh:"):
            st.rerun(scope="app")
