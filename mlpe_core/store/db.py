"""Engine and tables. SQLite file by default; any SQLAlchemy URL for a team.

SQLite runs in WAL mode with a busy timeout so the app, the command line and a second user can
write at once without "database is locked" failures.
"""

from __future__ import annotations

import os
import weakref
from importlib import resources
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from ..errors import BadInput

DEFAULT_DB = "data/mlpe.db"
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()  # every engine made here, for dispose_engines


class StoreUnavailable(RuntimeError):
    """The store cannot be opened: the message names it and says what to fix (the command line's exit 2)."""


def named(db: str | None = None) -> str:
    """The store asked for, as given: ``--db``, else ``MLPE_DB``, else the default (a path or a URL)."""
    return db or os.environ.get("MLPE_DB") or DEFAULT_DB


def resolve_url(db: str | None = None) -> str:
    """A path or URL from ``--db``, ``MLPE_DB`` or the default; a path becomes a SQLite URL (its folder is made)."""
    value = named(db)
    if "://" in value:
        return value
    path = Path(value).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot open the store {path}: {_folder_problem(path.parent, exc)}") from None
    return f"sqlite:///{path}"


def sqlite_file(db: str | None = None) -> Path | None:
    """The file of the SQLite store that ``--db``, ``MLPE_DB`` or the default names, without making anything; None
    for another database or an in-memory one."""
    value = named(db)
    if "://" not in value:
        return Path(value).expanduser()
    from sqlalchemy.engine import make_url

    try:
        url = make_url(value)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: opening it will say so
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.database.startswith(
            "file:"):
        return None
    return Path(url.database).expanduser()


def _folder_problem(folder: Path, exc: OSError) -> str:
    """Why ``folder`` cannot be made: the part of it that is a file, else the system's reason."""
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                return f"{part} is a file, not a folder (pass --db with another path)"
            break
    return f"cannot make its folder {folder}: {exc.strerror or exc} (check its permissions or pass --db)"


def _open_problem(path: Path, exc: Exception) -> str | None:
    """What keeps the SQLite store ``path`` from opening, for a person (None when the error is not about opening)."""
    msg = str(getattr(exc, "orig", exc)).lower()
    opening = ("unable to open", "readonly database", "read-only", "not a database", "disk i/o", "permission")
    if not any(w in msg for w in opening):
        return None
    if path.is_dir():
        return "it is a folder, not a store file (pass --db FOLDER/mlpe.db)"
    if path.exists() and not os.access(path, os.R_OK):
        return "the file is not readable (check its permissions or pass --db)"
    if "not a database" in msg:
        return "the file is not a SQLite database (pass --db with the store's path)"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only (check its permissions or pass --db)"
    if not os.access(path.parent, os.W_OK) or "unable to open" in msg or "readonly" in msg:
        return ("the folder is not writable (SQLite writes the store and its journal there; check its permissions "
                "or pass --db)")
    return str(getattr(exc, "orig", exc)).splitlines()[0]


def _unavailable(url: str, exc: Exception) -> StoreUnavailable | None:
    """The error to raise instead of ``exc`` when ``exc`` means the store at ``url`` cannot be opened."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DatabaseError, OperationalError

    if not isinstance(exc, DatabaseError):
        return None
    path = sqlite_file(url)
    if path is not None:
        why = _open_problem(path, exc)
        return StoreUnavailable(f"cannot open the store {path}: {why}") if why else None
    if url.startswith("sqlite") or not isinstance(exc, OperationalError):
        return None
    shown = make_url(url).render_as_string(hide_password=True)
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return StoreUnavailable(f"cannot open the store {shown}: {first} (check the URL and that the database server "
                            "is running, or pass --db)")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised through every engine
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def get_engine(db: str | None = None) -> Engine:
    """Create the engine and the tables (idempotent)."""
    url = resolve_url(db)
    kwargs: dict = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if url in ("sqlite://", "sqlite:///:memory:"):
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        create_tables(engine)
    except Exception as exc:
        engine.dispose()
        why = _unavailable(url, exc)
        if why is None:
            raise
        raise why from None  # one line naming the store, not SQLAlchemy's error and its link
    _ENGINES.add(engine)
    return engine


def dispose_engines() -> None:
    """Close every pooled connection of the engines made by :func:`get_engine` (SQLite then checkpoints its WAL
    and removes it, as it does when a process ends normally)."""
    for engine in list(_ENGINES):
        engine.dispose()


# packaged with the code (pyproject package-data) and found through importlib.resources, so a wheel install works
MIGRATIONS = Path(str(resources.files("mlpe_core.store") / "migrations"))


def alembic_config(connection=None):
    """Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def schema_head() -> str:
    """The newest migration's revision, read from the file names (``NNNN_what.py`` declares ``revision = "NNNN"``;
    ``tests/test_migrations.py`` checks this agrees with Alembic's own head)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def at_head(engine: Engine) -> bool:
    """True when the store is already at the newest migration: one query, no Alembic import (which alone cost a
    command a third of a second)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except Exception:  # noqa: BLE001 - no version table (new or pre-migration store): let Alembic decide
        return False
    return rows == [schema_head()]


