"""Rankings: the ranked table of leaks that still need a visit, filtered, searchable and downloadable."""

import json

import pandas as pd
import streamlit as st

from app import common as c
from app import filters
from mlpe_core.export import spreadsheet_safe, to_geojson
from mlpe_core.schema import LEAK_EXPORT_COLUMNS

st.title("Rankings")
lk = c.leaks_with_operator()
if lk.empty:
    c.empty_store_hint()
    st.stop()
df = filters.apply_filters(lk)
q = st.columns([2, 3])[0].text_input("Search leak or asset id", key="rank_search",
                                     placeholder="e.g. L000012 or A000340").strip()
if q:
    df = df[df["leak_id"].str.contains(q, case=False, regex=False)
            | df["asset_id"].fillna("").str.contains(q, case=False, regex=False)]
df = df.sort_values(["rank", "priority_score"], ascending=[True, False], na_position="last")
filters.filter_note(len(df), len(lk))
st.caption("Rank 1 = visit first. Priority = expected kg/h a visit finds: P(real) × rate × (1 + compliance urgency). "
           "Only open and dispatched leaks are ranked.")
view = df.assign(
    p_pct=df["p_real"] * 100, sensors=df["source_types"].str.replace("_", " ").str.replace(",", ", "),
    due=df["due_by"].dt.strftime("%Y-%m-%d").fillna("–"),
    rate_range=[f"{lo:,.1f}–{hi:,.1f}" if pd.notna(lo) else "" for lo, hi in zip(df["rate_lo_kg_h"], df["rate_hi_kg_h"],
                                                                           strict=True)])
cols = ["rank", "leak_id", "risk_band", "p_pct", "est_rate_kg_h", "rate_range", "priority_score", "due", "top_reasons",
        "n_detections", "sensors", "asset_id", "operator", "status", "last_seen"]
N = st.column_config.NumberColumn
ev = st.dataframe(
    view[cols], hide_index=True, key="rank_table", on_select="rerun", selection_mode="single-row",
    height=min(38 + 35 * max(len(view), 3), 600),
    column_config={
        "rank": N("rank", format="%d", width="small"),
        "leak_id": st.column_config.TextColumn("leak"),
        "risk_band": st.column_config.TextColumn("risk", width="small"),
        "p_pct": st.column_config.ProgressColumn("P(real)", min_value=0, max_value=100, format="%.1f%%", width="small"),
        "est_rate_kg_h": N("rate (kg/h)", format="%.1f"),
        "rate_range": st.column_config.TextColumn("±1σ range", width="small"),
        "priority_score": N("priority (kg/h)", format="%.2f"),
        "due": st.column_config.TextColumn("due by", help="compliance deadline, when a rule applies"),
        "n_detections": N("detections", format="%d", width="small"),
        "asset_id": st.column_config.TextColumn("asset"),
        "last_seen": st.column_config.DatetimeColumn("last seen", format="YYYY-MM-DD"),
        "top_reasons": st.column_config.TextColumn("why", width="large"),
    })
rows = ev.selection.rows if ev else []
bar = st.container(horizontal=True, vertical_alignment="center")
out = df[list(LEAK_EXPORT_COLUMNS)]
bar.download_button("Download CSV", spreadsheet_safe(out).to_csv(index=False), "mlpe_leaks.csv", "text/csv",
                    key="rank_csv", icon=":material/download:", on_click="ignore")
bar.download_button("Download GeoJSON", json.dumps(to_geojson(out), default=str), "mlpe_leaks.geojson",
                    "application/geo+json", key="rank_geojson", icon=":material/download:", on_click="ignore")
if rows:
    pick = df.iloc[rows[0]]["leak_id"]
    if bar.button(f"Open {pick} in Leak detail", key="rank_open", type="primary", icon=":material/arrow_forward:"):
        st.session_state["leak_id"] = pick
        st.switch_page(c.PAGES["leak"], query_params={"leak": pick})
else:
    bar.caption("Tick a row to open that leak.")
