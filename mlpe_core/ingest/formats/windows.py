"""Window reports of real monitors and aircraft: each row is a time window in which a sensor watched one site.

Real sensors do not only report what they saw. A continuous monitor's controlled-release report lists alarm
windows (start, end, rate with bounds) and windows it watched and saw nothing; a cleaned timeline labels
every window P (emitting), N (watched, nothing) or NA (no data); an aircraft operator reports every pass,
with or without a plume. Rows that are detections become detections; the others are kept as coverage
(``MonitorCoverage``): a negative window is evidence that the sensor watched, an offline one that it did not.

Shared here: vendor time shapes, the site (``--asset`` or a site column), rate bounds that may not bracket
the rate (a unit error, flagged and not used), and the frame every window format hands to validation.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...schema import CANONICAL_COLUMNS
from ..errors import IngestError, _Shared
from .common import ASSET_COLUMNS, _pick

# Excel stores times as days since 1899-12-30; a report exported through a spreadsheet may carry them
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_CLOCK = r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?(?:\s*([AaPp])\.?[Mm]\.?)?)?"  # 16:51, 4:51:07 PM
_SLASHED = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})" + _CLOCK + r"$")
_ISO_12H = re.compile(r"^(\d{4})[/.-](\d{1,2})[/.-](\d{1,2})" + _CLOCK + r"$")  # ISO date, 12-hour clock
_MONTH_NAME = re.compile(r"(?i)\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b")
_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
_UTC_WORD = re.compile(r"(?i)\s*\(?\b(?:utc|gmt)\)?$")  # "2022-10-10 16:51 UTC": the zone is UTC
# what vendors write in a number's place when there is none (a camera that does not quantify, a blank export)
MISSING = frozenset({"n/a", "na", "nan", "null", "none", "-", "--", "#n/a", "not available", "not quantified"})
_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")
_TRUE = frozenset({"y", "yes", "true", "t", "1", "1.0"})
_FALSE = frozenset({"n", "no", "false", "f", "0", "0.0"})


def _clock(hh: str | None, mm: str | None, ss: str | None, frac: str | None, half: str | None) -> str | None:
    """``T16:51:07`` from the clock's parts (12-hour when ``half`` is A or P); None if it is not a clock."""
    if hh is None:
        return ""
    h = int(hh)
    if half:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if half.lower() == "p" else 0)
    return f"T{h:02d}:{mm}:{ss or '00'}{frac or ''}"


def _named_month(u: str) -> str:
    """``10-Oct-2022 4:51 PM``, ``Oct 10, 2022 16:51``: a month written as a word cannot be read two ways."""
    try:
        t = pd.Timestamp(u)
    except (ValueError, OverflowError, TypeError):
        return u
    return u if pd.isna(t) else t.isoformat()


def vendor_times(text: pd.Series) -> pd.Series:
    """Vendor time text → ISO-like text the validator reads; what is not recognised is left as it was (and is
    then refused with its row and column).

    ISO shapes (``2022-10-10 16:51:00``, ``2022/10/10 16:51``, with or without zone) pass unchanged. Slashed
    day-month shapes (``10/24/22 16:46``, ``24.10.2022``) are month first, as the US campaigns wrote them,
    unless some value of the column has a first field above 12 (then the column is day first); two-digit
    years are 20xx. A 12-hour clock (``4:51:07 PM``, Excel's US default) is read on either shape; a month
    written as a word (``10-Oct-2022``) is read as written; a trailing ``UTC``/``GMT`` is the zone. Five-digit
    numbers are Excel serial days. Each distinct value is converted once.
    """
    s = text.astype(str).str.strip()
    uniq = pd.unique(s)
    bares = {u: _UTC_WORD.sub("", u) for u in uniq}
    parts = {u: _SLASHED.match(bares[u]) for u in uniq}
    day_first = any(m is not None and int(m.group(1)) > 12 for m in parts.values())
    out: dict[str, str] = {}
    for u in uniq:
        bare = bares[u]
        zone = "Z" if bare != u and bare and not _OFFSET.search(bare) else ""  # "…+00:00 UTC": the offset says it
        m, iso = parts[u], _ISO_12H.match(bare)
        date = clock = None
        if m is not None:
            a, b, y = int(m.group(1)), int(m.group(2)), m.group(3)
            month, day = (b, a) if day_first else (a, b)
            date, clock = (int(y) + (2000 if len(y) == 2 else 0), month, day), _clock(*m.group(4, 5, 6, 7, 8))
        elif iso is not None and (iso.group(8) or zone):
            date, clock = tuple(int(g) for g in iso.group(1, 2, 3)), _clock(*iso.group(4, 5, 6, 7, 8))
        if date is not None:
            out[u] = u if clock is None else f"{date[0]:04d}-{date[1]:02d}-{date[2]:02d}{clock}{zone if clock else ''}"
        elif _SERIAL.match(u) and 20000 <= float(u) <= 80000:
            out[u] = (_EXCEL_EPOCH + pd.to_timedelta(float(u), unit="D")).round("s").isoformat()
        elif _MONTH_NAME.search(bare):
            named = _named_month(bare)
            out[u] = named + zone if named != bare else u
        else:
            out[u] = bare + zone if bare != u and bare else u
    return s.map(out).astype("str")


