"""Stable leak ids: a re-fusion keeps the id of every leak that still exists (validations stay attached)."""

from __future__ import annotations

import pandas as pd

from ..schema import number_after


def carry_ids(old_members: pd.Series, new_labels: pd.Series, existing_ids: set[str], prefix: str = "L",
              next_number: int | None = None) -> dict:
    """Map new labels to leak ids, keeping an old id wherever its detections mostly stayed together.

    ``old_members``: detection key → previous leak id (NaN when new). ``new_labels``: the same keys →
    new label. Greedy by overlap, so each old id goes to at most one new leak. New ids are numbered from
    ``next_number`` when given (``store.next_leak_number``), else from one more than the largest in ``existing_ids``.
    """
    df = pd.DataFrame({"old": old_members, "new": new_labels}).dropna(subset=["new"])
    pairs = df.dropna(subset=["old"]).groupby(["new", "old"]).size().sort_values(ascending=False)
    mapping: dict = {}
    used: set = set()
    for (new, old), _ in pairs.items():
        if new in mapping or old in used:
            continue
        mapping[new] = old
        used.add(old)
    nxt = number_after(existing_ids, prefix) if next_number is None else next_number
    for new in sorted(df["new"].unique()):
        if new not in mapping:
            mapping[new] = f"{prefix}{nxt:06d}"
            nxt += 1
    return mapping
