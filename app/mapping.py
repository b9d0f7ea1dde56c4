"""Layers of the app's maps, and what every map shares: the basemap (configurable for a team's own tiles), a scale
bar, north up, tooltips that stay inside, assets and lease/boundary outlines for orientation when no tiles load.

Big basins are drawn as H3 hexagons (cells fixed on the globe, so a filter never moves a bin) weighted by
expected methane (P(real) × rate), with only the highest-priority leaks as points, so the browser gets well under a
MB and pans smoothly. Each leak's cell is computed once per store version and resolution (cached)."""

from __future__ import annotations

import json
import math
import os

import h3
import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st
from pydeck.bindings.json_tools import default_serialize

from app import common as c
from mlpe_core import desk

AGGREGATE_ABOVE = 5_000  # leaks: more than this are aggregated by default
POINTS_WHEN_AGGREGATED = 600  # highest-priority leaks still drawn (and clickable) over the hexagons
MAX_DETECTIONS = 20_000  # most recent detections drawn
TOOLTIP = {"html": "<b>{title}</b><br/>{line1}<br/><i>{line2}</i>",
           "style": {"maxWidth": "280px", "fontSize": "12px", "whiteSpace": "normal", "zIndex": "5"}}
VIEWS = [pdk.View(type="MapView", controller={"dragRotate": False, "touchRotate": False})]  # north stays up
# On a map whose leaks are clicked: no double-click zoom, or deck.gl holds every click 300 ms to see whether a second
# one follows (its click gesture waits for the double-click's to fail); zoom is the wheel and the +/- buttons.
SELECT_VIEWS = [pdk.View(type="MapView", controller={"dragRotate": False, "touchRotate": False,
                                                     "doubleClickZoom": False})]
PIXELS = '"pixels"'  # pydeck sends a bare string as an expression (@@=pixels: undefined); quoted, as the value
HEX_SHRINK = 0.93  # of a cell drawn: the gap outlines it
HEX_RANGE = [[255, 237, 160], [254, 217, 118], [254, 178, 76], [253, 141, 60], [240, 59, 32], [189, 0, 38]]


def leak_points(df: pd.DataFrame) -> pd.DataFrame:
    """The columns the leak layers and the tooltip need (no more: 50,000 rows travel to the browser)."""
    out = pd.DataFrame({"leak_id": df["leak_id"], "longitude": df["longitude"].round(6),
                        "latitude": df["latitude"].round(6), "radius_m": df["radius_m"].round(1)})
    if df.empty:  # no leak matches: the text columns' maps below give empty numeric series, and str + Int64 raises
        return out.assign(colour=[], radius=[], title=[], line1=[], line2=[])
    out["colour"] = df["risk_band"].map(c.BAND_RGB).map(lambda v: v + [185] if isinstance(v, list) else [150] * 4)
    # in screen pixels, so that circle area stays proportional to rate at every zoom (in metres, every big
    # leak hit the same pixel cap when zoomed on a pad): 2.3 kg/h and less at 3 px, 81 kg/h and more at 18 (smaller
    # than before issue 17: at basin zoom the big ones hid each other)
    out["radius"] = (2.0 * np.sqrt(df["est_rate_kg_h"].fillna(1).clip(lower=0.0))).clip(3, 18).round(1)
    rank = df["rank"].map(lambda r: f"#{int(r)}" if pd.notna(r) else "not ranked")
    out["title"] = df["leak_id"] + " " + rank + " · " + df["risk_band"].map(lambda b: c.label("band", b) or "–")
    unit = c.unit()  # once: c.rate asks the session for it on every call (7,300 calls were 80 ms of a 50k map)
    out["line1"] = ("P(real) " + df["p_real"].map(c.pct) + " · "
                    + df["est_rate_kg_h"].map(lambda r: c.present.rate(r, unit)) + " · asset "
                    + df["asset_id"].fillna("none") + " · " + df["status"].map(lambda x: c.label("status", x)))
    why = df["top_reasons"].fillna("").map(c.present.rules_in_text)
    out["line2"] = why.where(why.str.len() <= 160, why.str[:157] + "…")  # the panel has it all
    return out


