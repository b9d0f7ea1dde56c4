"""Coverage exports: the windows in which a sensor watched a site, one row per window, no detections.

``source_name``, a site column, ``start_at``, ``end_at`` and ``state`` (``detected``, ``watching``, ``offline``;
or the timelines' P, N, NA), optional ``source_type`` (default ``continuous_monitor``) and ``detection_id``
(for a ``detected`` window: the detection, loaded from another file, whose window it is). What a monitoring
system knows about its own uptime; the simulator writes its monitors' coverage this way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import _pick
from .windows import site_column, text_col, vendor_times, window_frame

COVERAGE_START = ("start_at", "window_start")
COVERAGE_END = ("end_at", "window_end")
_STATES = {"detected": "detected", "p": "detected", "watching": "watching", "n": "watching", "offline": "offline",
           "na": "offline"}


def is_coverage(cols: set[str]) -> bool:
    return {"state", "source_name"} <= cols and bool(_pick(cols, COVERAGE_START)) and bool(_pick(cols, COVERAGE_END))


def map_coverage(raw: pd.DataFrame, source_name: str | None, label: str, asset: str | None,
                 names: dict[str, str]) -> pd.DataFrame:
    site = site_column(raw, asset, label)
    s0, s1 = _pick(raw.columns, COVERAGE_START), _pick(raw.columns, COVERAGE_END)
    name = pd.Series(source_name, index=raw.index, dtype="str") if source_name else text_col(raw, "source_name")
    state_text = raw["state"].astype(str).str.strip()
    state = state_text.str.lower().map(_STATES)
    stype = text_col(raw, "source_type")
    stype = stype.where(stype != "", "continuous_monitor").astype("str")
    frame = window_frame(index=raw.index, detection_id=text_col(raw, "detection_id"), source_type="", source_name=name,
                         start=vendor_times(raw[s0]), end=vendor_times(raw[s1]),
                         state=np.full(len(raw), "watching", dtype=object), asset=site,
                         rate=text_col(raw, None), rate_sigma=text_col(raw, None), wind=None, latitude=None,
                         longitude=None, event_type="", flags=[],
                         columns={"observed_at": names[s0], "end": names[s1],
                                  "asset_id": names.get(_pick(raw.columns, ("asset_id", "site_id", "site",
                                                                            "facility_id")) or "", "asset_id")})
    cov = frame.attrs["coverage"].value
    cov["state"] = state.to_numpy(dtype=object)  # unknown states are rejected by validate_coverage
    cov["source_type"] = stype.to_numpy(dtype=object)
    cov["state_text"] = state_text.to_numpy(dtype=object)
    frame.attrs["coverage_columns"]["state"] = names["state"]
    return frame