def parse_flag(text: pd.Series, blank: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """Yes/no text (Y/N, TRUE/FALSE, 1/0) → (value, readable); blank gives ``blank`` (unreadable if None)."""
    s = text.astype(str).str.strip().str.lower()
    yes, no, empty = s.isin(_TRUE).to_numpy(), s.isin(_FALSE).to_numpy(), (s == "").to_numpy()
    value = yes | (empty & bool(blank))
    readable = yes | no | (empty & (blank is not None))
    return value, readable


def site_column(raw: pd.DataFrame, asset: str | None, label: str) -> pd.Series:
    """The site of each row: the file's site column (blank cells take ``--asset``), else ``--asset``.

    A window says a sensor watched a *site*; a file that names none, run without ``--asset``, is refused
    before anything is written."""
    col = _pick(raw.columns, ASSET_COLUMNS)
    if col is None and not asset:
        raise IngestError(label, "the file names no site (no asset_id / site_id column): name it with --asset ID "
                                 "(import the site with `mlpe assets import` first)")
    if col is None:
        return pd.Series(str(asset), index=raw.index, dtype="str")
    s = raw[col].astype(str).str.strip()
    return s.where(s != "", str(asset or "")).astype("str")


def default_name(raw: pd.DataFrame, source_name: str | None, columns: tuple[str, ...], label: str) -> pd.Series:
    """``--source-name``, else a vendor / operator column, else the file's name (its stem): every window of a
    file must belong to a named sensor, and a default shared by all vendors would merge them."""
    if source_name:
        return pd.Series(source_name, index=raw.index, dtype="str")
    stem = Path(label).stem or "CMS"
    col = _pick(raw.columns, columns)
    if col is None:
        return pd.Series(stem, index=raw.index, dtype="str")
    s = raw[col].astype(str).str.strip()
    return s.where(s != "", stem).astype("str")


def clean_number_text(s: pd.Series) -> pd.Series:
    """``16.0`` → ``16`` (ids written through a spreadsheet as floats); other text unchanged."""
    t = s.astype(str).str.strip()
    return t.str.replace(r"^(\d+)\.0+$", r"\1", regex=True).astype("str")


# Half-widths of stated bounds, in sigmas, by the report's ``UncertaintyType`` (lower case, spaces squeezed)
_BOUND_SIGMAS = {"1-sigma": 1.0, "1 sigma": 1.0, "+/- 1 sigma": 1.0, "+/- 2 sigma": 2.0, "2-sigma": 2.0,
                 "2 sigma": 2.0, "confidence_95": 1.96, "95% ci": 1.96, "95%": 1.96, "confidence_90": 1.645,
                 "max_min": 2.0}


def bounds_sigma(rate: pd.Series, upper: pd.Series, lower: pd.Series, kind: pd.Series | None,
                 columns: tuple[str, str, str]) -> tuple[pd.Series, list]:
    """1-sigma of each rate from its stated bounds, and flags for bounds that cannot be used.

    Bounds half-width / sigmas per ``kind`` (1-sigma, ±2 sigma, 95 % CI; a min-max range is taken as ±2 sigma;
    none stated: as 1-sigma, the widest reading). Bounds that do not bracket the rate (Qube's ×1000: they
    look like g/h against a kg/h rate) or are not numbers are **flagged and not used**: the rate keeps no
    stated uncertainty and the instrument's default applies. Zero-width bounds state no uncertainty.
    Returns (sigma text, flags as (row positions, column, reason, values))."""
    r = pd.to_numeric(rate.astype(str).str.strip(), errors="coerce").to_numpy(float)
    up = pd.to_numeric(upper.astype(str).str.strip(), errors="coerce").to_numpy(float)
    lo = pd.to_numeric(lower.astype(str).str.strip(), errors="coerce").to_numpy(float)
    k = (kind.astype(str).str.strip().str.lower().str.replace(r"\s+", " ", regex=True).map(_BOUND_SIGMAS)
         .fillna(1.0).to_numpy(float)) if kind is not None else np.ones(len(r))
    given = np.isfinite(r) & (np.isfinite(up) | np.isfinite(lo))
    tol = 1e-6 * np.maximum(np.abs(r), 1e-9)
    with np.errstate(invalid="ignore"):
        bad = given & ~(np.isfinite(up) & np.isfinite(lo) & (lo <= r + tol) & (up >= r - tol))
        sigma = np.where(given & ~bad & (up > lo), (up - lo) / (2.0 * k), np.nan)
    flags: list = []
    idx = np.flatnonzero(bad)
    if idx.size:
        ucol, lcol, rcol = columns
        ratio = np.where(np.isfinite(up[idx]) & (r[idx] > 0), up[idx] / np.where(r[idx] > 0, r[idx], 1.0), np.nan)
        reasons = [(f"{lcol}/{ucol} {lo[i]:g}/{up[i]:g} do not bracket {rcol} {r[i]:g}"
                    + (" (about 1000x: g/h against kg/h?)" if 300 <= q <= 3000 else "") + "; bounds not used")
                   for i, q in zip(idx, ratio, strict=True)]
        flags.append((idx, ucol, reasons, [f"{up[i]:g}" for i in idx]))
    text = pd.Series(np.where(np.isfinite(sigma), np.char.mod("%.6g", np.nan_to_num(sigma)), ""), index=rate.index,
                     dtype="str")
    return text, flags


def window_frame(*, index: pd.Index, detection_id: pd.Series, source_type: str, source_name: pd.Series,
                 start: pd.Series, end: pd.Series, state: np.ndarray, asset: pd.Series, rate: pd.Series,
                 rate_sigma: pd.Series, wind: pd.Series | None, latitude: pd.Series | None,
                 longitude: pd.Series | None, event_type: str, columns: dict[str, str],
                 flags: list, reject: list | None = None) -> pd.DataFrame:
    """The canonical frame of a window file (one row per file row) with what validation needs to know.

    ``state`` per row: ``detected`` (a detection; its window is kept too), ``watching`` or ``offline``
    (coverage only: not validated as a detection, not counted in the detection summary). Attributes set:
    ``not_detection`` (the coverage-only rows), ``coverage`` (every row's window), ``flags`` (rows reported,
    not rejected), ``mapping_rejects`` (rows the mapping itself refuses) and ``source_columns`` (the file's own
    column names for rejects)."""
    blank = pd.Series("", index=index, dtype="str")
    out = pd.DataFrame({
        "detection_id": detection_id,
        "source_type": source_type,
        "source_name": source_name,
        "observed_at": start,
        "latitude": latitude if latitude is not None else blank,
        "longitude": longitude if longitude is not None else blank,
        "location_uncertainty_m": blank,
        "rate_kg_h": rate,
        "rate_uncertainty_kg_h": rate_sigma,
        "confidence": blank,
        "wind_speed_m_s": wind if wind is not None else blank,
        "asset_id": asset,
        "event_type": event_type,
    }, index=index)[list(CANONICAL_COLUMNS)]
    state = np.asarray(state, dtype=object)
    out.attrs["not_detection"] = _Shared(state != "detected")
    out.attrs["coverage"] = _Shared(pd.DataFrame({
        "pos": np.arange(len(index)), "source_name": source_name.to_numpy(), "source_type": source_type,
        "asset_id": asset.to_numpy(), "start": start.to_numpy(), "end": end.to_numpy(), "state": state,
        "detection_id": detection_id.to_numpy()}))
    out.attrs["coverage_columns"] = {"start": columns.get("observed_at", "start"), "end": columns.get("end", "end"),
                                     "asset_id": columns.get("asset_id", "asset_id")}
    out.attrs["flags"] = _Shared(flags)
    if reject:
        out.attrs["mapping_rejects"] = _Shared(reject)
    out.attrs["source_columns"] = {k: v for k, v in columns.items() if k in CANONICAL_COLUMNS and v != k}
    return out


def text_col(raw: pd.DataFrame, name: str | None) -> pd.Series:
    """Column ``name`` as stripped text; what vendors write for "no value" (``N/A``, ``-``, ``null`` …,
    :data:`MISSING`) becomes blank, so a monitor that does not quantify gives detections without a rate rather
    than refused rows."""
    if name is None or name not in raw.columns:
        return pd.Series("", index=raw.index, dtype="str")
    s = raw[name].astype(str).str.strip()
    return s.where(~s.str.lower().isin(MISSING), "").astype("str")
