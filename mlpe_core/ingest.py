"""Ingest: read the files analysts really get, check every cell, and load only what is sound.

Two kinds of failure are kept apart on purpose:

* a structural problem (file unreadable, format unknown, required column missing, empty file)
  raises :class:`IngestError` before anything is written, so a wrong file never half-loads;
* a row problem (bad coordinate, time, rate, unknown asset, ...) rejects that row alone, with its
  row number, column and reason, and the good rows load in one transaction.

Every accepted detection keeps its lineage: batch, file hash, source row and original values.

Speed (``docs/ingest.md``): plain CSV is parsed by ``pyarrow.csv`` with every column as text; the
checks are vectorised Arrow/numpy expressions, so Python only touches the rows that are rejected;
on SQLite the good rows go through the raw DBAPI connection of the session's own transaction as
multi-row ``INSERT`` statements.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import mmap
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml
from sqlalchemy import func, select
from sqlmodel import Session

from .auth import require
from .models import Asset, Detection, IngestBatch
from .schema import CANONICAL_COLUMNS, REQUIRED_COLUMNS, SOURCE_TYPES

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
FORMATS = ("auto", "canonical", "carbonmapper", "mars", "cms", "scada")

Progress = Callable[[float, str], None] | None

# Rate columns by unit, converted to kg CH4 per hour. 1 scf of methane at 60 °F and 1 atm = 0.01920 kg
# (contract §1; ideal gas at 288.7 K, 101.325 kPa, M = 16.04 g/mol gives 0.01921).
SCF_KG = 0.01920
RATE_UNITS: dict[str, float] = {
    "kg_h": 1.0,
    "g_s": 3.6,
    "t_h": 1000.0,
    "lb_h": 0.45359237,
    "scfh": SCF_KG,
    "mcf_d": 1000.0 * SCF_KG / 24.0,
}

# Header signatures of the real formats (contract §1).
CARBONMAPPER_SIGNATURE = {"plume_id", "plume_latitude", "plume_longitude", "datetime"}
MARS_SIGNATURE = {"id_plume", "satellite", "tile_date", "lat", "lon"}

# Continuous-monitor alarm exports and SCADA event logs (docs/ingest.md). Each tuple lists the header
# names accepted for one meaning, in order of preference; matching is case-insensitive.
ASSET_COLUMNS = ("asset_id", "site_id", "site", "facility_id")
CMS_TIME_COLUMNS = ("alarm_start", "alarm_start_time", "alarm_time", "start_time", "timestamp")
CMS_ID_COLUMNS = ("alarm_id", "event_id")
CMS_NAME_COLUMNS = ("source_name", "monitor", "network", "vendor")
SCADA_TAG_COLUMNS = ("tag", "tag_name", "tagname", "point", "point_name")
SCADA_TIME_COLUMNS = ("event_time", "event_timestamp", "timestamp", "time", "alarm_time")
SCADA_TYPE_COLUMNS = ("event_type", "alarm", "alarm_type", "condition")
SCADA_ID_COLUMNS = ("event_id", "alarm_id", "record_id")
SCADA_NAME_COLUMNS = ("source_name", "system", "scada_system")
SCADA_STATE_COLUMNS = ("state", "alarm_state")
# alarm-journal states that are not the onset of an event (acknowledged, returned to normal, ...)
SCADA_NOT_ONSET = frozenset({"ack", "acked", "acknowledged", "rtn", "return to normal", "return_to_normal",
                             "normal", "clear", "cleared", "ok", "inactive", "reset"})

CHUNK_ROWS = 100_000  # rows converted to Python objects and written per step (bounds memory, drives progress)
BULK_ROWS = 50_000  # from this many new rows on, secondary indexes are rebuilt rather than updated row by row
PLAUSIBLE_YEARS = (1900, 2100)
_NUMBER = r"^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity|nan)$"


class IngestError(ValueError):
    """A structural problem: nothing from this file was written."""

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.message = file, row, column, message
        where = [file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass
class IngestReport:
    """What happened to one file: counts, the rejected rows and why, and the batch written."""

    file_name: str
    sha256: str
    format: str
    n_rows: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    n_duplicate: int = 0
    already_ingested: bool = False
    batch_id: int | None = None
    rejects: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["row", "column", "value", "reason"])
    )
    n_from_registry: int = 0  # accepted rows whose position came from the asset registry

    def summary(self) -> str:
        if self.already_ingested:
            return f"{self.file_name}: already ingested (same content), nothing changed"
        return (
            f"{self.file_name} [{self.format}]: {self.n_rows} rows, {self.n_accepted} accepted, "
            f"{self.n_rejected} rejected, {self.n_duplicate} already loaded"
        )


class _Shared:
    """Holds a large array in ``DataFrame.attrs`` without pandas deep-copying it on every operation."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray):
        self.value = value

    def __deepcopy__(self, memo: dict) -> _Shared:
        return self

    def __len__(self) -> int:
        return len(self.value)


def _say(progress: Progress, frac: float, text: str) -> None:
    if progress is not None:
        progress(float(min(max(frac, 0.0), 1.0)), text)


def _scaled(progress: Progress, lo: float, hi: float) -> Progress:
    if progress is None:
        return None
    return lambda f, text: progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), text)


# --------------------------------------------------------------------------------------------- config


@lru_cache(maxsize=4)
def load_instruments(path: str | None = None) -> dict:
    """The instrument table (``config/instruments.yaml``): default uncertainty and priors by sensor."""
    p = Path(path) if path else CONFIG_DIR / "instruments.yaml"
    with open(p, encoding="utf-8") as fh:
        table = yaml.safe_load(fh)
    for st in SOURCE_TYPES:
        if st not in table.get("source_types", {}):
            raise ValueError(f"{p}: source_types lacks '{st}'")
    return table


def registry_sigma_m() -> float:
    """1-sigma error of a position taken from the asset registry (the site's extent), from the config."""
    return float(load_instruments().get("asset_registry", {}).get("sigma_m", 150.0))


def _defaults_one(name: str, stype: str, key: str, table: dict) -> float:
    lname = name.lower()
    for inst in table.get("instruments", []):
        if key in inst and inst["match"] in lname:
            return float(inst[key])
    v = table["source_types"].get(stype, {}).get(key)
    return float(v) if v is not None else np.nan


def instrument_defaults(source_name: pd.Series, source_type: pd.Series, key: str) -> pd.Series:
    """Per-row default of ``key`` (sigma_m, detection_limit_kg_h): by instrument name, else source type.

    Computed once per distinct (source_name, source_type) pair, so it costs nothing per row.
    """
    values = _defaults_for(_text(source_name), _text(source_type), key)
    return pd.Series(values, index=source_name.index, dtype=float)


