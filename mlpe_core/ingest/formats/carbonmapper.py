"""Carbon Mapper plume lists (contract §1): aircraft and satellite plumes with rates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import _col

# Header signatures of the real formats (contract §1).
CARBONMAPPER_SIGNATURE = {"plume_id", "plume_latitude", "plume_longitude", "datetime"}


def map_carbonmapper(raw: pd.DataFrame, source_name: str | None) -> pd.DataFrame:
    platform = _col(raw, "platform").astype(str)
    instrument = _col(raw, "instrument").astype(str)
    airborne = platform.str.contains("airborne|aircraft|gao|aviris", case=False) | instrument.str.lower().isin(
        ["gao", "ang", "av3", "aviris"]
    )
    name = platform.where(platform != "", instrument)
    out = pd.DataFrame(
        {
            "detection_id": raw["plume_id"],
            "source_type": np.where(airborne, "aerial", "satellite"),
            "source_name": source_name or name,
            "observed_at": raw["datetime"],
            "latitude": raw["plume_latitude"],
            "longitude": raw["plume_longitude"],
            # one ground-sample distance is the 1-sigma position error when the export gives it
            "location_uncertainty_m": _col(raw, "gsd"),
            "rate_kg_h": _col(raw, "emission_auto"),
            "rate_uncertainty_kg_h": _col(raw, "emission_uncertainty_auto"),
            "confidence": "",
            "wind_speed_m_s": _col(raw, "wind_speed_avg_auto"),
            "asset_id": "",
            "event_type": "plume",
        }
    )
    return out
