"""The Field validation page's form, in an ``st.fragment`` so that recording a visit reruns only the form: today's
list first, friendly errors beside the field they concern, big targets for one hand on a phone, and an answer in
well under a second (the visited leak leaves the ranking at once; its clocks and band follow in the background)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from app import common as c
from app import dispatching
from mlpe_core import desk, present
from mlpe_core.desk import FOUND_BY, OUTCOMES, crew_capacity
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
    meta, stops = dispatching.todays(c.version(), crew_capacity())
    route = {r.leak_id: f"{r.crew} stop {r.stop} · " for r in stops.itertuples()
             if r.leak_id in set(todo["leak_id"])} if meta["list_id"] else {}
    first = todo.set_index("leak_id").loc[list(route)].reset_index() if route else todo.iloc[0:0]
    todo = pd.concat([first, todo[~todo["leak_id"].isin(route)]])
    if (want := st.query_params.get("leak")) in set(todo["leak_id"]) and "val_leak" not in st.session_state:
        st.session_state["val_leak"] = want
    return todo, route


@st.fragment
def visit_form() -> None:
    """The form; a recorded visit reruns this fragment only, so the next leak is offered at once."""
    if msg := st.session_state.pop("val_flash", None):
        st.success(msg, icon=":material/check_circle:")
    todo, route = todo_list()
    opts, labels = options(todo, route)
    now = datetime.now(UTC)
    err = {}
    with st.form("visit", clear_on_submit=True, width=520):
        st.subheader("Record a visit")
        leak_id = st.selectbox("Leak", opts, key="val_leak", format_func=lambda i: labels.get(i, i),
                               accept_new_options=len(todo) > c.MAX_OPTIONS,
                               help="today's approved list first (crew, stop), then the best-ranked, then confirmed "
                                    "leaks awaiting repair")
        err["leak_id"] = st.empty()
        d, t = st.columns(2)
        day = d.date_input("Visited on", value=now.date(), key="val_day")
        at = t.time_input("at (UTC)", value=now.time().replace(second=0, microsecond=0), key="val_time", step=900)
        err["visited_at"] = st.empty()
        outcome = st.radio("Outcome", OUTCOMES, key="val_outcome", format_func=lambda o: present.label("outcome", o),
                           index=None)  # no default: a slip of the thumb must not record "confirmed"
        err["outcome"] = st.empty()
        rate = st.number_input("Measured rate (kg/h, optional)", min_value=0.0, value=None, step=0.1, key="val_rate")
        err["measured_rate_kg_h"] = st.empty()
        component = st.text_input("Component", key="val_component", placeholder="e.g. thief hatch")
        err["component"] = st.empty()
        found_by = st.segmented_control("Found by (optional)", FOUND_BY, key="val_found_by",
                                        format_func=lambda f: {"avo": "AVO", "ogi": "OGI", "method21": "Method 21"}
                                        .get(f, present.label("found_by", f)),
                                        help="how the crew found it; sets the repair clock that applies")
        err["found_by"] = st.empty()
        repaired = st.date_input("Repaired on (optional)", value=None, key="val_repaired")
        err["repaired_at"] = st.empty()
        crew = st.text_input("Crew", key="val_crew")
        err["crew"] = st.empty()
        photo = st.text_input("Photo note (optional)", key="val_photo", placeholder="e.g. IMG_0412, 0413: hatch seal")
        notes = st.text_area("Notes", key="val_notes", height=80)
        err["notes"] = st.empty()
        sent = st.form_submit_button("Record visit", type="primary", width="stretch")
    if not sent:
        return
    if not outcome:  # said beside the field, without a round trip to the desk
        err["outcome"].error("Choose what the crew found.", icon=":material/error:")
        return
    row = {"leak_id": leak_id or "", "visited_at": datetime.combine(day, at).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "outcome": outcome, "measured_rate_kg_h": "" if rate is None else f"{rate}", "component": component,
           # a full timestamp: mlpe_core.ingest.parse_times rejects a bare date such as 2026-01-02
           "repaired_at": f"{repaired.isoformat()}T00:00:00Z" if repaired else "", "crew": crew,
           "notes": "\n".join(x for x in (notes.strip(), f"photo: {photo.strip()}" if photo.strip() else "") if x),
           "found_by": found_by or ""}
    res = c.act("validate", lambda s: desk.record_outcomes(s, c.user(), pd.DataFrame([row], dtype=str), "form",
                                                           rescore=False))
    for r in (res or {}).get("rejects", pd.DataFrame()).itertuples():  # a bad value, or a move the lifecycle forbids
        box = err.get(r.column) or err["outcome"]
        box.error(md(f"{leak_id}: " if r.column == "outcome" and "not one of" not in r.reason else "")
                  + md(present.friendly(r.column, r.reason)), icon=":material/error:")
    if res and res["recorded"]:
        if res["pending"]:
            _rescore_later(res["pending"])
        ch = res["changes"]
        left = " It left the ranking." if leak_id in ch["left_ranking"] else ""
        st.session_state["val_flash"] = (f"Recorded {present.label('outcome', outcome).lower()} for {leak_id}.{left} "
                                         f"{c.plural(ch['moved'], 'other leak')} moved up; its clocks and band update "
                                         "in a moment.")
        try:
            st.rerun(scope="fragment")  # the form offers the next leak
        except StreamlitAPIException:  # the form ran within a whole run of the page (a test harness)
            st.rerun()
    elif res and res["duplicates"]:
        st.warning("This visit (same leak, time and outcome) was already recorded; nothing changed.")
