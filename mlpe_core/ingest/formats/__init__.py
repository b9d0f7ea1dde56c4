"""Formats: recognise a file's kind from its header and map it to canonical text columns."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...schema import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from ..arrow import _arrow_text, _combined, _ls
from ..errors import IngestError
from .aircraft import AIRCRAFT_SHAPES, AIRCRAFT_TIMES, is_aircraft, map_aircraft_report
from .canonical import map_canonical
from .carbonmapper import CARBONMAPPER_SIGNATURE, map_carbonmapper
from .cms import CMS_TIME_COLUMNS, map_cms
from .cmsreport import REPORT_MARKERS, REPORT_SIGNATURE, WINDOWS_MARKER, map_cms_report, map_cms_windows
from .common import ASSET_COLUMNS, _pick
from .coverage import COVERAGE_END, COVERAGE_START, is_coverage, map_coverage
from .mars import MARS_SIGNATURE, map_mars
from .scada import SCADA_TAG_COLUMNS, SCADA_TIME_COLUMNS, map_scada

FORMATS = ("auto", "canonical", "carbonmapper", "mars", "cms", "scada", "cms_report", "cms_windows", "aircraft_report",
           "coverage")

# formats whose rows are windows a sensor watched: detections and coverage (``formats.windows``)
WINDOW_FORMATS = ("cms_report", "cms_windows", "aircraft_report", "coverage")


def detect_format(columns: Iterable[str]) -> str:
    """Which known format a header belongs to, or ``unknown``."""
    cols = {str(c).strip().lower() for c in columns}
    if CARBONMAPPER_SIGNATURE <= cols:
        return "carbonmapper"
    if MARS_SIGNATURE <= cols:
        return "mars"
    if {"detection_id", "observed_at"} <= cols:
        return "canonical"
    if is_aircraft(cols):
        return "aircraft_report"
    if is_coverage(cols):
        return "coverage"
    if REPORT_SIGNATURE <= cols and WINDOWS_MARKER in cols:
        return "cms_windows"
    if REPORT_SIGNATURE <= cols and _pick(cols, REPORT_MARKERS):
        return "cms_report"
    if _pick(cols, SCADA_TAG_COLUMNS) and _pick(cols, SCADA_TIME_COLUMNS) and _pick(cols, ASSET_COLUMNS):
        return "scada"
    if "alarm_type" in cols and _pick(cols, CMS_TIME_COLUMNS) and _pick(cols, ASSET_COLUMNS):
        return "cms"
    if set(REQUIRED_COLUMNS) & cols:
        return "canonical"
    return "unknown"


def _missing_signature(fmt: str, cols: set[str]) -> list[str]:
    """For a forced ``--format``: the columns (or choices of columns) the file lacks."""
    if fmt == "carbonmapper":
        return sorted(CARBONMAPPER_SIGNATURE - cols)
    if fmt == "mars":
        return sorted(MARS_SIGNATURE - cols)
    need: list[tuple[str, ...]] = []
    if fmt == "aircraft_report":
        if is_aircraft(cols):
            return []
        shape = next((s for s in AIRCRAFT_SHAPES if s[0] in cols), AIRCRAFT_SHAPES[0])
        times = next((t for t in AIRCRAFT_TIMES if t[0] in cols), AIRCRAFT_TIMES[0])
        return [c for c in (*shape, *times) if c not in cols] or [" or ".join(t[-1] for t in AIRCRAFT_TIMES)]
    if fmt == "coverage":
        need = [("state",), ("source_name",), COVERAGE_START, COVERAGE_END]
    elif fmt in ("cms_report", "cms_windows"):
        need = [(c,) for c in sorted(REPORT_SIGNATURE)]
        need.append((WINDOWS_MARKER,) if fmt == "cms_windows" else REPORT_MARKERS)
    elif fmt == "cms":
        need = [CMS_TIME_COLUMNS, ASSET_COLUMNS, ("alarm_type",)]
    elif fmt == "scada":
        need = [SCADA_TAG_COLUMNS, SCADA_TIME_COLUMNS, ASSET_COLUMNS]
    return [" or ".join(c) for c in need if not _pick(cols, c)]


def to_canonical(raw: pd.DataFrame, fmt: str, source_name: str | None, label: str,
                 asset: str | None = None) -> pd.DataFrame:
    """Map a raw frame in a known format to canonical text columns; extra columns kept in ``attributes``.

    ``asset`` names the site of files that have no site column (the window formats need one: a monitor's
    or an aircraft's report is about a site). The window formats also hand validation the rows that are
    coverage only (``attrs['not_detection']``) and every row's window (``attrs['coverage']``)."""
    raw = raw.set_axis([str(c) for c in raw.columns], axis=1)
    lower_counts = Counter(c.lower() for c in raw.columns)
    dup = sorted(c for c, k in lower_counts.items() if k > 1)
    if dup:
        raise IngestError(label, f"repeated column names (ignoring case) {dup}", column=dup[0])
    if fmt == "auto":
        fmt = detect_format(raw.columns)
        if fmt == "unknown":
            raise IngestError(
                label,
                "unrecognised format: expected the canonical columns "
                f"({', '.join(REQUIRED_COLUMNS)}), a Carbon Mapper or UNEP MARS plume list, a continuous-monitor "
                "alarm export, report or P/N/NA timeline, an aircraft pass report or a SCADA event log",
            )
    lower = {c.lower() for c in raw.columns}
    if fmt in ("carbonmapper", "mars", "cms", "scada", *WINDOW_FORMATS):
        missing = _missing_signature(fmt, lower)
        if missing:
            raise IngestError(label, f"not a {fmt} file: column missing: {', '.join(missing)}",
                              column=missing[0].split(" or ")[0])
    low = raw.rename(columns=str.lower)
    if fmt == "carbonmapper":
        out = map_carbonmapper(low, source_name)
    elif fmt == "mars":
        out = map_mars(low, source_name)
    elif fmt == "cms":
        out = map_cms(low, source_name, label)
    elif fmt == "scada":
        out = map_scada(low, source_name, label)
    elif fmt in WINDOW_FORMATS:
        names = {c.lower(): c for c in raw.columns}
        mapper = {"cms_report": map_cms_report, "cms_windows": map_cms_windows,
                  "aircraft_report": map_aircraft_report, "coverage": map_coverage}[fmt]
        out = mapper(low, source_name, label, asset, names)
    elif fmt == "canonical":
        out = map_canonical(raw, source_name, label)
    else:
        raise IngestError(label, f"unknown --format '{fmt}' (choose from {', '.join(FORMATS)})")
    used = set(CANONICAL_COLUMNS)
    extra = [c for c in raw.columns if c.lower() not in used]
    out.attrs["format"] = fmt
    out["attributes"] = _attributes_json(raw[extra]) if extra else None
    return out


def _attributes_json(extra: pd.DataFrame) -> pd.Series:
    """One JSON object per row of the non-blank extra cells, as text; encoded once per distinct value."""
    frags = []
    for col in extra.columns:
        enc = _combined(pc.dictionary_encode(_combined(_arrow_text(extra[col]))))
        key = json.dumps(str(col))
        words = [None if v in ("", None) else f"{key}: {json.dumps(v)}" for v in enc.dictionary.to_pylist()]
        frags.append(pc.take(pa.array(words, type=pa.large_string()), enc.indices))
    # a leading "{" in every row: pyarrow drops rows whose inputs are all null under null_handling="skip"
    text = pc.binary_join_element_wise(_ls("{"), *frags, _ls(", "), null_handling="skip")
    text = pc.replace_substring(text, "{, ", "{", max_replacements=1)
    text = pc.binary_join_element_wise(text, _ls("}"), _ls(""))
    if len(text) != len(extra):  # pragma: no cover - guard against the same kind of kernel surprise
        raise RuntimeError("attributes: row count changed while encoding")
    return pd.Series(text.to_numpy(zero_copy_only=False), index=extra.index, dtype=object)