def assets_layer(assets: pd.DataFrame) -> pdk.Layer:
    return pdk.Layer("ScatterplotLayer", assets[["longitude", "latitude"]].round(6), id="assets",
                     get_position=["longitude", "latitude"], get_fill_color=[140, 140, 140, 90], get_radius=12,
                     radius_min_pixels=1.2, radius_max_pixels=2.5)


def detections_layer(dets: pd.DataFrame) -> list[pdk.Layer]:
    """Detections coloured by sensor type. Ambiguous ones (a coarse sighting that fits several precise leaks,
    attached to the most likely and given no weight in its position) are hollow rings, so an analyst sees at
    a glance which links fusion could not settle."""
    d = dets.nlargest(MAX_DETECTIONS, "observed_at") if len(dets) > MAX_DETECTIONS else dets
    amb = d["ambiguous"].fillna(False).astype(bool).to_numpy() if "ambiguous" in d else np.zeros(len(d), bool)
    pts = pd.DataFrame({"longitude": d["longitude"].round(6), "latitude": d["latitude"].round(6),
                        "colour": d["source_type"].map(lambda t: c.SOURCE_RGB.get(t, [90, 90, 90]) + [160]),
                        "title": d["source_name"] + " · " + d["source_type"].map(lambda t: c.label("sensor", t)),
                        "line1": d["observed_at"].dt.strftime("%Y-%m-%d %H:%M") + " UTC · "
                        + d["rate_kg_h"].map(lambda r: "not quantified" if pd.isna(r) else c.rate(r)),
                        "line2": "leak " + d["leak_id"].fillna("–")})
    pts.loc[amb, "line2"] = ("ambiguous: fits several leaks; attached to " + d.loc[amb, "leak_id"].fillna("–")
                             + ", the most likely, without moving its position")
    layers = [pdk.Layer("ScatterplotLayer", pts[~amb], id="detections", get_position=["longitude", "latitude"],
                        get_fill_color="colour", get_radius=20, radius_min_pixels=2, radius_max_pixels=5,
                        pickable=True)]
    if amb.any():
        layers.append(pdk.Layer("ScatterplotLayer", pts[amb], id="ambiguous", get_position=["longitude", "latitude"],
                                get_line_color="colour", filled=False, stroked=True, get_radius=30,
                                radius_min_pixels=4, radius_max_pixels=8, line_width_min_pixels=2, pickable=True))
    return layers


def uncertainty_layer(pts: pd.DataFrame) -> pdk.Layer:
    """Each leak's location uncertainty (radius_m, metres) as a ring in its risk colour. Rings only, no fill:
    on a dense pad, dozens of site-level leaks' circles overlap and filled ones wash the map out."""
    return pdk.Layer("ScatterplotLayer", pts[["longitude", "latitude", "radius_m", "colour"]], id="uncertainty",
                     get_position=["longitude", "latitude"], get_radius="radius_m",
                     filled=False, get_line_color="colour", stroked=True, line_width_min_pixels=1)


def h3_resolution(all_leaks: pd.DataFrame) -> int:
    """The H3 resolution for a basin: cells about 1/60 of its extent across (4 to 10). Chosen from every leak, not
    the filtered ones, so a view keeps its cells whatever the filters (the resolution follows the basin only)."""
    lat = np.radians(float(all_leaks["latitude"].mean()))
    extent_m = 111_000 * max(float(np.ptp(all_leaks["latitude"])), float(np.ptp(all_leaks["longitude"])) * np.cos(lat),
                             1e-3)
    want = extent_m / 60
    return min(range(4, 11), key=lambda r: abs(math.log(h3.average_hexagon_edge_length(r, unit="m") / want)))


