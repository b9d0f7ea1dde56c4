"""Map: where the leaks are (colour = risk, size = rate), replayed through time; click leaks to inspect them."""

import pandas as pd
import pydeck as pdk
import streamlit as st

from app import common as c
from app import filters
from app import mapping as m
from mlpe_core.export import to_csv_text
from mlpe_core.text import md

st.title("Leak map")
lk = c.leaks_with_operator()
if lk.empty:
    c.empty_store_hint()
    st.stop()
shown = filters.apply_filters(lk)
ss, win = st.session_state, filters.window()
with st.sidebar:
    st.subheader("Map layers")
    agg = st.toggle("Aggregate into hexagons", value=len(shown) > m.AGGREGATE_ABOVE, key="map_agg",
                    help=f"on by default above {m.AGGREGATE_ABOVE:,} leaks: colour = summed expected kg/h")
    show_unc = st.toggle("Uncertainty circles", value=False, key="map_unc", help="each leak's location ± radius_m")
    show_dets = st.toggle("Detections by sensor", value=False, key="map_dets")
    show_assets = st.toggle("Assets", value=True, key="map_assets")
note, kpis = st.empty(), st.container()  # filled once the replay date is known
left, right = st.columns([3, 1])
t = win[1] if win else None
if win and win[0] < win[1]:  # a new window starts a new replay at its end: everything shown
    t = left.slider("Replay: detections up to", min_value=win[0], max_value=win[1], value=win[1],
                    key=f"map_replay_{win[0]}_{win[1]}", format="YYYY-MM-DD",
                    help="drag to watch leaks appear as sensors first saw them")
now = shown[shown["first_seen"].dt.date <= t] if t else shown
with note:
    filters.filter_note(len(now), len(lk))
if now.empty:
    left.info("No leak matches the sidebar filters by this date: drag the replay slider right, widen the time "
              "window or clear filters in the sidebar.", icon=":material/filter_alt_off:")
k1, k2, k3, k4 = kpis.columns(4)
k1.metric("Leaks shown", f"{len(now):,}")
k2.metric("HIGH risk", f"{(now['risk_band'] == 'HIGH').sum():,}")
k3.metric("Estimated emissions", f"{now['est_rate_kg_h'].sum():,.0f} kg/h", help="sum of best-estimate rates shown")
k4.metric("Expected find per visit (top 10)", c.rate(now["priority_score"].nlargest(10).mean()),
          help="mean priority score of the ten highest: P(real) × rate, plus a compliance clock's urgency "
               "× P(real) × min(rate, 20 kg/h)")

layers, legend = [], "Risk: " + c.legend(c.BAND_RGB) + " — circle area ∝ estimated rate (2–100 kg/h; at any zoom)"
order = now.sort_values("priority_score", na_position="first")  # biggest on top
if show_assets and len(assets := c.load("assets")):
    layers.append(m.assets_layer(assets))
    legend += "; grey dots are assets"
if agg and len(now):
    hexes, radius = m.hex_layer(now)
    layers.append(hexes)
    order = order.tail(m.POINTS_WHEN_AGGREGATED)
    legend += (f". Hexagons ({radius / 1000:.1f} km): summed expected kg/h, yellow low to red high; the "
               f"{len(order):,} highest-priority leaks are drawn as points")
pts = m.leak_points(order)
if show_unc:
    layers.append(m.uncertainty_layer(pts))
    legend += "; thin rings in the risk colour are location uncertainty"
rings: list = []  # ambiguous detections, drawn last (above the leaks)
if show_dets:
    d = c.load("detections")
    d = d[d["leak_id"].isin(now["leak_id"]) & (d["observed_at"].dt.date <= (t or d["observed_at"].max().date()))]
    solid, *rings = m.detections_layer(d)  # ambiguous rings go above the leaks, or a pad's discs hide them
    layers.append(solid)
    legend += ". Detections: " + c.legend(c.SOURCE_RGB)
    if d["ambiguous"].any():
        legend += f"; {int(d['ambiguous'].sum()):,} hollow rings are ambiguous (they fit several leaks)"
