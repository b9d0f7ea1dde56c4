"""Plotly charts of the app, drawn with one look and a PNG download in every chart's toolbar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from mlpe_core.present import convert, label

TEAL, RED, BLUE, ORANGE = "#0f6e6e", "#c82323", "#2a7fa8", "#f08c00"
pio.templates["mlpe"] = go.layout.Template(layout={
    "font": {"family": "Source Sans Pro, sans-serif", "color": "#1b2a2f"},
    # twelve distinct colours: the Runs chart stacks up to ~10 stages, and a repeated colour reads as one stage
    "colorway": [TEAL, ORANGE, BLUE, "#7a3cc8", RED, "#5a8f29", "#a0522d", "#d4a017", "#3b3b98", "#d35fb7",
                 "#17a2b8", "#7f7f7f"]})
pio.templates.default = "plotly_white+mlpe"


def plot(fig: go.Figure, key: str, filename: str) -> None:
    """``st.plotly_chart`` whose toolbar camera saves a 2× PNG named ``filename``."""
    st.plotly_chart(fig, key=key, config={
        "displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"],
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}})


def waterfall(con: dict, top: int = 8) -> tuple[go.Figure, float]:
    """The log-odds terms behind P(real), biggest first (the ``top`` biggest, the rest summed as "other");
    returns the figure and the total logit."""
    terms = sorted(((k, v) for k, v in con.items() if k != "base"), key=lambda kv: -abs(kv[1]))
    if len(terms) > top + 1:
        terms = terms[:top] + [(f"{len(terms) - top} others", sum(v for _, v in terms[top:]))]
    names = [label("term", "base")] + [label("term", k) if not k.endswith("others") else k for k, _ in terms] \
        + ["Total"]
    vals = [con.get("base", 0.0)] + [v for _, v in terms]
    fig = go.Figure(go.Waterfall(
        x=names, y=vals + [0], measure=["absolute"] + ["relative"] * len(terms) + ["total"],
        text=[f"{v:+.2f}" for v in vals] + [f"{sum(vals):+.2f}"], textposition="outside",
        increasing={"marker": {"color": RED}}, decreasing={"marker": {"color": BLUE}},
        totals={"marker": {"color": TEAL}}))
    fig.update_layout(height=340, margin={"t": 10, "b": 10}, yaxis_title="← less likely real · more likely real →",
                      showlegend=False)
    return fig, float(sum(vals))


def timeline(dets: pd.DataFrame, unit: str = "kg/h") -> go.Figure:
    """Detections over time by sensor, rates (in ``unit``) with ±1σ error bars; unquantified ones on the zero line."""
    d = dets.copy()
    q = d["rate_kg_h"].notna()
    d["rate"] = convert(d["rate_kg_h"].where(q, 0.0), unit)
    d["rate_uncertainty_kg_h"] = convert(d["rate_uncertainty_kg_h"], unit)
    d["source_type"] = d["source_type"].map(lambda t: label("sensor", t))
    d["kind"] = np.where(q, "quantified", "detected, not quantified")
    fig = px.scatter(d, x="observed_at", y="rate", error_y="rate_uncertainty_kg_h", color="source_name",
                     symbol="kind", symbol_map={"quantified": "circle", "detected, not quantified": "x-thin-open"},
                     hover_data=["detection_id", "source_type", "confidence"],
                     labels={"rate": f"rate ({unit})", "observed_at": "observed (UTC)", "source_name": "sensor",
                             "detection_id": "detection", "source_type": "kind", "kind": "", "confidence": "confidence",
                             "rate_uncertainty_kg_h": "± 1σ"})
    fig.update_traces(marker={"size": 7, "opacity": 0.8}, error_y={"thickness": 1, "width": 0})
    fig.update_layout(height=340, margin={"t": 10, "b": 10}, legend_title_text="", xaxis_title="",
                      legend={"orientation": "h", "y": -0.15})
    t0, t1 = d["observed_at"].min(), d["observed_at"].max()
    if len(d) and t1 - t0 < pd.Timedelta(days=2):  # one sighting: a week around it, not milliseconds
        fig.update_xaxes(range=[t0 - pd.Timedelta(days=3), t1 + pd.Timedelta(days=3)])
    return fig


def rank_scatter(cmp: pd.DataFrame, a: str, b: str) -> go.Figure:
    """Rank under model ``a`` against rank under model ``b``: points off the diagonal moved."""
    fig = px.scatter(cmp, x="rank_a", y="rank_b", color="risk_band_b", hover_name="leak_id",
                     color_discrete_map={"HIGH": RED, "MEDIUM": ORANGE, "LOW": BLUE},
                     labels={"rank_a": f"rank under {a}", "rank_b": f"rank under {b}", "risk_band_b": f"risk ({b})"})
    top = float(max(cmp["rank_a"].max(), cmp["rank_b"].max(), 1))
    fig.add_scatter(x=[1, top], y=[1, top], mode="lines", line={"dash": "dot", "color": "grey"}, name="same rank")
    fig.update_layout(height=360, margin={"t": 10, "b": 10}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(autorange="reversed")
    fig.update_yaxes(autorange="reversed")
    return fig


def site_emissions(em: pd.DataFrame, weekly: pd.DataFrame, unit: str = "kg/h") -> go.Figure:
    """A site through time: the summed rate of its emitting leaks (P(real)-weighted, ±1σ band) and each sensor's
    geometric-mean reading per week with its 90 % interval (as reported: each sensor on its own scale); rates in
    ``unit``."""
    rates = ["rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h"]
    em = em.assign(**{k: convert(em[k], unit) for k in rates if k in em}) if len(em) else em
    weekly = weekly.assign(**{k: convert(weekly[k], unit) for k in rates if k in weekly}) if len(weekly) else weekly
    fig = go.Figure()
    if len(em):
        fig.add_trace(go.Scatter(x=pd.concat([em["week"], em["week"][::-1]]),
                                 y=pd.concat([em["rate_hi_kg_h"], em["rate_lo_kg_h"][::-1]]), fill="toself",
                                 fillcolor="rgba(15,110,110,0.15)", line={"width": 0}, hoverinfo="skip",
                                 name="leaks ±1σ"))
        fig.add_trace(go.Scatter(x=em["week"], y=em["rate_kg_h"], mode="lines", line={"color": TEAL, "width": 2},
                                 name="leaks: P(real) × rate"))
    w = weekly[weekly["rate_kg_h"].notna()] if len(weekly) else weekly
    for src, g in (w.groupby("source_name") if len(w) else []):
        bars = {"type": "data", "symmetric": False, "array": g["rate_hi_kg_h"] - g["rate_kg_h"],
                "arrayminus": g["rate_kg_h"] - g["rate_lo_kg_h"], "thickness": 1, "width": 0}
        fig.add_trace(go.Scatter(x=g["week"], y=g["rate_kg_h"], mode="markers", name=f"{src} reading", error_y=bars))
    fig.update_layout(height=330, margin={"t": 10, "b": 10}, yaxis_title=unit, xaxis_title="",
                      legend={"orientation": "h", "y": -0.18})
    return fig


def detected_days(weekly: pd.DataFrame) -> go.Figure:
    """Per week and sensor: the share of watched days with a detection (bars), so an offline week is not a quiet
    one; sensors without known watched days (aircraft) show their readings' days only."""
    w = weekly.groupby(["week", "source_name"], as_index=False)[["detected_days", "watched_days"]].sum() \
        if len(weekly) else weekly
    if len(w):
        w = w.assign(share=(w["detected_days"] / w["watched_days"].where(w["watched_days"] > 0)).fillna(0) * 100)
    fig = px.bar(w, x="week", y="share", color="source_name", barmode="group",
                 hover_data=["detected_days", "watched_days"], labels={"share": "watched days with a detection (%)"})
    fig.update_layout(height=300, margin={"t": 10, "b": 10}, legend_title_text="", xaxis_title="",
                      legend={"orientation": "h", "y": -0.2})
    return fig
