"""Map: where the leaks are, coloured by risk band, sized by estimated rate; pick one to inspect."""

import html

import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st

from app import common as c
from app import filters

st.title("Leak map")
lk = c.leaks_with_operator()
if lk.empty:
    c.empty_store_hint()
    st.stop()
shown = filters.apply_filters(lk).copy()
filters.filter_note(len(shown), len(lk))
m1, m2, m3, m4 = st.columns(4)
m1.metric("Leaks shown", f"{len(shown):,}")
m2.metric("HIGH risk", f"{(shown['risk_band'] == 'HIGH').sum():,}")
m3.metric("Estimated emissions", f"{shown['est_rate_kg_h'].sum():,.0f} kg/h", help="sum of best-estimate rates shown")
m4.metric("Expected find per visit (top 10)", c.rate(shown["priority_score"].nlargest(10).mean()),
          help="mean priority score (P(real) × rate × urgency) of the ten highest")

shown["colour"] = shown["risk_band"].map(c.BAND_RGB).map(lambda v: v + [200] if isinstance(v, list) else [150] * 4)
shown["radius"] = 50 * np.sqrt(shown["est_rate_kg_h"].fillna(1).clip(lower=0.1))
shown["rank_txt"] = shown["rank"].map(lambda r: f"#{int(r)}" if pd.notna(r) else "not ranked")
shown["p_txt"] = shown["p_real"].map(c.pct)
shown["rate_txt"] = shown["est_rate_kg_h"].map(c.rate)
cols = ["leak_id", "longitude", "latitude", "colour", "radius", "rank_txt", "risk_band", "p_txt", "rate_txt",
        "top_reasons", "status", "asset_id"]
for k in ("top_reasons", "status", "asset_id", "risk_band"):  # the tooltip is HTML: file text must not become markup
    shown[k] = shown[k].fillna("–").astype(str).map(html.escape)
layers = []
legend = "Risk: " + c.legend(c.BAND_RGB) + " — circle area ∝ estimated rate; grey dots are assets."
with st.sidebar:
    st.subheader("Map layers")
    show_assets = st.toggle("Assets", value=True, key="map_assets")
    show_dets = st.toggle("Detections by sensor", value=False, key="map_dets")
assets = c.load("assets")
if show_assets and len(assets):
    layers.append(pdk.Layer("ScatterplotLayer", assets[["asset_id", "longitude", "latitude"]], id="assets",
                            get_position=["longitude", "latitude"], get_fill_color=[140, 140, 140, 90],
                            get_radius=12, radius_min_pixels=1.2, radius_max_pixels=2.5, pickable=False))
if show_dets:
    d = c.load("detections")
    d = d[d["leak_id"].isin(shown["leak_id"])][["longitude", "latitude", "source_type"]].copy()
    d["colour"] = d["source_type"].map(lambda t: c.SOURCE_RGB.get(t, [90, 90, 90]) + [150])
    layers.append(pdk.Layer("ScatterplotLayer", d, id="detections", get_position=["longitude", "latitude"],
                            get_fill_color="colour", get_radius=20, radius_min_pixels=2, radius_max_pixels=4))
    legend += " Detections: " + c.legend(c.SOURCE_RGB) + "."
order = shown.sort_values("priority_score", na_position="first")  # biggest on top
layers.append(pdk.Layer("ScatterplotLayer", order[cols], id="leaks", get_position=["longitude", "latitude"],
                        get_fill_color="colour", get_line_color=[255, 255, 255], stroked=True, line_width_min_pixels=1,
                        get_radius="radius", radius_min_pixels=6, radius_max_pixels=45, pickable=True,
                        auto_highlight=True))
def _from_map() -> None:  # the last thing the user touched (map click or id box) is the leak in focus
    objs = (st.session_state.get("leakmap") or {}).get("selection", {}).get("objects", {}).get("leaks") or []
    st.session_state["map_focus"] = objs[0]["leak_id"] if objs else None


def _from_box() -> None:
    st.session_state["map_focus"] = st.session_state.get("map_pick")


left, right = st.columns([3, 1])
with right:
    ids = shown.sort_values(["rank", "leak_id"], na_position="last")["leak_id"].tolist()
    st.selectbox("Or pick a leak by id", ids, index=None, key="map_pick", placeholder="leak id…", on_change=_from_box)
leak_id = st.session_state.get("map_focus")
leak_id = leak_id if leak_id in set(ids) else None
if leak_id:  # a ring around the leak in focus
    layers.append(pdk.Layer("ScatterplotLayer", order.loc[order["leak_id"] == leak_id, cols], id="focus",
                            get_position=["longitude", "latitude"], get_radius="radius", filled=False, stroked=True,
                            get_line_color=[15, 110, 110], line_width_min_pixels=3, radius_min_pixels=11,
                            radius_max_pixels=50))
view = c.view_for(shown if len(shown) else lk, 850, 600)
tooltip = {"html": "<b>{leak_id}</b> {rank_txt} · <b>{risk_band}</b><br/>P(real) {p_txt} · {rate_txt}<br/>"
                   "asset {asset_id} · {status}<br/><i>{top_reasons}</i>",
           "style": {"maxWidth": "280px", "fontSize": "12px", "whiteSpace": "normal"}}
deck = pdk.Deck(layers=layers, initial_view_state=view, map_provider="carto", map_style="light", tooltip=tooltip)
with left:
    st.pydeck_chart(deck, on_select=_from_map, selection_mode="single-object", key="leakmap", height=600)
    st.caption(legend + " Click a leak to inspect it.", unsafe_allow_html=True)
with right:
    if leak_id is None:
        st.info("Click a circle on the map, or pick a leak id above, to see its summary here.")
    else:
        r = lk.set_index("leak_id").loc[leak_id]
        st.subheader(leak_id, anchor=False)
        a, b = st.columns(2)
        a.metric("Rank", f"#{int(r['rank'])}" if pd.notna(r["rank"]) else "–")
        b.metric("Risk", r["risk_band"] or "–")
        a.metric("P(real)", c.pct(r["p_real"]))
        b.metric("Rate (kg/h)", f"{r['est_rate_kg_h']:,.1f}" if pd.notna(r["est_rate_kg_h"]) else "–")
        st.caption(f"Asset **{r['asset_id'] or 'none'}** · status **{r['status']}** · "
                   f"{c.plural(int(r['n_detections']), 'detection')}")
        st.write(r["top_reasons"] or "")
        if st.button("Open leak detail", key="map_open", type="primary", icon=":material/arrow_forward:"):
            st.session_state["leak_id"] = leak_id
            st.switch_page(c.PAGES["leak"], query_params={"leak": leak_id})
