"""trust: hash-chained, append-only audit and leak events; chain heads; fusion generation; API tokens

* ``auditevent`` and ``leakevent`` gain ``prev_hash`` and ``hash``; existing events are chained in id order
  (``mlpe_core.store.audit.event_hash``), and ``chainhead`` records each chain's newest hash and length.
* Triggers refuse UPDATE and DELETE on both tables (SQLite ``RAISE(ABORT)``; a PostgreSQL trigger function,
  also on TRUNCATE). They are created after the backfill, and dropped first on downgrade.
* ``fusionstate`` holds the fusion generation that fusion and scoring writes compare-and-swap on.
* ``apitoken`` holds bearer tokens (their SHA-256 only).

Self-contained: every step checks what exists, so a store built by ``create_all`` from newer models (the
pre-migration path in ``db.create_tables``) upgrades too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAINED = ("auditevent", "leakevent")


def _backfill(conn, table: str) -> None:
    """Chain the events already stored, oldest id first, and write the chain head."""
    from mlpe_core.store.audit import CHAIN_FIELDS, GENESIS, event_hash

    fields = CHAIN_FIELDS[table]
    t = sa.table(table, sa.column("id", sa.Integer), sa.column("prev_hash", sa.String), sa.column("hash", sa.String),
                 *(sa.column(k, sqlmodel.sql.sqltypes.UTCDateTime() if k in ("at", "recorded_at") else sa.String)
                   for k in fields))
    prev, n, last = GENESIS, 0, -1
    while True:
        rows = conn.execute(sa.select(t).where(t.c.id > last).order_by(t.c.id).limit(5000)).all()
        if not rows:
            break
        updates = []
        for r in rows:
            m = r._mapping
            h = event_hash(table, {k: m[k] for k in fields}, prev)
            updates.append({"rid": m["id"], "p": prev, "h": h})
            prev, n, last = h, n + 1, m["id"]
        conn.execute(t.update().where(t.c.id == sa.bindparam("rid")).values(prev_hash=sa.bindparam("p"),
                                                                           hash=sa.bindparam("h")), updates)
    heads = sa.table("chainhead", sa.column("name", sa.String), sa.column("hash", sa.String),
                     sa.column("n", sa.Integer))
    conn.execute(heads.delete().where(heads.c.name == table))
    conn.execute(heads.insert().values(name=table, hash=prev, n=n))


def upgrade() -> None:
    conn = op.get_bind()
    insp = sa.inspect(conn)
    tables = set(insp.get_table_names())
    if "chainhead" not in tables:
        op.create_table(
            "chainhead",
            sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("n", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "fusionstate" not in tables:
        op.create_table(
            "fusionstate",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("generation", sa.Integer(), nullable=False),
            sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    if "apitoken" not in tables:
        op.create_table(
            "apitoken",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("username", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("label", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
            sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
            sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("token_hash"),
        )
        with op.batch_alter_table("apitoken", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_apitoken_username"), ["username"], unique=False)
    fs = sa.table("fusionstate", sa.column("id", sa.Integer), sa.column("generation", sa.Integer))
    if conn.execute(sa.select(sa.func.count()).select_from(fs)).scalar_one() == 0:
        conn.execute(fs.insert().values(id=1, generation=0))
    for table in CHAINED:
        have = {c["name"] for c in insp.get_columns(table)}
        for col in ("prev_hash", "hash"):
            if col not in have:
                op.add_column(table, sa.Column(col, sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        _drop_triggers(conn, table)
        _backfill(conn, table)
        _create_triggers(conn, table)


def _create_triggers(conn, table: str) -> None:
    if conn.dialect.name == "sqlite":
        for what in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{what.lower()} BEFORE {what} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {what} refused'); END")
    elif conn.dialect.name == "postgresql":
        op.execute("""
            CREATE OR REPLACE FUNCTION mlpe_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
            END;
            $$ LANGUAGE plpgsql""")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION mlpe_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION mlpe_append_only()")


def _drop_triggers(conn, table: str) -> None:
    if conn.dialect.name == "sqlite":
        for what in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{what}")
    elif conn.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")


def downgrade() -> None:
    conn = op.get_bind()
    for table in CHAINED:
        _drop_triggers(conn, table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("hash")
            batch_op.drop_column("prev_hash")
    if conn.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS mlpe_append_only()")
    with op.batch_alter_table("apitoken", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apitoken_username"))
    op.drop_table("apitoken")
    op.drop_table("fusionstate")
    op.drop_table("chainhead")
