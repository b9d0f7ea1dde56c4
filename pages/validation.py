"""Field validation: record what a crew found on site (one visit by form, phone-sized, or many from a CSV)."""

import tempfile
from pathlib import Path

import streamlit as st

from app import common as c
from app import fieldform, tables
from mlpe_core import desk
from mlpe_core.text import md


def recent_visits() -> None:
    st.subheader("Recent visits")
    v = c.load("validations")
    if v.empty:
        st.caption("No field outcome recorded yet.")
        return
    tables.show(v.head(50), "validations", "val_recent", height=tables.height(min(len(v), 50), 420))  # newest first


st.title("Field validation")
lk = c.load("leaks")
if lk.empty:
    c.empty_store_hint()
    st.stop()
if not c.can("validate"):
    st.info(f"Your role ({c.role_name()}) does not record field outcomes; "
            "a field lead or a supervisor does.", icon=":material/lock:")
    recent_visits()
    st.stop()
fieldform.forget()
fieldform.visit_form()

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
        said = (f"{md(r['file'])}: {r['rows']} rows, {r['recorded']} recorded, {r['duplicates']} already recorded, "
                f"{r['rejected']} rejected")
        if r["rejected"] and not r["recorded"] and not r["duplicates"]:  # nothing recorded: not a success
            st.error(f"{said}. Nothing was recorded: fix the rows listed below and import the file again.",
                     icon=":material/block:")
        else:
            st.success(said)
        if len(r["rejects"]):
            tables.show(r["rejects"], "rejects", "val_rejects", height=tables.height(len(r["rejects"]), 300))

recent_visits()
