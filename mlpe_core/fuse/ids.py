"""Stable leak ids: a re-fusion keeps the id of every leak that still exists (validations stay attached)."""

from __future__ import annotations

import pandas as pd


def carry_ids(old_members: pd.Series, new_labels: pd.Series, existing_ids: set[str], prefix: str = "L") -> dict:
    """Map new labels to leak ids, keeping an old id wherever its detections mostly stayed together.

    ``old_members``: detection key → previous leak id (NaN when new). ``new_labels``: the same keys →
    new label. Greedy by overlap, so each old id goes to at most one new leak.
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
    nums = [int(s[len(prefix) :]) for s in existing_ids if s.startswith(prefix) and s[len(prefix) :].isdigit()]
    nxt = max(nums, default=0) + 1
    for new in sorted(df["new"].unique()):
        if new not in mapping:
            mapping[new] = f"{prefix}{nxt:06d}"
            nxt += 1
    return mapping
