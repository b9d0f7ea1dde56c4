"""What every store module shares: the clock, reading rows into a frame, bulk upserts and updates, counts.

Why the readers and writers here bypass SQLAlchemy's per-row work: a basin holds 100k assets and leaks and a
million detections. Building an ORM object per row (pydantic validation included) cost 19 s for 100,000 assets,
and the ORM's flush and per-value conversions cost the fuse command several times the fuser's own clustering
(issue 20, docs/performance.md). Reads take the driver's raw rows and convert whole columns with pandas; writes
are one statement executed for all rows (``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL, plain
INSERT and UPDATE elsewhere), handed to the SQLite driver directly or to SQLAlchemy's Core executemany.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, DateTime, bindparam, column, delete, func, insert, select, table, true, update

if TYPE_CHECKING:  # pandas, pydantic and the table classes are imported by the functions that use them:
    import pandas as pd  # `mlpe status` needs none of them (it counts rows by table name)
    from sqlmodel import Session

CHUNK_ROWS = 20_000  # rows per executemany: bounds the parameter lists held at once
CACHE_ROWS = 10_000  # from this many rows on, an update on SQLite gets a larger page cache (_write_cache)
BULK_ROWS = 50_000  # from this many rows (and half the table) on, SQLite indexes over the written columns are rebuilt


def now() -> datetime:
    return datetime.now(UTC)


def _frame(session: Session, stmt) -> pd.DataFrame:
    import pandas as pd

    return pd.read_sql(stmt, session.connection())


def _utc(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    import pandas as pd

    for c in cols:
        if c in df and not isinstance(df[c].dtype, pd.DatetimeTZDtype):
            df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df


def _is(sql_type, kind) -> bool:
    """Whether a column type is ``kind`` (DateTime, Boolean), directly or as the type a TypeDecorator wraps."""
    return isinstance(sql_type, kind) or isinstance(getattr(sql_type, "impl", None), kind)


def read_frame(session: Session, model, columns: Sequence[str] | None = None, where=None,
               order_by=None) -> pd.DataFrame:
    """Rows of ``model``'s table as a frame: ``columns`` only (default all), filtered by ``where`` (a clause or a
    list of clauses) and sorted by ``order_by``.

    The frame ``pd.read_sql`` gives for the same select (same dtypes and values; ``tests/test_store_bulk.py``),
    with DateTime columns as UTC timestamps and Boolean columns as bool, at a fraction of the cost: the
    statement runs through SQLAlchemy (so parameters are bound as usual) but rows are taken from the driver's
    cursor as they are, and timestamps are parsed a whole column at a time instead of one Python datetime each.
    """
    import pandas as pd

    tab = model.__table__
    cols = [tab.c[c] for c in columns] if columns is not None else list(tab.columns)
    stmt = select(*cols)
    if where is not None:
        stmt = stmt.where(*(where if isinstance(where, list | tuple) else [where]))
    if order_by is not None:
        stmt = stmt.order_by(*(order_by if isinstance(order_by, list | tuple) else [order_by]))
    res = session.connection().execute(stmt)  # a Core result: its DBAPI cursor holds the raw rows
    try:
        rows = res.cursor.fetchall() if res.cursor is not None else []
    finally:
        res.close()
    df = pd.DataFrame.from_records(rows, columns=[c.name for c in cols], coerce_float=True)
    for c in cols:  # what SQLAlchemy's types and pandas made of the same values: a column of blanks stays blanks
        if _is(c.type, DateTime) and df[c.name].notna().any():
            df[c.name] = _utc_times(df[c.name])
        elif _is(c.type, Boolean) and len(df) and df[c.name].notna().all():
            df[c.name] = df[c.name].astype(bool)
    return df


IN_CHUNK = 500  # ids per IN (...) list: well under every database's parameter limit


def read_frame_in(session: Session, model, columns: Sequence[str], key, values: Sequence, order_by=None
                  ) -> pd.DataFrame:
    """:func:`read_frame` of the rows whose ``key`` (a column) is one of ``values``, ``IN_CHUNK`` values a query
    (indexed reads of a few rows of a big table), concatenated; ``order_by`` sorts each query, not the whole."""
    import pandas as pd

    vals = list(values)
    parts = [read_frame(session, model, columns, key.in_(vals[i:i + IN_CHUNK]), order_by)
             for i in range(0, len(vals), IN_CHUNK)]
    if not parts:
        return read_frame(session, model, columns, key.in_([]))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _utc_times(s: pd.Series) -> pd.Series:
    """A time column as UTC timestamps. SQLite's text ("2026-06-01 10:30:00.000000", UTC without an offset) goes
    through Arrow's ISO 8601 cast, 30× faster than pandas on a million rows; anything else (offsets, datetime
    objects from other drivers) through ``pd.to_datetime``. Both give the same microsecond UTC timestamps."""
    import pandas as pd

    if isinstance(s.dtype, pd.StringDtype):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            naive = pc.cast(pa.array(s.array), pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
        else:
            return pd.Series(naive.to_numpy(zero_copy_only=False), index=s.index, name=s.name).dt.tz_localize("UTC")
    return pd.to_datetime(s, utc=True, format="ISO8601")


def _py(values) -> list:
    """Plain Python values (None for a blank) of a column: a pandas Series or a list."""
    import pandas as pd

    if isinstance(values, list):
        return values
    if isinstance(values.dtype, pd.DatetimeTZDtype) or values.dtype.kind in "fiubMm" or values.dtype == object:
        return values.astype(object).where(values.notna(), None).tolist()
    return values.to_numpy(dtype=object, na_value=None).tolist()  # pandas strings and other extension types


def _columns(frame: pd.DataFrame) -> dict:
    """The columns of ``frame`` by name (Series; ``_py`` makes them what a driver binds, when it needs them)."""
    return {c: frame[c] for c in frame.columns}


def _chunks(n: int, size: int = CHUNK_ROWS) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def counts(session: Session) -> dict[str, int]:
    """Rows per table (active leaks only). By table name, without loading the table classes: ``mlpe status``."""

    def n(name: str, *where) -> int:
        return int(session.execute(select(func.count()).select_from(table(name)).where(*where)).scalar_one())

    return {
        "detections": n("detection"),
        "leaks": n("leak", column("active") == true()),
        "assets": n("asset"),
        "validations": n("validation"),
        "batches": n("ingestbatch"),
        "models": n("modelversion"),
    }


def _execute_many(session: Session, stmt, params: dict) -> None:
    """Execute ``stmt`` once per row of ``params`` (bind parameter name -> a Series or list, one value per row).

    On SQLite the rows go to the driver's own ``executemany``, each column converted once by its type's bind
    processor (SQLAlchemy's Core executemany converts and checks row by row: 40 µs a row for a leak's scores); the
    statement must then have a value for every parameter (no Python-side defaults left to compute). Elsewhere,
    and when that does not hold, SQLAlchemy's Core executemany, a chunk of rows at a time.
    """
    n = len(next(iter(params.values()))) if params else 0
    if not n:
        return
    conn = session.connection()
    if conn.dialect.name == "sqlite" and conn.dialect.driver == "pysqlite":
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(params))
        names = compiled.positiontup
        if names is not None and set(names) <= set(params):
            cols = []
            for name in names:
                proc = compiled.binds[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
                if proc is not None and _is(compiled.binds[name].type, DateTime):
                    cols.append(_sqlite_times(params[name], proc))
                elif proc is not None and _is(compiled.binds[name].type, Boolean) and _bools(params[name], proc):
                    cols.append(params[name].astype("int64").tolist())  # what the processor gives, a column at once
                else:
                    vals = _py(params[name])
                    cols.append(vals if proc is None else [None if v is None else proc(v) for v in vals])
            cur = conn.connection.dbapi_connection.cursor()
            try:
                cur.executemany(compiled.string, zip(*cols, strict=True))
            finally:
                cur.close()
            return
    names = list(params)
    values = [_py(params[k]) for k in names]
    for part in _chunks(n):
        session.execute(stmt, [dict(zip(names, vals, strict=True))
                               for vals in zip(*(v[part] for v in values), strict=True)])


def _sqlite_times(values, proc) -> list:
    """Times as the SQLite DateTime type stores them (UTC text), a whole column at once when that gives the type's
    own text (checked on the first and last values), else value by value through its processor."""
    import numpy as np
    import pandas as pd

    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.DatetimeTZDtype):
        t = values
    else:
        vals = _py(values)
        if any(not isinstance(v, datetime) or v.tzinfo is None for v in vals if v is not None):
            return [None if v is None else proc(v) for v in vals]  # the type decides (it refuses naive times)
        t = pd.to_datetime(pd.Series(vals, dtype=object), utc=True)
    t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    text = np.datetime_as_string(t.to_numpy("datetime64[us]"), unit="us")
    out = np.char.replace(text.astype(str), "T", " ").astype(object)
    out[t.isna().to_numpy()] = None
    out = out.tolist()
    probe = [i for i in (0, 1, len(t) - 2, len(t) - 1) if 0 <= i < len(t) and out[i] is not None]
    if all(proc(t.iloc[i].tz_localize("UTC")) == out[i] for i in probe):
        return out
    return [None if v is None else proc(v) for v in _py(values)]


def _bools(values, proc) -> bool:
    """Whether ``values`` is a bool column the Boolean processor would turn into 1 and 0."""
    return (not isinstance(values, list) and values.dtype == bool and proc(True) == 1 and proc(False) == 0
            and type(proc(True)) is int)


@contextmanager
def _write_cache(session: Session, n: int) -> Iterator[None]:
    """On SQLite, while at least ``CACHE_ROWS`` rows are updated: 128 MiB of page cache (as the detection loader
    uses), then the connection's own again. With the default 2 MB the transaction's dirty pages spill to the WAL
    row by row: re-ranking 107,000 leaks took 1.23 s in ``save_ranks``, 0.58 s with the larger cache."""
    conn = session.connection()
    if n < CACHE_ROWS or conn.dialect.name != "sqlite" or conn.dialect.driver != "pysqlite":
        yield
        return
    cur = conn.connection.dbapi_connection.cursor()
    (old,) = cur.execute("PRAGMA cache_size").fetchone()
    cur.execute("PRAGMA cache_size=-131072")
    try:
        yield
    finally:
        cur.execute(f"PRAGMA cache_size={int(old)}")
        cur.close()


@contextmanager
def _indexes_rebuilt(session: Session, tab, columns: Iterable[str], n: int) -> Iterator[None]:
    """On SQLite, while at least ``BULK_ROWS`` rows and half of ``tab`` are written: drop the (non-unique) indexes
    over ``columns`` and build them again once afterwards, inside the caller's transaction.

    Updating an index row by row is most of the cost of a large write: setting the leak of a million detections
    took 6.6 s with the ``leak_id`` index kept and 2.4 s dropping and rebuilding it. A failure rolls the drop back
    with everything else.
    """
    conn = session.connection()
    if n < BULK_ROWS or conn.dialect.name != "sqlite" or conn.dialect.driver != "pysqlite":
        yield
        return
    cur = conn.connection.dbapi_connection.cursor()
    try:
        (size,) = cur.execute(f'SELECT max(rowid) FROM "{tab.name}"').fetchone()
        ddl: list[tuple[str, str]] = []
        if n * 2 >= (size or 0):
            wanted = set(columns)
            for _, name, unique, origin, *_ in cur.execute(f'PRAGMA index_list("{tab.name}")').fetchall():
                if unique or origin != "c":  # unique indexes enforce a constraint; automatic ones cannot be dropped
                    continue
                cols = {r[2] for r in cur.execute(f'PRAGMA index_info("{name}")').fetchall()}
                if cols & wanted:
                    (sql,) = cur.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                                         (name,)).fetchone()
                    ddl.append((name, sql))
        for name, _ in ddl:
            cur.execute(f'DROP INDEX "{name}"')
        yield
        for _, sql in ddl:
            cur.execute(sql)
    finally:
        cur.close()


def _with_defaults(tab, cols: dict) -> dict:
    """``cols`` plus the scalar Python-side defaults of the columns they do not name (what an INSERT would use)."""
    n = len(next(iter(cols.values())))
    extra = {c.name: [c.default.arg] * n for c in tab.columns
             if c.name not in cols and c.default is not None and getattr(c.default, "is_scalar", False)}
    return cols | extra


def upsert_frame(session: Session, model, key: str, frame: pd.DataFrame, existing: set | None = None
                 ) -> tuple[int, int]:
    """Insert the rows of ``frame`` whose ``key`` is new and update the others' given columns; returns (inserted,
    updated) counts.

    One statement for all rows: ``INSERT ... ON CONFLICT (key) DO UPDATE`` on SQLite and PostgreSQL (new rows take
    the table's defaults for the columns the frame lacks; an existing row keeps them), else an INSERT of the new
    rows and an UPDATE by key of the others. ``existing`` (the stored keys; read when not given) gives the counts,
    and picks the statements on other databases. No commit.
    """
    tab = model.__table__
    if not len(frame):
        return 0, 0
    if existing is None:
        existing = set(session.execute(select(tab.c[key])).scalars())
    from ..frames import isin  # (pandas: imported when a frame is written, not with the store)

    old = isin(frame[key], existing)
    n_upd = int(old.sum())
    dialect = session.connection().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        ins = dialect_insert(tab)
        changing = [c for c in frame.columns if c != key]
        stmt = ins.on_conflict_do_update(index_elements=[tab.c[key]],
                                         set_={c: ins.excluded[c] for c in changing}) if changing else \
            ins.on_conflict_do_nothing(index_elements=[tab.c[key]])
        _execute_many(session, stmt, _with_defaults(tab, _columns(frame)))
        return len(frame) - n_upd, n_upd
    new = frame[~old]
    if len(new):
        _execute_many(session, insert(tab), _with_defaults(tab, _columns(new)))
    update_frame(session, model, key, frame[old])
    return len(frame) - n_upd, n_upd


def update_frame(session: Session, model, key: str, frame: pd.DataFrame) -> int:
    """Set the other columns of ``frame`` on the rows its ``key`` column names: one UPDATE statement executed for
    every row (``_execute_many``), no ORM objects. No commit. Returns how many rows were given."""
    cols = [c for c in frame.columns if c != key]
    if not len(frame) or not cols:
        return 0
    tab = model.__table__
    stmt = update(tab).where(tab.c[key] == bindparam("_key")).values({c: bindparam(f"_v_{c}") for c in cols})
    # in key order: the rows are then found and rewritten in index order, page after page (re-ranking 107,000
    # leaks: 0.55 -> 0.35 s); updates by a unique key commute, and a repeated key keeps its order (stable)
    frame = frame.sort_values(key, kind="stable")
    values = _columns(frame)
    with _write_cache(session, len(frame)), _indexes_rebuilt(session, tab, cols, len(frame)):
        _execute_many(session, stmt, {"_key": values[key], **{f"_v_{c}": values[c] for c in cols}})
    return len(frame)


def upsert(session: Session, model, key: str, rows: list[dict], existing: set | None = None
           ) -> tuple[list[dict], list[dict]]:
    """:func:`upsert_frame` for a list of dicts (all naming the same columns); returns (inserted, updated) rows."""
    import pandas as pd

    if existing is None:
        existing = set(session.execute(select(model.__table__.c[key])).scalars())
    if rows:
        upsert_frame(session, model, key, pd.DataFrame(rows, columns=list(rows[0]), dtype=object), existing)
    return [r for r in rows if r[key] not in existing], [r for r in rows if r[key] in existing]


def update_rows(session: Session, model, key: str, rows: list[dict]) -> int:
    """:func:`update_frame` for a list of dicts (all naming the same columns)."""
    import pandas as pd

    if not rows:
        return 0
    return update_frame(session, model, key, pd.DataFrame(rows, columns=list(rows[0]), dtype=object))


def clear_store(session: Session) -> None:
    """Empty the data tables. The audit trail and leak history are append-only (triggers refuse DELETE) and stay."""
    from .models import (
        Asset,
        Detection,
        FusionState,
        IngestBatch,
        Leak,
        LeakRank,
        ModelVersion,
        MonitorCoverage,
        Notification,
        Validation,
    )

    for m in (Validation, Notification, Detection, MonitorCoverage, LeakRank, Leak, IngestBatch, ModelVersion,
              Asset):
        session.execute(delete(m))
    # every stored detection changed: a process holding them (``DetectionMemory``) must read them again
    session.execute(update(FusionState).values(generation=FusionState.generation + 1))
    session.commit()
