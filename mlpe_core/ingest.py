"""Ingest: read the files analysts really get, check every cell, and load only what is sound.

Two kinds of failure are kept apart on purpose:

* a structural problem (file unreadable, format unknown, required column missing, empty file)
  raises :class:`IngestError` before anything is written, so a wrong file never half-loads;
* a row problem (bad coordinate, time, rate, ...) rejects that row alone, with its row number,
  column and reason, and the good rows load in one transaction.

Every accepted detection keeps its lineage: batch, file hash, source row and original values.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import insert, select
from sqlmodel import Session

from .models import Detection, IngestBatch
from .schema import CANONICAL_COLUMNS, REQUIRED_COLUMNS, SOURCE_TYPES

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
FORMATS = ("auto", "canonical", "carbonmapper", "mars")

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

    def summary(self) -> str:
        if self.already_ingested:
            return f"{self.file_name}: already ingested (same content), nothing changed"
        return (
            f"{self.file_name} [{self.format}]: {self.n_rows} rows, {self.n_accepted} accepted, "
            f"{self.n_rejected} rejected, {self.n_duplicate} already loaded"
        )


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


def instrument_defaults(source_name: pd.Series, source_type: pd.Series, key: str) -> pd.Series:
    """Per-row default of ``key`` (sigma_m, detection_limit_kg_h): by instrument name, else source type."""
    table = load_instruments()
    out = source_type.map({k: v[key] for k, v in table["source_types"].items()}).astype(float)
    names = source_name.fillna("").astype(str).str.lower()
    matched = pd.Series(False, index=source_name.index)
    for inst in table.get("instruments", []):
        if key not in inst:
            continue
        hit = names.str.contains(inst["match"], regex=False) & ~matched
        out[hit] = float(inst[key])
        matched |= hit
    return out


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


def read_table(path: Path, label: str | None = None) -> pd.DataFrame:
    """Read CSV (BOM, ``;``/tab delimiters, quotes), Excel, Parquet or GeoJSON into a frame of strings.

    Every cell stays text so validation sees exactly what the file said and rejects can quote it.
    """
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
            raw = path.read_bytes()
            if not raw.strip():
                raise IngestError(label, "file is empty")
            if b"\x00" in raw[:4096]:
                raise IngestError(label, "not a text file (binary content); expected CSV, XLSX, Parquet or GeoJSON")
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            sep = _sniff_delimiter(text[:65536])
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, engine="c",
                             skipinitialspace=False, quoting=csv.QUOTE_MINIMAL)
    except IngestError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise IngestError(label, "file is empty") from exc
    except pd.errors.ParserError as exc:
        raise IngestError(label, f"cannot be parsed as a table ({str(exc).strip().splitlines()[0]})") from exc
    except (ValueError, OSError, KeyError, TypeError, UnicodeError) as exc:
        raise IngestError(label, f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from exc
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    if len(df.columns) != len(set(df.columns)):
        dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
        raise IngestError(label, f"repeated column names {dup}", column=dup[0])
    if df.empty:
        raise IngestError(label, "file has a header but no rows")
    return df.reset_index(drop=True)


def _read_geojson(path: Path) -> pd.DataFrame:
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    feats = data.get("features") if isinstance(data, dict) else None
    if not isinstance(feats, list):
        raise ValueError("GeoJSON without a 'features' list")
    rows = []
    for f in feats:
        props = dict((f or {}).get("properties") or {})
        geom = (f or {}).get("geometry") or {}
        coords = geom.get("coordinates") if geom.get("type") == "Point" else None
        if coords and len(coords) >= 2:
            props.setdefault("longitude", coords[0])
            props.setdefault("latitude", coords[1])
        rows.append({k: "" if v is None else str(v) for k, v in props.items()})
    return pd.DataFrame(rows).fillna("")


# --------------------------------------------------------------------------------------------- formats


def detect_format(columns: Iterable[str]) -> str:
    """Which known format a header belongs to, or ``unknown``."""
    cols = {c.strip().lower() for c in columns}
    if CARBONMAPPER_SIGNATURE <= cols:
        return "carbonmapper"
    if MARS_SIGNATURE <= cols:
        return "mars"
    if {"detection_id", "observed_at"} <= cols or set(REQUIRED_COLUMNS) & cols:
        return "canonical"
    return "unknown"


def _carbonmapper(raw: pd.DataFrame, source_name: str | None) -> pd.DataFrame:
    platform = raw.get("platform", pd.Series("", index=raw.index)).astype(str)
    instrument = raw.get("instrument", pd.Series("", index=raw.index)).astype(str)
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
            "location_uncertainty_m": raw.get("gsd", ""),
            "rate_kg_h": raw.get("emission_auto", ""),
            "rate_uncertainty_kg_h": raw.get("emission_uncertainty_auto", ""),
            "confidence": "",
            "wind_speed_m_s": raw.get("wind_speed_avg_auto", ""),
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
            "rate_kg_h": raw.get("ch4_fluxrate", ""),
            "rate_uncertainty_kg_h": raw.get("ch4_fluxrate_std", ""),
            "confidence": "",
            "wind_speed_m_s": raw.get("wind_speed", ""),
            "asset_id": "",
            "event_type": "plume",
        }
    )


def _canonical(raw: pd.DataFrame, source_name: str | None, label: str) -> pd.DataFrame:
    cols = {c.lower(): c for c in raw.columns}
    df = raw.rename(columns={v: k for k, v in cols.items()})
    rate_cols = [c for c in df.columns if c.startswith("rate_") and not c.startswith("rate_uncertainty")
                 and c[5:] in RATE_UNITS]
    if len(rate_cols) > 1:
        raise IngestError(label, f"rate given in several units ({', '.join(rate_cols)}); keep one column",
                          column=rate_cols[1])
    out = pd.DataFrame(index=df.index)
    if source_name:
        df["source_name"] = source_name
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    for c in CANONICAL_COLUMNS:
        out[c] = df[c] if c in df.columns else ""
    if rate_cols:
        unit = rate_cols[0][5:]
        out["rate_kg_h"] = df[rate_cols[0]]
        out.attrs["rate_factor"] = RATE_UNITS[unit]
        out.attrs["rate_column"] = rate_cols[0]
        unc = f"rate_uncertainty_{unit}"
        if unc in df.columns:
            out["rate_uncertainty_kg_h"] = df[unc]
    return out


def to_canonical(raw: pd.DataFrame, fmt: str, source_name: str | None, label: str) -> pd.DataFrame:
    """Map a raw frame in a known format to canonical text columns; extra columns kept in ``attributes``."""
    if fmt == "auto":
        fmt = detect_format(raw.columns)
        if fmt == "unknown":
            raise IngestError(
                label,
                "unrecognised format: expected the canonical columns "
                f"({', '.join(REQUIRED_COLUMNS)}), a Carbon Mapper or a UNEP MARS plume list",
            )
    lower = {c.lower() for c in raw.columns}
    signature = {"carbonmapper": CARBONMAPPER_SIGNATURE, "mars": MARS_SIGNATURE}.get(fmt)
    if signature is not None and not signature <= lower:
        missing = sorted(signature - lower)
        raise IngestError(label, f"not a {fmt} file: column missing: {', '.join(missing)}", column=missing[0])
    if fmt == "carbonmapper":
        out = _carbonmapper(raw.rename(columns=str.lower), source_name)
    elif fmt == "mars":
        out = _mars(raw.rename(columns=str.lower), source_name)
    elif fmt == "canonical":
        out = _canonical(raw, source_name, label)
    else:
        raise IngestError(label, f"unknown --format '{fmt}' (choose from {', '.join(FORMATS)})")
    used = set(CANONICAL_COLUMNS)
    extra = [c for c in raw.columns if c.lower() not in used]
    out.attrs["format"] = fmt
    out["attributes"] = _attributes_json(raw[extra]) if extra else None
    return out


def _attributes_json(extra: pd.DataFrame) -> pd.Series:
    records = extra.to_dict(orient="records")
    return pd.Series([json.dumps({k: v for k, v in r.items() if v not in ("", None)}) for r in records],
                     index=extra.index)


# --------------------------------------------------------------------------------------------- validation


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype(str).str.strip().replace("", np.nan), errors="coerce")


def parse_times(s: pd.Series) -> pd.Series:
    """ISO-like timestamps in every shape seen in real files (``+00``, no zone, microseconds) → UTC."""
    text = s.astype(str).str.strip()
    text = text.str.replace(r"([+-]\d\d)$", r"\1:00", regex=True)  # "+00" → "+00:00"
    text = text.str.replace(" ", "T", n=1, regex=False)
    out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = out.isna() & (text != "")
    if bad.any():  # mixed shapes: fall back element-wise
        out[bad] = pd.to_datetime(text[bad], utc=True, format="mixed", errors="coerce")
    return out


@dataclass
class _Rejects:
    rows: list[dict] = field(default_factory=list)

    def add(self, mask: pd.Series, frame: pd.DataFrame, column: str, reason: str | Callable[[str], str]) -> None:
        for idx in mask[mask].index:
            value = frame.at[idx, column] if column in frame.columns else ""
            text = reason(value) if callable(reason) else reason
            self.rows.append({"idx": idx, "column": column, "value": str(value)[:80], "reason": text})


def validate_detections(frame: pd.DataFrame, first_row: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type and check canonical text columns row by row.

    Returns the typed good rows (with ``source_row``) and a reject table with ``row`` (1-based file
    row; the header is row 1), ``column``, ``value`` and ``reason``. The input is not modified.
    """
    f = frame
    rej = _Rejects()
    blank = {c: f[c].astype(str).str.strip() == "" for c in CANONICAL_COLUMNS}
    for c in ("detection_id", "source_name"):
        rej.add(blank[c], f, c, f"{c} is blank")
    st = f["source_type"].astype(str).str.strip().str.lower()
    rej.add(blank["source_type"], f, "source_type", "source_type is blank")
    rej.add(~blank["source_type"] & ~st.isin(SOURCE_TYPES), f, "source_type",
            lambda v: f"unknown source_type '{v}' (expected one of {', '.join(SOURCE_TYPES)})")
    t = parse_times(f["observed_at"])
    rej.add(blank["observed_at"], f, "observed_at", "observed_at is blank")
    rej.add(t.isna() & ~blank["observed_at"], f, "observed_at",
            lambda v: f"cannot read '{v}' as an ISO 8601 time")
    lat, lon = _num(f["latitude"]), _num(f["longitude"])
    for c, s, lim in (("latitude", lat, 90), ("longitude", lon, 180)):
        rej.add(blank[c], f, c, f"{c} is blank")
        rej.add(s.isna() & ~blank[c], f, c, lambda v, c=c: f"{c} '{v}' is not a number")
        rej.add(s.notna() & ((s.abs() > lim) | ~np.isfinite(s)), f, c,
                lambda v, c=c, lim=lim: f"{c} {v} is outside -{lim}..{lim}")
    factor = float(frame.attrs.get("rate_factor", 1.0))
    rate_col = frame.attrs.get("rate_column", "rate_kg_h")
    numeric = {}
    for c, lo, hi in (
        ("location_uncertainty_m", 0.0, 1e6),
        ("rate_kg_h", 0.0, None),
        ("rate_uncertainty_kg_h", 0.0, None),
        ("confidence", 0.0, 1.0),
        ("wind_speed_m_s", 0.0, 200.0),
    ):
        s = _num(f[c])
        label = rate_col if c == "rate_kg_h" else c
        rej.add(s.isna() & ~blank[c], f, c, lambda v, label=label: f"{label} '{v}' is not a number")
        rej.add(s.notna() & ~np.isfinite(s), f, c, lambda v, label=label: f"{label} {v} is not finite")
        if c == "location_uncertainty_m":
            rej.add(s.notna() & (s <= 0), f, c, lambda v: f"location_uncertainty_m {v} must be > 0")
        elif lo is not None:
            rej.add(s.notna() & (s < lo), f, c, lambda v, label=label: f"{label} {v} is negative")
        if hi is not None:
            rej.add(s.notna() & np.isfinite(s) & (s > hi), f, c,
                    lambda v, label=label, lo=lo, hi=hi: f"{label} {v} is outside {lo:g}..{hi:g}")
        numeric[c] = s
    ids = f["detection_id"].astype(str).str.strip()
    names = f["source_name"].astype(str).str.strip()
    key = names + "\x1f" + ids
    dup = key.duplicated(keep="first") & ~blank["detection_id"]
    if dup.any():
        firsts = key[~key.duplicated(keep="first")]
        first_row_of = dict(zip(firsts.to_numpy(), firsts.index + first_row, strict=True))
        for idx in dup[dup].index:
            rej.rows.append({"idx": idx, "column": "detection_id", "value": ids[idx][:80],
                             "reason": f"duplicate detection_id '{ids[idx]}' (first on row {first_row_of[key[idx]]})"})
    rejects = pd.DataFrame(rej.rows, columns=["idx", "column", "value", "reason"])
    bad_idx = set(rejects["idx"]) if len(rejects) else set()
    good = ~f.index.isin(list(bad_idx))
    good_idx = f.index[good]
    out = pd.DataFrame(
        {
            "detection_id": ids[good_idx],
            "source_type": st[good_idx],
            "source_name": names[good_idx],
            "observed_at": t[good_idx],
            "latitude": lat[good_idx],
            "longitude": lon[good_idx],
            "location_uncertainty_m": numeric["location_uncertainty_m"][good_idx],
            "rate_kg_h": numeric["rate_kg_h"][good_idx] * factor,
            "rate_uncertainty_kg_h": numeric["rate_uncertainty_kg_h"][good_idx] * factor,
            "confidence": numeric["confidence"][good_idx],
            "wind_speed_m_s": numeric["wind_speed_m_s"][good_idx],
            "asset_id": f["asset_id"][good_idx].astype(str).str.strip().replace("", None),
            "event_type": f["event_type"][good_idx].astype(str).str.strip().replace("", None),
            "attributes": f["attributes"][good_idx] if "attributes" in f.columns else None,
            "source_row": (good_idx.to_numpy() + first_row),
        },
        index=good_idx,
    )
    sigma_default = instrument_defaults(out["source_name"], out["source_type"], "sigma_m")
    out["location_uncertainty_m"] = out["location_uncertainty_m"].fillna(sigma_default)
    if len(rejects):
        rejects.insert(0, "row", rejects.pop("idx").astype(int) + first_row)
        rejects = rejects.sort_values(["row", "column"], kind="stable").reset_index(drop=True)
    else:
        rejects = pd.DataFrame(columns=["row", "column", "value", "reason"])
    return out.reset_index(drop=True), rejects