@st.cache_data(show_spinner=False, max_entries=8)
def cells(ver: tuple, res: int) -> pd.Series:
    """Each active leak's H3 cell at ``res`` (leak_id → cell), once per store version: filters only pick rows."""
    lk = c.frame("leaks", ver)
    return pd.Series([h3.latlng_to_cell(float(a), float(b), res) for a, b in zip(lk["latitude"], lk["longitude"],
                                                                                strict=True)],
                     index=lk["leak_id"].to_numpy(), dtype=object)


@st.cache_data(show_spinner=False, max_entries=8)
def outlines(ver: tuple, res: int) -> pd.Series:
    """Each cell's hexagon (cell → [[lon, lat] × 6], 5 decimals, about a metre), shrunk by :data:`HEX_SHRINK` about
    its centre so that a thin gap outlines every cell: drawn as plain polygons (issue 17: deck.gl's H3 layer
    needs two more WebGL programs, a lit column and its wireframe, the slowest part of a 50,000-leak map to draw)."""
    out = {}
    for cell in pd.unique(cells(ver, res)):
        lat0, lon0 = h3.cell_to_latlng(cell)
        out[cell] = [[round(lon0 + HEX_SHRINK * (lon - lon0), 5), round(lat0 + HEX_SHRINK * (lat - lat0), 5)]
                     for lat, lon in h3.cell_to_boundary(cell)]
    return pd.Series(out, dtype=object)


def hex_bins(shown: pd.DataFrame, cell: pd.Series, outline: pd.Series) -> pd.DataFrame:
    """Leaks summed per H3 cell: count, summed expected kg/h (P(real) × rate) and HIGH leaks, with the colour class
    (sextiles of the cells shown, yellow to red), the tooltip and the cell's hexagon. One row per cell travels to
    the browser."""
    w = (shown["p_real"].fillna(0) * shown["est_rate_kg_h"].fillna(0)).to_numpy(float)
    b = pd.DataFrame({"cell": cell.reindex(shown["leak_id"]).to_numpy(), "w": w,
                      "high": (shown["risk_band"] == "HIGH").to_numpy()})
    b = b.dropna(subset=["cell"]).groupby("cell").agg(n=("w", "size"), w=("w", "sum"), high=("high", "sum"))
    b = b.reset_index()
    cls = np.searchsorted(np.quantile(b["w"], np.linspace(0, 1, len(HEX_RANGE) + 1)[1:-1]), b["w"], side="right")
    b["colour"] = [HEX_RANGE[i] + [170] for i in cls]
    b["title"] = b["n"].map(lambda n: c.plural(int(n), "leak")) + " here"
    unit = c.unit()
    b["line1"] = b["w"].map(lambda v: c.present.rate(v, unit) + " expected in total") + " · " \
        + b["high"].astype(int).astype(str) + " high risk"
    b["line2"] = ""  # "zoom in or filter to see them one by one" is in the legend: 60 bytes × every cell saved
    b["hexagon"] = outline.reindex(b["cell"]).to_numpy()
    return b[["hexagon", "n", "colour", "title", "line1", "line2"]]  # only what is drawn: the browser parses it all


def hex_layer(shown: pd.DataFrame, ver: tuple, res: int) -> tuple[pdk.Layer, float]:
    """H3 hexagons coloured by the summed expected methane of their leaks; returns the layer and the cells' edge
    length in metres (for the legend)."""
    data = hex_bins(shown, cells(ver, res), outlines(ver, res))
    return pdk.Layer("PolygonLayer", data, id="hexagons", get_polygon="hexagon", get_fill_color="colour",
                     stroked=False, pickable=True), h3.average_hexagon_edge_length(res, unit="m")


def leaks_layer(pts: pd.DataFrame, small: bool = False) -> pdk.Layer:
    """The leaks, clickable; ``small`` over hexagons so the hexagons still show between them."""
    return pdk.Layer("ScatterplotLayer", pts, id="leaks", get_position=["longitude", "latitude"],
                     get_fill_color="colour", get_line_color=[255, 255, 255], stroked=True, line_width_min_pixels=1,
                     get_radius="radius", radius_units=PIXELS, radius_scale=0.45 if small else 1.0,
                     pickable=True)  # no auto_highlight: it sticks on the last clicked leak after a rerun


