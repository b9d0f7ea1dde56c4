"""Layers of the triage map. Big basins are drawn as hexagons weighted by expected methane (P(real) × rate)
binned in Python, with only the highest-priority leaks as points, so the browser gets well under a MB and pans
smoothly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydeck as pdk

from app import common as c

AGGREGATE_ABOVE = 5_000  # leaks: more than this are aggregated by default
POINTS_WHEN_AGGREGATED = 1_500  # highest-priority leaks still drawn (and clickable) over the hexagons
MAX_DETECTIONS = 20_000  # most recent detections drawn
TOOLTIP = {"html": "<b>{title}</b><br/>{line1}<br/><i>{line2}</i>",
           "style": {"maxWidth": "300px", "fontSize": "12px", "whiteSpace": "normal"}}
PIXELS = '"pixels"'  # pydeck sends a bare string as an expression (@@=pixels: undefined); quoted, as the value
HEX_RANGE = [[255, 237, 160], [254, 217, 118], [254, 178, 76], [253, 141, 60], [240, 59, 32], [189, 0, 38]]


def leak_points(df: pd.DataFrame) -> pd.DataFrame:
    """The columns the leak layers and the tooltip need (no more: 50,000 rows travel to the browser)."""
    out = pd.DataFrame({"leak_id": df["leak_id"], "longitude": df["longitude"].round(6),
                        "latitude": df["latitude"].round(6), "radius_m": df["radius_m"].round(1)})
    out["colour"] = df["risk_band"].map(c.BAND_RGB).map(lambda v: v + [200] if isinstance(v, list) else [150] * 4)
    # in screen pixels, so that circle area stays proportional to rate at every zoom (in metres, every big
    # leak hit the same pixel cap when zoomed on a pad): 1.8 kg/h and less at 4 px, 100 kg/h and more at 30
    out["radius"] = (3.0 * np.sqrt(df["est_rate_kg_h"].fillna(1).clip(lower=0.0))).clip(4, 30).round(1)
    rank = df["rank"].map(lambda r: f"#{int(r)}" if pd.notna(r) else "not ranked")
    out["title"] = df["leak_id"] + " " + rank + " · " + df["risk_band"].fillna("–")
    out["line1"] = ("P(real) " + df["p_real"].map(c.pct) + " · " + df["est_rate_kg_h"].map(c.rate) + " · asset "
                    + df["asset_id"].fillna("–") + " · " + df["status"])
    out["line2"] = df["top_reasons"].fillna("")
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
                        "title": d["source_name"] + " · " + d["source_type"].str.replace("_", " "),
                        "line1": d["observed_at"].dt.strftime("%Y-%m-%d %H:%M") + " UTC · "
                        + d["rate_kg_h"].map(c.rate), "line2": "leak " + d["leak_id"].fillna("–")})
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


def hex_bins(shown: pd.DataFrame, size_m: float) -> pd.DataFrame:
    """Leaks binned into flat-top hexagons of ``size_m`` (centre to corner): centre, count and summed expected
    kg/h (P(real) × rate). Binned here, so the browser gets one row per hexagon, not one per leak."""
    lat0 = np.radians(float(shown["latitude"].mean()))
    x = shown["longitude"].to_numpy(float) * 111_320 * np.cos(lat0)
    y = shown["latitude"].to_numpy(float) * 110_540
    q, r = (2 / 3 * x) / size_m, (-x / 3 + np.sqrt(3) / 3 * y) / size_m
    cx, cz = q, r  # cube rounding of axial (q, r)
    cy = -cx - cz
    rx, ry, rz = np.round(cx), np.round(cy), np.round(cz)
    dx, dy, dz = np.abs(rx - cx), np.abs(ry - cy), np.abs(rz - cz)
    rx = np.where((dx > dy) & (dx > dz), -ry - rz, rx)
    rz = np.where(~((dx > dy) & (dx > dz)) & ~(dy > dz), -rx - ry, rz)
    w = (shown["p_real"].fillna(0) * shown["est_rate_kg_h"].fillna(0)).to_numpy(float)
    b = pd.DataFrame({"q": rx, "r": rz, "w": w, "high": (shown["risk_band"] == "HIGH").to_numpy()})
    b = b.groupby(["q", "r"]).agg(n=("w", "size"), w=("w", "sum"), high=("high", "sum")).reset_index()
    b["longitude"] = (size_m * 1.5 * b["q"] / (111_320 * np.cos(lat0))).round(6)
    b["latitude"] = (size_m * np.sqrt(3) * (b["r"] + b["q"] / 2) / 110_540).round(6)
    cls = np.searchsorted(np.quantile(b["w"], np.linspace(0, 1, len(HEX_RANGE) + 1)[1:-1]), b["w"], side="right")
    b["colour"] = [HEX_RANGE[i] + [170] for i in cls]
    b["title"] = b["n"].map(lambda n: c.plural(int(n), "leak")) + " here"
    b["line1"] = b["w"].map(lambda v: f"{v:,.1f} kg/h expected in total") + " · " + b["high"].astype(int).astype(str) \
        + " HIGH"
    b["line2"] = "zoom in, or narrow the filters, to see them one by one"
    return b.drop(columns=["q", "r", "high"])


def hex_layer(shown: pd.DataFrame) -> tuple[pdk.Layer, float]:
    """Hexagons coloured by the summed expected methane of their leaks (sextiles, yellow to red), sized to the
    basin. Flat hexagonal columns (deck.gl ColumnLayer, 6 sides) over bins made in :func:`hex_bins`."""
    lat = np.radians(float(shown["latitude"].mean()))
    extent_m = 111_000 * max(float(np.ptp(shown["latitude"])), float(np.ptp(shown["longitude"])) * np.cos(lat))
    size = float(np.clip(extent_m / 60, 150, 20_000))
    return pdk.Layer("ColumnLayer", hex_bins(shown, size), id="hexagons", get_position=["longitude", "latitude"],
                     disk_resolution=6, radius=size * 0.95, angle=0, extruded=False, get_fill_color="colour",
                     pickable=True), size


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
