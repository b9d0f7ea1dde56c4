"""The Field validation page's form, in an ``st.fragment`` so that recording a visit reruns only the form: today's
list first, friendly errors beside the field they concern, big targets for one hand on a phone, and an answer in
well under a second (the visited leak leaves the ranking at once; its clocks and band follow in the background)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from app import common as c
from app import dispatching
from mlpe_core import desk, present
from mlpe_core.desk import FOUND_BY, OUTCOMES
from mlpe_core.text import md

FIELDS = ("leak_id", "visited_at", "outcome", "measured_rate_kg_h", "component", "found_by", "repaired_at", "crew",
          "notes")


def _rescore_later(ids: list[str]) -> None:
    """Re-score the visited leaks on a thread of their own (``desk.rescore``): clocks, bands and scores follow the
    outcome a couple of seconds later; the caches see it through the store's version stamp."""
    def work() -> None:
        try:
            with c.session() as s:
                desk.rescore(s, ids)
        except Exception:  # noqa: BLE001 - the next scoring run catches up; the outcome itself is recorded
            pass

    threading.Thread(target=work, name="mlpe-rescore", daemon=True).start()


def options(todo: pd.DataFrame, route: dict) -> tuple[list[str], dict]:
    opts = c.capped(todo["leak_id"].tolist(), st.session_state.get("val_leak"))
    labels = {r.leak_id: route.get(r.leak_id, "") + f"{r.leak_id} · " +
              (f"#{int(r.rank)} {c.label('band', r.risk_band).lower()}" if pd.notna(r.rank)
               else c.label("status", r.status).lower()) + f" · {c.rate(r.est_rate_kg_h)}"
              for r in todo[todo["leak_id"].isin(opts)].itertuples()}
    return opts, labels


def todo_list() -> tuple[pd.DataFrame, dict]:
    """The leaks a crew may record a visit on: today's approved or draft list first, in crew and stop order, then the
    best-ranked, then confirmed leaks awaiting repair; and each listed leak's "crew stop N · " prefix."""
    lk = c.load("leaks")
    todo = lk[lk["status"].isin(c.VISITABLE)].sort_values(["rank", "leak_id"], na_position="last")
    meta, stops = dispatching.todays_list(c.version())
    route = {r.leak_id: f"{r.crew} stop {r.stop} · " for r in stops.itertuples()
             if r.leak_id in set(todo["leak_id"])} if meta["list_id"] else {}
    first = todo.set_index("leak_id").loc[list(route)].reset_index() if route else todo.iloc[0:0]
    todo = pd.concat([first, todo[~todo["leak_id"].isin(route)]])
    if (want := st.query_params.get("leak")) in set(todo["leak_id"]) and "val_leak" not in st.session_state:
        st.session_state["val_leak"] = want
    return todo, route


# after a recorded visit the form is emptied here, not by ``clear_on_submit``: that reset ran in the browser and
# sent the visited leak's label back with the next visit (seen in Chromium). A refused visit keeps what was
# typed; after a recorded one the crew stays, and the day and time are now again.
SAID_S = 120.0  # how long the form shows what the last submit did
CLEARED = {"val_outcome": None, "val_rate": None, "val_component": "", "val_found_by": None, "val_repaired": None,
           "val_photo": "", "val_notes": ""}


def _now() -> dict:
    """The visit's day and time (UTC, to the minute) as of now: the form's start, and again after each visit."""
    now = datetime.now(UTC)
    return {"val_day": now.date(), "val_time": now.time().replace(second=0, microsecond=0)}


def leak_of(chosen: str, known: set[str]) -> str:
    """The leak id the dropdown sent. Submitted while its options were changing under it, the browser's dropdown
    sends the label it shows ("crew-1 stop 2 · L000140 · #1 medium · 26.9 kg/h"): the label's leak (the first
    part that is a ``known`` id) is the one meant. Anything else is returned as typed, for the desk to judge."""
    if " · " not in chosen:
        return chosen.strip()
    return next((part for part in chosen.split(" · ") if part in known), chosen)


