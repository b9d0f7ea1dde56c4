"""the model's rank in a table of its own (``leak_rank``), not a column of ``leak``

Issue 18. When 500 new leaks arrive in a store of 100,000, most ranks move by a few places; every move rewrote a
wide ``leak`` row (reasons, contributions, candidates), so a re-rank dirtied the whole leak table: 0.5 s of
UPDATEs and 0.4 s of commit at 1M detections. The same moves in a two-column table cost 0.14 s.

Upgrade copies the stored ranks, then drops ``leak.rank`` and its index (``ALTER TABLE ... DROP COLUMN``:
SQLite 3.35+ and PostgreSQL; the leak table is not rebuilt). Downgrade puts them back. Skips what a store built
from newer models already has. Follows 0007.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    if "leak_rank" not in insp.get_table_names():
        op.create_table(
            "leak_rank",
            sa.Column("leak_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("rank", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("leak_id"),
        )
        op.create_index("ix_leak_rank_rank", "leak_rank", ["rank"], unique=False)
    if "rank" in {c["name"] for c in insp.get_columns("leak")}:
        op.execute("INSERT INTO leak_rank (leak_id, rank) SELECT leak_id, rank FROM leak WHERE rank IS NOT NULL")
        if "ix_leak_rank" in {i["name"] for i in insp.get_indexes("leak")}:
            op.drop_index("ix_leak_rank", table_name="leak")
        op.execute("ALTER TABLE leak DROP COLUMN rank")


def downgrade() -> None:
    op.execute("ALTER TABLE leak ADD COLUMN rank INTEGER")
    op.execute("UPDATE leak SET rank = (SELECT r.rank FROM leak_rank r WHERE r.leak_id = leak.leak_id)")
    op.create_index("ix_leak_rank", "leak", ["rank"], unique=False)
    op.drop_index("ix_leak_rank_rank", table_name="leak_rank")
    op.drop_table("leak_rank")
