"""Validation of canonical detection rows: vectorised, so Python only touches the rows it rejects."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..limits import MIN_TIME, limits
from ..progress import Progress, say
from ..schema import CANONICAL_COLUMNS, SOURCE_TYPES
from .arrow import _blank, _combined, _control_rows, _floats, _np, _nulled, _text
from .errors import _Shared
from .instruments import _defaults_for, registry_sigma_m

_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # C0 controls and DEL; tab, LF and CR are text
_JSON_CONTROL = r"\\u00[01][0-9a-fA-F]|\\u007[fF]"  # the same, as json.dumps escapes them in ``attributes``
_DATE_LIKE = r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T].*)?$"


_GROUPED = re.compile(r"^[+-]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?$")  # 1,234.5 / 1.234,5 / 1 234


def _number_hint(v: object) -> str:
    """What to change in a number written with digit grouping or a decimal comma (read two ways: refused)."""
    t = str(v).strip()
    if _GROUPED.match(t):
        return ": write it without thousands separators (1234.5)"
    if re.fullmatch(r"[+-]?\d+,\d+", t):
        return ": write it with a decimal point (1.5, not 1,5)"
    return ""


def _times_pandas(text: pd.Series) -> pd.Series:
    """The element-wise parser for files whose timestamps are not all of one ISO shape."""
    text = text.str.replace(" ", "T", n=1, regex=False)
    # "+00" after a time of day → "+00:00" (not the "-01" that ends a bare date)
    text = text.str.replace(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?[+-]\d\d)$", r"\1:00", regex=True)
    try:
        out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    except (ValueError, OverflowError, TypeError):
        out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    out = out.astype("datetime64[us, UTC]") if str(out.dtype) != "datetime64[us, UTC]" else out
    bad = out.isna() & (text != "") & text.str.match(_DATE_LIKE).fillna(False).astype(bool)
    for i in np.flatnonzero(bad.to_numpy()):  # other date-like shapes ("2025/05/21 18:08"), one by one
        try:
            v = pd.to_datetime(text.iloc[i], utc=True, format="mixed")
            out.iloc[i] = v
        except (ValueError, OverflowError, TypeError):
            pass
    return out


def _times(t: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Stripped text → timestamp[us, UTC] (null where blank or unreadable); Arrow's ISO parser first."""
    nulled = _nulled(t)
    utc = pa.timestamp("us", "UTC")
    for target in (utc, pa.timestamp("us")):  # zoned strings; strings without a zone (taken as UTC)
        try:
            return pc.cast(pc.cast(nulled, target), utc)
        except (pa.ArrowException, ValueError):
            continue
    text = pd.Series(pc.fill_null(t, "").to_numpy(zero_copy_only=False), dtype=object).astype(str)
    parsed = _times_pandas(text)
    return pa.array(parsed, type=utc, from_pandas=True)


def parse_times(s: pd.Series) -> pd.Series:
    """ISO-like timestamps in every shape seen in real files (``+00``, no zone, microseconds) → UTC."""
    vals = _times(_text(s)).to_pandas()
    return pd.Series(getattr(vals, "array", vals), index=s.index).astype("datetime64[us, UTC]")


AssetLookup = pd.DataFrame | Callable[[list[str]], pd.DataFrame] | None


