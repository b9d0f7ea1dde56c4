"""Sign-in (issue 9): once the store has users, nobody sees a page before signing in; open mode says so."""

from __future__ import annotations

import streamlit as st

from app import common as c
from mlpe_core import desk
from mlpe_core.text import md

OPEN_NOTE = "Open mode: no users yet — anyone can act. An admin can add users with `mlpe users add`."


def signed_in() -> bool:
    """True in open mode or with a user whose account is still active (a role change applies at once)."""
    ss = st.session_state
    with c.session() as s:
        if desk.is_open(s):
            for k in ("auth_user", "auth_role"):
                ss.pop(k, None)
            return True
        name = ss.get("auth_user")
        ss["auth_role"] = desk.role_of(s, name)
    if name and ss["auth_role"] is None:  # removed or deactivated since signing in
        ss.pop("auth_user", None)
    return bool(ss.get("auth_role"))


@st.cache_resource(show_spinner=False)
def _throttle() -> desk.LoginThrottle:
    """One back-off for the app's process, as the API has (``desk.LoginThrottle``)."""
    return desk.LoginThrottle()


def page() -> None:
    """The only page a visitor sees until signed in."""
    st.title("Sign in")
    st.caption("MLPE records who did what: sign in with the user name and password an admin gave you.")
    with st.form("signin", width=420):
        name = st.text_input("User name", key="signin_name", autocomplete="username")
        pw = st.text_input("Password", type="password", key="signin_password", autocomplete="current-password")
        sent = st.form_submit_button("Sign in", type="primary", width="stretch")
    if sent:
        keys = (f"user:{name.strip().lower()}", f"session:{id(st.session_state)}")
        wait = _throttle().wait_s(*keys)
        if wait > 0:
            st.error(f"Too many failed sign-ins: try again in {wait:.0f} s.", icon=":material/block:")
            return
        with c.session() as s:
            u = desk.sign_in(s, name.strip(), pw)
        if u is None:
            _throttle().failed(*keys)
            st.error("Wrong user name or password (or the account is not active).", icon=":material/block:")
        else:
            st.session_state["auth_user"], st.session_state["auth_role"] = u.username, u.role
            st.rerun()


def sidebar() -> None:
    """Who is acting, with sign out; in open mode the note and a name for the audit trail."""
    ss = st.session_state
    with st.sidebar:
        st.divider()
        if ss.get("auth_user"):
            box = st.container(horizontal=True, vertical_alignment="center")
            box.markdown(f":material/person: **{md(ss['auth_user'])}** · {ss['auth_role'].replace('_', ' ')}")
            if box.button("Sign out", key="signout", type="tertiary"):
                for k in ("auth_user", "auth_role"):
                    ss.pop(k, None)
                st.rerun()
        else:
            st.caption(OPEN_NOTE)
            st.text_input("Your name (for the audit trail)", key="open_name", placeholder=c.OPEN_NAME)
            try:
                desk.claimable_name(ss.get("open_name"), c.OPEN_NAME)
            except desk.PermissionDenied as e:
                st.warning(f"{md(e)} — acting as *{c.OPEN_NAME}*.", icon=":material/block:")
