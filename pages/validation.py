"""Field validation: record what a crew found on site (one visit by form, or many from a CSV)."""

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from app import common as c
from mlpe_core import store
from mlpe_core.ingest import IngestError
from mlpe_core.schema import OUTCOMES, VALIDATION_COLUMNS

st.title("Field validation")
lk = c.load("leaks")
if lk.empty:
    c.empty_store_hint()
    st.stop()
todo = lk[lk["status"].isin(c.VISITABLE)].sort_values(["rank", "leak_id"], na_position="last")
labels = {r.leak_id: f"{r.leak_id} · " + (f"#{int(r.rank)} {r.risk_band}" if pd.notna(r.rank) else r.status) +
          f" · {c.rate(r.est_rate_kg_h)} · asset {r.asset_id or '–'}" for r in todo.itertuples()}
now = datetime.now(UTC)
with st.form("visit", clear_on_submit=True, width=520):
    st.subheader("Record a visit")
    leak_id = st.selectbox("Leak", list(labels), format_func=labels.get, key="val_leak",
                           help="ranked leaks first (best rank on top), then confirmed ones awaiting repair")
    d, t = st.columns(2)
    day = d.date_input("Visited on", value=now.date(), key="val_day")
    at = t.time_input("at (UTC)", value=now.time().replace(second=0, microsecond=0), key="val_time", step=900)
    outcome = st.radio("Outcome", OUTCOMES, key="val_outcome", format_func=lambda o: o.replace("_", " "),
                       index=None)  # no default: a slip of the thumb must not record "confirmed"
    rate = st.number_input("Measured rate (kg/h, optional)", min_value=0.0, value=None, step=0.1, key="val_rate")
    component = st.text_input("Component", key="val_component", placeholder="e.g. thief hatch")
    repaired = st.date_input("Repaired on (optional)", value=None, key="val_repaired")
    crew = st.text_input("Crew", key="val_crew")
    notes = st.text_area("Notes", key="val_notes", height=80)
    sent = st.form_submit_button("Record visit", type="primary", width="stretch")
if sent:
    row = {"leak_id": leak_id or "", "visited_at": datetime.combine(day, at).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "outcome": outcome or "", "measured_rate_kg_h": "" if rate is None else f"{rate}", "component": component,
           # a full timestamp: mlpe_core.ingest.parse_times rejects a bare date such as 2026-01-02
           "repaired_at": f"{repaired.isoformat()}T00:00:00Z" if repaired else "", "crew": crew, "notes": notes}
    good, rejects = store.validate_validations(pd.DataFrame([row], dtype=str), set(lk["leak_id"]), "form")
    for r in rejects.itertuples():
        st.error(f"{r.column}: {r.reason}")
    if len(good):
        with c.session() as s:
            res = store.record_validations(s, good, crew.strip() or "app")
        for r in res.get("rejects", pd.DataFrame()).itertuples():  # a move the leak's lifecycle does not allow
            st.error(f"{r.column}: {r.reason}")
        if res["recorded"]:
            st.success(f"Recorded {outcome.replace('_', ' ')} for {leak_id}. It leaves the dispatch list; "
                       "re-score (Upload page) to update the ranking.")
        elif res["duplicates"]:
            st.warning("This visit (same leak, time and outcome) was already recorded; nothing changed.")

st.subheader("Import many visits from a CSV")
st.caption("Columns: `leak_id, visited_at, outcome` required; `measured_rate_kg_h, component, repaired_at, crew, "
           "notes` optional. Bad rows are rejected one by one with their reason; the good rows are recorded.")
up = st.file_uploader("Validations CSV", type=["csv", "xlsx"], key="val_file")
if up is not None and st.button("Import validations", key="val_import"):
    with tempfile.TemporaryDirectory() as tmp, c.session() as s:
        path = Path(tmp) / Path(up.name).name
        path.write_bytes(up.getvalue())
        try:
            r = store.import_validations(s, path, user="app")
            st.success(f"{r['file']}: {r['rows']} rows, {r['recorded']} recorded, {r['duplicates']} already recorded, "
                       f"{r['rejected']} rejected")
            if len(r["rejects"]):
                st.dataframe(r["rejects"], hide_index=True, key="val_rejects")
        except IngestError as e:
            st.error(str(e))

st.subheader("Recent visits")
v = c.load("validations")
if v.empty:
    st.caption("No field outcome recorded yet.")
else:
    cols = [*VALIDATION_COLUMNS, "recorded_by", "recorded_at"]
    recent = v.sort_values("id", ascending=False).head(50).reindex(columns=cols)
    text = [k for k in cols if recent[k].dtype == object or pd.api.types.is_string_dtype(recent[k])]
    when = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
    st.dataframe(recent.fillna({k: "" for k in text}), hide_index=True, key="val_recent", column_config={
        "measured_rate_kg_h": st.column_config.NumberColumn("measured (kg/h)", format="%.1f"), "visited_at": when,
        "repaired_at": when, "recorded_at": when})
