"""Shared by every page: the store session, the acting user, cached frames keyed on a store version, colours."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st

from mlpe_core import desk, present
from mlpe_core.desk import STATUSES, PermissionDenied, TransitionError  # noqa: F401  (pages read STATUSES here)
from mlpe_core.text import md

BAND_RGB = {"HIGH": [200, 35, 35], "MEDIUM": [240, 140, 0], "LOW": [60, 110, 175]}
SOURCE_RGB = {"satellite": [120, 60, 200], "aerial": [0, 150, 200], "continuous_monitor": [0, 150, 110],
              "scada": [160, 110, 40], "ogi": [220, 70, 160]}
OPEN = ["open", "dispatched"]  # ranked: still need a visit
VISITABLE = [*OPEN, "no_access", "confirmed", "repair_attempted"]  # a crew may still record a visit or repair
# st.Page / st.switch_page paths are relative to app/main.py
PAGES = {p: f"../pages/{p}.py" for p in ("map", "leak", "rankings", "obligations", "site", "operator", "dispatch",
                                         "validation", "upload", "model", "audit", "alerts", "runs")}
T = TypeVar("T")
OPEN_NAME = "app"  # who acts in open mode unless they give a name


@st.cache_resource(show_spinner=False)
def _engine(url: str):
    return desk.engine(url)


def resolve_url() -> str:
    return desk.store_url()


def session():
    """A new session on the store chosen by ``MLPE_DB`` (use as a context manager)."""
    return desk.open_session(_engine(resolve_url()))


def is_open() -> bool:
    """True while the store has no users (auth open mode): anyone may act."""
    with session() as s:
        return desk.is_open(s)


def user() -> str:
    """The name every core call that records something is given: the signed-in user, else the open-mode name
    (a reserved or malformed one is not taken: the sidebar says so and ``app`` acts instead)."""
    ss = st.session_state
    if ss.get("auth_user"):
        return ss["auth_user"]
    try:
        return desk.claimable_name(ss.get("open_name"), OPEN_NAME)
    except PermissionDenied:
        return OPEN_NAME


def can(action: str) -> bool:
    """Whether to offer ``action`` (hidden otherwise): ``desk.can``, the rule ``mlpe_core.auth`` enforces."""
    with session() as s:
        return desk.can(s, st.session_state.get("auth_user"), action)


def attempt(action: str, work: Callable[[desk.Session], T]) -> tuple[T | None, str | None]:
    """``work(session)`` as the current user, once ``mlpe_core.auth`` allows ``action``: its result and no message,
    or None and the refusal (role, lifecycle, bad value) in words. Draws nothing, so a widget's callback may call it."""
    try:
        with session() as s:
            desk.require(s, user(), action)  # a refusal says who, what and which roles may
            return work(s), None
    except (PermissionDenied, TransitionError, ValueError, KeyError) as e:
        return None, md(e.args[0] if isinstance(e, KeyError) and e.args else e)


def act(action: str, work: Callable[[desk.Session], T]) -> T | None:
    """:func:`attempt`, with a refusal shown by ``st.error``; ``work`` returns what to report (e.g. a message)."""
    result, refused = attempt(action, work)
    if refused:
        st.error(refused, icon=":material/block:")
    return result


def flash(key: str, message: str | None) -> None:
    """Show ``message`` after the rerun that follows an action (the page then shows the new state)."""
    if message:
        st.session_state[key] = message
        st.rerun()


def flashed(key: str) -> None:
    if msg := st.session_state.pop(key, None):
        st.success(msg, icon=":material/check_circle:")


def version() -> tuple:
    """Changes whenever anything is written (``desk.version``: four primary-key lookups): cached frames key on it."""
    with session() as s:
        return (resolve_url(), *desk.version(s))


FRAMES = {"leaks": lambda s: desk.ranking(s), "detections": desk.detections, "assets": desk.assets,
          "validations": desk.outcomes, "batches": desk.batches, "models": desk.models, "audit": desk.audit_trail,
          "obligations": desk.obligations, "sites": desk.sites, "operators": desk.operators}


@st.cache_data(show_spinner=False, max_entries=32)
def frame(name: str, ver: tuple) -> pd.DataFrame:
    """One of :data:`FRAMES` from the desk at store version ``ver`` (leaks = the effective ranking)."""
    with session() as s:
        return FRAMES[name](s)


