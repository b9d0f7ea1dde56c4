"""always on: run records, configuration snapshots, watched files, connector states, idempotency keys, alerts

Issue 18: every ingest, fuse, score, train and connector cycle writes a ``runrecord`` (per-stage timings, counts,
model and code versions, the ``configsnapshot`` it used); the folder watcher keeps a ``watchedfile`` per file it
took (so a watcher killed mid-file finishes or redoes that file exactly once); ``connectorstate`` holds each
connector's heartbeat and watermark; ``idempotencykey`` makes ``POST /detections`` safe to retry; ``alert`` and
``alertdelivery`` are the inbox and what was sent where.

Self-contained: it only adds tables, each skipped when it exists (a store built by ``create_all`` from newer
models), so it can be re-chained after other migrations without change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString
T = sqlmodel.sql.sqltypes.UTCDateTime


def _index(table: str, column: str, unique: bool = False) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=unique)


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "runrecord" not in have:
        op.create_table(
            "runrecord",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("kind", S(), nullable=False),
            sa.Column("source", S(), nullable=True),
            sa.Column("target", S(), nullable=True),
            sa.Column("actor", S(), nullable=False),
            sa.Column("started_at", T(), nullable=False),
            sa.Column("ended_at", T(), nullable=False),
            sa.Column("seconds", sa.Float(), nullable=False),
            sa.Column("stages", S(), nullable=False),
            sa.Column("n_in", sa.Integer(), nullable=False),
            sa.Column("n_out", sa.Integer(), nullable=False),
            sa.Column("n_rejected", sa.Integer(), nullable=False),
            sa.Column("detail", S(), nullable=True),
            sa.Column("model_version", sa.Integer(), nullable=True),
            sa.Column("code_version", S(), nullable=False),
            sa.Column("config_hash", S(), nullable=False),
            sa.Column("outcome", S(), nullable=False),
            sa.Column("error", S(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        _index("runrecord", "kind")
    if "configsnapshot" not in have:
        op.create_table(
            "configsnapshot",
            sa.Column("hash", S(), nullable=False),
            sa.Column("content", S(), nullable=False),
            sa.Column("created_at", T(), nullable=False),
            sa.PrimaryKeyConstraint("hash"),
        )
    if "watchedfile" not in have:
        op.create_table(
            "watchedfile",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("folder", S(), nullable=False),
            sa.Column("name", S(), nullable=False),
            sa.Column("sha256", S(), nullable=False),
            sa.Column("size", sa.Integer(), nullable=False),
            sa.Column("state", S(), nullable=False),
            sa.Column("batch_id", sa.Integer(), nullable=True),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("reason", S(), nullable=True),
            sa.Column("first_seen_at", T(), nullable=False),
            sa.Column("updated_at", T(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        _index("watchedfile", "sha256")
    if "connectorstate" not in have:
        op.create_table(
            "connectorstate",
            sa.Column("name", S(), nullable=False),
            sa.Column("kind", S(), nullable=False),
            sa.Column("watermark", T(), nullable=True),
            sa.Column("last_run_at", T(), nullable=True),
            sa.Column("last_ok_at", T(), nullable=True),
            sa.Column("last_error", S(), nullable=True),
            sa.Column("n_runs", sa.Integer(), nullable=False),
            sa.Column("n_failed", sa.Integer(), nullable=False),
            sa.Column("n_loaded", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "idempotencykey" not in have:
        op.create_table(
            "idempotencykey",
            sa.Column("key", S(), nullable=False),
            sa.Column("actor", S(), nullable=False),
            sa.Column("sha256", S(), nullable=False),
            sa.Column("status_code", sa.Integer(), nullable=False),
            sa.Column("response", S(), nullable=False),
            sa.Column("created_at", T(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
    if "alert" not in have:
        op.create_table(
            "alert",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("key", S(), nullable=False),
            sa.Column("rule", S(), nullable=False),
            sa.Column("kind", S(), nullable=False),
            sa.Column("severity", S(), nullable=False),
            sa.Column("title", S(), nullable=False),
            sa.Column("detail", S(), nullable=True),
            sa.Column("leak_id", S(), nullable=True),
            sa.Column("asset_id", S(), nullable=True),
            sa.Column("operator", S(), nullable=True),
            sa.Column("asset_type", S(), nullable=True),
            sa.Column("team", S(), nullable=False),
            sa.Column("event_at", T(), nullable=True),
            sa.Column("created_at", T(), nullable=False),
            sa.Column("state", S(), nullable=False),
            sa.Column("snoozed_until", T(), nullable=True),
            sa.Column("handled_by", S(), nullable=True),
            sa.Column("handled_at", T(), nullable=True),
            sa.Column("reason", S(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("key"),
        )
        _index("alert", "rule")
        _index("alert", "leak_id")
    if "alertdelivery" not in have:
        op.create_table(
            "alertdelivery",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("alert_id", sa.Integer(), nullable=False),
            sa.Column("channel", S(), nullable=False),
            sa.Column("target", S(), nullable=False),
            sa.Column("state", S(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", T(), nullable=True),
            sa.Column("last_error", S(), nullable=True),
            sa.Column("sent_at", T(), nullable=True),
            sa.Column("created_at", T(), nullable=False),
            sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        _index("alertdelivery", "alert_id")


def downgrade() -> None:
    for table in ("alertdelivery", "alert", "idempotencykey", "connectorstate", "watchedfile", "configsnapshot",
                  "runrecord"):
        op.drop_table(table)
