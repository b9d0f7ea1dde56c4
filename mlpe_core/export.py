"""Export: files for crews, spreadsheets, field GIS and maintenance systems.

CSV cells that a spreadsheet would run as a formula (starting with = + - @, tab or CR) get a
leading apostrophe; numeric columns stay numbers (contract §4).
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy in which text cells that would be read as formulas start with ``'``."""
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            continue
        txt = s.astype(object)
        mask = txt.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_START))
        out[c] = txt.where(~mask, "'" + txt.astype(str))
    return out


def _iso(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    spreadsheet_safe(df).to_csv(path, index=False)


def to_geojson(df: pd.DataFrame) -> dict:
    props = _iso(df).astype(object).where(df.notna(), None)
    feats = []
    for rec in props.to_dict(orient="records"):
        rec = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()}
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [rec["longitude"], rec["latitude"]]},
                      "properties": rec})
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_geojson(df), default=str), encoding="utf-8")


def to_kml(df: pd.DataFrame, name_col: str = "leak_id") -> str:
    rows = _iso(df).astype(object).where(df.notna(), None)
    marks = []
    for rec in rows.to_dict(orient="records"):
        data = "".join(f'<Data name="{escape(str(k))}"><value>{escape(str(v))}</value></Data>'
                       for k, v in rec.items() if v is not None)
        marks.append(f"<Placemark><name>{escape(str(rec.get(name_col, '')))}</name><ExtendedData>{data}</ExtendedData>"
                     f"<Point><coordinates>{rec['longitude']},{rec['latitude']},0</coordinates></Point></Placemark>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
            "<name>MLPE</name>" + "".join(marks) + "</Document></kml>\n")


def write(df: pd.DataFrame, path: str | Path, fmt: str) -> None:
    """Write ``df`` as csv, geojson or kml (the last two need latitude and longitude)."""
    if fmt == "csv":
        write_csv(df, path)
    elif fmt in ("geojson", "kml"):
        if not {"latitude", "longitude"} <= set(df.columns):
            raise ValueError(f"{fmt} needs latitude and longitude; this export has none (use --format csv)")
        if fmt == "geojson":
            write_geojson(df, path)
        else:
            Path(path).write_text(to_kml(df), encoding="utf-8")
    else:
        raise ValueError(f"unknown export format '{fmt}' (csv, geojson or kml)")
