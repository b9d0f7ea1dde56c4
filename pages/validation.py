"""Field validation: record what a crew found on site (one visit by form, phone-sized, or many from a CSV)."""

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from app import common as c
from app import dispatching
from mlpe_core import desk
from mlpe_core.desk import FOUND_BY, OUTCOMES, VALIDATION_COLUMNS, crew_capacity
from mlpe_core.text import md


def recent_visits() -> None:
    st.subheader("Recent visits")
    v = c.load("validations")
    if v.empty:
        st.caption("No field outcome recorded yet.")
        return
    cols = [*VALIDATION_COLUMNS, "recorded_by", "recorded_at"]
    recent = v.head(50).reindex(columns=cols)  # newest first
    text = [k for k in cols if recent[k].dtype == object or pd.api.types.is_string_dtype(recent[k])]
    when = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
    st.dataframe(recent.fillna({k: "" for k in text}), hide_index=True, key="val_recent", column_config={
        "measured_rate_kg_h": st.column_config.NumberColumn("measured (kg/h)", format="%.1f"), "visited_at": when,
        "repaired_at": when, "recorded_at": when})


st.title("Field validation")
lk = c.load("leaks")
if lk.empty:
    c.empty_store_hint()
    st.stop()
if not c.can("validate"):
    st.info(f"Your role ({st.session_state.get('auth_role', '?').replace('_', ' ')}) does not record field outcomes; "
            "a field lead or a supervisor does.", icon=":material/lock:")
    recent_visits()
    st.stop()
todo = lk[lk["status"].isin(c.VISITABLE)].sort_values(["rank", "leak_id"], na_position="last")
meta, stops = dispatching.todays(c.version(), crew_capacity())
route = {r.leak_id: f"{r.crew} stop {r.stop} · " for r in stops.itertuples()} if meta["list_id"] else {}
todo = pd.concat([todo[todo["leak_id"].isin(route)].set_index("leak_id").loc[list(route)].reset_index()
                  if route else todo.iloc[0:0], todo[~todo["leak_id"].isin(route)]])
if (want := st.query_params.get("leak")) in set(todo["leak_id"]) and "val_leak" not in st.session_state:
    st.session_state["val_leak"] = want
opts = c.capped(todo["leak_id"].tolist(), st.session_state.get("val_leak"))
labels = {r.leak_id: route.get(r.leak_id, "") + f"{r.leak_id} · " +
          (f"#{int(r.rank)} {r.risk_band}" if pd.notna(r.rank) else r.status) +
          f" · {c.rate(r.est_rate_kg_h)} · asset {r.asset_id or '–'}"
          for r in todo[todo["leak_id"].isin(opts)].itertuples()}
now = datetime.now(UTC)
with st.form("visit", clear_on_submit=True, width=520):
    st.subheader("Record a visit")
    leak_id = st.selectbox("Leak", opts, key="val_leak", format_func=lambda i: labels.get(i, i),
                           accept_new_options=len(todo) > c.MAX_OPTIONS,
                           help="today's approved list first (crew, stop), then the best-ranked, then confirmed "
                                "leaks awaiting repair")
    d, t = st.columns(2)
    day = d.date_input("Visited on", value=now.date(), key="val_day")
    at = t.time_input("at (UTC)", value=now.time().replace(second=0, microsecond=0), key="val_time", step=900)
    outcome = st.radio("Outcome", OUTCOMES, key="val_outcome", format_func=lambda o: o.replace("_", " "),
                       index=None)  # no default: a slip of the thumb must not record "confirmed"
    rate = st.number_input("Measured rate (kg/h, optional)", min_value=0.0, value=None, step=0.1, key="val_rate")
    component = st.text_input("Component", key="val_component", placeholder="e.g. thief hatch")
    found_by = st.segmented_control("Found by (optional)", FOUND_BY, key="val_found_by",
                                    format_func=lambda f: {"avo": "AVO", "ogi": "OGI", "method21": "Method 21"}.get(
                                        f, f), help="how the crew found it; sets the repair clock that applies")
    repaired = st.date_input("Repaired on (optional)", value=None, key="val_repaired")
    crew = st.text_input("Crew", key="val_crew")
    photo = st.text_input("Photo note (optional)", key="val_photo", placeholder="e.g. IMG_0412, 0413: hatch seal")
    notes = st.text_area("Notes", key="val_notes", height=80)
    sent = st.form_submit_button("Record visit", type="primary", width="stretch")
if sent:
    row = {"leak_id": leak_id or "", "visited_at": datetime.combine(day, at).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "outcome": outcome or "", "measured_rate_kg_h": "" if rate is None else f"{rate}", "component": component,
           # a full timestamp: mlpe_core.ingest.parse_times rejects a bare date such as 2026-01-02
           "repaired_at": f"{repaired.isoformat()}T00:00:00Z" if repaired else "", "crew": crew,
           "notes": "\n".join(x for x in (notes.strip(), f"photo: {photo.strip()}" if photo.strip() else "") if x),
           "found_by": found_by or ""}
    res = c.act("validate", lambda s: desk.record_outcomes(s, c.user(), pd.DataFrame([row], dtype=str), "form"))
    for r in (res or {}).get("rejects", pd.DataFrame()).itertuples():  # a bad value, or a move the lifecycle forbids
        st.error(f"{md(r.column)}: {md(r.reason)}")
    if res and res["recorded"]:
        ch = res["changes"]
        left = " It left the ranking." if leak_id in ch["left_ranking"] else ""
        st.success(f"Recorded {outcome.replace('_', ' ')} for {leak_id}.{left} Ranking updated: "
                   f"{c.plural(ch['moved'], 'other leak')} moved.")
    elif res and res["duplicates"]:
        st.warning("This visit (same leak, time and outcome) was already recorded; nothing changed.")

st.subheader("Import many visits from a CSV")
st.caption("Columns: `leak_id, visited_at, outcome` required; `measured_rate_kg_h, component, repaired_at, crew, "
           "notes` optional. Bad rows are rejected one by one with their reason; the good rows are recorded.")
up = st.file_uploader("Validations CSV", type=["csv", "xlsx"], key="val_file")
if up is not None and st.button("Import validations", key="val_import"):
    with tempfile.TemporaryDirectory() as tmp:  # a file it cannot read is an IngestError: shown by c.act
        path = Path(tmp) / Path(up.name).name
        path.write_bytes(up.getvalue())
        r = c.act("validate", lambda s: desk.import_outcomes(s, c.user(), path))
    if r:
        st.success(f"{md(r['file'])}: {r['rows']} rows, {r['recorded']} recorded, {r['duplicates']} already recorded, "
                   f"{r['rejected']} rejected")
        if len(r["rejects"]):
            st.dataframe(r["rejects"], hide_index=True, key="val_rejects")

recent_visits()
