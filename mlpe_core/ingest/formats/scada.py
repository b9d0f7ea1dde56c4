"""SCADA event logs: tags, times and assets; only the onset of an alarm is a detection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import _Shared
from .common import ASSET_COLUMNS, _nonblank, _pick, _site_frame

SCADA_TAG_COLUMNS = ("tag", "tag_name", "tagname", "point", "point_name")
SCADA_TIME_COLUMNS = ("event_time", "event_timestamp", "timestamp", "time", "alarm_time")
SCADA_TYPE_COLUMNS = ("event_type", "alarm", "alarm_type", "condition")
SCADA_ID_COLUMNS = ("event_id", "alarm_id", "record_id")
SCADA_NAME_COLUMNS = ("source_name", "system", "scada_system")
SCADA_STATE_COLUMNS = ("state", "alarm_state")


# alarm-journal states that are not the onset of an event (acknowledged, returned to normal, ...)
SCADA_NOT_ONSET = frozenset({"ack", "acked", "acknowledged", "rtn", "return to normal", "return_to_normal",
                             "normal", "clear", "cleared", "ok", "inactive", "reset"})


def map_scada(raw: pd.DataFrame, source_name: str | None, label: str) -> pd.DataFrame:
    lower = list(raw.columns)
    tag_col = _pick(lower, SCADA_TAG_COLUMNS)
    time_col = _pick(lower, SCADA_TIME_COLUMNS)
    asset_col = _pick(lower, ASSET_COLUMNS)
    type_col = _pick(lower, SCADA_TYPE_COLUMNS)
    event = raw[type_col].where(_nonblank(raw[type_col]), raw[tag_col]) if type_col else raw[tag_col]
    out = _site_frame(raw, source_name, "SCADA", SCADA_NAME_COLUMNS, time_col, asset_col, SCADA_ID_COLUMNS,
                      [raw[asset_col], raw[tag_col], raw[time_col]], event, "scada", label)
    state_col = _pick(lower, SCADA_STATE_COLUMNS)
    if state_col:
        state = raw[state_col].astype(str).str.strip()
        idx = np.flatnonzero(state.str.lower().isin(SCADA_NOT_ONSET).to_numpy())
        if idx.size:
            out.attrs["mapping_rejects"] = _Shared([
                (idx, state_col, lambda v: f"state '{v}' is not the onset of an event (only onsets are detections)",
                 state.to_numpy(dtype=object)[idx])
            ])
    return out
