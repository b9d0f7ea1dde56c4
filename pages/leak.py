"""Leak detail: one leak's score, why, its detections over time, field outcomes and history."""

import json

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import common as c
from mlpe_core import pipeline

try:  # status history of the leak lifecycle, when the core has it
    from mlpe_core.lifecycle import history as status_history
except ImportError:  # pragma: no cover
    status_history = None

lk = c.load("leaks")
if lk.empty:
    st.title("Leak detail")
    c.empty_store_hint()
    st.stop()
ids = lk.sort_values(["rank", "leak_id"], na_position="last")["leak_id"].tolist()
labels = {r.leak_id: f"{r.leak_id} · " + (f"#{int(r.rank)} {r.risk_band}" if pd.notna(r.rank) else r.status)
          for r in lk.itertuples()}
want = st.query_params.get("leak") or st.session_state.get("leak_id")
if want in labels and want != st.session_state.get("leak_pick"):
    st.session_state["leak_pick"] = want


def _sync() -> None:
    st.query_params["leak"] = st.session_state["leak_id"] = st.session_state["leak_pick"]


leak_id = st.sidebar.selectbox("Leak", ids, key="leak_pick", format_func=labels.get, on_change=_sync)
st.query_params["leak"] = st.session_state["leak_id"] = leak_id
with c.session() as s:
    d = pipeline.leak_detail(s, leak_id)
    events = status_history(s, leak_id) if status_history else pd.DataFrame()
L = d["leak"]
st.title(f"Leak {leak_id}")
st.caption(f"{c.plural(L['n_detections'], 'detection')} from {c.plural(L['n_sources'], 'sensor')} "
           f"({L['source_types'].replace('_', ' ').replace(',', ', ')}) · "
           f"first seen {L['first_seen']:%Y-%m-%d} · last seen {L['last_seen']:%Y-%m-%d} · status **{L['status']}** · "
           f"{L['latitude']:.5f}, {L['longitude']:.5f} (±{L['radius_m']:.0f} m)")
m = st.columns(6)
m[0].metric("Rank", f"#{L['rank']}" if L["rank"] else "not ranked", help="1 = visit first; only open leaks are ranked")
m[1].metric("Risk band", L["risk_band"] or "–")
m[2].metric("P(real)", c.pct(L["p_real"]), help="probability that a crew on site finds a real leak")
lo, hi = L["rate_lo_kg_h"], L["rate_hi_kg_h"]
m[3].metric("Estimated rate", c.rate(L["est_rate_kg_h"]), help="best estimate; the range below is ±1σ",
            delta=(f"{lo:,.1f}–{hi:,.1f} kg/h" + ("" if L["rate_quantified"] else " (not quantified)")) if lo else None,
            delta_color="off", delta_arrow="off")
m[4].metric("Priority", c.rate(L["priority_score"]),
            help="expected kg/h a visit finds: P(real) × rate × (1 + compliance urgency)")
m[5].metric("Due by", f"{L['due_by']:%Y-%m-%d}" if L["due_by"] else "–", delta=L["due_rule"] or None,
            delta_color="off", delta_arrow="off")
st.info(f"**Why:** {L['top_reasons'] or 'not scored yet'}", icon=":material/lightbulb:")