@st.cache_data(show_spinner=False, max_entries=8)
def clock(ver: tuple) -> pd.Timestamp:
    """The as-of of the scores on show (``desk.as_of``): every "days ago" and "overdue" counts from it."""
    with session() as s:
        return desk.as_of(s)


def load(name: str) -> pd.DataFrame:
    return frame(name, version())


def as_of() -> pd.Timestamp:
    return clock(version())


def leaks_with_operator() -> pd.DataFrame:
    """The effective ranking (``desk.ranking``: every active leak with its asset's operator and type)."""
    return load("leaks")


def empty_store_hint() -> None:
    st.info("The store has no leaks yet. Upload detections on the **Upload** page (then *Fuse and score now*), "
            "or fill it with a simulated basin from a terminal: `mlpe demo`.")


def batches_table(key: str, n: int | None = None) -> None:
    """The ingest history: file, short hash, time and what happened to its rows."""
    from app import tables

    bt = load("batches")
    if bt.empty:
        st.caption("Nothing ingested yet.")
        return
    bt = bt.assign(sha256=bt["sha256"].str[:12])
    tables.show(bt.head(n) if n else bt, "batches", key, height=tables.height(len(bt.head(n) if n else bt), 420))


def view_for(points: pd.DataFrame, width_px: int = 800, height_px: int = 500) -> pdk.ViewState:
    """A view that fits every point with a margin (deck.gl's world is 512 px wide at zoom 0)."""
    lat, lon = points["latitude"].astype(float), points["longitude"].astype(float)
    mid = float(lat.mean())
    span_x = max(float(np.ptp(lon)), 0.005) * 1.3 / width_px
    span_y = max(float(np.ptp(lat)), 0.005) * 1.3 / np.cos(np.radians(mid)) / height_px
    zoom = np.log2(360 / (512 * max(span_x, span_y)))
    return pdk.ViewState(latitude=(lat.min() + lat.max()) / 2, longitude=(lon.min() + lon.max()) / 2,
                         zoom=float(np.clip(zoom, 2, 15)))


MAX_OPTIONS = 2_000  # leak pickers list the best-ranked this many; any other id can be typed


def capped(ids: list[str], *keep: str | None) -> list[str]:
    """The first :data:`MAX_OPTIONS` ids (best rank first) plus ``keep``: a dropdown stays light on 50,000 leaks."""
    head = ids[:MAX_OPTIONS]
    return head + [k for k in keep if k and k not in head and k in set(ids)]


def legend(rgb: dict) -> str:
    """Coloured dots naming each key, for a caption with ``unsafe_allow_html=True``."""
    return " · ".join(f"<span style='color:rgb{tuple(v)}'>●</span> {k.replace('_', ' ')}" for k, v in rgb.items())


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def pct(p) -> str:
    """A probability as a whole percent (``present.pct``)."""
    return present.pct(p)


def role_name() -> str:
    """The signed-in user's role in words."""
    return present.words(st.session_state.get("auth_role") or "unknown").lower()


def unit() -> str:
    """The rate unit this person chose (sidebar *Rates in*): session state, else ``?unit=`` in the URL, else kg/h.
    Kept in the URL so a bookmark or a shared link keeps it."""
    ss = st.session_state
    if "unit" not in ss:
        ss["unit"] = present.unit_or_default(st.query_params.get("unit"))
    return present.unit_or_default(ss.get("unit"))


def rate(x) -> str:
    """A rate in the chosen unit, with the unit (``present.rate``)."""
    return present.rate(x, unit())


def rate_label(what: str) -> str:
    """A label over a rate in the chosen unit, naming that unit ("Expected (scf/h)"; ``present.rate_label``)."""
    return present.rate_label(what, unit())


def label(vocab: str, code) -> str:
    return present.label(vocab, code)


def ask(name: str, *args) -> None:
    """Open confirmation ``name`` (with ``args``) on this and every following run until it is answered or dismissed
    (``st.dialog`` bodies run as fragments; the flag keeps the dialog up when a whole run happens meanwhile)."""
    st.session_state["confirm"] = (name, *args)


def asked(name: str):
    """The arguments of confirmation ``name`` when it is open, else None."""
    c = st.session_state.get("confirm")
    return c[1:] if c and c[0] == name else None


def answered() -> None:
    """Close the open confirmation (answered, or dismissed with the dialog's X)."""
    st.session_state.pop("confirm", None)
