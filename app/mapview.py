"""The Map page's map and selection panel, in one ``st.fragment``: a click on a leak reruns only this part (not the
filters, the sidebar or the data loading), so the panel fills in well under a second."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import common as c
from app import filters, tables
from app import mapping as m
from mlpe_core.desk import LEAK_EXPORT_COLUMNS
from mlpe_core.export import to_csv_text
from mlpe_core.text import md


def layer_toggles(n_shown: int) -> dict:
    """The sidebar's layer switches (a change reruns the page)."""
    with st.sidebar:
        st.subheader("Map layers")
        return {"agg": st.toggle("Aggregate into hexagons", value=n_shown > m.AGGREGATE_ABOVE, key="map_agg",
                                 help=f"on by default above {m.AGGREGATE_ABOVE:,} leaks: H3 cells coloured by summed "
                                      "expected rate; they stay put when filters change"),
                "unc": st.toggle("Uncertainty circles", value=False, key="map_unc",
                                 help="each leak's location ± its radius"),
                "dets": st.toggle("Detections by sensor", value=False, key="map_dets"),
                "assets": st.toggle("Assets", value=True, key="map_assets")}


def _from_map() -> None:  # clicks add or remove leaks; the id box replaces the selection
    ss = st.session_state
    objs = (ss.get("leakmap") or {}).get("selection", {}).get("objects", {}).get("leaks") or []
    ss["map_sel"] = [o["leak_id"] for o in objs]


def _from_box() -> None:
    ss = st.session_state
    ss["map_sel"] = [ss["map_pick"].strip().upper()] if ss.get("map_pick") else []


def _layers(lk: pd.DataFrame, now: pd.DataFrame, t, opts: dict) -> tuple[list, list, str]:
    """(layers under the leaks, layers over them, legend) for the leaks shown at replay date ``t``."""
    under, over = [*m.overlay_layers(), *m.scale_layers(lk, label=False)], []
    legend = "Risk: " + c.legend({c.label("band", b): v for b, v in c.BAND_RGB.items()}) + \
        " — circle area ∝ estimated rate (at any zoom)"
    if opts["assets"] and len(assets := c.load("assets")):
        under.append(m.assets_layer(assets))
        legend += "; grey dots are assets"
    order = now.sort_values("priority_score", na_position="first")  # biggest on top
    if opts["agg"] and len(now):
        hexes, edge = m.hex_layer(now, c.version(), m.h3_resolution(lk))
        under.append(hexes)
        order = order.tail(m.POINTS_WHEN_AGGREGATED)
        legend += (f". Hexagons (H3, {edge / 1000:.1f} km edge): summed expected rate, yellow low to red high; the "
                   f"{len(order):,} highest-priority leaks are drawn as points (zoom in, or narrow the filters, to "
                   "see the others one by one)")
    pts = m.leak_points(order)
    if opts["unc"]:
        under.append(m.uncertainty_layer(pts))
        legend += "; thin rings in the risk colour are location uncertainty"
    if opts["dets"]:
        d = c.load("detections")
        d = d[d["leak_id"].isin(now["leak_id"]) & (d["observed_at"].dt.date <= (t or d["observed_at"].max().date()))]
        solid, *rings = m.detections_layer(d)  # ambiguous rings go above the leaks, or a pad's discs hide them
        under.append(solid)
        over += rings
        legend += ". Detections: " + c.legend({c.label("sensor", k): v for k, v in c.SOURCE_RGB.items()})
        if d["ambiguous"].any():
            legend += f"; {int(d['ambiguous'].sum()):,} hollow rings are ambiguous (they fit several leaks)"
    under.append(m.leaks_layer(pts, small=bool(opts["agg"] and len(now))))
    return under, over, legend


