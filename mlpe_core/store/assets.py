"""The asset registry: reads and bulk upserts."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .common import read_frame, read_frame_in, upsert_frame
from .models import Asset


def assets_frame(session: Session, columns: Iterable[str] | None = None, ids: Iterable[str] | None = None
                 ) -> pd.DataFrame:
    """Every asset, or those named in ``ids`` (an indexed read: a re-score's clocks read the types of a few
    thousand of 100,000 assets); only ``columns`` when given (attribution needs the position, compliance the
    type)."""
    cols = list(columns) if columns is not None else None
    if ids is None:
        return read_frame(session, Asset, cols)
    return read_frame_in(session, Asset, cols if cols is not None else [c.name for c in Asset.__table__.columns],
                         Asset.asset_id, sorted({str(i) for i in ids}))


def upsert_assets(session: Session, assets: pd.DataFrame) -> tuple[int, int]:
    """Insert new assets and update known ones (every given column), one statement per chunk of rows (no
    commit); returns (new, updated): updated counts every row whose asset_id was already stored."""
    existing = set(session.execute(select(Asset.asset_id)).scalars())
    return upsert_frame(session, Asset, "asset_id", assets, existing)