def validate_detections(frame: pd.DataFrame, first_row: int = 2, assets: AssetLookup = None, *,
                        progress: Progress = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type and check canonical text columns; vectorised, so Python only touches rejected rows.

    Returns the typed good rows (with ``source_row``) and a reject table with ``row`` (1-based file
    row; the header is row 1), ``column``, ``value`` and ``reason``. The input is not modified.

    ``assets`` (a frame with ``asset_id, latitude, longitude``, or a function from a list of ids to
    such a frame) resolves rows that name an ``asset_id`` but leave latitude and longitude blank;
    an id not in it rejects the row. Without it, blank coordinates are rejected as blank.
    """
    f = frame
    n = len(f)
    names_of = dict(f.attrs.get("source_columns", {}))
    problems: list[tuple] = []  # (row positions, column, reason: text, list or function of the value, values)

    def add(mask: np.ndarray, column: str, reason: str | Callable[[str], str]) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            problems.append((idx, column, reason, None))

    # rows of a window file that are coverage only (a negative or offline window): neither detections nor rejects
    skip = getattr(f.attrs.get("not_detection"), "value", None)
    skip = np.zeros(n, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    caps = limits()
    text = {c: _text(f[c]) for c in CANONICAL_COLUMNS}
    if skip.any():  # their ids take no part in the repeated-id check
        ids_text = _combined(text["detection_id"]).to_pylist()
        text["detection_id"] = pa.array([f"\x00coverage row {i}" if k else v for i, (v, k) in
                                         enumerate(zip(ids_text, skip, strict=True))], type=pa.large_string())
    blank = {c: _blank(text[c]) for c in CANONICAL_COLUMNS}
    for c in CANONICAL_COLUMNS:  # a NUL or control character: ``Nul`` and ``Nul\0`` are not two sensors
        add(_control_rows(text[c]), c, control_reason(names_of.get(c, c)))
    if "attributes" in f.columns:  # JSON of the extra columns: json.dumps writes a control character as \u00XX
        attrs = _text(f["attributes"])
        maybe = _np(pc.match_substring(attrs, "\\u00"))  # a plain substring scan first; the regex on hits only
        if maybe.any():
            idx = np.flatnonzero(maybe)
            hit = _np(pc.match_substring_regex(attrs.take(pa.array(idx)), _JSON_CONTROL))
            add(np.isin(np.arange(n), idx[hit]), "attributes", "an extra column holds a NUL or control character")
    for c in ("detection_id", "source_name"):
        add(blank[c], c, f"{c} is blank")
    st = pc.utf8_lower(text["source_type"])
    add(blank["source_type"], "source_type", "source_type is blank")
    add(~blank["source_type"] & ~_np(pc.is_in(st, value_set=pa.array(SOURCE_TYPES, pa.large_string()))),
        "source_type", lambda v: f"unknown source_type '{v}' (expected one of {', '.join(SOURCE_TYPES)})")
    say(progress, 0.1, "reading times")
    ts = _times(text["observed_at"])
    t_null = _np(pc.is_null(ts), fill=True)
    add(blank["observed_at"], "observed_at", "observed_at is blank")
    add(t_null & ~blank["observed_at"], "observed_at", lambda v: f"cannot read '{v}' as an ISO 8601 time")
    latest = caps.latest_time()
    t_num = np.asarray(pc.fill_null(pc.cast(ts, pa.int64()), 0).to_numpy(zero_copy_only=False))
    add(~t_null & (t_num < MIN_TIME.value // 1000), "observed_at",
        lambda v: f"observed_at '{v}' is before {MIN_TIME:%Y-%m-%d}: not a plausible observation time")
    add(~t_null & (t_num > latest.value // 1000), "observed_at",
        lambda v: f"observed_at '{v}' is in the future (more than a day after now)")

    lat, lon = _floats(text["latitude"]), _floats(text["longitude"])
    from_registry = np.zeros(n, dtype=bool)
    explained = np.zeros(n, dtype=bool)  # blank position that the registry resolves, or an unknown-asset reject
    if assets is not None:
        need = blank["latitude"] & blank["longitude"] & ~blank["asset_id"]
        need_idx = np.flatnonzero(need)
        if need_idx.size:
            ids = pd.Index(np.asarray(text["asset_id"].take(pa.array(need_idx)).to_numpy(zero_copy_only=False),
                                      dtype=object))
            reg = assets(sorted(set(ids))) if callable(assets) else assets
            reg = _registry_frame(reg)
            pos = reg.index.get_indexer(ids)
            known = pos >= 0
            lat[need_idx[known]] = reg["latitude"].to_numpy()[pos[known]]
            lon[need_idx[known]] = reg["longitude"].to_numpy()[pos[known]]
            from_registry[need_idx[known]] = True
            unknown = np.zeros(n, dtype=bool)
            unknown[need_idx[~known]] = True
            add(unknown, "asset_id", lambda v: f"unknown asset_id '{v.strip()}': import assets first")
            explained = need
    say(progress, 0.4, "checking coordinates")
    for c, s, lim in (("latitude", lat, 90), ("longitude", lon, 180)):
        add(blank[c] & ~explained, c, f"{c} is blank")
        add(np.isnan(s) & ~blank[c], c, lambda v, c=c: f"{c} '{v}' is not a number")
        with np.errstate(invalid="ignore"):
            add(~np.isnan(s) & ~(np.abs(s) <= lim), c, lambda v, c=c, lim=lim: f"{c} {v} is outside -{lim}..{lim}")

    say(progress, 0.55, "checking rates and other numbers")
    factor = float(f.attrs.get("rate_factor", 1.0))
    rate_col = f.attrs.get("rate_column", "rate_kg_h")
    numeric: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        for c, lo, hi in (
            ("location_uncertainty_m", 0.0, 1e6),
            ("rate_kg_h", 0.0, None),
            ("rate_uncertainty_kg_h", 0.0, None),
            ("confidence", 0.0, 1.0),
            ("wind_speed_m_s", 0.0, 200.0),
        ):
            s = _floats(text[c])
            label = names_of.get(c, rate_col if c == "rate_kg_h" else c)
            finite = np.isfinite(s)
            add(np.isnan(s) & ~blank[c], c, lambda v, label=label: f"{label} '{v}' is not a number" + _number_hint(v))
            add(np.isinf(s), c, lambda v, label=label: f"{label} {v} is not finite")
            if c == "location_uncertainty_m":
                add(finite & (s <= 0), c, lambda v: f"location_uncertainty_m {v} must be > 0")
            else:
                add(finite & (s < lo), c, lambda v, label=label: f"{label} {v} is negative")
            if hi is not None:
                add(finite & (s > hi), c, lambda v, label=label, lo=lo, hi=hi: f"{label} {v} is outside {lo:g}..{hi:g}")
            elif c.startswith("rate"):  # a plausibility cap, in kg/h once converted (MLPE_MAX_RATE_KG_H)
                cap = caps.max_rate_kg_h
                with np.errstate(over="ignore"):
                    add(finite & (s * factor > cap), c, lambda v, label=label, cap=cap:
                        f"{label} {v} is above the plausible maximum of {cap:,.0f} kg/h (MLPE_MAX_RATE_KG_H)")
            if c.startswith("rate") and factor != 1.0:
                with np.errstate(over="ignore"):
                    add(finite & ~np.isfinite(s * factor), c,
                        lambda v, label=label: f"{label} {v} is too large once converted to kg/h")
            numeric[c] = s

    say(progress, 0.8, "looking for repeated ids")
    ids, names = text["detection_id"], text["source_name"]
    # one stable sort by the store's key (source_name, detection_id): repeats are neighbours, the first of a
    # run is the earliest row, and the writer reuses the order to append to the store's unique index
    order = pc.sort_indices(pa.table({"n": names, "i": ids}),
                            sort_keys=[("n", "ascending"), ("i", "ascending")]).to_numpy().astype(np.int64)
    dup = np.zeros(n, dtype=bool)
    if n > 1:
        sn, si = names.take(order), ids.take(order)
        same = _np(pc.and_(pc.equal(sn.slice(0, n - 1), sn.slice(1)), pc.equal(si.slice(0, n - 1), si.slice(1))))
        dup[order[1:][same]] = True
        dup &= ~blank["detection_id"]
    if dup.any():
        run_start = np.flatnonzero(np.concatenate([[True], ~same]))
        run_of = np.cumsum(np.concatenate([[True], ~same])) - 1  # sorted position → its run
        sorted_pos = np.empty(n, dtype=np.int64)
        sorted_pos[order] = np.arange(n)
        dup_idx = np.flatnonzero(dup)
        first_rows = order[run_start[run_of[sorted_pos[dup_idx]]]] + first_row
        id_vals = ids.take(pa.array(dup_idx)).to_pylist()
        problems.append((dup_idx, "detection_id",
                         [f"duplicate detection_id '{v}' (first on row {r})" for v, r in zip(id_vals, first_rows,
                                                                                               strict=True)], None))
    for idx, column, reason, values in getattr(f.attrs.get("mapping_rejects"), "value", []):
        problems.append((np.asarray(idx, dtype=np.int64), column, reason, values))

    if skip.any():
        problems = [(np.asarray(idx)[keep], column, [r for r, k in zip(reason, keep, strict=True) if k]
                     if isinstance(reason, list) else reason, None if values is None else np.asarray(values)[keep])
                    for idx, column, reason, values in problems
                    for keep in [~skip[np.asarray(idx, dtype=np.int64)]] if keep.any()]
    bad = skip.copy()
    for idx, *_ in problems:
        bad[idx] = True
    # coverage-only rows are neither detections nor rejects: only the rows with a problem count as rejected
    rejects = _reject_table(f, problems, first_row, names_of, keep_rows=caps.max_reject_rows, bad=bad & ~skip)

    good_idx = np.flatnonzero(~bad)
    all_good = good_idx.size == n
    take_pa = None if all_good else pa.array(good_idx)

    def pick_text(a: pa.Array | pa.ChunkedArray, blank_to_null: bool = False) -> pd.Series:
        a = a if all_good else a.take(take_pa)
        if blank_to_null:
            a = _nulled(a)
        return pd.Series(a.to_pandas(), dtype="str").reset_index(drop=True)

    def pick(x: np.ndarray) -> np.ndarray:
        return x if all_good else x[good_idx]

    st_good = pick_text(st)
    names_good = pick_text(names)
    out = pd.DataFrame(
        {
            "detection_id": pick_text(ids),
            "source_type": st_good,
            "source_name": names_good,
            "observed_at": pd.Series((ts if all_good else ts.take(take_pa)).to_pandas()).astype("datetime64[us, UTC]"),
            "latitude": pick(lat),
            "longitude": pick(lon),
            "location_uncertainty_m": pick(numeric["location_uncertainty_m"]),
            "rate_kg_h": pick(numeric["rate_kg_h"]) * factor,
            "rate_uncertainty_kg_h": pick(numeric["rate_uncertainty_kg_h"]) * factor,
            "confidence": pick(numeric["confidence"]),
            "wind_speed_m_s": pick(numeric["wind_speed_m_s"]),
            "asset_id": pick_text(text["asset_id"], blank_to_null=True),
            "event_type": pick_text(text["event_type"], blank_to_null=True),
            "attributes": (pd.Series(f["attributes"].to_numpy(dtype=object)[good_idx], dtype=object)
                           if "attributes" in f.columns else None),
            "source_row": good_idx.astype(np.int64) + first_row,
        }
    )
    sigma = out["location_uncertainty_m"].to_numpy(copy=True)
    missing = np.isnan(sigma)
    if missing.any():
        default = _defaults_for(names if all_good else names.take(take_pa), st if all_good else st.take(take_pa),
                                "sigma_m")
        reg_rows = pick(from_registry)
        # a registry position is the site's reference point: never claim better than the site's extent
        default = np.where(reg_rows, np.fmax(default, registry_sigma_m()), default)
        sigma[missing] = default[missing]
        out["location_uncertainty_m"] = sigma
    out.attrs["n_from_registry"] = int(pick(from_registry).sum())
    kept = order[~bad[order]]  # good rows in key order, as positions in ``out``
    out.attrs["key_order"] = _Shared(kept if all_good else (np.cumsum(~bad) - 1)[kept])
    say(progress, 1.0, f"{len(out):,} good rows")
    return out, rejects


def _registry_frame(reg: pd.DataFrame | None) -> pd.DataFrame:
    if reg is None or len(reg) == 0:
        return pd.DataFrame({"latitude": [], "longitude": []}, index=pd.Index([], dtype=object))
    r = reg[["asset_id", "latitude", "longitude"]].copy()
    r["asset_id"] = r["asset_id"].astype(str).str.strip()
    return r.drop_duplicates("asset_id", keep="last").set_index("asset_id").astype(float)


def control_reason(label: str) -> Callable[[str], str]:
    """Why a cell with a control character is refused, naming the first one and where it is."""
    import re

    def why(v: str) -> str:
        m = re.search(_CONTROL, v)
        return (f"{label} contains a control character (U+{ord(m.group()):04X}) at position {m.start() + 1}"
                if m else f"{label} contains a control character")

    return why


def _reject_table(f: pd.DataFrame, problems: list, first_row: int, names_of: dict[str, str],
                  keep_rows: int | None = None, bad: np.ndarray | None = None) -> pd.DataFrame:
    """The rejects, one line per problem, of the first ``keep_rows`` rejected rows only.

    Rows past them are counted (``attrs["n_rows"]``, ``attrs["n_problems"]``) but get no text: a file of only
    bad rows then costs memory for its counts, not for millions of reason strings.
    """
    if not problems:
        out = pd.DataFrame(columns=["row", "column", "value", "reason"])
        out.attrs.update(n_rows=0, n_problems=0)
        return out
    n_rows = int(bad.sum()) if bad is not None else None
    n_problems = sum(len(p[0]) for p in problems)
    if keep_rows is not None and bad is not None and n_rows > keep_rows:
        last = np.flatnonzero(bad)[keep_rows - 1]  # position of the last rejected row kept
        trimmed = []
        for idx, column, reason, given in problems:
            keep = idx <= last
            if keep.any():
                trimmed.append((idx[keep], column, [r for r, k in zip(reason, keep, strict=True) if k]
                                if isinstance(reason, list) else reason,
                                None if given is None else [g for g, k in zip(given, keep, strict=True) if k]))
        problems = trimmed
    parts = []
    for idx, column, reason, given in problems:
        if given is not None:
            values = [str(v)[:80] for v in given]
        elif column in f.columns:
            values = [str(v)[:80] for v in f[column].to_numpy(dtype=object)[idx]]
        else:
            values = [""] * len(idx)
        if callable(reason):
            reasons = [reason(v) for v in values]
        elif isinstance(reason, list):
            reasons = reason
        else:
            reasons = [reason] * len(idx)
        shown = names_of.get(column, column)
        parts.append(pd.DataFrame({"row": idx.astype(np.int64) + first_row, "column": shown, "value": values,
                                   "reason": reasons}))
    rejects = pd.concat(parts, ignore_index=True)
    for c in ("column", "value", "reason"):
        rejects[c] = rejects[c].astype(object)
    out = rejects.sort_values(["row", "column"], kind="stable").reset_index(drop=True)
    out.attrs.update(n_rows=n_rows if n_rows is not None else int(out["row"].nunique()), n_problems=n_problems)
    return out


def validate_coverage(frame: pd.DataFrame, good: pd.DataFrame, first_row: int = 2,
                      assets: AssetLookup = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The coverage windows of a window file (``frame.attrs['coverage']``), typed and checked.

    Windows of detections are kept for the detections that were accepted (``good``: their ``source_row``),
    starting at the detection's time; an end that cannot be read or comes before the start makes the window
    instantaneous. Coverage-only windows (watching, offline) are rejected one by one, with file row and
    column, when a time cannot be read, the window ends before it starts, or the site is blank or (given
    ``assets``, as for detections) not in the registry. Returns (windows, rejects). The input is not modified.
    """
    cov = getattr(frame.attrs.get("coverage"), "value", None)
    cols = ["source_name", "source_type", "asset_id", "start_at", "end_at", "state", "detection_id", "source_row"]
    empty_rejects = pd.DataFrame(columns=["row", "column", "value", "reason"])
    if cov is None or len(cov) == 0:
        return pd.DataFrame(columns=cols), empty_rejects
    shown = frame.attrs.get("coverage_columns", {})
    row = cov["pos"].to_numpy(np.int64) + first_row
    start = parse_times(pd.Series(cov["start"].astype(str).to_numpy(), dtype="str"))
    end = parse_times(pd.Series(cov["end"].astype(str).to_numpy(), dtype="str"))
    asset = cov["asset_id"].astype(str).str.strip().to_numpy(dtype=object)
    state = cov["state"].to_numpy(dtype=object)
    skip = getattr(frame.attrs.get("not_detection"), "value", None)
    row_is_detection = np.ones(len(frame), bool) if skip is None else ~np.asarray(skip, dtype=bool)
    # the window of a detection row of this file; a coverage export's ``detected`` windows are coverage rows
    # naming detections loaded from another file
    is_det = (state == "detected") & row_is_detection[cov["pos"].to_numpy(np.int64)]
    problems: list[tuple[np.ndarray, str, object, np.ndarray]] = []
    only = ~is_det
    if "state_text" in cov:
        known = pd.Series(state).isin(["detected", "watching", "offline"]).to_numpy()
        problems.append((np.flatnonzero(~known), shown.get("state", "state"),
                         lambda v: f"state '{v}' is not detected, watching or offline (or P, N, NA)",
                         cov["state_text"].to_numpy(dtype=object)[~known]))

    def add(mask: np.ndarray, column: str, reason, values: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            problems.append((idx, column, reason, values[idx]))

    start_text = cov["start"].astype(str).to_numpy(dtype=object)
    end_text = cov["end"].astype(str).to_numpy(dtype=object)
    add(only & start.isna().to_numpy(), shown.get("start", "start"),
        lambda v: "start is blank" if not v.strip() else f"cannot read '{v}' as a time", start_text)
    add(only & start.notna().to_numpy() & end.isna().to_numpy(), shown.get("end", "end"),
        lambda v: "end is blank" if not v.strip() else f"cannot read '{v}' as a time", end_text)
    with np.errstate(invalid="ignore"):
        backwards = (end < start).fillna(False).to_numpy(bool)
    add(only & backwards, shown.get("end", "end"), lambda v: f"the window ends ({v}) before it starts", end_text)
    add(only & (asset == ""), shown.get("asset_id", "asset_id"), "no site: name it with --asset", asset)
    if assets is not None and only.any():
        need = sorted({a for a in asset[only] if a})
        reg = assets(need) if callable(assets) else assets
        known = set(_registry_frame(reg).index)
        add(only & (asset != "") & ~pd.Series(asset).isin(known).to_numpy(), shown.get("asset_id", "asset_id"),
            lambda v: f"unknown asset_id '{v}': import assets first", asset)
    bad = np.zeros(len(cov), dtype=bool)
    for idx, *_ in problems:
        bad[idx] = True
    accepted = set(good["source_row"].astype(np.int64)) if len(good) else set()
    keep_det = is_det & pd.Series(row).isin(accepted).to_numpy()
    keep = (only & ~bad) | keep_det
    if keep_det.any():  # a detection's window starts at the detection's accepted time
        at = good.set_index("source_row")["observed_at"]
        start = start.copy()
        start.iloc[np.flatnonzero(keep_det)] = at.reindex(row[keep_det]).to_numpy()
    end = end.where(end.notna() & (end >= start), start)
    det_id = np.where(state == "detected", cov["detection_id"].astype(str).to_numpy(dtype=object), None)
    det_id = np.where(pd.Series(det_id).fillna("").astype(str).str.strip().to_numpy() == "", None, det_id)
    out = pd.DataFrame({"source_name": cov["source_name"].astype(str).to_numpy(dtype=object),
                        "source_type": cov["source_type"].astype(str).to_numpy(dtype=object),
                        "asset_id": asset, "start_at": start.to_numpy(), "end_at": end.to_numpy(), "state": state,
                        "detection_id": det_id, "source_row": row})[keep].reset_index(drop=True)
    if keep_det.any():  # a detection row already stored as another file's keeps that file's id and window
        names = good.set_index("source_row")["detection_id"]
        sel = out["state"].eq("detected").to_numpy()
        out.loc[sel, "detection_id"] = names.reindex(out.loc[sel, "source_row"]).to_numpy()
    rejects = pd.concat([pd.DataFrame({"row": row[idx], "column": column, "value": [str(v)[:80] for v in values],
                                       "reason": [reason(str(v)) if callable(reason) else reason for v in values]})
                         for idx, column, reason, values in problems], ignore_index=True) if problems else empty_rejects
    return out, rejects
