"""Upload: validate and load detection files, then fuse and score."""

import tempfile
from pathlib import Path

import streamlit as st

from app import common as c
from app import tables
from mlpe_core import desk
from mlpe_core.desk import FORMATS, IngestError
from mlpe_core.text import md

st.title("Upload detections")
if not c.can("ingest"):
    st.info(f"Your role ({c.role_name()}) does not load detections; an "
            "analyst, a supervisor or an admin does. The ingest history is below.", icon=":material/lock:")
    c.batches_table("up_history", 10)
    st.stop()
st.caption("Canonical CSV (see the README), Carbon Mapper or UNEP IMEO MARS plume lists; CSV, XLSX, Parquet or "
           "GeoJSON. "
           "A file that cannot be read or lacks a required column writes nothing; bad rows are rejected one by one.")
files = st.file_uploader("Detection files", type=["csv", "xlsx", "parquet", "geojson", "json"],
                         accept_multiple_files=True, key="up_files")
a, b = st.columns(2)
fmt = a.selectbox("Format", FORMATS, key="up_format", help="auto recognises the format from the header")
source = b.text_input("Source name (optional)", key="up_source", help="overrides source_name for every row")
if not files:
    st.info("Choose one or more detection files above to load them into the store.")
elif st.button(f"Ingest {len(files)} file(s)", type="primary", key="up_go", icon=":material/upload:"):
    def ingest(s) -> list:
        reports = []
        with tempfile.TemporaryDirectory() as tmp:
            for f in files:
                path = Path(tmp) / Path(f.name).name
                path.write_bytes(f.getvalue())
                try:
                    rep = desk.ingest_upload(s, c.user(), path, fmt, source.strip() or None, label=f.name)
                    reports.append((f.name, rep, None))
                except IngestError as e:
                    reports.append((f.name, None, str(e)))
        return reports

    st.session_state["up_reports"] = c.act("ingest", ingest) or []

for i, (name, rep, err) in enumerate(st.session_state.get("up_reports", [])):
    if err:
        st.error(md(err), icon=":material/block:")
    elif rep.already_ingested:
        st.warning(f"**{md(name)}**: already loaded (same content); nothing changed.")
    else:
        fmt_name = c.label("format", rep.format)
        said = (f"**{md(name)}** [{md(fmt_name)}]: {rep.n_rows:,} rows — {rep.n_accepted:,} accepted, "
                f"{rep.n_rejected:,} rejected, {rep.n_duplicate:,} already loaded.")
        if rep.n_accepted == 0 and rep.n_rejected:  # nothing loaded: not a success
            st.error(f"{said} Nothing was loaded: fix the rows listed below and upload the file again.",
                     icon=":material/block:")
        else:
            st.success(said)
        if len(rep.rejects):
            n_rows = rep.rejects["row"].nunique()
            with st.expander(f"{c.plural(len(rep.rejects), 'problem')} in {c.plural(n_rows, 'row')} of {md(name)}",
                             expanded=len(rep.rejects) <= 20):
                tables.show(rep.rejects, "rejects", f"up_rej_{i}", height=tables.height(len(rep.rejects), 300))
                st.download_button("Download rejects CSV", tables.people_csv(rep.rejects, "rejects"),
                                   f"{Path(name).stem}_rejects.csv", "text/csv", key=f"up_rej_dl_{i}",
                                   on_click="ignore", help="the problems as listed: the row and column of your file, "
                                                           "and what to fix")

st.divider()
st.subheader("Fuse and score")
st.caption("Groups every detection into leaks (ids of existing leaks are kept) and ranks the open ones, with reasons. "
           "New detections are fused into the area they touch; the result equals fusing everything again.")
full = st.checkbox("Re-fuse everything", value=False, key="up_full",
                   help="not needed for correctness: use it after changing fusion settings by hand, or to check")
if st.button("Fuse and score now", key="up_fuse", icon=":material/play_arrow:"):
    bar = st.progress(0.0, text="starting")
    def fuse_and_score(s) -> tuple[dict, dict]:
        return desk.fuse_and_score(s, c.user(), full=full, progress=lambda f, t: bar.progress(f, text=t))

    if out := c.act("fuse", fuse_and_score):
        fz, sc = out
        bar.progress(1.0, text="done")
        st.success(f"{desk.fuse_summary(fz).capitalize()}. {sc.get('ranked', 0):,} open leaks ranked; risk "
                   f"bands of all {sc.get('scored', 0):,} scored: {sc['high']} HIGH, {sc['medium']} MEDIUM, "
                   f"{sc['low']} LOW.")

st.subheader("Ingest history")
c.batches_table("up_history", 10)