def _dictionary(a: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list]:
    """Integer codes (int64) and the distinct values of a string column."""
    enc = pc.dictionary_encode(a)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.unify_dictionaries()
        if enc.num_chunks == 0:
            return np.zeros(0, dtype=np.int64), []
        values = enc.chunk(0).dictionary.to_pylist()
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False).astype(np.int64) for c in enc.chunks])
        return codes, values
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def _defaults_for(names: pa.Array, types: pa.Array, key: str) -> np.ndarray:
    table = load_instruments()
    (n_codes, n_names), (t_codes, t_names) = _dictionary(names), _dictionary(types)
    width = max(len(t_names), 1)
    codes, uniq = pd.factorize(n_codes * width + t_codes)
    vals = np.array([_defaults_one(n_names[u // width], t_names[u % width], key, table) for u in uniq], dtype=float)
    return vals[codes] if len(vals) else np.full(len(codes), np.nan)


# --------------------------------------------------------------------------------------------- reading


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sniff_delimiter(sample: str) -> str:
    first = sample.splitlines()[0] if sample else ""
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


class _NotPlain(Exception):
    """The fast reader cannot take this file; the tolerant one will."""


def read_table(path: Path, label: str | None = None) -> pd.DataFrame:
    """Read CSV (BOM, ``;``/tab/``|`` delimiters, quotes), Excel, Parquet or GeoJSON into a frame of strings.

    Every cell stays text so validation sees exactly what the file said and rejects can quote it.
    A plain UTF-8 CSV is parsed by ``pyarrow.csv`` (multi-threaded); anything else (Latin-1, rows
    with missing trailing fields, oddly quoted text) by Python's ``csv`` module.
    """
    path = Path(path)
    label = label or path.name
    if not path.exists():
        raise IngestError(label, "file not found")
    if path.is_dir():
        raise IngestError(label, "is a folder, not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            df = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        elif suffix == ".parquet":
            df = pd.read_parquet(path).astype(object)
            df = df.where(df.notna(), "").astype(str)
        elif suffix in (".geojson", ".json"):
            df = _read_geojson(path)
        else:
            df = _read_csv(path, label)
    except IngestError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except pd.errors.EmptyDataError as exc:
        raise IngestError(label, "file is empty") from exc
    except pd.errors.ParserError as exc:
        raise IngestError(label, f"cannot be parsed as a table ({str(exc).strip().splitlines()[0][:160]})") from exc
    except Exception as exc:  # noqa: BLE001 - any reader failure on a hostile file is a structural error
        raise IngestError(label, f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from exc
    df.columns = [str(c).strip().lstrip("\ufeff").strip() for c in df.columns]
    if len(df.columns) != len(set(df.columns)):
        counts = Counter(df.columns)
        dup = sorted(c for c, k in counts.items() if k > 1)
        raise IngestError(label, f"repeated column names {dup}", column=dup[0])
    if len(df.columns) == 0:
        raise IngestError(label, "file has no columns")
    if df.empty:
        raise IngestError(label, "file has a header but no rows")
    return df.reset_index(drop=True)


def _read_csv(path: Path, label: str) -> pd.DataFrame:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if size == 0 or (size <= (1 << 16) and not head.strip()):
        raise IngestError(label, "file is empty")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode text" export
        return _read_csv_python(path, label)
    if b"\x00" in head[:4096]:
        raise IngestError(label, "not a text file (binary content); expected CSV, XLSX, Parquet or GeoJSON")
    bom = head.startswith(codecs.BOM_UTF8)
    try:
        sample = codecs.getincrementaldecoder("utf-8")().decode(head[3 if bom else 0:], final=size <= (1 << 16))
    except UnicodeDecodeError:
        sample = None
    if sample is not None and sample.strip():
        try:
            return _read_csv_arrow(path, sample, bom, label)
        except _NotPlain:
            pass
    return _read_csv_python(path, label)


def _header_names(raw: list[str]) -> list[str]:
    return [h.strip().lstrip("\ufeff").strip() or f"unnamed_{i + 1}" for i, h in enumerate(raw)]


def _check_header(names: list[str], label: str) -> None:
    counts = Counter(names)
    dup = sorted(c for c, k in counts.items() if k > 1)
    if dup:
        raise IngestError(label, f"repeated column names {dup}", column=dup[0])


def _read_csv_arrow(path: Path, sample: str, bom: bool, label: str) -> pd.DataFrame:
    """The fast path: ``pyarrow.csv`` with every column as a non-null string."""
    first_line = sample.splitlines()[0] if sample else ""
    sep = _sniff_delimiter(first_line)
    try:
        raw_header = next(csv.reader([first_line], delimiter=sep))
    except (csv.Error, StopIteration) as exc:
        raise _NotPlain from exc
    names = _header_names(raw_header)
    _check_header(names, label)
    with open(path, "rb") as fh:
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            # a value can hold a newline only inside quotes: without quotes below the header, the faster
            # newline-free chunking is exact
            quoted = mm.find(b'"', mm.find(b"\n") + 1) != -1
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"', double_quote=True, escape_char=False,
                                             newlines_in_values=quoted, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in raw_header},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                 check_utf8=True),
        )
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise _NotPlain from exc
    got = [c.lstrip("\ufeff") if i == 0 else c for i, c in enumerate(table.column_names)]
    want = [c.lstrip("\ufeff") if i == 0 else c for i, c in enumerate(raw_header)]
    if got != want or any(not pa.types.is_string(t) and not pa.types.is_large_string(t) for t in table.schema.types):
        raise _NotPlain
    table = table.rename_columns(names)
    return table.to_pandas(self_destruct=True, split_blocks=True)


def _read_csv_python(path: Path, label: str) -> pd.DataFrame:
    """The tolerant path: any encoding (UTF-8, else Latin-1), quoted newlines, short rows padded."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise IngestError(label, "not valid UTF-16 text despite its byte-order mark") from exc
    else:
        if b"\x00" in raw:
            raise IngestError(label, "not a text file (binary content); expected CSV, XLSX, Parquet or GeoJSON")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    if not text.strip():
        raise IngestError(label, "file is empty")
    if "\x00" in text:
        raise IngestError(label, "not a text file (binary content); expected CSV, XLSX, Parquet or GeoJSON")
    del raw
    sep = _sniff_delimiter(text[:65536])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)  # leading blank lines
        if header is None:
            raise IngestError(label, "file is empty")
        names = _header_names(header)
        _check_header(names, label)
        n = len(names)
        rows: list[list[str]] = []
        for rec in reader:
            if not rec:
                continue  # blank line
            if len(rec) != n:
                if len(rec) > n and any(x.strip() for x in rec[n:]):
                    raise IngestError(label, f"has {len(rec)} fields but the header has {n} "
                                      "(check the delimiter and quoting)", row=len(rows) + 2)
                rec = rec[:n] + [""] * (n - len(rec))
            rows.append(rec)
    except csv.Error as exc:
        raise IngestError(label, f"cannot be parsed as a table ({exc})") from exc
    if not rows:
        return pd.DataFrame(columns=names, dtype=str)
    cols = list(zip(*rows, strict=True))
    del rows
    return pd.DataFrame({i: pd.array(c, dtype="str") for i, c in enumerate(cols)}).set_axis(names, axis=1)


def _read_geojson(path: Path) -> pd.DataFrame:
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    feats = data.get("features") if isinstance(data, dict) else None
    if not isinstance(feats, list):
        raise ValueError("GeoJSON without a 'features' list")
    rows = []
    for f in feats:
        if not isinstance(f, dict):
            raise ValueError("a feature is not an object")
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            raise ValueError("a feature's properties are not an object")
        props = dict(props)
        geom = f.get("geometry") or {}
        coords = geom.get("coordinates") if isinstance(geom, dict) and geom.get("type") == "Point" else None
        if isinstance(coords, list) and len(coords) >= 2:
            props.setdefault("longitude", coords[0])
            props.setdefault("latitude", coords[1])
        rows.append({str(k): "" if v is None else str(v) for k, v in props.items()})
    return pd.DataFrame(rows).fillna("")


# --------------------------------------------------------------------------------------------- formats


def _pick(cols: Iterable[str], candidates: Iterable[str]) -> str | None:
    have = set(cols)
    return next((c for c in candidates if c in have), None)


def detect_format(columns: Iterable[str]) -> str:
    """Which known format a header belongs to, or ``unknown``."""
    cols = {str(c).strip().lower() for c in columns}
    if CARBONMAPPER_SIGNATURE <= cols:
        return "carbonmapper"
    if MARS_SIGNATURE <= cols:
        return "mars"
    if {"detection_id", "observed_at"} <= cols:
        return "canonical"
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
    if fmt == "cms":
        need = [CMS_TIME_COLUMNS, ASSET_COLUMNS, ("alarm_type",)]
    elif fmt == "scada":
        need = [SCADA_TAG_COLUMNS, SCADA_TIME_COLUMNS, ASSET_COLUMNS]
    return [" or ".join(c) for c in need if not _pick(cols, c)]


def _col(raw: pd.DataFrame, name: str | None) -> pd.Series:
    if name is None or name not in raw.columns:
        return pd.Series("", index=raw.index, dtype="str")
    return raw[name]


def _carbonmapper(raw: pd.DataFrame, source_name: str | None) -> pd.DataFrame:
    platform = _col(raw, "platform").astype(str)
    instrument = _col(raw, "instrument").astype(str)
    airborne = platform.str.contains("airborne|aircraft|gao|aviris", case=False) | instrument.str.lower().isin(
        ["gao", "ang", "av3", "aviris"]
    )
    name = platform.where(platform != "", instrument)
    out = pd.DataFrame(
        {
            "detection_id": raw["plume_id"],
            "source_type": np.where(airborne, "aerial", "satellite"),
            "source_name": source_name or name,
            "observed_at": raw["datetime"],
            "latitude": raw["plume_latitude"],
            "longitude": raw["plume_longitude"],
            # one ground-sample distance is the 1-sigma position error when the export gives it
            "location_uncertainty_m": _col(raw, "gsd"),
            "rate_kg_h": _col(raw, "emission_auto"),
            "rate_uncertainty_kg_h": _col(raw, "emission_uncertainty_auto"),
            "confidence": "",
            "wind_speed_m_s": _col(raw, "wind_speed_avg_auto"),
            "asset_id": "",
            "event_type": "plume",
        }
    )
    return out


def _mars(raw: pd.DataFrame, source_name: str | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "detection_id": raw["id_plume"],
            "source_type": "satellite",
            "source_name": source_name or raw["satellite"],
            "observed_at": raw["tile_date"],
            "latitude": raw["lat"],
            "longitude": raw["lon"],
            "location_uncertainty_m": "",
            "rate_kg_h": _col(raw, "ch4_fluxrate"),
            "rate_uncertainty_kg_h": _col(raw, "ch4_fluxrate_std"),
            "confidence": "",
            "wind_speed_m_s": _col(raw, "wind_speed"),
            "asset_id": "",
            "event_type": "plume",
        }
    )


def _rate_columns(cols: Iterable[str], prefixes: tuple[str, ...], label: str) -> tuple[str | None, str | None, float]:
    """The one rate column (any unit of RATE_UNITS, under any of ``prefixes``), its uncertainty and factor."""
    cols = list(cols)
    found = [(c, p) for c in cols for p in prefixes
             if c.startswith(p) and not c.startswith(p + "uncertainty_") and c[len(p):] in RATE_UNITS]
    if len(found) > 1:
        names = [c for c, _ in found]
        raise IngestError(label, f"rate given in several units ({', '.join(names)}); keep one column",
                          column=names[1])
    if not found:
        return None, None, 1.0
    col, prefix = found[0]
    unit = col[len(prefix):]
    unc = f"{prefix}uncertainty_{unit}"
    return col, (unc if unc in cols else None), RATE_UNITS[unit]


def _canonical(raw: pd.DataFrame, source_name: str | None, label: str) -> pd.DataFrame:
    cols = {c.lower(): c for c in raw.columns}
    df = raw.rename(columns={v: k for k, v in cols.items()})
    rate_col, unc_col, factor = _rate_columns(df.columns, ("rate_",), label)
    out = pd.DataFrame(index=df.index)
    if source_name:
        df["source_name"] = source_name
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    for c in CANONICAL_COLUMNS:
        out[c] = df[c] if c in df.columns else ""
    if rate_col:
        out["rate_kg_h"] = df[rate_col]
        out.attrs["rate_factor"] = factor
        out.attrs["rate_column"] = rate_col
        if unc_col:
            out["rate_uncertainty_kg_h"] = df[unc_col]
        # rejects name the file's own column (rate_g_s), not the canonical one it is converted into
        out.attrs["source_columns"] = {k: v for k, v in (("rate_kg_h", rate_col), ("rate_uncertainty_kg_h", unc_col))
                                       if v and v != k}
    return out


def _nonblank(s: pd.Series) -> pd.Series:
    return s.astype(str).str.strip() != ""


def _site_frame(raw: pd.DataFrame, source_name: str | None, default_name: str, name_cols: tuple[str, ...],
                time_col: str, asset_col: str, id_cols: tuple[str, ...], id_parts: list[pd.Series],
                event_type: pd.Series, source_type: str, label: str) -> pd.DataFrame:
    """Shared mapping of site-level feeds (monitors, SCADA): ids, names, times, assets, optional rates."""
    lower = list(raw.columns)
    synth = id_parts[0].astype(str).str.strip()
    for part in id_parts[1:]:
        synth = synth + "|" + part.astype(str).str.strip()
    id_col = _pick(lower, id_cols)
    det_id = raw[id_col].where(_nonblank(raw[id_col]), synth) if id_col else synth
    if source_name:
        name: pd.Series | str = source_name
    else:
        ncol = _pick(lower, name_cols)
        name = raw[ncol].where(_nonblank(raw[ncol]), default_name) if ncol else default_name
    rate_col, unc_col, factor = _rate_columns(lower, ("emission_rate_", "rate_"), label)
    out = pd.DataFrame(
        {
            "detection_id": det_id,
            "source_type": source_type,
            "source_name": name,
            "observed_at": raw[time_col],
            "latitude": _col(raw, "latitude"),  # a monitor export may carry the sensor's position
            "longitude": _col(raw, "longitude"),
            "location_uncertainty_m": _col(raw, "location_uncertainty_m"),
            "rate_kg_h": _col(raw, rate_col),
            "rate_uncertainty_kg_h": _col(raw, unc_col),
            "confidence": _col(raw, "confidence"),
            "wind_speed_m_s": _col(raw, _pick(lower, ("wind_speed_m_s", "wind_speed"))),
            "asset_id": raw[asset_col],
            "event_type": event_type,
        },
        index=raw.index,
    )
    if rate_col:
        out.attrs["rate_factor"] = factor
        out.attrs["rate_column"] = rate_col
    # rejects name the file's own column where it differs from the canonical one
    out.attrs["source_columns"] = {k: v for k, v in {
        "observed_at": time_col, "asset_id": asset_col, "detection_id": id_col, "rate_kg_h": rate_col,
        "rate_uncertainty_kg_h": unc_col}.items() if v and v != k}
    return out


def _cms(raw: pd.DataFrame, source_name: str | None, label: str) -> pd.DataFrame:
    lower = list(raw.columns)
    time_col = _pick(lower, CMS_TIME_COLUMNS)
    asset_col = _pick(lower, ASSET_COLUMNS)
    sensor = _col(raw, _pick(lower, ("sensor_id", "sensor", "device_id")))
    return _site_frame(raw, source_name, "CMS", CMS_NAME_COLUMNS, time_col, asset_col, CMS_ID_COLUMNS,
                       [raw[asset_col], sensor, raw[time_col], raw["alarm_type"]], raw["alarm_type"],
                       "continuous_monitor", label)


def _scada(raw: pd.DataFrame, source_name: str | None, label: str) -> pd.DataFrame:
    lower = list(raw.columns)
    tag_col = _pick(lower, SCADA_TAG_COLUMNS)
    time_col = _pick(lower, SCADA_TIME_COLUMNS)
    asset_col = _pick(lower, ASSET_COLUMNS)
    type_col = _pick(lower, SCADA_TYPE_COLUMNS)
    event = raw[type_col].where(_nonblank(raw[type_col]), raw[tag_col]) if type_col else raw[tag_col]
    out = _site_frame(raw, source_name, "SCADA", SCADA_NAME_COLUMNS, time_col, asset_col, SCADA_ID_COLUMNS,
                      [raw[asset_col], raw[tag_col], raw[time_col]], event, "scada", label)
    state_col = _pick(lower, SCADA_STATE_COLUMNS)
    if state_col:
        state = raw[state_col].astype(str).str.strip()
        idx = np.flatnonzero(state.str.lower().isin(SCADA_NOT_ONSET).to_numpy())
        if idx.size:
            out.attrs["mapping_rejects"] = _Shared([
                (idx, state_col, lambda v: f"state '{v}' is not the onset of an event (only onsets are detections)",
                 state.to_numpy(dtype=object)[idx])
            ])
    return out


def to_canonical(raw: pd.DataFrame, fmt: str, source_name: str | None, label: str) -> pd.DataFrame:
    """Map a raw frame in a known format to canonical text columns; extra columns kept in ``attributes``."""
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
                "alarm export or a SCADA event log",
            )
    lower = {c.lower() for c in raw.columns}
    if fmt in ("carbonmapper", "mars", "cms", "scada"):
        missing = _missing_signature(fmt, lower)
        if missing:
            raise IngestError(label, f"not a {fmt} file: column missing: {', '.join(missing)}",
                              column=missing[0].split(" or ")[0])
    low = raw.rename(columns=str.lower)
    if fmt == "carbonmapper":
        out = _carbonmapper(low, source_name)
    elif fmt == "mars":
        out = _mars(low, source_name)
    elif fmt == "cms":
        out = _cms(low, source_name, label)
    elif fmt == "scada":
        out = _scada(low, source_name, label)
    elif fmt == "canonical":
        out = _canonical(raw, source_name, label)
    else:
        raise IngestError(label, f"unknown --format '{fmt}' (choose from {', '.join(FORMATS)})")
    used = set(CANONICAL_COLUMNS)
    extra = [c for c in raw.columns if c.lower() not in used]
    out.attrs["format"] = fmt
    out["attributes"] = _attributes_json(raw[extra]) if extra else None
    return out


def _arrow_text(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow strings (nulls kept), without copying when it already is Arrow-backed."""
    try:
        return pa.array(s, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array(s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v)),
                        type=pa.large_string(), from_pandas=True)


def _ls(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _combined(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


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


# --------------------------------------------------------------------------------------------- validation


def _np(a: pa.Array | pa.ChunkedArray, fill: bool = False) -> np.ndarray:
    """A boolean Arrow array as numpy (nulls → ``fill``)."""
    return np.asarray(pc.fill_null(a, fill).to_numpy(zero_copy_only=False), dtype=bool)


def _offsets(a: pa.Array) -> np.ndarray:
    width = np.int64 if pa.types.is_large_string(a.type) else np.int32
    return np.frombuffer(a.buffers()[1], dtype=width)[a.offset:a.offset + len(a) + 1]


def _chunks(a: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return a.chunks if isinstance(a, pa.ChunkedArray) else [a]


def _edge_space(a: pa.Array) -> bool:
    """Whether any value starts or ends with a space, a control character or a non-ASCII byte."""
    if len(a) == 0 or a.buffers()[2] is None:
        return False
    off = _offsets(a)
    data = np.frombuffer(a.buffers()[2], dtype=np.uint8)
    start, end = off[:-1], off[1:]
    filled = end > start
    first, last = data[start[filled]], data[end[filled] - 1]
    return bool(((first <= 0x20) | (first >= 0x80) | (last <= 0x20) | (last >= 0x80)).any())


def _text(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow strings without nulls (null → ""), stripped of surrounding whitespace.

    The chunks of the reader are kept (combining them would copy the column), and the strip, itself
    a copy, is skipped when a look at the first and last byte of every value shows nothing to strip.
    """
    a = _arrow_text(s)
    if a.null_count:
        a = pc.fill_null(a, "")
    if any(_edge_space(c) for c in _chunks(a)):
        a = pc.utf8_trim_whitespace(a)
    return a


def _blank(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which values of a null-free string array are empty (from the offsets, no string work)."""
    parts = []
    for c in _chunks(a):
        off = _offsets(c)
        parts.append(off[1:] == off[:-1])
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _nulled_chunk(t: pa.Array, blank: np.ndarray) -> pa.Array:
    if t.null_count == 0 and t.offset == 0 and (pa.types.is_string(t.type) or pa.types.is_large_string(t.type)):
        if not blank.any():
            return t
        validity = pa.array(~blank).buffers()[1]
        return pa.Array.from_buffers(t.type, len(t), [validity, t.buffers()[1], t.buffers()[2]])
    return pc.if_else(pc.equal(t, ""), pa.scalar(None, t.type), t)


def _nulled(t: pa.Array | pa.ChunkedArray, blank: np.ndarray | None = None) -> pa.Array | pa.ChunkedArray:
    """The same strings with "" as null; without copying them when the array allows."""
    if t.null_count:
        return pc.if_else(pc.equal(t, ""), pa.scalar(None, t.type), t)
    blank = _blank(t) if blank is None else blank
    if not isinstance(t, pa.ChunkedArray):
        return _nulled_chunk(t, blank)
    out, at = [], 0
    for c in t.chunks:
        out.append(_nulled_chunk(c, blank[at:at + len(c)]))
        at += len(c)
    return pa.chunked_array(out, type=t.type)


def _floats(t: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Stripped text → float64 (NaN for blank or not a number). One Arrow cast in the common case."""
    nulled = _nulled(t)
    try:
        return np.array(pc.cast(nulled, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)  # writable
    except (pa.ArrowException, ValueError):
        pass
    ok = pc.match_substring_regex(nulled, _NUMBER, ignore_case=True)
    try:
        vals = pc.cast(pc.if_else(ok, nulled, pa.scalar(None, nulled.type)), pa.float64())
        return np.array(pc.fill_null(vals, np.nan).to_numpy(zero_copy_only=False), dtype=float)
    except (pa.ArrowException, ValueError):  # pragma: no cover - the regex admits only what Arrow parses
        out = np.full(len(t), np.nan)
        for i, v in enumerate(pc.if_else(ok, nulled, pa.scalar(None, nulled.type)).to_pylist()):
            if v is not None:
                try:
                    out[i] = float(v)
                except (ValueError, OverflowError):
                    pass
        return out


_DATE_LIKE = r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T].*)?$"


def _times_pandas(text: pd.Series) -> pd.Series:
    """The element-wise parser for files whose timestamps are not all of one ISO shape."""
    text = text.str.replace(" ", "T", n=1, regex=False)
    # "+00" after a time of day → "+00:00" (not the "-01" that ends a bare date)
    text = text.str.replace(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?[+-]\d\d)$", r"\1:00", regex=True)
    try:
        out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    except (ValueError, OverflowError, TypeError):
        out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    out = out.astype("datetime64[us, UTC]") if str(out.dtype) != "datetime64[us, UTC]" else out
    bad = out.isna() & (text != "") & text.str.match(_DATE_LIKE).fillna(False).astype(bool)
    for i in np.flatnonzero(bad.to_numpy()):  # other date-like shapes ("2025/05/21 18:08"), one by one
        try:
            v = pd.to_datetime(text.iloc[i], utc=True, format="mixed")
            out.iloc[i] = v
        except (ValueError, OverflowError, TypeError):
            pass
    return out


def _times(t: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Stripped text → timestamp[us, UTC] (null where blank or unreadable); Arrow's ISO parser first."""
    nulled = _nulled(t)
    utc = pa.timestamp("us", "UTC")
    for target in (utc, pa.timestamp("us")):  # zoned strings; strings without a zone (taken as UTC)
        try:
            return pc.cast(pc.cast(nulled, target), utc)
        except (pa.ArrowException, ValueError):
            continue
    text = pd.Series(pc.fill_null(t, "").to_numpy(zero_copy_only=False), dtype=object).astype(str)
    parsed = _times_pandas(text)
    return pa.array(parsed, type=utc, from_pandas=True)


def parse_times(s: pd.Series) -> pd.Series:
    """ISO-like timestamps in every shape seen in real files (``+00``, no zone, microseconds) → UTC."""
    vals = _times(_text(s)).to_pandas()
    return pd.Series(getattr(vals, "array", vals), index=s.index).astype("datetime64[us, UTC]")


AssetLookup = pd.DataFrame | Callable[[list[str]], pd.DataFrame] | None


def validate_detections(frame: pd.DataFrame, first_row: int = 2, assets: AssetLookup = None, *,
                        progress: Progress = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type and check canonical text columns; vectorised, so Python only touches rejected rows.

    Returns the typed good rows (with ``source_row``) and a reject table with ``row`` (1-based file
    row; the header is row 1), ``column``, ``value`` and ``reason``. The input is not modified.

    ``assets`` (a frame with ``asset_id, latitude, longitude``, or a function from a list of ids to
    such a frame) resolves rows that name an ``asset_id`` but leave latitude and longitude blank;
    an id not in it rejects the row. Without it, blank coordinates are rejected as blank.
    """
    f = frame
    n = len(f)
    names_of = dict(f.attrs.get("source_columns", {}))
    problems: list[tuple] = []  # (row positions, column, reason: text, list or function of the value, values)

    def add(mask: np.ndarray, column: str, reason: str | Callable[[str], str]) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            problems.append((idx, column, reason, None))

    text = {c: _text(f[c]) for c in CANONICAL_COLUMNS}
    blank = {c: _blank(text[c]) for c in CANONICAL_COLUMNS}
    for c in ("detection_id", "source_name"):
        add(blank[c], c, f"{c} is blank")
    st = pc.utf8_lower(text["source_type"])
    add(blank["source_type"], "source_type", "source_type is blank")
    add(~blank["source_type"] & ~_np(pc.is_in(st, value_set=pa.array(SOURCE_TYPES, pa.large_string()))),
        "source_type", lambda v: f"unknown source_type '{v}' (expected one of {', '.join(SOURCE_TYPES)})")
    _say(progress, 0.1, "reading times")
    ts = _times(text["observed_at"])
    t_null = _np(pc.is_null(ts), fill=True)
    add(blank["observed_at"], "observed_at", "observed_at is blank")
    add(t_null & ~blank["observed_at"], "observed_at", lambda v: f"cannot read '{v}' as an ISO 8601 time")
    year = np.asarray(pc.fill_null(pc.year(ts), PLAUSIBLE_YEARS[0]).to_numpy(zero_copy_only=False))
    lo_y, hi_y = PLAUSIBLE_YEARS
    add(~t_null & ((year < lo_y) | (year > hi_y)), "observed_at",
        lambda v: f"observed_at '{v}' is outside the years {lo_y}..{hi_y}")

    lat, lon = _floats(text["latitude"]), _floats(text["longitude"])
    from_registry = np.zeros(n, dtype=bool)
    explained = np.zeros(n, dtype=bool)  # blank position that the registry resolves, or an unknown-asset reject
    if assets is not None:
        need = blank["latitude"] & blank["longitude"] & ~blank["asset_id"]
        need_idx = np.flatnonzero(need)
        if need_idx.size:
            ids = pd.Index(np.asarray(text["asset_id"].take(pa.array(need_idx)).to_numpy(zero_copy_only=False),
                                      dtype=object))
            reg = assets(sorted(set(ids))) if callable(assets) else assets
            reg = _registry_frame(reg)
            pos = reg.index.get_indexer(ids)
            known = pos >= 0
            lat[need_idx[known]] = reg["latitude"].to_numpy()[pos[known]]
            lon[need_idx[known]] = reg["longitude"].to_numpy()[pos[known]]
            from_registry[need_idx[known]] = True
            unknown = np.zeros(n, dtype=bool)
            unknown[need_idx[~known]] = True
            add(unknown, "asset_id", lambda v: f"unknown asset_id '{v.strip()}': import assets first")
            explained = need
    _say(progress, 0.4, "checking coordinates")
    for c, s, lim in (("latitude", lat, 90), ("longitude", lon, 180)):
        add(blank[c] & ~explained, c, f"{c} is blank")
        add(np.isnan(s) & ~blank[c], c, lambda v, c=c: f"{c} '{v}' is not a number")
        with np.errstate(invalid="ignore"):
            add(~np.isnan(s) & ~(np.abs(s) <= lim), c, lambda v, c=c, lim=lim: f"{c} {v} is outside -{lim}..{lim}")

    _say(progress, 0.55, "checking rates and other numbers")
    factor = float(f.attrs.get("rate_factor", 1.0))
    rate_col = f.attrs.get("rate_column", "rate_kg_h")
    numeric: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        for c, lo, hi in (
            ("location_uncertainty_m", 0.0, 1e6),
            ("rate_kg_h", 0.0, None),
            ("rate_uncertainty_kg_h", 0.0, None),
            ("confidence", 0.0, 1.0),
            ("wind_speed_m_s", 0.0, 200.0),
        ):
            s = _floats(text[c])
            label = names_of.get(c, rate_col if c == "rate_kg_h" else c)
            finite = np.isfinite(s)
            add(np.isnan(s) & ~blank[c], c, lambda v, label=label: f"{label} '{v}' is not a number")
            add(np.isinf(s), c, lambda v, label=label: f"{label} {v} is not finite")
            if c == "location_uncertainty_m":
                add(finite & (s <= 0), c, lambda v: f"location_uncertainty_m {v} must be > 0")
            else:
                add(finite & (s < lo), c, lambda v, label=label: f"{label} {v} is negative")
            if hi is not None:
                add(finite & (s > hi), c, lambda v, label=label, lo=lo, hi=hi: f"{label} {v} is outside {lo:g}..{hi:g}")
            if c.startswith("rate") and factor != 1.0:
                with np.errstate(over="ignore"):
                    add(finite & ~np.isfinite(s * factor), c,
                        lambda v, label=label: f"{label} {v} is too large once converted to kg/h")
            numeric[c] = s

    _say(progress, 0.8, "looking for repeated ids")
    ids, names = text["detection_id"], text["source_name"]
    # one stable sort by the store's key (source_name, detection_id): repeats are neighbours, the first of a
    # run is the earliest row, and the writer reuses the order to append to the store's unique index
    order = pc.sort_indices(pa.table({"n": names, "i": ids}),
                            sort_keys=[("n", "ascending"), ("i", "ascending")]).to_numpy().astype(np.int64)
    dup = np.zeros(n, dtype=bool)
    if n > 1:
        sn, si = names.take(order), ids.take(order)
        same = _np(pc.and_(pc.equal(sn.slice(0, n - 1), sn.slice(1)), pc.equal(si.slice(0, n - 1), si.slice(1))))
        dup[order[1:][same]] = True
        dup &= ~blank["detection_id"]
    if dup.any():
        run_start = np.flatnonzero(np.concatenate([[True], ~same]))
        run_of = np.cumsum(np.concatenate([[True], ~same])) - 1  # sorted position → its run
        sorted_pos = np.empty(n, dtype=np.int64)
        sorted_pos[order] = np.arange(n)
        dup_idx = np.flatnonzero(dup)
        first_rows = order[run_start[run_of[sorted_pos[dup_idx]]]] + first_row
        id_vals = ids.take(pa.array(dup_idx)).to_pylist()
        problems.append((dup_idx, "detection_id",
                         [f"duplicate detection_id '{v}' (first on row {r})" for v, r in zip(id_vals, first_rows,
                                                                                               strict=True)], None))
    for idx, column, reason, values in getattr(f.attrs.get("mapping_rejects"), "value", []):
        problems.append((np.asarray(idx, dtype=np.int64), column, reason, values))

    bad = np.zeros(n, dtype=bool)
    for idx, *_ in problems:
        bad[idx] = True
    rejects = _reject_table(f, problems, first_row, names_of)

    good_idx = np.flatnonzero(~bad)
    all_good = good_idx.size == n
    take_pa = None if all_good else pa.array(good_idx)

    def pick_text(a: pa.Array | pa.ChunkedArray, blank_to_null: bool = False) -> pd.Series:
        a = a if all_good else a.take(take_pa)
        if blank_to_null:
            a = _nulled(a)
        return pd.Series(a.to_pandas(), dtype="str").reset_index(drop=True)

    def pick(x: np.ndarray) -> np.ndarray:
        return x if all_good else x[good_idx]

    st_good = pick_text(st)
    names_good = pick_text(names)
    out = pd.DataFrame(
        {
            "detection_id": pick_text(ids),
            "source_type": st_good,
            "source_name": names_good,
            "observed_at": pd.Series((ts if all_good else ts.take(take_pa)).to_pandas()).astype("datetime64[us, UTC]"),
            "latitude": pick(lat),
            "longitude": pick(lon),
            "location_uncertainty_m": pick(numeric["location_uncertainty_m"]),
            "rate_kg_h": pick(numeric["rate_kg_h"]) * factor,
            "rate_uncertainty_kg_h": pick(numeric["rate_uncertainty_kg_h"]) * factor,
            "confidence": pick(numeric["confidence"]),
            "wind_speed_m_s": pick(numeric["wind_speed_m_s"]),
            "asset_id": pick_text(text["asset_id"], blank_to_null=True),
            "event_type": pick_text(text["event_type"], blank_to_null=True),
            "attributes": (pd.Series(f["attributes"].to_numpy(dtype=object)[good_idx], dtype=object)
                           if "attributes" in f.columns else None),
            "source_row": good_idx.astype(np.int64) + first_row,
        }
    )
    sigma = out["location_uncertainty_m"].to_numpy(copy=True)
    missing = np.isnan(sigma)
    if missing.any():
        default = _defaults_for(names if all_good else names.take(take_pa), st if all_good else st.take(take_pa),
                                "sigma_m")
        reg_rows = pick(from_registry)
        # a registry position is the site's reference point: never claim better than the site's extent
        default = np.where(reg_rows, np.fmax(default, registry_sigma_m()), default)
        sigma[missing] = default[missing]
        out["location_uncertainty_m"] = sigma
    out.attrs["n_from_registry"] = int(pick(from_registry).sum())
    kept = order[~bad[order]]  # good rows in key order, as positions in ``out``
    out.attrs["key_order"] = _Shared(kept if all_good else (np.cumsum(~bad) - 1)[kept])
    _say(progress, 1.0, f"{len(out):,} good rows")
    return out, rejects


def _registry_frame(reg: pd.DataFrame | None) -> pd.DataFrame:
    if reg is None or len(reg) == 0:
        return pd.DataFrame({"latitude": [], "longitude": []}, index=pd.Index([], dtype=object))
    r = reg[["asset_id", "latitude", "longitude"]].copy()
    r["asset_id"] = r["asset_id"].astype(str).str.strip()
    return r.drop_duplicates("asset_id", keep="last").set_index("asset_id").astype(float)


def _reject_table(f: pd.DataFrame, problems: list, first_row: int, names_of: dict[str, str]) -> pd.DataFrame:
    if not problems:
        return pd.DataFrame(columns=["row", "column", "value", "reason"])
    parts = []
    for idx, column, reason, given in problems:
        if given is not None:
            values = [str(v)[:80] for v in given]
        elif column in f.columns:
            values = [str(v)[:80] for v in f[column].to_numpy(dtype=object)[idx]]
        else:
            values = [""] * len(idx)
        if callable(reason):
            reasons = [reason(v) for v in values]
        elif isinstance(reason, list):
            reasons = reason
        else:
            reasons = [reason] * len(idx)
        shown = names_of.get(column, column)
        parts.append(pd.DataFrame({"row": idx.astype(np.int64) + first_row, "column": shown, "value": values,
                                   "reason": reasons}))
    rejects = pd.concat(parts, ignore_index=True)
    for c in ("column", "value", "reason"):
        rejects[c] = rejects[c].astype(object)
    return rejects.sort_values(["row", "column"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- loading


@dataclass
class PreparedFile:
    """A file that passed every structural check: its hash and canonical rows (None when already loaded)."""

    label: str
    sha256: str
    canon: pd.DataFrame | None
    seen: IngestBatch | None


def prepare_file(
    session: Session, path: str | Path, fmt: str = "auto", source_name: str | None = None, label: str | None = None
) -> PreparedFile:
    """Read and map one file, raising IngestError on any structural problem; writes nothing.

    A file whose bytes were loaded before is not read at all. Callers that load several files check
    them all with this first, so a bad file among several loads nothing, and each file is read once.
    """
    path = Path(path)
    label = label or path.name
    if fmt not in FORMATS:
        raise IngestError(label, f"unknown --format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not path.exists():
        raise IngestError(label, "file not found")
    if path.is_dir():
        raise IngestError(label, "is a folder, not a file")
    sha = file_sha256(path)
    seen = _batch_with_sha(session, sha)
    if seen is not None:
        return PreparedFile(label, sha, None, seen)
    return PreparedFile(label, sha, to_canonical(read_table(path, label), fmt, source_name, label), None)


def load_prepared(
    session: Session, prep: PreparedFile, user: str = "system", *, progress: Progress = None
) -> IngestReport:
    """Load a prepared file in one transaction (see :func:`ingest_frame`)."""
    # the same bytes loaded before, or since it was prepared (the same file twice in one command): nothing to do
    seen = prep.seen or _batch_with_sha(session, prep.sha256)
    if seen is not None:
        require(session, user, "ingest")
        _say(progress, 1.0, f"{prep.label}: already ingested")
        return IngestReport(file_name=prep.label, sha256=prep.sha256, format=seen.format, n_rows=seen.n_rows,
                            n_duplicate=seen.n_rows, already_ingested=True, batch_id=seen.id)
    _say(progress, 0.2, f"read {len(prep.canon):,} rows")
    return ingest_frame(session, prep.canon, prep.label, sha256=prep.sha256, user=user,
                        progress=_scaled(progress, 0.2, 1.0))


def ingest_file(
    session: Session,
    path: str | Path,
    fmt: str = "auto",
    source_name: str | None = None,
    user: str = "system",
    label: str | None = None,
    *,
    progress: Progress = None,
) -> IngestReport:
    """Validate one file and load its good rows in one transaction; structural errors write nothing.

    ``progress(fraction, text)``, when given, is called as the file is read, checked and written.
    """
    require(session, user, "ingest")
    _say(progress, 0.0, f"reading {label or Path(path).name}")
    return load_prepared(session, prepare_file(session, path, fmt, source_name, label), user, progress=progress)


def _batch_with_sha(session: Session, sha256: str) -> IngestBatch | None:
    return session.execute(
        select(IngestBatch).where(IngestBatch.sha256 == sha256, IngestBatch.kind == "detections")
        .order_by(IngestBatch.id).limit(1)
    ).scalars().first()


def ingest_frame(
    session: Session,
    canon: pd.DataFrame,
    file_name: str,
    sha256: str | None = None,
    user: str = "system",
    first_row: int = 2,
    *,
    progress: Progress = None,
) -> IngestReport:
    """Load a canonical text frame (as from :func:`to_canonical`); the same content twice changes nothing.

    Rows that name an ``asset_id`` but leave both coordinates blank take the asset's position from
    the registry (the Asset table); an unknown asset rejects the row.
    """
    require(session, user, "ingest")
    fmt = canon.attrs.get("format", "canonical")
    if sha256 is None:
        sha256 = hashlib.sha256(pd.util.hash_pandas_object(canon.astype(str), index=False).values.tobytes()).hexdigest()
    report = IngestReport(file_name=file_name, sha256=sha256, format=fmt, n_rows=len(canon))
    seen = _batch_with_sha(session, sha256)
    if seen is not None:
        report.already_ingested = True
        report.batch_id = seen.id
        report.n_duplicate = len(canon)
        return report
    _say(progress, 0.0, f"checking {len(canon):,} rows")
    good, rejects = validate_detections(canon, first_row=first_row, assets=lambda ids: _asset_positions(session, ids),
                                        progress=_scaled(progress, 0.0, 0.3))
    n_rejected = int(rejects["row"].nunique()) if len(rejects) else 0
    batch = IngestBatch(
        file_name=file_name, sha256=sha256, format=fmt, kind="detections", ingested_at=datetime.now(UTC),
        recorded_by=user, n_rows=len(canon), n_accepted=len(good), n_rejected=n_rejected, n_duplicate=0,
    )
    try:
        session.add(batch)
        session.flush()
        n_new = _write_detections(session, good, batch.id, _scaled(progress, 0.3, 0.99)) if len(good) else 0
        batch.n_accepted, batch.n_duplicate = n_new, len(good) - n_new
        session.add(batch)
        _say(progress, 0.99, "committing")
        session.commit()
    except BaseException:
        session.rollback()
        raise
    report.batch_id = batch.id
    report.n_accepted, report.n_rejected, report.n_duplicate = batch.n_accepted, batch.n_rejected, batch.n_duplicate
    report.rejects = rejects
    report.n_from_registry = int(good.attrs.get("n_from_registry", 0))
    _say(progress, 1.0, f"{file_name}: {report.n_accepted:,} accepted, {report.n_rejected:,} rejected, "
                        f"{report.n_duplicate:,} already loaded")
    return report


def _asset_positions(session: Session, ids: list[str]) -> pd.DataFrame:
    """Registry positions of ``ids`` (the whole registry when that is cheaper than asking id by id)."""
    cols = (Asset.asset_id, Asset.latitude, Asset.longitude)
    if len(ids) > 5000:
        rows = session.execute(select(*cols)).all()
    else:
        rows = []
        for start in range(0, len(ids), 500):
            rows += session.execute(select(*cols).where(Asset.asset_id.in_(ids[start:start + 500]))).all()
    return pd.DataFrame(rows, columns=["asset_id", "latitude", "longitude"])


# The good frame's columns in the order they are written; the rest of the table takes its defaults.
_DATA_COLUMNS = ("detection_id", "source_type", "source_name", "observed_at", "latitude", "longitude",
                 "location_uncertainty_m", "rate_kg_h", "rate_uncertainty_kg_h", "confidence", "wind_speed_m_s",
                 "asset_id", "event_type", "attributes", "source_row")
_TEXT_COLUMNS = ("detection_id", "source_type", "source_name", "asset_id", "event_type")
_FLOAT_COLUMNS = ("latitude", "longitude", "location_uncertainty_m", "rate_kg_h", "rate_uncertainty_kg_h",
                  "confidence", "wind_speed_m_s")


def _write_detections(session: Session, good: pd.DataFrame, batch_id: int, progress: Progress) -> int:
    """Insert the rows of ``good`` not already stored (by source_name, detection_id); returns how many."""
    for c in ("detection_id", "source_type", "source_name", "observed_at", "latitude", "longitude",
              "location_uncertainty_m"):
        if good[c].isna().any():  # validation guarantees these; a gap here is a bug, not bad data
            raise RuntimeError(f"ingest: required value missing in column {c} after validation")
    names = [str(x) for x in pd.unique(good["source_name"])]
    present: list[str] = []  # sources the store already has rows of: only their ids can collide
    if len(names) <= 50:  # one indexed probe per source
        present = [n for n in names if session.execute(
            select(Detection.id).where(Detection.source_name == n).limit(1)).first() is not None]
    else:  # a hostile or unusual file with many sources: ask in batches
        for start in range(0, len(names), 500):
            present += session.execute(select(Detection.source_name).distinct().where(
                Detection.source_name.in_(names[start:start + 500]))).scalars().all()
    conn = session.connection()
    if conn.dialect.name == "sqlite" and conn.dialect.driver == "pysqlite":
        plan = _sqlite_plan(conn.dialect, batch_id)
        if plan is not None:
            return _write_sqlite(session, good, plan, ignore_existing=bool(present), progress=progress)
    return _write_generic(session, good, batch_id, present, progress)


@dataclass
class _SqlitePlan:
    columns: list[str]
    constants: dict[str, object]
    time_processor: Callable | None


def _sqlite_plan(dialect, batch_id: int) -> _SqlitePlan | None:
    """How to write Detection rows through the raw sqlite3 connection, or None when the table needs the ORM."""
    table = Detection.__table__
    constants: dict[str, object] = {}
    for col in table.columns:
        if col.name == "id" or col.name in _DATA_COLUMNS:
            continue
        if col.name == "batch_id":
            value: object = batch_id
        elif col.default is not None and getattr(col.default, "is_scalar", False):
            value = col.default.arg
        elif col.nullable or col.server_default is not None:
            continue
        else:
            return None
        proc = col.type.dialect_impl(dialect).bind_processor(dialect)
        value = proc(value) if proc is not None and value is not None else value
        value = int(value) if isinstance(value, bool) else value
        if not isinstance(value, int | float | type(None)):
            return None
        constants[col.name] = value
    for name in _DATA_COLUMNS:  # values go to sqlite3 as they are: the column types must not transform them
        proc = table.columns[name].type.dialect_impl(dialect).bind_processor(dialect)
        if name == "observed_at" or proc is None:
            continue
        probe = 1.5 if name in _FLOAT_COLUMNS else 7 if name == "source_row" else "x"
        try:
            if proc(probe) != probe or type(proc(probe)) is not type(probe) or proc(None) is not None:
                return None
        except Exception:  # noqa: BLE001 - a processor we do not understand: let SQLAlchemy write
            return None
    tproc = table.columns["observed_at"].type.dialect_impl(dialect).bind_processor(dialect)
    return _SqlitePlan(list(_DATA_COLUMNS), constants, tproc)


def _time_texts(ts: pd.Series, processor: Callable | None) -> Callable[[int, int], list]:
    """observed_at as the store writes it, per slice: vectorised when that gives the column type's own
    text (checked on a sample), else through the type's processor value by value."""
    arr = _combined(pa.array(ts, type=pa.timestamp("us", "UTC"), from_pandas=True))
    if processor is None:
        return lambda a, b: arr.slice(a, b - a).to_pylist()
    fast = pc.cast(pc.cast(arr, pa.timestamp("us")), pa.string())
    ends = list(range(min(3, len(arr)))) + list(range(max(len(arr) - 2, 0), len(arr)))
    if all(processor(arr[i].as_py()) == fast[i].as_py() for i in ends):
        return lambda a, b: fast.slice(a, b - a).to_numpy(zero_copy_only=False).tolist()
    return lambda a, b: [processor(v) for v in arr.slice(a, b - a).to_pylist()]


def _py_floats(a: np.ndarray) -> list:
    nan = np.isnan(a)
    if not nan.any():
        return a.tolist()
    o = a.astype(object)
    o[nan] = None
    return o.tolist()


def _py_texts(s: pd.Series) -> list:
    return s.to_numpy(dtype=object, na_value=None).tolist()


def _column_lists(good: pd.DataFrame, start: int, stop: int, times: Callable[[int, int], list],
                  columns: Iterable[str] = _DATA_COLUMNS) -> list[list]:
    part = good.iloc[start:stop]
    out = []
    for name in columns:
        if name == "observed_at":
            out.append(times(start, stop))
        elif name in _FLOAT_COLUMNS:
            out.append(_py_floats(part[name].to_numpy(dtype=float)))
        elif name == "source_row":
            out.append(part[name].astype(np.int64).tolist())
        elif name == "attributes":
            col = part[name]
            out.append([None] * len(part) if col.isna().all() else _py_texts(col))
        else:
            out.append(_py_texts(part[name]))
    return out


def _write_sqlite(session: Session, good: pd.DataFrame, plan: _SqlitePlan, ignore_existing: bool,
                  progress: Progress) -> int:
    """Multi-row INSERTs through the session's own sqlite3 connection (same transaction as the batch row).

    Large loads rebuild the table's secondary indexes once instead of updating them row by row, and
    go in the order of the (source_name, detection_id) key so the unique index is appended to.
    Rows already stored are skipped by the unique key (``INSERT OR IGNORE``) when the store holds
    rows of the same sources; the count of rows really inserted is returned.
    """
    raw = session.connection().connection.dbapi_connection
    cur = raw.cursor()
    n = len(good)
    (size_hint,) = session.execute(select(func.max(Detection.id))).one()
    bulk = n >= BULK_ROWS and n * 2 >= (size_hint or 0)
    if bulk:  # insert in key order: the unique (source_name, detection_id) index is then only appended to
        order = getattr(good.attrs.get("key_order"), "value", None)
        if order is None or len(order) != n:
            key = pa.table({"n": pa.array(good["source_name"], type=pa.large_string()),
                            "i": pa.array(good["detection_id"], type=pa.large_string())})
            order = pc.sort_indices(key, sort_keys=[("n", "ascending"), ("i", "ascending")]).to_numpy()
        if (np.diff(order) != 1).any():
            good = good.iloc[order].reset_index(drop=True)
    times = _time_texts(good["observed_at"], plan.time_processor)
    table = Detection.__table__
    # a column that is blank on every row of this load and defaults to NULL is left out of the statement
    columns = [c for c in plan.columns if not (
        table.columns[c].nullable and table.columns[c].default is None and table.columns[c].server_default is None
        and good[c].isna().all())]
    k = len(columns)
    consts = "".join(f", {'NULL' if v is None else repr(v)}" for v in plan.constants.values())
    col_sql = ", ".join(columns + list(plan.constants))
    verb = "INSERT OR IGNORE" if ignore_existing else "INSERT"
    one = "(" + ", ".join("?" * k) + consts + ")"
    try:
        limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except (AttributeError, sqlite3.Error):  # older sqlite3 modules: the historical default
        limit = 999
    per = max(1, min(500, limit // k))
    sql_many = f"{verb} INTO detection ({col_sql}) VALUES " + ", ".join([one] * per)
    sql_one = f"{verb} INTO detection ({col_sql}) VALUES {one}"
    (old_cache,) = cur.execute("PRAGMA cache_size").fetchone()
    cur.execute("PRAGMA cache_size=-131072")  # 128 MiB of page cache for this load
    try:
        index_ddl: list[tuple[str, str]] = []
        if bulk:  # indexes over the written columns are rebuilt once; those over columns left NULL stay
            for name, sql in cur.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                                         "tbl_name = 'detection' AND sql IS NOT NULL").fetchall():
                cols = {r[2] for r in cur.execute(f'PRAGMA index_info("{name}")').fetchall()}
                if cols & set(plan.columns) or None in cols:
                    index_ddl.append((name, sql))
            for name, _ in index_ddl:
                cur.execute(f'DROP INDEX "{name}"')
        before = raw.total_changes
        for start in range(0, n, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n)
            lists = _column_lists(good, start, stop, times, columns)
            flat = list(itertools.chain.from_iterable(zip(*lists, strict=True)))
            del lists
            step = per * k
            full = len(flat) // step
            if full:
                cur.executemany(sql_many, (flat[i * step:(i + 1) * step] for i in range(full)))
            rest = flat[full * step:]
            if rest:
                cur.executemany(sql_one, (rest[i:i + k] for i in range(0, len(rest), k)))
            _say(progress, (stop / n) * (0.85 if bulk else 1.0), f"written {stop:,} of {n:,} rows")
        inserted = raw.total_changes - before
        for i, (_, sql) in enumerate(index_ddl):
            _say(progress, 0.85 + 0.15 * i / max(len(index_ddl), 1), "rebuilding indexes")
            cur.execute(sql)
    finally:
        cur.execute(f"PRAGMA cache_size={int(old_cache)}")
        cur.close()
    return int(inserted)


def _write_generic(session: Session, good: pd.DataFrame, batch_id: int, present: list[str],
                   progress: Progress) -> int:
    """Any SQLAlchemy database: look up which keys exist (only for sources already stored), insert the rest."""
    is_dup = np.zeros(len(good), dtype=bool)
    for name in present:
        rows = np.flatnonzero((good["source_name"] == name).to_numpy())
        ids = good["detection_id"].to_numpy(dtype=object)[rows]
        existing: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = [str(x) for x in ids[start:start + 500]]
            existing.update(session.execute(select(Detection.detection_id).where(
                Detection.source_name == name, Detection.detection_id.in_(chunk))).scalars())
        if existing:
            is_dup[rows] = pd.Index(ids).isin(list(existing))
    new = good[~is_dup].reset_index(drop=True)
    n = len(new)
    times = _time_texts(new["observed_at"], None)
    fixed = {"batch_id": batch_id, "ambiguous": False, "leak_id": None}
    step = 20_000
    for start in range(0, n, step):
        stop = min(start + step, n)
        cols = _column_lists(new, start, stop, times)
        records = [dict(zip(_DATA_COLUMNS, row, strict=True)) | fixed for row in zip(*cols, strict=True)]
        session.execute(Detection.__table__.insert(), records)  # Core executemany: one statement per chunk
        _say(progress, stop / n, f"written {stop:,} of {n:,} rows")
    return n

