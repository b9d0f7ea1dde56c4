"""Asset and field-outcome files: read and checked row by row like detections (file, row, column, reason)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..limits import MIN_TIME, limits
from ..schema import ASSET_REQUIRED, OUTCOMES, VALIDATION_REQUIRED
from .errors import IngestError
from .validate import parse_times

# optional validation columns beyond contract §2, used by the lifecycle and the compliance clocks
VALIDATION_EXTRA: tuple[str, ...] = ("found_by", "rate_method", "repair_attempted_at", "delay_reason")
FOUND_BY: tuple[str, ...] = ("ogi", "method21", "avo", "other")  # how the crew found the leak
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls and DEL (tab, LF, CR are text)


def check_assets(raw: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check an asset file (contract §2) row by row: typed good rows (asset_id, latitude, longitude,
    asset_type, operator) and rejects (row, column, reason). A row's first problem is its reason."""
    cols = {c.lower(): c for c in raw.columns}
    missing = [c for c in ASSET_REQUIRED if c not in cols]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    df = raw.rename(columns={v: k for k, v in cols.items()})
    lat = pd.to_numeric(df["latitude"], errors="coerce")
    lon = pd.to_numeric(df["longitude"], errors="coerce")
    aid = df["asset_id"].astype(str).str.strip()
    first = pd.Series(aid.index, index=aid.index).groupby(aid.to_numpy()).transform("min")  # first row of each id
    problems = [
        (aid.eq(""), "asset_id", lambda i: "asset_id is blank"),
        (aid.ne("") & first.ne(aid.index), "asset_id",
         lambda i: f"asset_id '{aid[i]}' repeated (first on row {first[i] + 2})"),
        (lat.isna() | (lat.abs() > 90), "latitude", lambda i: f"latitude '{df['latitude'][i]}' invalid"),
        (lon.isna() | (lon.abs() > 180), "longitude", lambda i: f"longitude '{df['longitude'][i]}' invalid"),
    ]
    taken = pd.Series(False, index=df.index)
    rejects = []
    for mask, column, why in problems:
        hit = mask & ~taken
        rejects += [(i + 2, column, why(i)) for i in hit[hit].index]
        taken |= hit
    rej = pd.DataFrame(sorted(rejects), columns=["row", "column", "reason"])
    ok = ~taken
    text = {c: (df.loc[ok, c].astype(str).str.strip().replace("", None) if c in df else None)
            for c in ("asset_type", "operator")}
    good = pd.DataFrame({"asset_id": aid[ok], "latitude": lat[ok].astype(float), "longitude": lon[ok].astype(float),
                         "asset_type": text["asset_type"], "operator": text["operator"]}).reset_index(drop=True)
    return good, rej


def validate_validations(df: pd.DataFrame, known_leaks: set[str], label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check field outcomes row by row (contract §2); returns typed good rows and rejects."""
    cols = {c.lower(): c for c in df.columns}
    missing = [c for c in VALIDATION_REQUIRED if c not in cols]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    df = df.rename(columns={v: k for k, v in cols.items()})
    for c in ("measured_rate_kg_h", "component", "repaired_at", "crew", "notes", *VALIDATION_EXTRA):
        if c not in df:
            df[c] = ""
    rej = []
    lim = limits()
    latest = lim.latest_time()
    visited = parse_times(df["visited_at"])
    repaired = parse_times(df["repaired_at"])
    attempted = parse_times(df["repair_attempted_at"])
    found_by = df["found_by"].fillna("").astype(str).str.strip().str.lower()
    rate = pd.to_numeric(df["measured_rate_kg_h"].astype(str).str.strip().replace("", np.nan), errors="coerce")
    outcome = df["outcome"].astype(str).str.strip().str.lower()
    for i in df.index:
        lk = str(df.at[i, "leak_id"]).strip()
        r = i + 2
        if not lk:
            rej.append((r, "leak_id", "leak_id is blank"))
        elif lk not in known_leaks:
            rej.append((r, "leak_id", f"unknown leak_id '{lk}'"))
        if pd.isna(visited[i]):
            rej.append((r, "visited_at", f"cannot read '{df.at[i, 'visited_at']}' as an ISO 8601 time"))
        elif not MIN_TIME <= visited[i] <= latest:
            when = "in the future (more than a day after now)" if visited[i] > latest else \
                f"before {MIN_TIME:%Y-%m-%d}"
            rej.append((r, "visited_at", f"visited_at '{df.at[i, 'visited_at']}' is {when}: not a plausible visit"))
        for c, t in (("repaired_at", repaired[i]), ("repair_attempted_at", attempted[i])):
            if not pd.isna(t) and not MIN_TIME <= t <= latest:
                rej.append((r, c, f"{c} '{df.at[i, c]}' is not between {MIN_TIME:%Y-%m-%d} and a day from now"))
        for c in ("leak_id", "outcome", "component", "crew", "notes", "found_by", "rate_method", "delay_reason"):
            v = df.at[i, c]
            if isinstance(v, str) and _CONTROL.search(v):
                rej.append((r, c, f"{c} contains a control character (U+{ord(_CONTROL.search(v).group()):04X})"))
        if outcome[i] not in OUTCOMES:
            rej.append((r, "outcome", f"outcome '{df.at[i, 'outcome']}' is not one of {', '.join(OUTCOMES)}"))
        raw_rate = str(df.at[i, "measured_rate_kg_h"]).strip()
        if raw_rate and (pd.isna(rate[i]) or rate[i] < 0 or not np.isfinite(rate[i])):
            rej.append((r, "measured_rate_kg_h", f"measured_rate_kg_h '{raw_rate}' must be a number ≥ 0"))
        elif raw_rate and rate[i] > lim.max_rate_kg_h:
            rej.append((r, "measured_rate_kg_h", f"measured_rate_kg_h {raw_rate} is above the plausible maximum of "
                        f"{lim.max_rate_kg_h:,.0f} kg/h (MLPE_MAX_RATE_KG_H)"))
        if str(df.at[i, "repaired_at"]).strip() and pd.isna(repaired[i]):
            rej.append((r, "repaired_at", f"cannot read '{df.at[i, 'repaired_at']}' as an ISO 8601 time"))
        # optional columns beyond contract §2 (lifecycle and compliance): checked the same way
        if str(df.at[i, "repair_attempted_at"]).strip() and pd.isna(attempted[i]):
            rej.append(
                (r, "repair_attempted_at", f"cannot read '{df.at[i, 'repair_attempted_at']}' as an ISO 8601 time")
            )
        if found_by[i] and found_by[i] not in FOUND_BY:
            rej.append((r, "found_by", f"found_by '{df.at[i, 'found_by']}' is not one of {', '.join(FOUND_BY)}"))
    rejects = pd.DataFrame(rej, columns=["row", "column", "reason"])
    bad = set(rejects["row"] - 2)
    ok = df.index[~df.index.isin(list(bad))]
    good = pd.DataFrame(
        {
            "leak_id": df.loc[ok, "leak_id"].astype(str).str.strip(),
            "visited_at": visited[ok],
            "outcome": outcome[ok],
            "measured_rate_kg_h": rate[ok],
            "component": df.loc[ok, "component"].replace("", None),
            "repaired_at": repaired[ok],
            "crew": df.loc[ok, "crew"].replace("", None),
            "notes": df.loc[ok, "notes"].replace("", None),
            "found_by": found_by[ok].replace("", None),
            "rate_method": df.loc[ok, "rate_method"].replace("", None),
            "repair_attempted_at": attempted[ok],
            "delay_reason": df.loc[ok, "delay_reason"].replace("", None),
        }
    )
    return good, rejects
