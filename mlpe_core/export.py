"""Export: files for crews, spreadsheets, field GIS and maintenance systems.

Every CSV the product writes (command line, API, every download on every page, reject lists) goes
through :func:`to_csv_text` / :func:`write_csv`, so one place decides what is safe to open in a
spreadsheet (contract §4):

* a text cell that a spreadsheet would run as a formula gets a leading apostrophe: one starting with
  ``=``, ``+``, ``-``, ``@``, tab or CR, also once leading spaces and control characters are skipped
  (LibreOffice and Excel trim them before deciding); numeric columns stay numbers;
* a field holding a CR, LF, quote or the delimiter is quoted. Python's ``csv`` quotes only the
  characters of its line terminator, so a bare CR inside a field went out unquoted with ``\n`` line
  ends and split the row in a spreadsheet; the writer uses ``\r\n`` as the terminator (so both are
  quoted) and ends lines with ``\n`` as before.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# leading characters a spreadsheet skips before it looks for a formula sign: whitespace and C0/C1 controls
_FORMULA = re.compile(r"^[\s\x00-\x1f\x7f-\x9f]*[=+\-@]|^[\t\r]")


def is_formula_like(value: object) -> bool:
    """Whether a spreadsheet could read this text cell as a formula (numbers are never text here)."""
    return isinstance(value, str) and _FORMULA.match(value) is not None


def neutralise(value: object) -> object:
    """``value`` with a leading ``'`` when a spreadsheet would run it as a formula; anything else unchanged."""
    return "'" + value if is_formula_like(value) else value


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy in which text cells that would be read as formulas start with ``'``; times become ISO text."""
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            continue
        out[c] = s.astype(object).map(neutralise)
    return out


class _Lines:
    """A file-like sink for ``csv.writer``: each record arrives in one ``write`` ending with ``\r\n``."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, record: str) -> None:
        self.parts.append(record[:-2] + "\n")


def _cells(s: pd.Series) -> list[str]:
    """A column as the text a CSV cell holds: blank for missing, Python's shortest repr for floats."""
    if pd.api.types.is_bool_dtype(s) and not s.hasnans:
        return s.astype(bool).map(str).tolist()
    if pd.api.types.is_float_dtype(s) and isinstance(s.dtype, np.dtype):
        v = s.to_numpy()
        return np.where(np.isnan(v), "", v.astype(str)).tolist()
    if pd.api.types.is_integer_dtype(s) and isinstance(s.dtype, np.dtype):
        return s.to_numpy().astype(str).tolist()
    return ["" if v is None or (not isinstance(v, str) and pd.api.types.is_scalar(v) and pd.isna(v)) else str(v)
            for v in s.astype(object).tolist()]


