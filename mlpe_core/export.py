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
import math
import re
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from .errors import BadInput

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


def _points(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a finite position (RFC 7946 and KML have no place for NaN coordinates)."""
    lat = pd.to_numeric(df["latitude"], errors="coerce")
    lon = pd.to_numeric(df["longitude"], errors="coerce")
    return df[np.isfinite(lat.to_numpy(float)) & np.isfinite(lon.to_numpy(float))]


def routes(df: pd.DataFrame) -> list[dict]:
    """Each crew's route through a routed list, in stop order: ``crew``, ``stops`` (the rows), ``path`` as
    [lon, lat] pairs from the yard (``home_lat``/``home_lon`` when the list has them) through the stops and back.
    Empty for a frame that is not routed (no ``crew``/``stop``). Only day 1 when the frame plans several days."""
    if not {"crew", "stop", "latitude", "longitude"} <= set(df.columns):
        return []
    d = _points(df[df["crew"].notna() & df["stop"].notna()])
    if "day" in d:
        d = d[pd.to_numeric(d["day"], errors="coerce").fillna(1) == 1]
    out = []
    for crew, g in d.groupby(d["crew"].astype(str), sort=True):
        g = g.sort_values("stop", kind="stable")
        path = [[round(float(x), 6), round(float(y), 6)] for x, y in zip(g["longitude"], g["latitude"], strict=True)]
        home = None
        if {"home_lat", "home_lon"} <= set(g.columns) and pd.notna(g["home_lat"].iloc[0]) \
                and pd.notna(g["home_lon"].iloc[0]):
            home = [round(float(g["home_lon"].iloc[0]), 6), round(float(g["home_lat"].iloc[0]), 6)]
            path = [home, *path, home]
        km = float(g["route_km"].iloc[0]) if "route_km" in g and pd.notna(g["route_km"].iloc[0]) else \
            float(pd.to_numeric(g.get("leg_km", pd.Series(dtype=float)), errors="coerce").sum())
        out.append({"crew": crew, "stops": g, "path": path, "home": home, "km": round(km, 2)})
    return out


def to_geojson(df: pd.DataFrame) -> dict:
    """An RFC 7946 FeatureCollection: one Point feature per row (every column a property, times ISO 8601 UTC,
    blanks null) and, for a routed dispatch list, one LineString per crew from its yard through its stops in order
    and back (properties ``route`` true, ``crew``, ``stops``, ``route_km``)."""
    pts = _points(df)
    props = _iso(pts).astype(object).where(pts.notna(), None)
    feats = []
    for rec in props.to_dict(orient="records"):
        rec = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()}
        rec = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in rec.items()}
        point = {"type": "Point", "coordinates": [round(float(rec["longitude"]), 6), round(float(rec["latitude"]), 6)]}
        feats.append({"type": "Feature", "geometry": point, "properties": rec})
    for r in routes(df):
        if len(r["path"]) >= 2:
            feats.append({"type": "Feature", "geometry": {"type": "LineString", "coordinates": r["path"]},
                          "properties": {"route": True, "crew": r["crew"], "stops": int(len(r["stops"])),
                                         "route_km": r["km"], "from_yard": r["home"] is not None}})
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_geojson(df), default=str, allow_nan=False), encoding="utf-8")


# KML colours are aabbggrr. Risk bands as on the app's map; crews as on the Dispatch page.
BAND_KML = {"HIGH": "ff2323c8", "MEDIUM": "ff008cf0", "LOW": "ffaf6e3c"}
CREW_KML = ["ff6e6e0f", "ff008cf0", "ffc83c7a", "ffa87f2a", "ff2323c8", "ff298f5a"]
ICON = "http://maps.google.com/mapfiles/kml/shapes/placemark_circle.png"  # Google Earth's own; QGIS draws a dot


def _xy(lon, lat) -> str:
    """``lon,lat`` as KML writes a position (degrees, at most 6 decimals: about 0.1 m)."""
    return f"{round(float(lon), 6)},{round(float(lat), 6)}"


def _kml_text(v) -> str:
    return escape(str(v))


def _is_detection(r) -> bool:
    """Whether a record (or a frame's columns) is a detection (``export detections``) rather than a leak or a stop."""
    return "detection_id" in r and "observed_at" in r


def placemark_name(r: dict) -> str:
    """What a placemark is called: a detection by its id and its leak ("AIR-0000000 · L000012"), a leak by its id."""
    if _is_detection(r):
        return " · ".join(str(r[k]) for k in ("detection_id", "leak_id") if r.get(k) is not None)
    return str(r.get("leak_id", ""))


def _detection_pairs(r: dict, unit: str) -> list[tuple[str, object]]:
    """A detection's description for people: what saw it, when, how much, how sure, and the leak it belongs to."""
    from . import present as pr

    kind = pr.label("sensor", r.get("source_type"))
    sensor = r.get("source_name")
    sensor = f"{sensor} ({kind})" if sensor and kind else sensor or kind or None
    unc = r.get("rate_uncertainty_kg_h")
    rate = pr.rate(r.get("rate_kg_h"), unit)
    if rate == pr.DASH:
        rate = "not quantified"  # detected, no rate (contract §1)
    elif not pr._missing(unc):
        rate = f"{rate} ± {pr.rate(unc, unit)}"
    return [("Detection", r.get("detection_id")), ("Leak", r.get("leak_id")), ("Sensor", sensor),
            ("Observed", pr.when(r.get("observed_at"))), ("Rate", rate), ("Confidence", pr.pct(r.get("confidence"))),
            ("Location ±", None if pr._missing(r.get("location_uncertainty_m"))
             else f"{pr.number(r['location_uncertainty_m'])} m"),
            ("Wind", None if pr._missing(r.get("wind_speed_m_s")) else f"{pr.number(r['wind_speed_m_s'])} m/s"),
            ("Asset", r.get("asset_id")), ("Event", pr.label("event_type", r.get("event_type")) or None)]


def _placemark(r: dict, unit: str, name: str) -> str:
    """One leak, stop or detection as a KML Placemark: name, a description table for people (labels, the unit
    chosen, UTC times), a TimeStamp (a detection's observation, the stop's planned arrival, or the leak's last
    sighting), the band's style, every column as ExtendedData for machines, and the point."""
    from . import present as pr

    if _is_detection(r):
        pairs = _detection_pairs(r, unit)
        when = r.get("observed_at")
    else:
        pairs = [("Rank", f"#{int(r['rank'])}" if pr._missing(r.get("rank")) is False else None),
                 ("Risk", pr.label("band", r.get("risk_band"))), ("P(real)", pr.pct(r.get("p_real"))),
                 ("Rate", pr.rate(r.get("est_rate_kg_h"), unit)),
                 ("Crew", None if pr._missing(r.get("crew")) else f"{r['crew']}, stop {int(r['stop'])}"),
                 ("Arrive", pr.when(r.get("arrive_at")) if not pr._missing(r.get("arrive_at")) else None),
                 ("Due by", pr.date(r.get("due_by")) if not pr._missing(r.get("due_by")) else None),
                 ("Deadline", pr.rule_title(r.get("due_rule")) or None), ("Asset", r.get("asset_id")),
                 ("Status", pr.label("status", r.get("status")) or None),
                 ("Sensors", pr.sensors(r.get("source_types")) or None),
                 ("Last seen", pr.date(r.get("last_seen")) if not pr._missing(r.get("last_seen")) else None),
                 ("Why", pr.rules_in_text(r.get("top_reasons")) or None)]
        when = r.get("arrive_at") if not pr._missing(r.get("arrive_at")) else r.get("last_seen")
    table = pr.html_table([(k, escape(str(v))) for k, v in pairs if v not in (None, "", pr.DASH) or k == "Rate"])
    stamp = f"<TimeStamp><when>{iso_utc(when)}</when></TimeStamp>" if not pr._missing(when) else ""
    band = r.get("risk_band") if r.get("risk_band") in BAND_KML else "NONE"
    data = "".join(f'<Data name="{escape(str(k))}"><value>'
                   f"{escape(str(iso_utc(v) if isinstance(v, pd.Timestamp) else v))}</value></Data>"
                   for k, v in r.items() if not pr._missing(v))
    return (f"<Placemark><name>{_kml_text(name)}</name><description><![CDATA[{table}]]></description>{stamp}"
            f"<styleUrl>#band-{band}</styleUrl><ExtendedData>{data}</ExtendedData>"
            f"<Point><coordinates>{_xy(r['longitude'], r['latitude'])},0</coordinates></Point>"
            "</Placemark>")


def to_kml(df: pd.DataFrame, title: str = "MLPE", unit: str = "kg/h") -> str:
    """KML 2.2 that Google Earth and QGIS open well: placemarks styled by risk band (colour, bigger for HIGH),
    each with a description for people (rates in ``unit``), a time stamp and every column as ExtendedData; a
    routed dispatch list has a folder per crew holding its yard, its route line (yard → stops → yard) and its
    stops in visit order; a ranking has a folder per risk band; detections a folder per kind of sensor, each
    placemark named "detection · leak", time-stamped when it was observed and describing its own rate."""
    from . import present as pr

    unit = pr.unit_or_default(unit)
    pts = _points(df)
    recs = [{k: (None if pr._missing(v) else v) for k, v in rec.items()} for rec in pts.to_dict(orient="records")]
    styles = "".join(
        f'<Style id="band-{b}"><IconStyle><color>{c}</color><scale>{1.2 if b == "HIGH" else 0.9}</scale>'
        f"<Icon><href>{ICON}</href></Icon></IconStyle><LabelStyle><scale>0.8</scale></LabelStyle></Style>"
        for b, c in [*BAND_KML.items(), ("NONE", "ff969696")])
    rts = routes(pts)
    folders = []
    if rts:
        for i, r in enumerate(rts):
            colour = CREW_KML[i % len(CREW_KML)]
            styles += (f'<Style id="crew-{i}"><IconStyle><color>{colour}</color><Icon><href>{ICON}</href></Icon>'
                       f"</IconStyle><LineStyle><color>{colour}</color><width>3</width></LineStyle></Style>")
            body = ""
            if r["home"]:
                body += (f"<Placemark><name>{_kml_text(r['crew'])} yard</name><styleUrl>#crew-{i}</styleUrl>"
                         f"<Point><coordinates>{_xy(*r['home'])},0</coordinates></Point>"
                         "</Placemark>")
            line = " ".join(f"{_xy(x, y)},0" for x, y in r["path"])
            if len(r["path"]) >= 2:
                body += (f"<Placemark><name>{_kml_text(r['crew'])} route ({r['km']:,.1f} km)</name>"
                         f"<styleUrl>#crew-{i}</styleUrl><LineString><tessellate>1</tessellate>"
                         f"<coordinates>{line}</coordinates></LineString></Placemark>")
            ids = set(r["stops"]["leak_id"])
            for rec in sorted((x for x in recs if x.get("leak_id") in ids and x.get("crew") == r["crew"]),
                              key=lambda x: x["stop"]):
                body += _placemark(rec, unit, f"{int(rec['stop'])}. {rec['leak_id']}")
            folders.append(f"<Folder><name>{_kml_text(r['crew'])} ({pr.plural(len(r['stops']), 'stop')})</name>"
                           f"{body}</Folder>")
        routed = {x for r in rts for x in r["stops"]["leak_id"]}
        rest = [x for x in recs if x.get("leak_id") not in routed]
        if rest:
            folders.append("<Folder><name>Not routed</name>" + "".join(
                _placemark(x, unit, placemark_name(x)) for x in rest) + "</Folder>")
    elif _is_detection(pts):  # detections: a folder per kind of sensor
        kinds: dict[str, list] = {}
        for x in recs:
            kinds.setdefault(pr.label("sensor", x.get("source_type")) or "Other", []).append(x)
        for k in sorted(kinds):
            folders.append(f"<Folder><name>{_kml_text(k)} ({len(kinds[k]):,})</name>" + "".join(
                _placemark(x, unit, placemark_name(x)) for x in kinds[k]) + "</Folder>")
    else:
        groups: dict[str, list] = {}
        for x in recs:
            groups.setdefault(x.get("risk_band") if x.get("risk_band") in BAND_KML else "NONE", []).append(x)
        for b in [*BAND_KML, "NONE"]:
            if b in groups:
                name = f"{pr.label('band', b)} risk" if b != "NONE" else "Not scored"
                folders.append(f"<Folder><name>{name} ({len(groups[b]):,})</name>" + "".join(
                    _placemark(x, unit, placemark_name(x)) for x in groups[b]) + "</Folder>")
    desc = escape(f"{pr.plural(len(recs), 'place')}; rates in {unit}; times UTC. Made by MLPE.")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
            f"<name>{_kml_text(title)}</name><description>{desc}</description>{styles}{''.join(folders)}"
            "</Document></kml>\n")


def write_xlsx(sheets: dict[str, tuple[pd.DataFrame, list[str | None]]], path: str | Path) -> None:
    """A workbook people open in Excel: one sheet per entry (:func:`add_sheets`)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    add_sheets(wb, sheets)
    if not wb.sheetnames:
        wb.create_sheet("Empty")
    wb.save(str(path))


def add_sheets(wb, sheets: dict[str, tuple[pd.DataFrame, list[str | None]]]) -> None:
    """Add to the openpyxl workbook ``wb`` one sheet per entry (a people frame and its columns' number formats, as
    ``present.people_frame`` makes them): bold frozen headers, a filter on every column, widths that fit the header
    and values, text cells that would run as formulas neutralised as in the CSVs. Every workbook the product writes
    (exports, the app's downloads, the regulator's report) gets its tables here."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    for name, (df, fmts) in sheets.items():
        ws = wb.create_sheet(re.sub(r"[\[\]:*?/\\]", " ", name)[:31])
        ws.append([str(c) for c in df.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True, color="FFFFFF")
            cell.fill = PatternFill("solid", fgColor="0F6E6E")
            cell.alignment = Alignment(vertical="center", wrap_text=True)
        for row in df.itertuples(index=False):
            ws.append([xl_value(v) for v in row])
        for j, col in enumerate(df.columns, start=1):
            fmt = fmts[j - 1] if j - 1 < len(fmts) else None
            letter = get_column_letter(j)
            if fmt:
                for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                    cell.number_format = fmt
            texts = [str(col)] + [str(v) for v in df.iloc[:200, j - 1].tolist() if xl_value(v) is not None]
            width = max(len(t) for t in texts) if texts else 8
            if fmt and ("yy" in fmt):
                width = max(len(str(col)), 16 if "hh" in fmt else 11)
            ws.column_dimensions[letter].width = float(min(max(width + 2, 8), 60))
        ws.freeze_panes = "A2"
        if len(df.columns):
            ws.auto_filter.ref = f"A1:{get_column_letter(len(df.columns))}{max(len(df) + 1, 1)}"


def xl_value(v):
    """A value as openpyxl writes it: NaN, NaT and infinities blank, numpy scalars as Python numbers, floats to the
    15 significant digits a spreadsheet keeps (0.8457, not the 0.8457000000000001 of a unit round trip; never
    rounded further: the cell's number format decides what shows), times as naive UTC (a spreadsheet has no time
    zones), formulas neutralised."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return float(f"{v:.15g}") if math.isfinite(v) else None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else (v.tz_convert("UTC").tz_localize(None) if v.tzinfo else v).to_pydatetime()
    return neutralise(v) if isinstance(v, str) else v


WORKORDER_SCHEMA = "https://mlpe.local/schemas/workorder-1.0.json"  # docs/workorder.schema.json


def _none(v):
    return None if v is None or (not isinstance(v, str | dict | list) and pd.isna(v)) else v


def num(v) -> float | None:
    return None if _none(v) is None else float(v)


def whole(v) -> int | None:
    return None if _none(v) is None else int(v)


def text(v) -> str | None:
    return None if _none(v) is None else str(v)


def iso_utc(v) -> str | None:
    """A time as every machine's file and answer writes it: ISO 8601 UTC with Z, to the second
    (``2026-11-01T19:52:55Z``); None for a missing one."""
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
            "priority_score": num(r.get("priority_score")), "due_by": iso_utc(r.get("due_by")),
            "due_rule": text(r.get("due_rule")), "instructions": text(r.get("top_reasons")),
            "status": text(r.get("wo_status")) or "planned"})
    return {"schema": WORKORDER_SCHEMA, "generated_at": iso_utc(pd.Timestamp.now(tz="UTC")), "source": "MLPE",
            "list_id": whole(meta.get("list_id")), "status": meta.get("status") or "draft",
            "plan_date": text(meta.get("plan_date")), "approved_by": text(meta.get("approved_by")),
            "approved_at": iso_utc(meta.get("approved_at")), "work_orders": orders}


def write_workorders(doc: dict | pd.DataFrame, path: str | Path) -> None:
    """Write a work-order document (or a dispatch frame made into one) as strict JSON."""
    if isinstance(doc, pd.DataFrame):
        doc = to_workorders(doc)
    Path(path).write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")


# what a file's name says it holds: .json is GeoJSON unless work orders are asked for
SUFFIX_FORMATS: dict[str, tuple[str, ...]] = {".csv": ("csv",), ".geojson": ("geojson",),
                                              ".json": ("geojson", "workorder"), ".kml": ("kml",), ".xlsx": ("xlsx",)}


def format_for(path: str | Path, fmt: str | None) -> str:
    """The format a file is written in: ``fmt`` when one is given, else what the name's suffix says (``.csv``,
    ``.geojson`` or ``.json``, ``.kml``, ``.xlsx``; any other suffix: CSV). A ``fmt`` the suffix contradicts
    (``out.xlsx`` as csv) is refused with ValueError: a workbook of CSV text would not open."""
    suffix = Path(path).suffix.lower()
    fits = SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        return fits[0] if fits else "csv"
    if fits and fmt not in fits:
        raise ValueError(f"{Path(path).name} is named {suffix} but --format {fmt} was given: name the file "
                         f".{'json' if fmt == 'workorder' else fmt} or leave --format out")
    return fmt


def write(df: pd.DataFrame, path: str | Path, fmt: str, unit: str = "kg/h", table: str = "leaks",
          title: str = "MLPE") -> None:
    """Write ``df`` as csv, geojson, kml (the last two need latitude and longitude), xlsx (one sheet of people's
    columns, ``table`` names its specification in ``present``) or workorder JSON. ``unit`` is for people's files
    (KML descriptions, workbooks); CSV and GeoJSON keep the contract's kg/h."""
    if fmt == "csv":
        write_csv(df, path)
    elif fmt == "workorder":
        if not {"leak_id", "rank", "latitude", "longitude"} <= set(df.columns):
            raise BadInput("workorder needs a dispatch list (leak_id, rank, latitude, longitude): "
                             "use `mlpe export dispatch --format workorder`")
        write_workorders(df, path)
    elif fmt == "xlsx":
        from .present import people_frame

        write_xlsx({title: people_frame(df, table, unit)}, path)
    elif fmt in ("geojson", "kml"):
        if not {"latitude", "longitude"} <= set(df.columns):
            raise BadInput(f"{fmt} needs latitude and longitude; this export has none (use --format csv)")
        if fmt == "geojson":
            write_geojson(df, path)
        else:
            Path(path).write_text(to_kml(df, title, unit), encoding="utf-8")
    else:
        raise ValueError(f"unknown export format '{fmt}' (csv, geojson, kml, xlsx or workorder)")


def render(df: pd.DataFrame, fmt: str, unit: str = "kg/h", title: str = "MLPE") -> str:
    """The text of a csv, geojson or kml file of ``df``, exactly as :func:`write` writes it (the app's downloads
    call this, so a downloaded file and the command line's are the same bytes)."""
    if fmt == "csv":
        return to_csv_text(df)
    if fmt == "geojson":
        return json.dumps(to_geojson(df), default=str, allow_nan=False)
    if fmt == "kml":
        return to_kml(df, title, unit)
    raise ValueError(f"render: {fmt} is not a text format")


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
