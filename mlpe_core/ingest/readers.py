"""Readers: CSV (any delimiter, BOM, quotes), Excel, Parquet, GeoJSON into frames of text, every cell as
the file said it, within the input limits (``mlpe_core.limits``): size on disk, rows, columns and how much
an XLSX or Parquet unpacks to are checked from the file's own metadata before it is read."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import mmap
import re
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..limits import Limits, limits, mb
from .errors import IngestError


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


ANY_KIND = "CSV, XLSX, Parquet or GeoJSON"


def read_table(path: Path, label: str | None = None, required: tuple[str, ...] = (),
               kinds: str = ANY_KIND) -> pd.DataFrame:
    """Read CSV (BOM, ``;``/tab/``|`` delimiters, quotes), Excel, Parquet or GeoJSON into a frame of strings.

    ``required`` columns (any case) are checked before the rows are, so a file with the wrong columns says which
    are missing (not that it has no rows); ``kinds`` is what the caller accepts, named when a file is binary.

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
    lim = limits()
    size = path.stat().st_size
    if size > lim.max_file_bytes:
        raise IngestError(label, f"is {mb(size)}; files above {mb(lim.max_file_bytes)} are refused "
                                 "(MLPE_MAX_FILE_BYTES)")
    if suffix in (".xlsx", ".xlsm"):
        _check_xlsx(path, label, lim)
    elif suffix == ".parquet":
        _check_parquet(path, label, lim)
    try:
        if suffix in (".xlsx", ".xlsm"):
            df = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        elif suffix == ".parquet":
            df = pd.read_parquet(path).astype(object)
            df = df.where(df.notna(), "").astype(str)
        elif suffix in (".geojson", ".json"):
            df = _read_geojson(path)
        else:
            df = _read_csv(path, label, kinds)
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
    have = {c.lower() for c in df.columns}
    missing = [c for c in required if c.lower() not in have]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    if df.empty:
        raise IngestError(label, "file has a header but no rows")
    _check_shape(len(df), len(df.columns), label, lim)
    return df.reset_index(drop=True)


def _check_shape(rows: int, columns: int, label: str, lim: Limits) -> None:
    if columns > lim.max_columns:
        raise IngestError(label, f"has {columns:,} columns; more than {lim.max_columns:,} are refused "
                                 "(MLPE_MAX_COLUMNS)")
    if rows > lim.max_rows:
        raise IngestError(label, f"has {rows:,} rows; more than {lim.max_rows:,} are refused (MLPE_MAX_ROWS): "
                                 "split the file")


def _check_unpacked(total: int, label: str, lim: Limits) -> None:
    if total > lim.max_unpacked_bytes:
        raise IngestError(label, f"unpacks to {mb(total)}; more than {mb(lim.max_unpacked_bytes)} is refused "
                                 "(MLPE_MAX_UNPACKED_BYTES)")


_DIMENSION = re.compile(rb'<dimension ref="[A-Z]+\d+:([A-Z]+)(\d+)"')


def _check_xlsx(path: Path, label: str, lim: Limits) -> None:
    """An XLSX is a zip: its members' declared sizes and the sheet's dimension are read before openpyxl is."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            _check_unpacked(sum(i.file_size for i in infos), label, lim)
            sheets = sorted(i.filename for i in infos if i.filename.startswith("xl/worksheets/sheet"))
            if sheets:
                with z.open(sheets[0]) as fh:
                    head = fh.read(4096)
                dim = _DIMENSION.search(head)
                if dim:
                    cols = 0
                    for ch in dim.group(1).decode():
                        cols = cols * 26 + ord(ch) - 64
                    _check_shape(int(dim.group(2)) - 1, cols, label, lim)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise IngestError(label, f"cannot be read as an Excel workbook ({type(exc).__name__}: {str(exc)[:80]})") \
            from exc


def _check_parquet(path: Path, label: str, lim: Limits) -> None:
    """Rows, columns and uncompressed size from the Parquet footer, before any data is read."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IngestError(label, f"cannot be read as Parquet ({type(exc).__name__}: {str(exc)[:80]})") from exc
    _check_shape(meta.num_rows, meta.num_columns, label, lim)
    _check_unpacked(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)), label, lim)


def _read_csv(path: Path, label: str, kinds: str = ANY_KIND) -> pd.DataFrame:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if size == 0 or (size <= (1 << 16) and not head.strip()):
        raise IngestError(label, "file is empty")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode text" export
        return _read_csv_python(path, label, kinds)
    if b"\x00" in head[:4096]:
        raise IngestError(label, f"not a text file (binary content); expected {kinds}")
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
    return _read_csv_python(path, label, kinds)


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


def _read_csv_python(path: Path, label: str, kinds: str = ANY_KIND) -> pd.DataFrame:
    """The tolerant path: any encoding (UTF-8, else Latin-1), quoted newlines, short rows padded."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise IngestError(label, "not valid UTF-16 text despite its byte-order mark") from exc
    else:
        if b"\x00" in raw:
            raise IngestError(label, f"not a text file (binary content); expected {kinds}")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    if not text.strip():
        raise IngestError(label, "file is empty")
    if "\x00" in text:
        raise IngestError(label, f"not a text file (binary content); expected {kinds}")
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
    """GeoJSON points (properties plus latitude and longitude), or a JSON array of objects, one row each (what an
    API client or a notifier's export sends)."""
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if isinstance(data, list):
        if not all(isinstance(r, dict) for r in data):
            raise ValueError("a JSON array whose items are not all objects")
        return pd.DataFrame([{str(k): "" if v is None else str(v) for k, v in r.items()} for r in data]).fillna("")
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