def _record() -> None:
    """The form button's callback. Streamlit runs it before the fragment's next run, so one run records the visit
    and draws the form again with the next leak: no second run (``st.rerun`` inside a fragment raced the sidebar's
    live fragment, and the form could vanish from the page). What happened is left in session state for the form
    to show: a flash above it, or each refusal beside the field it concerns."""
    ss = st.session_state
    ss["val_said"] = {"at": time.monotonic(), "errors": [], "refused": None, "flash": None, "notice": None}
    said = ss["val_said"]
    ss["crew_kept"] = (ss.get("val_crew") or "").strip()  # a widget's state dies with its page; this key does not
    outcome = ss.get("val_outcome")
    if not outcome:  # said beside the field, without a trip to the desk
        said["errors"] = [("outcome", "Choose what the crew found.")]
        return
    known = set(c.load("leaks")["leak_id"])
    leak_id = leak_of(ss.get("val_leak") or "", known)
    if leak_id in known:  # the dropdown keeps the leak meant, should the visit be refused and sent again
        ss["val_leak"] = leak_id
    photo, notes = (ss.get("val_photo") or "").strip(), ss.get("val_notes") or ""
    repaired, rate = ss.get("val_repaired"), ss.get("val_rate")
    row = {"leak_id": leak_id,
           "visited_at": datetime.combine(ss["val_day"], ss["val_time"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "outcome": outcome, "measured_rate_kg_h": "" if rate is None else f"{rate}",
           "component": ss.get("val_component") or "",
           # a full timestamp: mlpe_core.ingest.parse_times rejects a bare date such as 2026-01-02
           "repaired_at": f"{repaired.isoformat()}T00:00:00Z" if repaired else "", "crew": ss.get("val_crew") or "",
           "notes": "\n".join(x for x in (notes.strip(), f"photo: {photo}" if photo else "") if x),
           "found_by": ss.get("val_found_by") or ""}
    res, refused = c.attempt("validate", lambda s: desk.record_outcomes(s, c.user(), pd.DataFrame([row], dtype=str),
                                                                        "form", rescore=False))
    said["refused"] = refused  # the role or the store said no: above the form, not beside a field
    errors = []
    for r in (res or {}).get("rejects", pd.DataFrame()).itertuples():  # a bad value, or a move the lifecycle forbids
        errors.append((r.column, md(f"{leak_id}: " if r.column == "outcome" and "not one of" not in r.reason else "")
                       + md(present.friendly(r.column, r.reason))))
    said["errors"] = errors
    if res and res["recorded"]:
        ss["val_next"] = True  # the form offers the first leak left
        ss.update(CLEARED, **_now())
        if res["pending"]:
            _rescore_later(res["pending"])
        ch = res["changes"]
        left = " It left the ranking." if leak_id in ch["left_ranking"] else ""
        said["flash"] = (f"Recorded {present.label('outcome', outcome).lower()} for {md(leak_id)}.{left} "
                         f"{c.plural(ch['moved'], 'other leak')} moved up; its clocks and band update in a moment.")
    elif res and res["duplicates"]:
        said["notice"] = "This visit (same leak, time and outcome) was already recorded; nothing changed."


def forget() -> None:
    """Called by the page on a full run entered from another page: the last submit's answer is not shown again."""
    if st.session_state.get("page_entered"):
        st.session_state.pop("val_said", None)


@st.fragment
def visit_form() -> None:
    """The form, with what the last submit did; the button's callback (:func:`_record`) has already recorded it, so
    this one run offers the next leak."""
    ss = st.session_state
    top = st.empty()  # what the last submit did: filled once the form below is drawn, so it shows a ready form
    # kept (not popped) for a while: a second run that Streamlit may start meanwhile must not wipe the answer before
    # the crew has read it (the page forgets it when entered from another page: :func:`forget`)
    said = ss.get("val_said") or {}
    if time.monotonic() - said.get("at", -SAID_S) > SAID_S:
        said = {}
    errors: dict[str, list[str]] = {}
    for column, text in said.get("errors", []):
        errors.setdefault(column if column in FIELDS else "outcome", []).append(text)

    def beside(column: str) -> None:
        for text in errors.get(column, []):
            st.error(text, icon=":material/error:")

    todo, route = todo_list()
    if ss.pop("val_next", False):
        ss["val_leak"] = todo["leak_id"].iloc[0] if len(todo) else None
    opts, labels = options(todo, route)
    for key, value in _now().items():
        ss.setdefault(key, value)
    ss.setdefault("val_crew", ss.get("crew_kept", ""))  # the crew who last submitted, also after a page change
    with st.form("visit", width=520):
        st.subheader("Record a visit")
        st.selectbox("Leak", opts, key="val_leak", format_func=lambda i: labels.get(i, i),
                     accept_new_options=len(todo) > c.MAX_OPTIONS,
                     help="today's approved list first (crew, stop), then the best-ranked, then confirmed "
                          "leaks awaiting repair")
        beside("leak_id")
        d, t = st.columns(2)
        d.date_input("Visited on", key="val_day")  # today and now, set above (and again after each visit)
        t.time_input("at (UTC)", key="val_time", step=900)
        beside("visited_at")
        st.radio("Outcome", OUTCOMES, key="val_outcome", format_func=lambda o: present.label("outcome", o),
                 index=None)  # no default: a slip of the thumb must not record "confirmed"
        beside("outcome")
        st.number_input("Measured rate (kg/h, optional)", min_value=0.0, value=None, step=0.1, key="val_rate")
        beside("measured_rate_kg_h")
        st.text_input("Component", key="val_component", placeholder="e.g. thief hatch")
        beside("component")
        st.segmented_control("Found by (optional)", FOUND_BY, key="val_found_by",
                             format_func=lambda f: {"avo": "AVO", "ogi": "OGI", "method21": "Method 21"}
                             .get(f, present.label("found_by", f)),
                             help="how the crew found it; sets the repair clock that applies")
        beside("found_by")
        st.date_input("Repaired on (optional)", value=None, key="val_repaired")
        beside("repaired_at")
        st.text_input("Crew", key="val_crew")
        beside("crew")
        st.text_input("Photo note (optional)", key="val_photo", placeholder="e.g. IMG_0412, 0413: hatch seal")
        st.text_area("Notes", key="val_notes", height=80)
        beside("notes")
        st.form_submit_button("Record visit", type="primary", width="stretch", on_click=_record)
    if said.get("refused"):
        top.error(said["refused"], icon=":material/block:")
    elif said.get("flash"):
        top.success(said["flash"], icon=":material/check_circle:")
    elif said.get("notice"):
        top.warning(said["notice"])
