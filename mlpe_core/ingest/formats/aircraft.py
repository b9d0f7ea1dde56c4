"""Aircraft operators' per-pass reports (the Stanford 2022 aerial template), and the matched overpass tables.

Every pass over the site is a row: ``Detected`` True is a plume (``FacilityEmissionRate`` kg/h with
``FacilityEmissionRateUpper/Lower`` of the stated ``UncertaintyType``), False a pass that saw nothing (kept
as coverage: the aircraft watched), and a pass the operator itself did not keep (``OperatorKeep`` False) is
no data (offline). Times are ``DateOfSurvey`` + ``TimestampUTC`` (or ``StartUTC``..``EndUTC`` for in-situ
flights), or ``overpass_datetime`` in the matched tables (``operator_detected``, ``operator_quantification``,
``operator_lower/upper``). The file names no site: ``--asset`` does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import _pick
from .windows import (
    bounds_sigma,
    clean_number_text,
    default_name,
    parse_flag,
    site_column,
    text_col,
    vendor_times,
    window_frame,
)

# (detected, rate) column pairs, one per shape
AIRCRAFT_SHAPES = (("detected", "facilityemissionrate"), ("operator_detected", "operator_quantification"))
AIRCRAFT_TIMES = (("dateofsurvey", "timestamputc"), ("dateofsurvey", "startutc"), ("overpass_datetime",))


def is_aircraft(cols: set[str]) -> bool:
    return any(set(s) <= cols for s in AIRCRAFT_SHAPES) and any(set(t) <= cols for t in AIRCRAFT_TIMES)


def _when(raw: pd.DataFrame) -> tuple[pd.Series, pd.Series, str, str]:
    """(start, end) ISO-like text, and the columns named in rejects for them."""
    if "overpass_datetime" in raw.columns:
        start = vendor_times(raw["overpass_datetime"])
        end = vendor_times(text_col(raw, "overpass_datetime_end"))
        return start, end.where(end != "", start).astype("str"), "overpass_datetime", "overpass_datetime_end"
    day = vendor_times(raw["dateofsurvey"]).str.slice(0, 10)
    t0 = "timestamputc" if "timestamputc" in raw.columns else "startutc"
    clock0 = text_col(raw, t0)
    start = vendor_times(day + " " + clock0).where(clock0 != "", day).astype("str")  # "4:46:16 PM" too
    clock1 = text_col(raw, "endutc")
    end = vendor_times(day + " " + clock1).where(clock1 != "", start).astype("str")
    return start, end, t0, "endutc" if "endutc" in raw.columns else t0


def map_aircraft_report(raw: pd.DataFrame, source_name: str | None, label: str, asset: str | None,
                        names: dict[str, str]) -> pd.DataFrame:
    """Aircraft pass reports (lower-case columns; ``names`` gives the file's own)."""
    dcol, rcol = next(s for s in AIRCRAFT_SHAPES if set(s) <= set(raw.columns))
    matched = dcol == "operator_detected"
    site = site_column(raw, asset, label)
    name = default_name(raw, source_name, ("operator",), label)
    start, end, tcol, ecol = _when(raw)
    detected, readable = parse_flag(raw[dcol], blank=None)
    kcol = _pick(raw.columns, ("operatorkeep", "operator_kept"))
    kept = parse_flag(raw[kcol], blank=True)[0] if kcol else np.ones(len(raw), bool)
    state = np.where(~kept, "offline", np.where(detected, "detected", "watching"))
    reject = []
    bad = np.flatnonzero(~readable & kept)
    if bad.size:
        state[bad] = "detected"
        reject.append((bad, "event_type", lambda v, c=names[dcol]: f"{c} '{v}' is not True or False",
                       raw[dcol].to_numpy(dtype=object)[bad]))
    rate = text_col(raw, rcol)
    ucol = "operator_upper" if matched else "facilityemissionrateupper"
    lcol = "operator_lower" if matched else "facilityemissionratelower"
    kind = raw["uncertaintytype"] if "uncertaintytype" in raw.columns else None
    if ucol in raw.columns or lcol in raw.columns:
        sigma, flags = bounds_sigma(rate, text_col(raw, ucol), text_col(raw, lcol), kind,
                                    (names.get(ucol, ucol), names.get(lcol, lcol), names[rcol]))
    else:
        sigma, flags = pd.Series("", index=raw.index, dtype="str"), []
    stage = clean_number_text(text_col(raw, "stage"))
    pid = clean_number_text(text_col(raw, "overpass_id"))
    pid = pid.where(pid != "", start)
    det_id = (("stage" + stage + "-").where(stage != "", "") + "pass" + pid).astype("str")
    wcol = _pick(raw.columns, ("operatorwindspeed", "operatorwindspeed_rms", "windspeed", "wind_speed_m_s"))
    cols = {"observed_at": names.get(tcol, tcol), "end": names.get(ecol, ecol), "rate_kg_h": names[rcol],
            "event_type": names[dcol], "asset_id": "asset_id"}
    if wcol:
        cols["wind_speed_m_s"] = names[wcol]
    return window_frame(index=raw.index, detection_id=det_id, source_type="aerial", source_name=name, start=start,
                        end=end, state=state, asset=site, rate=rate, rate_sigma=sigma, wind=text_col(raw, wcol),
                        latitude=None, longitude=None, event_type="plume", columns=cols, flags=flags, reject=reject)
