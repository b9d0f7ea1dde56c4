"""UNEP IMEO MARS plume lists (contract §1): satellite plumes from kilometre to 20 m pixels."""

from __future__ import annotations

import pandas as pd

from .common import _col

MARS_SIGNATURE = {"id_plume", "satellite", "tile_date", "lat", "lon"}


def map_mars(raw: pd.DataFrame, source_name: str | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "detection_id": raw["id_plume"],
            "source_type": "satellite",
            "source_name": source_name or raw["satellite"],
            "observed_at": raw["tile_date"],
            "latitude": raw["lat"],
            "longitude": raw["lon"],
            "location_uncertainty_m": "",
            "rate_kg_h": _col(raw, "ch4_fluxrate"),
            "rate_uncertainty_kg_h": _col(raw, "ch4_fluxrate_std"),
            "confidence": "",
            "wind_speed_m_s": _col(raw, "wind_speed"),
            "asset_id": "",
            "event_type": "plume",
        }
    )
