"""Dispatch: the list of leaks a crew should visit next, from the ranking.

Only open leaks that no crew has validated yet are listed: a leak already visited waits for its
outcome's own workflow (repair clocks), not for another visit.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from .schema import DISPATCH_EXPORT_COLUMNS

SETTINGS = Path(__file__).resolve().parent.parent / "config" / "dispatch.yaml"
DISPATCHABLE = ("open",)


def crew_capacity(path: str | Path | None = None) -> int:
    """Visits per day for all crews together (``config/dispatch.yaml``)."""
    cfg = yaml.safe_load(Path(path or SETTINGS).read_text(encoding="utf-8")) or {}
    return int(cfg.get("crews", 3)) * int(cfg.get("visits_per_crew_per_day", 4))


def dispatch_list(leaks: pd.DataFrame, validated: set[str] | None = None, k: int | None = None) -> pd.DataFrame:
    """Top ``k`` open, unvalidated leaks by rank, with the contract's dispatch columns."""
    k = crew_capacity() if k is None else int(k)
    if k < 0:
        raise ValueError("--top must be ≥ 0")
    validated = validated or set()
    d = leaks[leaks["status"].isin(DISPATCHABLE) & ~leaks["leak_id"].isin(validated) & leaks["rank"].notna()]
    d = d.sort_values("rank").head(k).copy()
    d["rank"] = range(1, len(d) + 1)
    return d.reindex(columns=list(DISPATCH_EXPORT_COLUMNS))