layers.append(m.leaks_layer(pts, small=bool(agg and len(now))))
layers += rings


def _from_map() -> None:  # clicks add or remove leaks; the id box replaces the selection
    objs = (ss.get("leakmap") or {}).get("selection", {}).get("objects", {}).get("leaks") or []
    ss["map_sel"] = [o["leak_id"] for o in objs]


def _from_box() -> None:
    ss["map_sel"] = [ss["map_pick"].strip().upper()] if ss.get("map_pick") else []


with right:
    ids = now.sort_values(["rank", "leak_id"], na_position="last")["leak_id"].tolist()
    st.selectbox("Or pick a leak by id", c.capped(ids, ss.get("map_pick")), index=None, key="map_pick",
                 placeholder="leak id…", on_change=_from_box, accept_new_options=len(ids) > c.MAX_OPTIONS)
sel = now[now["leak_id"].isin(ss.get("map_sel") or [])].sort_values(["rank", "leak_id"], na_position="last")
if ss.get("map_sel") and sel.empty:
    right.warning(f"{', '.join(ss['map_sel'])} is not among the leaks shown (sidebar filters, replay date).")
if len(sel):
    layers.append(m.focus_layer(m.leak_points(sel)))
view = c.view_for(shown if len(shown) else lk, 850, 600)  # fixed while replaying: the map does not jump
deck = pdk.Deck(layers=layers, initial_view_state=view, map_provider="carto", map_style="light", tooltip=m.TOOLTIP)
with left:
    st.pydeck_chart(deck, on_select=_from_map, selection_mode="multi-object", key="leakmap", height=600)
    st.caption(legend + ". Click leaks to select them (click again to drop one).", unsafe_allow_html=True)
with right:
    if sel.empty:
        st.info("Click circles on the map (a click adds or drops a leak), or pick a leak id above, to see them "
                "here.", icon=":material/touch_app:")
    elif len(sel) == 1:
        r = sel.iloc[0]
        st.subheader(r["leak_id"], anchor=False)
        a, b = st.columns(2)
        a.metric("Rank", f"#{int(r['rank'])}" if pd.notna(r["rank"]) else "–")
        b.metric("Risk", r["risk_band"] or "–")
        a.metric("P(real)", c.pct(r["p_real"]))
        b.metric("Rate (kg/h)", f"{r['est_rate_kg_h']:,.1f}" if pd.notna(r["est_rate_kg_h"]) else "–")
        st.caption(f"Asset **{md(r['asset_id']) or 'none'}** · status **{md(r['status'])}** · "
                   f"{c.plural(int(r['n_detections']), 'detection')}")
        st.markdown(md(r["top_reasons"]))
    else:
        st.subheader(f"{len(sel)} leaks selected", anchor=False)
        st.caption(f"{sel['est_rate_kg_h'].sum():,.1f} kg/h estimated · {sel['priority_score'].sum():,.1f} kg/h "
                   f"expected find · {(sel['risk_band'] == 'HIGH').sum()} HIGH")
        st.dataframe(sel[["leak_id", "rank", "risk_band", "est_rate_kg_h"]], hide_index=True, key="map_sel_table",
                     column_config={"leak_id": "leak", "rank": st.column_config.NumberColumn(format="%d"),
                                    "risk_band": "risk", "est_rate_kg_h": st.column_config.NumberColumn(
                                        "kg/h", format="%.0f")})
        picked = sel.drop(columns=["contributions", "asset_candidates"], errors="ignore")
        st.download_button("Selection CSV", to_csv_text(picked), "mlpe_selection.csv", "text/csv", key="map_sel_csv",
                           on_click="ignore", icon=":material/download:")
    if len(sel) and st.button("Open leak detail", key="map_open", type="primary", icon=":material/arrow_forward:",
                              help="opens the best-ranked leak of the selection"):
        ss["leak_id"] = sel.iloc[0]["leak_id"]
        st.switch_page(c.PAGES["leak"], query_params={"leak": ss["leak_id"]})