left, right = st.columns(2)
with left:
    st.subheader("What moved the score")
    con = d["contributions"]
    if con:
        terms = sorted(((k, v) for k, v in con.items() if k != "base"), key=lambda kv: -abs(kv[1]))
        names = ["base"] + [k.replace("_", " ") for k, _ in terms] + ["total"]
        vals = [con.get("base", 0.0)] + [v for _, v in terms]
        fig = go.Figure(go.Waterfall(
            x=names, y=vals + [0], measure=["absolute"] + ["relative"] * len(terms) + ["total"],
            text=[f"{v:+.2f}" for v in vals] + [f"{sum(vals):+.2f}"], textposition="outside",
            increasing={"marker": {"color": "#c82323"}}, decreasing={"marker": {"color": "#2a7fa8"}},
            totals={"marker": {"color": "#0f6e6e"}}))
        fig.update_layout(height=340, margin={"t": 10, "b": 10}, yaxis_title="log-odds", showlegend=False)
        st.plotly_chart(fig, key="waterfall")
        st.caption("Red terms raise, blue terms lower the log-odds that a crew finds a real leak; P(real) = "
                   f"1 / (1 + e^−total) = {c.pct(1 / (1 + np.exp(-sum(vals))))}.")
    else:
        st.caption("No score yet: run *Fuse and score now* on the Upload page.")
    st.subheader("Asset")
    cand = pd.DataFrame(d["candidates"])
    st.write(f"Attributed to **{L['asset_id'] or 'no asset'}**" + (" — candidates:" if len(cand) else ""))
    if len(cand):
        st.dataframe(cand, hide_index=True, key="cand", column_config={
            "p": st.column_config.ProgressColumn("P(asset)", min_value=0, max_value=1, format="percent"),
            "distance_m": st.column_config.NumberColumn("distance (m)", format="%.0f")})
with right:
    st.subheader("Detections over time")
    dets = d["detections"].copy()
    q = dets["rate_kg_h"].notna()
    dets["rate"] = dets["rate_kg_h"].where(q, 0.0)
    dets["kind"] = np.where(q, "quantified", "detected, not quantified")
    fig = px.scatter(dets, x="observed_at", y="rate", error_y="rate_uncertainty_kg_h", color="source_name",
                     symbol="kind", symbol_map={"quantified": "circle", "detected, not quantified": "x-thin-open"},
                     hover_data=["detection_id", "source_type", "confidence"], labels={"rate": "rate (kg/h)"})
    fig.update_traces(marker={"size": 7, "opacity": 0.8}, error_y={"thickness": 1, "width": 0})
    fig.update_layout(height=340, margin={"t": 10, "b": 10}, legend_title_text="", xaxis_title="",
                      legend={"orientation": "h", "y": -0.15})
    st.plotly_chart(fig, key="timeline")
    st.caption("Unquantified detections sit on the zero line. Error bars are ±1σ.")

tabs = st.tabs([f"Detections ({len(dets)})", f"Field validations ({len(d['validations'])})",
                f"Status history ({len(events)})", f"Audit ({len(d['history'])})"])
dcols = ["detection_id", "source_name", "source_type", "observed_at", "rate_kg_h", "rate_uncertainty_kg_h",
         "confidence", "location_uncertainty_m", "asset_id", "event_type", "ambiguous", "batch_id", "source_row"]
num = {k: st.column_config.NumberColumn(format="%.1f") for k in ("rate_kg_h", "rate_uncertainty_kg_h",
                                                                  "location_uncertainty_m")}
tabs[0].dataframe(dets[dcols].sort_values("observed_at", ascending=False), hide_index=True, key="dets",
                  column_config={**num, "confidence": st.column_config.NumberColumn(format="%.2f"),
                                 "observed_at": st.column_config.DatetimeColumn("observed (UTC)",
                                                                                format="YYYY-MM-DD HH:mm")})
v = d["validations"].drop(columns=["id", "batch_id"], errors="ignore")
if len(v):
    tabs[1].dataframe(v, hide_index=True, key="vals")
else:
    tabs[1].caption("No field visit recorded yet.")


def _words(x) -> str:
    return ", ".join(f"{k}: {v}" for k, v in json.loads(x).items()) if isinstance(x, str) and x else ""


if len(events):
    tabs[2].dataframe(events.assign(detail=events["detail"].map(_words)).drop(columns=["id", "leak_id"],
                                                                                 errors="ignore"),
                      hide_index=True, key="events")
else:
    tabs[2].caption("No status change recorded yet: the leak is as fusion created it.")
tabs[3].dataframe(d["history"].assign(detail=d["history"]["detail"].map(_words)).drop(columns=["id", "target"]),
                  hide_index=True, key="hist")
