"""indexes for the polled API and the roll-ups: leak rank, band, status, asset, last seen; asset operator; audit
action and target

Issue 22. ``/leaks`` is answered from the effective ranking computed once per store version (``desk.Snapshot``),
so its pages are not SQL queries; these indexes serve what still reads by column: the newest audit event of an
action (the clock of the scores, read by every cold answer), a leak's audit history (``/leaks/{id}``), and
queries by rank, band, status, asset, operator or last sighting (roll-ups per site and operator, SQL clients).

Self-contained on purpose: it only adds indexes (never on a table it rebuilds), so it can be re-chained after
other migrations without change. Follows 0006 (always on).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [  # (table, column)
    ("leak", "rank"), ("leak", "risk_band"), ("leak", "status"), ("leak", "asset_id"), ("leak", "last_seen"),
    ("asset", "operator"), ("auditevent", "action"), ("auditevent", "target"),
]


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    for table, column in INDEXES:
        name = f"ix_{table}_{column}"
        if column not in {c["name"] for c in insp.get_columns(table)}:  # leak.rank: moved to leak_rank by 0008
            continue
        if name not in {i["name"] for i in insp.get_indexes(table)}:  # a store made by newer models has them
            op.create_index(name, table, [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(INDEXES):
        op.drop_index(f"ix_{table}_{column}", table_name=table)