@st.fragment
def map_and_panel(lk: pd.DataFrame, shown: pd.DataFrame, opts: dict) -> None:
    """Replay slider, headline numbers, the map and the panel of the leaks clicked on it."""
    ss = st.session_state
    win = filters.window()
    note, kpis = st.empty(), st.container()
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
    k = kpis.columns(4)
    k[0].metric("Leaks shown", f"{len(now):,}")
    k[1].metric("High risk", f"{(now['risk_band'] == 'HIGH').sum():,}")
    k[2].metric("Estimated emissions", c.rate(now["est_rate_kg_h"].sum()), help="sum of best-estimate rates shown")
    k[3].metric("Expected find per visit (top 10)", c.rate(now["priority_score"].nlargest(10).mean()),
                help="mean priority of the ten highest: P(real) × the rate a visit finds on average, plus a "
                     "compliance clock's urgency × P(real) × min(that rate, 20 kg/h)")
    with right:
        ids = now.sort_values(["rank", "leak_id"], na_position="last")["leak_id"].tolist()
        st.selectbox("Or pick a leak by id", c.capped(ids, ss.get("map_pick")), index=None, key="map_pick",
                     placeholder="leak id…", on_change=_from_box, accept_new_options=len(ids) > c.MAX_OPTIONS)
    sel = now[now["leak_id"].isin(ss.get("map_sel") or [])].sort_values(["rank", "leak_id"], na_position="last")
    if ss.get("map_sel") and sel.empty:
        right.warning(f"{md(', '.join(ss['map_sel']))} is not among the leaks shown (sidebar filters, replay date).")
    with right:  # before the map: the panel is sent, and drawn, before the browser parses and redraws the map
        panel(sel)
    under, over, legend = _layers(lk, now, t, opts)
    focus = [m.focus_layer(m.leak_points(sel))] if len(sel) else []
    view = c.view_for(shown if len(shown) else lk, 850, 600)  # fixed while replaying: the map does not jump
    with left:
        st.pydeck_chart(m.deck(under + over + focus, view, select=True), on_select=_from_map,
                        selection_mode="multi-object", key="leakmap", height=600)
        st.caption(legend + f". North is up; the bar at the bottom left is {m.scale_text(lk)} on the ground. Click "
                   "leaks to select them (click again to drop one).", unsafe_allow_html=True)


def panel(sel: pd.DataFrame) -> None:
    """One leak's summary and reasons, or the totals and table of several; *Open leak detail*."""
    if sel.empty:
        st.info("Click circles on the map (a click adds or drops a leak), or pick a leak id above, to see them "
                "here.", icon=":material/touch_app:")
        return
    if len(sel) == 1:
        r = sel.iloc[0]
        st.subheader(r["leak_id"], anchor=False)
        a, b = st.columns(2)
        a.metric("Rank", f"#{int(r['rank'])}" if pd.notna(r["rank"]) else "–")
        b.metric("Risk", c.label("band", r["risk_band"]) or "–")
        a.metric("P(real)", c.pct(r["p_real"]))
        b.metric("Rate", c.rate(r["est_rate_kg_h"]))
        st.caption(f"Asset **{md(r['asset_id']) or 'none'}** · {md(c.label('status', r['status']))} · "
                   f"{c.plural(int(r['n_detections']), 'detection')}")
        st.markdown(md(c.present.rules_in_text(r["top_reasons"])))
    else:
        st.subheader(f"{len(sel)} leaks selected", anchor=False)
        st.caption(f"{c.rate(sel['est_rate_kg_h'].sum())} estimated · {c.rate(sel['priority_score'].sum())} "
                   f"expected find · {(sel['risk_band'] == 'HIGH').sum()} high risk")
        tables.show(sel[["rank", "leak_id", "risk_band", "est_rate_kg_h"]], "leaks", "map_sel_table",
                    height=tables.height(len(sel), 300))
        picked = sel.reindex(columns=list(LEAK_EXPORT_COLUMNS))
        st.download_button("Selection CSV", lambda: to_csv_text(picked), "mlpe_selection.csv", "text/csv",
                           key="map_sel_csv", on_click="ignore", icon=":material/download:",
                           help="the contract's leak columns (as `mlpe export leaks`)")
    # a link, not a button: the browser goes straight to the leak page (one run, no rerun of the map first, which a
    # button's switch_page needs), and a middle click opens it in a new tab
    st.page_link(c.PAGES["leak"], label="Open leak detail", icon=":material/arrow_forward:",
                 query_params={"leak": sel.iloc[0]["leak_id"]}, help="opens the best-ranked leak of the selection")
