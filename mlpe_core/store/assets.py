"""The asset registry: reads and bulk upserts."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .common import _frame, upsert
from .models import Asset


def assets_frame(session: Session) -> pd.DataFrame:
    return _frame(session, select(Asset))


def upsert_assets(session: Session, assets: pd.DataFrame) -> tuple[int, int]:
    """Insert new assets and update known ones in bulk (no commit); returns (new, updated)."""
    existing = set(session.execute(select(Asset.asset_id)).scalars())
    recs = assets.astype(object).where(assets.notna(), None).to_dict(orient="records")
    new, upd = upsert(session, Asset, "asset_id", recs, existing)
    return len(new), len(upd)
