"""Detection rows in bulk: the only code that inserts detections (multi-row INSERTs on SQLite, Core
executemany elsewhere)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlmodel import Session

from ..progress import Progress, say
from .common import _utc, read_frame, read_frame_in
from .models import Detection


def _combined(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


CHUNK_ROWS = 100_000  # rows converted to Python objects and written per step (bounds memory, drives progress)
BULK_ROWS = 50_000  # from this many new rows on, secondary indexes are rebuilt rather than updated row by row


# The good frame's columns in the order they are written; the rest of the table takes its defaults.
_DATA_COLUMNS = ("detection_id", "source_type", "source_name", "observed_at", "latitude", "longitude",
                 "location_uncertainty_m", "rate_kg_h", "rate_uncertainty_kg_h", "confidence", "wind_speed_m_s",
                 "asset_id", "event_type", "attributes", "source_row")


_TEXT_COLUMNS = ("detection_id", "source_type", "source_name", "asset_id", "event_type")
_FLOAT_COLUMNS = ("latitude", "longitude", "location_uncertainty_m", "rate_kg_h", "rate_uncertainty_kg_h",
                  "confidence", "wind_speed_m_s")


def insert_detections(session: Session, good: pd.DataFrame, batch_id: int, progress: Progress) -> int:
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
            say(progress, (stop / n) * (0.85 if bulk else 1.0), f"written {stop:,} of {n:,} rows")
        inserted = raw.total_changes - before
        for i, (_, sql) in enumerate(index_ddl):
            say(progress, 0.85 + 0.15 * i / max(len(index_ddl), 1), "rebuilding indexes")
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
        say(progress, stop / n, f"written {stop:,} of {n:,} rows")
    return n


# The columns each stage reads: a stage asks for its own, so a basin's reads skip the lineage and free-text ones.
FUSE_COLUMNS = ("id", "source_type", "source_name", "observed_at", "latitude", "longitude", "location_uncertainty_m",
                "rate_kg_h", "rate_uncertainty_kg_h", "asset_id", "leak_id", "ambiguous")
SCORE_COLUMNS = ("id", "detection_id", "source_type", "source_name", "observed_at", "latitude", "longitude",
                 "location_uncertainty_m", "rate_kg_h", "rate_uncertainty_kg_h", "confidence", "asset_id", "event_type",
                 "leak_id", "ambiguous")


def detections_of_leaks(session: Session, leak_ids: Iterable[str], columns: Iterable[str]) -> pd.DataFrame:
    """:func:`detections_frame` of the detections of ``leak_ids`` only (an indexed read), ``columns`` (which must
    include ``id``), in store order."""
    df = read_frame_in(session, Detection, list(columns), Detection.leak_id, sorted(set(leak_ids)))
    return _utc(df.sort_values("id", kind="stable").reset_index(drop=True), ["observed_at"])


def detections_frame(session: Session, leak_id: str | None = None, columns: Iterable[str] | None = None
                     ) -> pd.DataFrame:
    """Detections in store order (by id), all or those of ``leak_id``; ``columns`` only when given (e.g.
    :data:`FUSE_COLUMNS`), every column otherwise. ``observed_at`` is UTC."""
    where = Detection.leak_id == leak_id if leak_id is not None else None
    df = read_frame(session, Detection, list(columns) if columns is not None else None, where, Detection.id)
    return _utc(df, ["observed_at"])  # UTC timestamps even for no rows


class DetectionMemory:
    """Some columns of every detection, kept by a long-running process (``mlpe watch``) between its cycles, so a
    cycle reads only the rows stored since the last one: at a million detections the full read is ~4 s of a
    5 s budget (issue 18).

    The rows held are the store's while the fusion generation is the one this memory last saw and the rows it
    holds plus those with a higher id are all the rows there are. Every write that changes a stored detection
    moves the generation (a fusion's leak ids and ambiguity flags: :func:`save_fusion`; clearing the store), and
    inserts only append: the count catches an insert committed out of id order (possible on a server database)
    and a delete, and then everything is read again. The holder reports what its own fusion wrote
    (:meth:`keep`); a fusion by anyone else only moves the generation, so the next :meth:`frame` reads in full.
    """

    def __init__(self, columns: Iterable[str]):
        self.columns = tuple(dict.fromkeys(["id", *columns]))
        self._df: pd.DataFrame | None = None
        self._generation: int | None = None
        self._url: str | None = None
        self.full_reads = 0  # how often the memory was (re)filled from the whole table (tests, the live benchmark)
        self.tail_reads = 0
        # what stages derive from these rows and keep for the next cycle (``fuse.IncrementalFuser``'s memory); each
        # user checks that the rows it derived from are still the first rows of the frame
        self.derived: dict = {}

    def frame(self, session: Session, generation: int) -> pd.DataFrame:
        """Every detection now (``columns``, store order), given the fusion generation the caller just read: the
        rows held and the rows stored since, or a full read when the memory is not the store's. The frame is
        the caller's (a new object); the memory keeps only what :meth:`keep` gives it."""
        url = str(session.get_bind().url)
        df = self._df
        if df is not None and self._generation == generation and self._url == url:
            last = int(df["id"].max()) if len(df) else 0
            tail = read_frame(session, Detection, list(self.columns), Detection.id > last, Detection.id)
            total = session.execute(select(func.count()).select_from(Detection)).scalar_one()
            if total == len(df) + len(tail):
                self.tail_reads += 1
                if not len(tail):
                    return df.copy()
                tail = _utc(tail, ["observed_at"]).astype({c: df[c].dtype for c in df.columns}, copy=False)
                return pd.concat([df, tail], ignore_index=True)
        self.full_reads += 1
        out = read_frame(session, Detection, list(self.columns), None, Detection.id)
        out = _utc(out, ["observed_at"])
        self._df, self._generation, self._url = out.copy(), generation, url
        return out

    def keep(self, session: Session, frame: pd.DataFrame, generation: int) -> None:
        """Hold ``frame`` (every detection as the store has it at ``generation``, after this process's own write)."""
        self._df, self._generation = frame[list(self.columns)], generation
        self._url = str(session.get_bind().url)

    @property
    def rows(self) -> int:
        return 0 if self._df is None else len(self._df)