def focus_layer(pts: pd.DataFrame) -> pdk.Layer:
    """A ring around each selected leak."""
    return pdk.Layer("ScatterplotLayer", pts[["longitude", "latitude", "radius"]], id="focus",
                     get_position=["longitude", "latitude"], get_radius="radius", radius_units=PIXELS,
                     radius_scale=1.25, filled=False, stroked=True, get_line_color=[15, 110, 110],
                     line_width_min_pixels=3, radius_min_pixels=11)


# --------------------------------------------------------------------------------------------- what every map shares


def basemap() -> dict:
    """pydeck's ``map_provider``/``map_style`` from ``MLPE_MAP_STYLE`` (light, dark, road, or a MapLibre style URL)
    or ``MLPE_MAP_TILES`` (an XYZ raster URL with {z}/{x}/{y}, e.g. a team's own tile server), which may also be
    set as ``map_style`` / ``map_tiles`` under ``[mlpe]`` in .streamlit/secrets.toml. Default: CARTO's light
    basemap (no key); without internet the layers draw on a blank background."""
    conf = {"style": os.environ.get("MLPE_MAP_STYLE"), "tiles": os.environ.get("MLPE_MAP_TILES")}
    try:
        sec = st.secrets.get("mlpe", {})
        conf = {k: conf[k] or sec.get(f"map_{k}") for k in conf}
    except Exception:  # noqa: BLE001 - no secrets file is the usual case
        pass
    if conf["tiles"]:
        style = {"version": 8, "sources": {"tiles": {"type": "raster", "tiles": [conf["tiles"]], "tileSize": 256,
                                                     "attribution": "basemap: your tile server"}},
                 "layers": [{"id": "tiles", "type": "raster", "source": "tiles"}]}
        return {"map_provider": "carto", "map_style": "data:application/json," + json.dumps(style,
                                                                                            separators=(",", ":"))}
    style = conf["style"] or "light"
    return {"map_provider": "carto" if style in ("light", "dark", "road") or "carto" in style else "carto",
            "map_style": style}


NICE_KM = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]


def _scale(points: pd.DataFrame) -> tuple[float, float, float, float, float, float] | None:
    """(x0, y0, x1, tick, thickness, km) of the scale bar for these points, or None without points."""
    lat, lon = points["latitude"].astype(float), points["longitude"].astype(float)
    if lat.empty:
        return None
    mid = math.radians(float(lat.mean()))
    km_per_deg_lon = 111.32 * max(math.cos(mid), 0.01)
    span_km = max(float(np.ptp(lon)) * km_per_deg_lon, float(np.ptp(lat)) * 110.57, 0.2)
    km = max(k for k in NICE_KM if k <= max(span_km / 5, NICE_KM[0]))
    dy = max(float(np.ptp(lat)), 0.002)
    x0, y0 = float(lon.min()), float(lat.min()) - 0.06 * dy
    return x0, y0, x0 + km / km_per_deg_lon, 0.012 * dy, 0.0025 * dy, km


def scale_text(points: pd.DataFrame) -> str:
    """The scale bar's length, as its label says it ("20 km", "500 m"), or "" without points."""
    sc = _scale(points)
    return "" if sc is None else (f"{sc[5]:g} km" if sc[5] >= 1 else f"{sc[5] * 1000:g} m")


