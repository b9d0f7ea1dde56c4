"""Continuous monitors' controlled-release reports (the METEC/ADED-style template) and cleaned P/N/NA timelines.

``cms_report``: one row per reported window, ``EmissionStartDateTime``, ``EmissionEndDateTime``,
``DetectingUnitID``, ``Alarm (Y/N)``, ``EmissionRate`` with ``EmissionRateUpper/Lower`` and
``UncertaintyType``. An alarm is a detection; a row with ``Alarm`` N, or a zero rate (a fixed-block reporter's
quiet block), is a window the monitor watched and saw nothing.

``cms_windows``: a timeline of ``EmissionStartDateTime``, ``EmissionEndDateTime`` and ``ReportLabel`` P
(emitting: a detection), N (watched, nothing) or NA (no data: offline), with the reported rate.

Both report a site, not a component: the site is ``--asset`` (or a site column), its position the registry's.
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

REPORT_SIGNATURE = {"emissionstartdatetime", "emissionenddatetime"}
REPORT_MARKERS = ("alarm (y/n)", "alarm", "detectingunitid", "emissionrate")
WINDOWS_MARKER = "reportlabel"
_NAME_COLUMNS = ("vendor", "performer", "company", "source_name", "monitor")
_RATE_COLUMNS = ("emissionrate", "reported release rate (kg/h)", "emission_rate_kg_h", "rate_kg_h")
# the label of a timeline window, in the words vendors use: P / N / NA, and their spelled-out forms
_LABELS = {**dict.fromkeys(("p", "pos", "positive", "detected", "detection", "emitting"), "detected"),
           **dict.fromkeys(("n", "neg", "negative", "not detected", "no detection", "clear"), "watching"),
           **dict.fromkeys(("na", "n/a", "nan", "offline", "no data", "not available"), "offline")}


def _times(raw: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    start = vendor_times(raw["emissionstartdatetime"])
    end = vendor_times(text_col(raw, "emissionenddatetime"))
    return start, end.where(end != "", start).astype("str")


def _rate_parts(raw: pd.DataFrame, names: dict[str, str]) -> tuple[str | None, pd.Series, pd.Series, list]:
    rcol = _pick(raw.columns, _RATE_COLUMNS)
    rate = text_col(raw, rcol)
    ucol, lcol = _pick(raw.columns, ("emissionrateupper",)), _pick(raw.columns, ("emissionratelower",))
    if rcol is None or (ucol is None and lcol is None):
        return rcol, rate, pd.Series("", index=raw.index, dtype="str"), []
    kind = raw["uncertaintytype"] if "uncertaintytype" in raw.columns else None
    sigma, flags = bounds_sigma(rate, text_col(raw, ucol), text_col(raw, lcol), kind,
                                (names.get(ucol, ucol or "upper"), names.get(lcol, lcol or "lower"), names[rcol]))
    return rcol, rate, sigma, flags


def _zero(rate: pd.Series) -> np.ndarray:
    v = pd.to_numeric(rate, errors="coerce").to_numpy(float)
    return np.isfinite(v) & (v == 0)


def map_cms_report(raw: pd.DataFrame, source_name: str | None, label: str, asset: str | None,
                   names: dict[str, str]) -> pd.DataFrame:
    """The controlled-release CMS reporting template (lower-case columns; ``names`` gives the file's own)."""
    site = site_column(raw, asset, label)
    name = default_name(raw, source_name, _NAME_COLUMNS, label)
    start, end = _times(raw)
    rcol, rate, sigma, flags = _rate_parts(raw, names)
    acol = _pick(raw.columns, ("alarm (y/n)", "alarm"))
    alarm, readable = parse_flag(raw[acol], blank=True) if acol else (np.ones(len(raw), bool), np.ones(len(raw), bool))
    state = np.where(alarm & ~_zero(rate), "detected", "watching")
    reject = []
    bad = np.flatnonzero(~readable)
    if bad.size:
        shown = names.get(acol, acol)
        reject.append((bad, "event_type", lambda v, c=shown: f"{c} '{v}' is not Y or N",
                       raw[acol].to_numpy(dtype=object)[bad]))
        state[bad] = "detected"  # so that the row is reported as a rejected detection row
    unit = text_col(raw, _pick(raw.columns, ("detectingunitid", "sensor_id", "unit_id")))
    pid = clean_number_text(text_col(raw, _pick(raw.columns, ("performerexperimentid", "alarm_id", "event_id"))))
    built = site + "|" + unit + "|" + start
    det_id = pid.where(pid != "", built).astype("str")
    lat = text_col(raw, _pick(raw.columns, ("emissionlatitude",)))
    lon = text_col(raw, _pick(raw.columns, ("emissionlongitude",)))
    cols = {"observed_at": names["emissionstartdatetime"], "end": names.get("emissionenddatetime", "end"),
            "asset_id": names.get(_pick(raw.columns, ("asset_id", "site_id", "site", "facility_id")) or "", "asset_id"),
            "latitude": names.get("emissionlatitude", "latitude"),
            "longitude": names.get("emissionlongitude", "longitude")}
    if rcol:
        cols["rate_kg_h"] = names[rcol]
    if acol:
        cols["event_type"] = names[acol]
    wcol = _pick(raw.columns, ("windspeed", "wind_speed_m_s", "wind_speed"))
    if wcol:
        cols["wind_speed_m_s"] = names[wcol]
    return window_frame(index=raw.index, detection_id=det_id, source_type="continuous_monitor", source_name=name,
                        start=start, end=end, state=state, asset=site, rate=rate, rate_sigma=sigma,
                        wind=text_col(raw, wcol), latitude=lat, longitude=lon, event_type="alarm",
                        columns=cols, flags=flags, reject=reject)


def map_cms_windows(raw: pd.DataFrame, source_name: str | None, label: str, asset: str | None,
                    names: dict[str, str]) -> pd.DataFrame:
    """A cleaned P/N/NA timeline of one monitor (lower-case columns; ``names`` gives the file's own)."""
    site = site_column(raw, asset, label)
    name = default_name(raw, source_name, _NAME_COLUMNS, label)
    start, end = _times(raw)
    rcol, rate, sigma, flags = _rate_parts(raw, names)
    lab = raw[WINDOWS_MARKER].astype(str).str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
    state = lab.map(_LABELS).to_numpy(dtype=object)
    unknown = pd.isna(state)
    state = np.where(unknown, "detected", state)  # an unreadable label is a rejected detection row
    state = np.where((state == "detected") & ~unknown & _zero(rate), "watching", state)
    reject = []
    if unknown.any():
        idx = np.flatnonzero(unknown)
        shown = names[WINDOWS_MARKER]
        reject.append((idx, "event_type",
                       lambda v, c=shown: f"{c} '{v}' is not P, N or NA (emitting, watched and saw nothing, no data)",
                       raw[WINDOWS_MARKER].to_numpy(dtype=object)[idx]))
    det_id = (site + "|" + start).astype("str")
    cols = {"observed_at": names["emissionstartdatetime"], "end": names.get("emissionenddatetime", "end"),
            "asset_id": names.get(_pick(raw.columns, ("asset_id", "site_id", "site", "facility_id")) or "", "asset_id"),
            "event_type": names[WINDOWS_MARKER]}
    if rcol:
        cols["rate_kg_h"] = names[rcol]
    return window_frame(index=raw.index, detection_id=det_id, source_type="continuous_monitor", source_name=name,
                        start=start, end=end, state=state, asset=site, rate=rate, rate_sigma=sigma, wind=None,
                        latitude=None, longitude=None, event_type="alarm", columns=cols, flags=flags, reject=reject)