def to_csv_text(df: pd.DataFrame) -> str:
    """``df`` as spreadsheet-safe CSV text (header, ``\n`` line ends, fields with CR/LF/quotes/commas quoted).

    The one CSV writer of the product: the command line, the API and every page's download call it.
    """
    safe = spreadsheet_safe(df)
    sink = _Lines()
    w = csv.writer(sink, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow([neutralise(str(c)) for c in safe.columns])
    cols = [_cells(safe.iloc[:, i]) for i in range(safe.shape[1])]
    w.writerows(zip(*cols, strict=True) if cols else [])
    return "".join(sink.parts)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write :func:`to_csv_text` of ``df`` to ``path`` (UTF-8)."""
    Path(path).write_text(to_csv_text(df), encoding="utf-8", newline="")


def _iso(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def to_geojson(df: pd.DataFrame) -> dict:
    props = _iso(df).astype(object).where(df.notna(), None)
    feats = []
    for rec in props.to_dict(orient="records"):
        rec = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()}
        point = {"type": "Point", "coordinates": [rec["longitude"], rec["latitude"]]}
        feats.append({"type": "Feature", "geometry": point, "properties": rec})
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


WORKORDER_SCHEMA = "https://mlpe.local/schemas/workorder-1.0.json"  # docs/workorder.schema.json


def _none(v):
    return None if v is None or (not isinstance(v, str | dict | list) and pd.isna(v)) else v


def num(v) -> float | None:
    return None if _none(v) is None else float(v)


def whole(v) -> int | None:
    return None if _none(v) is None else int(v)


def text(v) -> str | None:
    return None if _none(v) is None else str(v)


def _iso_one(v) -> str | None:
    if _none(v) is None:
        return None
    t = pd.Timestamp(v)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_workorders(df: pd.DataFrame, meta: dict | None = None) -> dict:
    """A dispatch frame as the work-order document for maintenance systems (``docs/workorder.schema.json``).

    One work order per row: the leak, its asset and place, priority and risk, expected rate, the
    regulatory deadline that applies, the crew and stop when the list is routed, the reasons as
    instructions, and the work order's status. ``meta`` carries the list id, status and approval.
    """
    meta = dict(meta or {})
    orders = []
    for r in df.to_dict(orient="records"):
        orders.append({
            "work_order_id": text(r.get("work_order_id")) or f"MLPE-DRAFT-{r['leak_id']}",
            "leak_id": str(r["leak_id"]), "asset_id": text(r.get("asset_id")),
            "priority_rank": int(r["rank"]), "risk_band": text(r.get("risk_band")),
            "crew": text(r.get("crew")), "day": whole(r.get("day")), "stop": whole(r.get("stop")),
            "location": {"latitude": float(r["latitude"]), "longitude": float(r["longitude"])},
            "est_rate_kg_h": num(r.get("est_rate_kg_h")), "p_real": num(r.get("p_real")),
            "priority_score": num(r.get("priority_score")), "due_by": _iso_one(r.get("due_by")),
            "due_rule": text(r.get("due_rule")), "instructions": text(r.get("top_reasons")),
            "status": text(r.get("wo_status")) or "planned"})
    return {"schema": WORKORDER_SCHEMA, "generated_at": _iso_one(pd.Timestamp.now(tz="UTC")), "source": "MLPE",
            "list_id": whole(meta.get("list_id")), "status": meta.get("status") or "draft",
            "plan_date": text(meta.get("plan_date")), "approved_by": text(meta.get("approved_by")),
            "approved_at": _iso_one(meta.get("approved_at")), "work_orders": orders}


def write_workorders(doc: dict | pd.DataFrame, path: str | Path) -> None:
    """Write a work-order document (or a dispatch frame made into one) as strict JSON."""
    if isinstance(doc, pd.DataFrame):
        doc = to_workorders(doc)
    Path(path).write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")


def write(df: pd.DataFrame, path: str | Path, fmt: str) -> None:
    """Write ``df`` as csv, geojson, kml (the last two need latitude and longitude) or workorder JSON."""
    if fmt == "csv":
        write_csv(df, path)
    elif fmt == "workorder":
        if not {"leak_id", "rank", "latitude", "longitude"} <= set(df.columns):
            raise ValueError("workorder needs a dispatch list (leak_id, rank, latitude, longitude): "
                             "use `mlpe export dispatch --format workorder`")
        write_workorders(df, path)
    elif fmt in ("geojson", "kml"):
        if not {"latitude", "longitude"} <= set(df.columns):
            raise ValueError(f"{fmt} needs latitude and longitude; this export has none (use --format csv)")
        if fmt == "geojson":
            write_geojson(df, path)
        else:
            Path(path).write_text(to_kml(df), encoding="utf-8")
    else:
        raise ValueError(f"unknown export format '{fmt}' (csv, geojson, kml or workorder)")


def _json_ready(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def json_records(df: pd.DataFrame) -> list[dict]:
    """A frame as JSON-ready records: times as ISO 8601 UTC, blanks as null (``--json`` and the API)."""
    return json.loads(_json_ready(df).to_json(orient="records", date_format="iso"))


def json_lines(df: pd.DataFrame) -> list[str]:
    """Each row of a frame as the JSON text of its record, with the values :func:`json_records` gives: the API
    serialises a large answer once and joins pages of it from these."""
    if df.empty:
        return []
    return _json_ready(df).to_json(orient="records", lines=True, date_format="iso").rstrip("\n").split("\n")