def create_tables(engine: Engine) -> None:
    """Bring the schema to the newest migration.

    A new store is built by the migrations; a store made before migrations existed (tables but no
    ``alembic_version``) is stamped at the first revision and upgraded from there, so an existing
    store upgrades in place and nothing in it is lost. A store already at the newest revision is left
    alone without loading Alembic.
    """
    if at_head(engine):
        return
    from alembic import command
    from sqlalchemy import inspect

    from . import models  # noqa: F401  (registers the tables for the migrations' metadata)

    with engine.begin() as conn:
        tables = set(inspect(conn).get_table_names())
        cfg = alembic_config(conn)
        if tables and "alembic_version" not in tables:
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")


def _sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///") or url in ("sqlite:///:memory:",):
        raise BadInput(f"backup and restore work on SQLite file stores; for '{url.split('://')[0]}' use the "
                       "database's own tools (e.g. pg_dump)")
    return url[len("sqlite:///"):]


def backup(db: str | None, dest: str | Path) -> int:
    """Consistent online copy of the store (SQLite backup API: safe while others write). Returns bytes."""
    import sqlite3

    src = _sqlite_path(resolve_url(db))
    dest = Path(dest)
    if dest.exists():
        raise BadInput(f"{dest}: already exists; choose a new file name")
    with sqlite3.connect(src) as s, sqlite3.connect(dest) as d:
        s.backup(d)
    return dest.stat().st_size


def restore(db: str | None, source: str | Path, actor: str = "system", allow_open_mode: bool = False) -> Path:
    """Replace the store's contents with a backup, after checking it; returns where the replaced store was kept.

    The backup must be an intact MLPE store whose audit chains verify (checked on a migrated copy, so an older
    backup is chained first). A backup without users is refused for a store that has them unless
    ``allow_open_mode`` (it would switch sign-in off). The replaced store is first copied beside the live one
    (``<name>.replaced-<UTC time>.db``), and the restore is appended to the restored audit trail with the
    backup's hash, the chain heads of both and where the replaced store went. The caller checks the role.
    """
    import hashlib
    import sqlite3
    import tempfile
    from datetime import UTC, datetime

    from sqlalchemy import func, select
    from sqlmodel import Session

    from .audit import audit, verify_all
    from .models import User

    source = Path(source)
    if not source.exists():
        raise BadInput(f"{source}: file not found")
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as s:
            names = {r[0] for r in s.execute("select name from sqlite_master where type='table'")}
            ok = s.execute("pragma integrity_check").fetchone()[0] == "ok"
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{source}: not a SQLite database ({exc})") from exc
    missing = {"detection", "leak", "validation", "alembic_version"} - names
    if missing or not ok:
        raise BadInput(f"{source}: not an MLPE backup (missing tables {sorted(missing)}, integrity {ok})")
    dst = Path(_sqlite_path(resolve_url(db)))
    with tempfile.TemporaryDirectory() as tmp:
        check = Path(tmp) / "check.db"
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as s, sqlite3.connect(check) as d:
            s.backup(d)
        eng = get_engine(str(check))
        try:
            with Session(eng) as s:
                broken = [r for r in verify_all(s) if not r.ok]
                backup_heads = {r.table: r.head for r in verify_all(s)}
                backup_users = int(s.execute(select(func.count()).select_from(User)).scalar_one())
        finally:
            eng.dispose()
    if broken:
        raise BadInput(f"{source}: refused, its audit trail was tampered with ({broken[0].line()})")
    replaced_heads: dict[str, str] = {}
    live_users = 0
    if dst.exists():
        eng = get_engine(str(dst))
        try:
            with Session(eng) as s:
                replaced_heads = {r.table: r.head for r in verify_all(s)}
                live_users = int(s.execute(select(func.count()).select_from(User)).scalar_one())
        finally:
            eng.dispose()
    if live_users and not backup_users and not allow_open_mode:
        raise BadInput(f"{source}: has no users while this store has {live_users}; restoring it would switch "
                       "sign-in off (open mode). Pass --allow-open-mode if that is what you want")
    kept = dst.with_name(f"{dst.stem}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%S}{dst.suffix or '.db'}")
    had_live = dst.exists()
    if had_live:
        with sqlite3.connect(dst) as s, sqlite3.connect(kept) as d:
            s.backup(d)
    h = hashlib.sha256()
    with open(source, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as s, sqlite3.connect(dst) as d:
        s.backup(d)
    eng = get_engine(str(dst))
    try:
        with Session(eng) as s:
            audit(s, actor, "restore", str(source.name),
                  {"sha256": h.hexdigest(), "backup_heads": backup_heads, "replaced_heads": replaced_heads,
                   "replaced_store_kept_as": str(kept) if had_live else None})
            s.commit()
    finally:
        eng.dispose()
    return kept


def get_engine_raw(db: str | None) -> Engine:
    """An engine without running migrations (used right after a restore, which migrates)."""
    return create_engine(resolve_url(db))
