"""Continuous-monitor alarm exports: one row per alarm at a site (positions from the asset registry)."""

from __future__ import annotations

import pandas as pd

from .common import ASSET_COLUMNS, _col, _pick, _site_frame

CMS_TIME_COLUMNS = ("alarm_start", "alarm_start_time", "alarm_time", "start_time", "timestamp")
CMS_ID_COLUMNS = ("alarm_id", "event_id")
CMS_NAME_COLUMNS = ("source_name", "monitor", "network", "vendor")


def map_cms(raw: pd.DataFrame, source_name: str | None, label: str) -> pd.DataFrame:
    lower = list(raw.columns)
    time_col = _pick(lower, CMS_TIME_COLUMNS)
    asset_col = _pick(lower, ASSET_COLUMNS)
    sensor = _col(raw, _pick(lower, ("sensor_id", "sensor", "device_id")))
    return _site_frame(raw, source_name, "CMS", CMS_NAME_COLUMNS, time_col, asset_col, CMS_ID_COLUMNS,
                       [raw[asset_col], sensor, raw[time_col], raw["alarm_type"]], raw["alarm_type"],
                       "continuous_monitor", label)
