"""notifications, and the reason beside each leak's risk band

A notification (a regulator's or program's notice about an emission) starts the legal clocks that the
rule it falls under sets (issue 21): the table keeps each notice once (its own id is unique), the leak it
was matched to and how. ``leak.band_reason`` keeps the sentence that says why a leak's band is what it is.

Self-contained on purpose: it only adds a table and a nullable column, so it can be re-chained after
other migrations without change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a store made before migrations by newer models (stamped 0001, then upgraded) may already have both
    insp = sa.inspect(op.get_bind())
    if "band_reason" not in {c["name"] for c in insp.get_columns("leak")}:
        with op.batch_alter_table("leak", schema=None) as batch_op:
            batch_op.add_column(sa.Column("band_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    if "notification" in insp.get_table_names():
        return
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("program", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("notifier", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("detection_ref", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("rate_kg_h", sa.Float(), nullable=True),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("leak_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("match_method", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("match_distance_m", sa.Float(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["ingestbatch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notification_id", name="uq_notification_id"),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_leak_id"), ["leak_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("leak", schema=None) as batch_op:
        batch_op.drop_column("band_reason")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_leak_id"))
    op.drop_table("notification")
