"""Dispatch: the next K leaks for the crews, as CSV, GeoJSON or KML (same list as `mlpe export dispatch`)."""

import json

import pydeck as pdk
import streamlit as st

from app import common as c
from mlpe_core.dispatch import crew_capacity
from mlpe_core.export import spreadsheet_safe, to_geojson, to_kml

st.title("Dispatch")
cap = crew_capacity()
top = st.container(horizontal=True, vertical_alignment="bottom")
k = top.number_input("Leaks to visit (K)", min_value=1, max_value=500, value=cap, step=1, key="dispatch_k",
                    width=180, help=f"default = crew capacity from config/dispatch.yaml ({cap} visits a day)")
df = c.export("dispatch", c.version(), int(k))
if df.empty:
    st.info("Nothing to dispatch: no open, unvisited, ranked leak. Upload detections and run *Fuse and score now* "
            "on the Upload page, or record outcomes on Field validation to see what is left.")
    st.stop()
top.download_button("CSV", spreadsheet_safe(df).to_csv(index=False), "mlpe_dispatch.csv", "text/csv",
                    key="dispatch_csv", icon=":material/download:", on_click="ignore", type="primary")
top.download_button("GeoJSON", json.dumps(to_geojson(df), default=str), "mlpe_dispatch.geojson",
                    "application/geo+json", key="dispatch_geojson", icon=":material/download:", on_click="ignore")
top.download_button("KML", to_kml(df), "mlpe_dispatch.kml", "application/vnd.google-earth.kml+xml",
                    key="dispatch_kml", icon=":material/download:", on_click="ignore")
st.caption(f"The {len(df)} open leaks with the best rank that no crew has visited yet, in visit order. The sidebar "
           "filters do not apply here: this is exactly what `mlpe export dispatch --top K` writes.")
st.dataframe(df.assign(p_real=df["p_real"] * 100, due_by=df["due_by"].dt.strftime("%Y-%m-%d").fillna("–")),
             hide_index=True, key="dispatch_table", height=min(38 + 35 * len(df), 460),
             column_order=["rank", "leak_id", "asset_id", "risk_band", "p_real", "est_rate_kg_h", "priority_score",
                           "due_by", "top_reasons"],
             column_config={
                 "rank": st.column_config.NumberColumn(format="%d", width="small"),
                 "leak_id": "leak", "asset_id": "asset", "risk_band": "risk",
                 "p_real": st.column_config.ProgressColumn("P(real)", min_value=0, max_value=100, format="%.1f%%",
                                                           width="small"),
                 "est_rate_kg_h": st.column_config.NumberColumn("rate (kg/h)", format="%.1f"),
                 "priority_score": st.column_config.NumberColumn("priority (kg/h)", format="%.2f"),
                 "due_by": "due by", "top_reasons": st.column_config.TextColumn("why", width="large")})
pts = df[["rank", "leak_id", "latitude", "longitude", "risk_band", "est_rate_kg_h"]].iloc[::-1].copy()  # 1 on top
pts["colour"] = pts["risk_band"].map(lambda b: c.BAND_RGB.get(b, [120, 120, 120]) + [230])
pts["label"] = pts["rank"].astype(str)
pts["rate_txt"] = pts["est_rate_kg_h"].map(c.rate)
view = c.view_for(pts, 1000, 420)
layers = [pdk.Layer("ScatterplotLayer", pts, get_position=["longitude", "latitude"], get_fill_color="colour",
                    get_line_color=[255, 255, 255], stroked=True, line_width_min_pixels=1.5,
                    get_radius=80, radius_min_pixels=11, radius_max_pixels=16, pickable=True),
          pdk.Layer("TextLayer", pts, get_position=["longitude", "latitude"], get_text="label", get_size=13,
                    get_color=[255, 255, 255], font_weight=700, get_alignment_baseline="'center'")]
st.pydeck_chart(pdk.Deck(layers=layers, initial_view_state=view, map_provider="carto", map_style="light",
                         tooltip={"text": "#{rank} {leak_id}\n{risk_band} · {rate_txt}"}),
                key="dispatch_map", height=420)
st.caption("Numbers are the visit order. Risk: " + c.legend(c.BAND_RGB), unsafe_allow_html=True)
