"""Schema migrations: a new store is built by them, an old store upgrades in place, and the
migrations describe exactly the tables the code uses (a model change without a migration fails here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlmodel import Session, SQLModel

from mlpe_core.store.db import alembic_config, get_engine
from mlpe_core.store.models import Asset


def test_new_store_is_at_head_and_matches_models(tmp_path: Path) -> None:
    eng = get_engine(str(tmp_path / "new.db"))
    with eng.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models changed without a migration: {diff[:3]}"


def test_store_made_before_migrations_upgrades_and_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    legacy = create_engine(f"sqlite:///{db}")
    SQLModel.metadata.create_all(legacy)  # how stores were made before migrations
    with Session(legacy) as s:
        s.add(Asset(asset_id="A1", latitude=32.0, longitude=-102.0))
        s.commit()
    legacy.dispose()
    eng = get_engine(str(db))
    assert "alembic_version" in inspect(eng).get_table_names()
    with Session(eng) as s:
        assert s.get(Asset, "A1").latitude == 32.0
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from alembic_version").fetchone()[0] == 1
    con.close()


def test_opening_twice_is_idempotent(tmp_path: Path) -> None:
    db = str(tmp_path / "twice.db")
    get_engine(db).dispose()
    eng = get_engine(db)
    with eng.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head


def test_backup_and_restore_round_trip(tmp_path: Path) -> None:
    import subprocess
    import sys

    db, bak = tmp_path / "live.db", tmp_path / "copy.db"
    eng = get_engine(str(db))
    with Session(eng) as s:
        s.add(Asset(asset_id="A1", latitude=1.0, longitude=2.0))
        s.commit()

    def mlpe(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mlpe_core.cli", "--db", str(db), *a], capture_output=True, text=True
        )

    assert mlpe("backup", "-o", str(bak)).returncode == 0
    r = mlpe("backup", "-o", str(bak))
    assert r.returncode == 2 and "already exists" in r.stderr
    with Session(eng) as s:
        s.delete(s.get(Asset, "A1"))
        s.commit()
    eng.dispose()
    assert mlpe("restore", str(bak)).returncode == 0
    with Session(get_engine(str(db))) as s:
        assert s.get(Asset, "A1") is not None
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    r = mlpe("restore", str(junk))
    assert r.returncode == 2 and "junk.db" in r.stderr


def test_store_at_0001_upgrades_in_place_dropping_the_time_index(tmp_path: Path) -> None:
    from alembic import command

    db = tmp_path / "v1.db"
    eng = create_engine(f"sqlite:///{db}")
    with eng.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.exec_driver_sql(
            "INSERT INTO detection (detection_id, source_type, source_name, observed_at, latitude, longitude, "
            "location_uncertainty_m, ambiguous) "
            "VALUES ('D1', 'ogi', 'OGI', '2026-06-01 00:00:00.000000', 32, -102, 3, 0)")
    assert "ix_detection_observed_at" in {i["name"] for i in inspect(eng).get_indexes("detection")}
    eng.dispose()
    eng = get_engine(str(db))
    assert "ix_detection_observed_at" not in {i["name"] for i in inspect(eng).get_indexes("detection")}
    with eng.connect() as conn:
        assert conn.exec_driver_sql("SELECT detection_id FROM detection").scalars().all() == ["D1"]
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head
    assert "monitorcoverage" in inspect(eng).get_table_names()  # 0003: the coverage windows of issue 14


def test_0003_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    from alembic import command

    eng = get_engine(str(tmp_path / "v3.db"))
    with eng.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    assert "monitorcoverage" not in inspect(eng).get_table_names()
    with eng.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert "monitorcoverage" in inspect(eng).get_table_names()


def test_store_at_0002_chains_its_existing_events_and_refuses_edits(tmp_path: Path) -> None:
    """Migration 0004: events written before it are chained in id order, then triggers make them append-only;
    a downgrade removes the triggers and columns again."""
    import pytest
    from alembic import command
    from sqlalchemy.exc import DatabaseError

    from mlpe_core.store.audit import verify_all

    db = tmp_path / "v2.db"
    eng = create_engine(f"sqlite:///{db}")
    with eng.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
        for i in range(3):
            conn.exec_driver_sql("INSERT INTO auditevent (at, actor, action, target, detail) VALUES "
                                 f"('2026-06-0{i + 1} 10:00:00.000000', 'ana', 'note', 'L000001', '{{\"i\": {i}}}')")
        conn.exec_driver_sql("INSERT INTO leakevent (leak_id, at, event, from_status, to_status, actor, recorded_at) "
                             "VALUES ('L000001', '2026-06-01 10:00:00.000000', 'dispatch', 'open', 'dispatched', "
                             "'ana', '2026-06-01 10:00:00.000000')")
    eng.dispose()
    eng = get_engine(str(db))
    with Session(eng) as s:
        reports = verify_all(s)
    assert [(r.table, r.ok, r.n) for r in reports] == [("auditevent", True, 3), ("leakevent", True, 1)]
    raw = sqlite3.connect(db)
    for sql in ("UPDATE auditevent SET actor = 'eve'", "DELETE FROM auditevent WHERE id = 2",
                "UPDATE leakevent SET to_status = 'closed'", "DELETE FROM leakevent"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute(sql)
    raw.close()
    with eng.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
        conn.exec_driver_sql("DELETE FROM auditevent WHERE id = 3")  # no trigger any more
        assert "hash" not in {c["name"] for c in inspect(conn).get_columns("auditevent")}
    with pytest.raises(DatabaseError, match="append-only"), eng.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        conn.exec_driver_sql("DELETE FROM auditevent")


def test_store_at_0007_moves_the_ranks_to_their_own_table_and_back(tmp_path: Path) -> None:
    """0008: the model's ranks leave the wide leak table for ``leak_rank`` (same ranks, unranked leaks without a
    row), and a downgrade puts them back in the column."""
    from alembic import command

    db = tmp_path / "v7.db"
    eng = create_engine(f"sqlite:///{db}")
    with eng.begin() as conn:
        command.upgrade(alembic_config(conn), "0007")
        for i, rank in ((1, 2), (2, None), (3, 1)):
            conn.exec_driver_sql(
                "INSERT INTO leak (leak_id, active, latitude, longitude, radius_m, n_detections, n_sources, "
                "source_types, first_seen, last_seen, n_ambiguous, status, rate_quantified, failed_repair, rank) "
                f"VALUES ('L00000{i}', 1, 32, -102, 5, 1, 1, 'ogi', '2026-06-01 00:00:00.000000', "
                f"'2026-06-01 00:00:00.000000', 0, 'open', 0, 0, {'NULL' if rank is None else rank})")
    eng.dispose()
    eng = get_engine(str(db))
    assert "rank" not in {c["name"] for c in inspect(eng).get_columns("leak")}
    with Session(eng) as s:
        from mlpe_core import store

        got = store.leaks_frame(s, columns=["status"])
        assert got["leak_id"].tolist() == ["L000003", "L000001", "L000002"]  # rank order, unranked last
        assert got["rank"].tolist()[:2] == [1, 2] and got["rank"].isna().tolist() == [False, False, True]
        assert store.rank_of(s, "L000001") == 2 and store.rank_of(s, "L000002") is None
    with eng.begin() as conn:
        command.downgrade(alembic_config(conn), "0007")
        back = dict(conn.exec_driver_sql("SELECT leak_id, rank FROM leak").all())
    assert back == {"L000001": 2, "L000002": None, "L000003": 1}
    assert "leak_rank" not in inspect(eng).get_table_names()