def scale_layers(points: pd.DataFrame, label: bool = True) -> list[pdk.Layer]:
    """A scale bar drawn on the ground below the data's south-west corner: a round distance (about a fifth of the
    extent) as a bar with end ticks, and its length in km (``label=False``: say it in the caption, see
    :func:`scale_text`). On the ground, so it stays true at every zoom. The bar is polygons, like the hexagons: one
    WebGL program fewer to build before a map shows (a path and a text layer each cost 0.3-0.7 s in software
    rendering)."""
    sc = _scale(points)
    if sc is None:
        return []
    x0, y0, x1, tick, th, _km = sc
    bars = [{"polygon": [[x0, y0], [x1, y0], [x1, y0 + th], [x0, y0 + th]]},
            {"polygon": [[x0, y0], [x0 + th, y0], [x0 + th, y0 + tick], [x0, y0 + tick]]},
            {"polygon": [[x1 - th, y0], [x1, y0], [x1, y0 + tick], [x1 - th, y0 + tick]]}]
    out = [pdk.Layer("PolygonLayer", bars, id="scale_bar", get_polygon="polygon", get_fill_color=[40, 40, 40, 220],
                     stroked=False)]
    if label:
        text = [{"position": [(x0 + x1) / 2, y0 + tick], "label": scale_text(points)}]
        out.append(pdk.Layer("TextLayer", text, id="scale_label", get_position="position", get_text="label",
                             get_size=13, get_color=[40, 40, 40, 230], get_alignment_baseline="'bottom'",
                             font_weight=600))
    return out


@st.cache_data(show_spinner=False, max_entries=4)
def _overlays(spec: str) -> list:
    return desk.map_overlays(spec)


def overlay_layers() -> list[pdk.Layer]:
    """Lease and boundary outlines from ``MLPE_MAP_LAYERS`` (GeoJSON files, separated by the path separator), for
    orientation when no basemap tiles load."""
    spec = os.environ.get("MLPE_MAP_LAYERS", "")
    return [pdk.Layer("GeoJsonLayer", gj, id=f"overlay_{i}", stroked=True, filled=False, get_line_color=[90, 90, 90],
                      line_width_min_pixels=1, pickable=False) for i, (_name, gj) in enumerate(_overlays(spec))]


class _Deck(pdk.Deck):
    """pydeck's Deck sent as compact JSON: pydeck indents by two spaces, a line per number, which made a basin's
    hexagons 1.7 MB instead of 0.6 MB to send and parse."""

    def to_json(self) -> str:
        return json.dumps(self, sort_keys=True, default=default_serialize, separators=(",", ":"))


def deck(layers: list, view: pdk.ViewState, tooltip=TOOLTIP, select: bool = False) -> pdk.Deck:
    """A map with the shared basemap and north up (rotation off); ``select``: its leaks are clicked (see
    :data:`SELECT_VIEWS`)."""
    return _Deck(layers=layers, initial_view_state=view, views=SELECT_VIEWS if select else VIEWS, tooltip=tooltip,
                 **basemap())


# Google Earth-style compass and tooltips kept inside the map: one script for the whole page (st.html runs it once).
CHROME = r"""<style>
[data-testid=stDeckGlJsonChart]{position:relative}
[data-testid=stDeckGlJsonChart]::after{content:"N ↑";position:absolute;top:8px;left:10px;z-index:3;
 font:600 13px sans-serif;color:#1b2a2f;background:rgba(255,255,255,.85);border-radius:4px;padding:2px 5px;
 pointer-events:none}
</style>
<script>
if (!window.__mlpeTooltips) {
  window.__mlpeTooltips = true;
  const fix = (el) => {
    const m = /translate\((-?[\d.]+)px, *(-?[\d.]+)px\)/.exec(el.style.transform || "");
    if (!m || el.dataset.mlpe === el.style.transform) return;
    const box = el.parentElement.getBoundingClientRect(), w = el.offsetWidth, h = el.offsetHeight;
    let x = +m[1], y = +m[2];
    if (x + w > box.width - 4) x = Math.max(4, x - w - 16);
    if (y + h > box.height - 4) y = Math.max(4, y - h - 16);
    const t = `translate(${x}px, ${y}px)`;
    el.dataset.mlpe = t;
    if (t !== el.style.transform) el.style.transform = t;
  };
  const tip = (e) => e.classList && e.classList.contains("deck-tooltip");
  new MutationObserver((ms) => { for (const m of ms) if (tip(m.target)) fix(m.target); })
    .observe(document.body, {subtree: true, attributes: true, attributeFilter: ["style"]});
}
</script>"""
