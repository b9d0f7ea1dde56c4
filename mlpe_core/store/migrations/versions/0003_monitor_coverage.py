"""monitor coverage: the windows in which a sensor watched a site (detected, watching, offline)

Real monitors report negative windows (watched, saw nothing) and go offline; aircraft fly passes that see
no plume. Silence is only evidence where a sensor watched, so those windows are kept (issue 14).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a store made before migrations by newer models (create_all, then stamped at 0001) already has it
    if "monitorcoverage" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "monitorcoverage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("asset_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("start_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("end_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("detection_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["ingestbatch.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitorcoverage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitorcoverage_source_name"), ["source_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitorcoverage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitorcoverage_source_name"))
    op.drop_table("monitorcoverage")