# --------------------------------------------------------------------------------------------- loading


def ingest_file(
    session: Session,
    path: str | Path,
    fmt: str = "auto",
    source_name: str | None = None,
    user: str = "system",
    label: str | None = None,
) -> IngestReport:
    """Validate one file and load its good rows in one transaction; structural errors write nothing."""
    path = Path(path)
    label = label or path.name
    if fmt not in FORMATS:
        raise IngestError(label, f"unknown --format '{fmt}' (choose from {', '.join(FORMATS)})")
    raw = read_table(path, label)
    canon = to_canonical(raw, fmt, source_name, label)
    return ingest_frame(session, canon, label, sha256=file_sha256(path), user=user)


def ingest_frame(
    session: Session,
    canon: pd.DataFrame,
    file_name: str,
    sha256: str | None = None,
    user: str = "system",
    first_row: int = 2,
) -> IngestReport:
    """Load a canonical text frame (as from :func:`to_canonical`); the same content twice changes nothing."""
    fmt = canon.attrs.get("format", "canonical")
    if sha256 is None:
        sha256 = hashlib.sha256(pd.util.hash_pandas_object(canon.astype(str), index=False).values.tobytes()).hexdigest()
    report = IngestReport(file_name=file_name, sha256=sha256, format=fmt, n_rows=len(canon))
    seen = session.exec(
        select(IngestBatch.id).where(IngestBatch.sha256 == sha256, IngestBatch.kind == "detections")
    ).first()
    if seen is not None:
        report.already_ingested = True
        report.batch_id = seen[0] if isinstance(seen, tuple | list) else seen
        report.n_duplicate = len(canon)
        return report
    good, rejects = validate_detections(canon, first_row=first_row)
    existing = _existing_keys(session, good)
    is_dup = pd.Series(
        [(n, d) in existing for n, d in zip(good["source_name"], good["detection_id"], strict=True)],
        index=good.index, dtype=bool,
    )
    new = good[~is_dup]
    batch = IngestBatch(
        file_name=file_name, sha256=sha256, format=fmt, kind="detections", ingested_at=datetime.now(UTC),
        recorded_by=user, n_rows=len(canon), n_accepted=len(new), n_rejected=int(rejects["row"].nunique()),
        n_duplicate=int(is_dup.sum()),
    )
    try:
        session.add(batch)
        session.flush()
        if len(new):
            records = _records(new, batch.id)
            for start in range(0, len(records), 50_000):
                session.execute(insert(Detection), records[start:start + 50_000])
        session.commit()
    except Exception:
        session.rollback()
        raise
    report.batch_id = batch.id
    report.n_accepted, report.n_rejected, report.n_duplicate = batch.n_accepted, batch.n_rejected, batch.n_duplicate
    report.rejects = rejects
    return report


def _existing_keys(session: Session, good: pd.DataFrame) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for name in good["source_name"].unique():
        ids = session.execute(select(Detection.detection_id).where(Detection.source_name == name)).scalars()
        keys.update((name, i) for i in ids)
    return keys


def _records(df: pd.DataFrame, batch_id: int) -> list[dict]:
    out = df.copy()
    out["observed_at"] = out["observed_at"].dt.tz_convert("UTC")
    out["batch_id"] = batch_id
    out = out.astype(object).where(out.notna(), None)
    return out.to_dict(orient="records")

