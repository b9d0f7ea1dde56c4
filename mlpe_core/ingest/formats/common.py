"""Pieces every format mapping shares: column pickers, rate units and the site-feed frame."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..errors import IngestError

# Rate columns by unit, converted to kg CH4 per hour. 1 scf of methane at 60 °F and 1 atm = 0.01920 kg
# (contract §1; ideal gas at 288.7 K, 101.325 kPa, M = 16.04 g/mol gives 0.01921).
SCF_KG = 0.01920
RATE_UNITS: dict[str, float] = {
    "kg_h": 1.0,
    "g_s": 3.6,
    "t_h": 1000.0,
    "lb_h": 0.45359237,
    "scfh": SCF_KG,
    "mcf_d": 1000.0 * SCF_KG / 24.0,
}


# Continuous-monitor alarm exports and SCADA event logs (docs/ingest.md). Each tuple lists the header
# names accepted for one meaning, in order of preference; matching is case-insensitive.
ASSET_COLUMNS = ("asset_id", "site_id", "site", "facility_id")


def _pick(cols: Iterable[str], candidates: Iterable[str]) -> str | None:
    have = set(cols)
    return next((c for c in candidates if c in have), None)


def _col(raw: pd.DataFrame, name: str | None) -> pd.Series:
    if name is None or name not in raw.columns:
        return pd.Series("", index=raw.index, dtype="str")
    return raw[name]


def _rate_columns(cols: Iterable[str], prefixes: tuple[str, ...], label: str) -> tuple[str | None, str | None, float]:
    """The one rate column (any unit of RATE_UNITS, under any of ``prefixes``), its uncertainty and factor."""
    cols = list(cols)
    found = [(c, p) for c in cols for p in prefixes
             if c.startswith(p) and not c.startswith(p + "uncertainty_") and c[len(p):] in RATE_UNITS]
    if len(found) > 1:
        names = [c for c, _ in found]
        raise IngestError(label, f"rate given in several units ({', '.join(names)}); keep one column",
                          column=names[1])
    if not found:
        return None, None, 1.0
    col, prefix = found[0]
    unit = col[len(prefix):]
    unc = f"{prefix}uncertainty_{unit}"
    return col, (unc if unc in cols else None), RATE_UNITS[unit]


def _nonblank(s: pd.Series) -> pd.Series:
    return s.astype(str).str.strip() != ""


def _site_frame(raw: pd.DataFrame, source_name: str | None, default_name: str, name_cols: tuple[str, ...],
                time_col: str, asset_col: str, id_cols: tuple[str, ...], id_parts: list[pd.Series],
                event_type: pd.Series, source_type: str, label: str) -> pd.DataFrame:
    """Shared mapping of site-level feeds (monitors, SCADA): ids, names, times, assets, optional rates."""
    lower = list(raw.columns)
    synth = id_parts[0].astype(str).str.strip()
    for part in id_parts[1:]:
        synth = synth + "|" + part.astype(str).str.strip()
    id_col = _pick(lower, id_cols)
    det_id = raw[id_col].where(_nonblank(raw[id_col]), synth) if id_col else synth
    if source_name:
        name: pd.Series | str = source_name
    else:
        ncol = _pick(lower, name_cols)
        name = raw[ncol].where(_nonblank(raw[ncol]), default_name) if ncol else default_name
    rate_col, unc_col, factor = _rate_columns(lower, ("emission_rate_", "rate_"), label)
    out = pd.DataFrame(
        {
            "detection_id": det_id,
            "source_type": source_type,
            "source_name": name,
            "observed_at": raw[time_col],
            "latitude": _col(raw, "latitude"),  # a monitor export may carry the sensor's position
            "longitude": _col(raw, "longitude"),
            "location_uncertainty_m": _col(raw, "location_uncertainty_m"),
            "rate_kg_h": _col(raw, rate_col),
            "rate_uncertainty_kg_h": _col(raw, unc_col),
            "confidence": _col(raw, "confidence"),
            "wind_speed_m_s": _col(raw, _pick(lower, ("wind_speed_m_s", "wind_speed"))),
            "asset_id": raw[asset_col],
            "event_type": event_type,
        },
        index=raw.index,
    )
    if rate_col:
        out.attrs["rate_factor"] = factor
        out.attrs["rate_column"] = rate_col
    # rejects name the file's own column where it differs from the canonical one
    out.attrs["source_columns"] = {k: v for k, v in {
        "observed_at": time_col, "asset_id": asset_col, "detection_id": id_col, "rate_kg_h": rate_col,
        "rate_uncertainty_kg_h": unc_col}.items() if v and v != k}
    return out
