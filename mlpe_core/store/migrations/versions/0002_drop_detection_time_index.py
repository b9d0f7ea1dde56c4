"""drop the detection time index

Nothing queries detections by time in SQL (time windows are applied to frames), while keeping the
index up to date was a seventh of a 1M-row ingest (benchmarks/ingest.py: 7.5 s -> 5.6 s).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 20:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # in place (no table copy); IF EXISTS: a store made before migrations by newer models never had it
    op.execute("DROP INDEX IF EXISTS ix_detection_observed_at")


def downgrade() -> None:
    op.create_index("ix_detection_observed_at", "detection", ["observed_at"], unique=False)
