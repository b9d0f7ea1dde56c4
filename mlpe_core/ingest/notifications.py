"""Notification files (contract §2): read and checked row by row like every other import (file, row, column,
reason), because a notice starts legal clocks and a mistyped one must be refused, not half-read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import NOTIFICATION_COLUMNS, NOTIFICATION_PROGRAMS, NOTIFICATION_REQUIRED
from .errors import IngestError
from .validate import parse_times

_PROGRAM_BY_LOWER = {p.lower(): p for p in NOTIFICATION_PROGRAMS}


def check_notifications(raw: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check a notifications table (contract §2) row by row.

    Returns the typed good rows (the contract columns plus ``source_row``, the file line: header = 1) and the
    rejects (row, column, reason), a row's first problem being its reason. A missing required column is a
    structural error (:class:`IngestError`) and nothing is returned. ``program`` is matched case-insensitively
    and stored in the contract's spelling; a row needs ``detection_ref`` or both coordinates, since otherwise
    nothing can tie it to a leak.
    """
    cols = {c.strip().lower(): c for c in raw.columns}
    missing = [c for c in NOTIFICATION_REQUIRED if c not in cols]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    df = raw.rename(columns={v: k for k, v in cols.items()})
    for c in NOTIFICATION_COLUMNS:
        if c not in df:
            df[c] = ""
    text = {c: df[c].fillna("").astype(str).str.strip() for c in NOTIFICATION_COLUMNS}
    nid = text["notification_id"]
    received = parse_times(df["received_at"].fillna("").astype(str))
    program = text["program"].str.lower().map(_PROGRAM_BY_LOWER)
    num = {c: pd.to_numeric(text[c].replace("", np.nan), errors="coerce") for c in ("latitude", "longitude",
                                                                                     "rate_kg_h")}
    first = pd.Series(nid.index, index=nid.index).groupby(nid.to_numpy()).transform("min")
    has_lat, has_lon = text["latitude"].ne(""), text["longitude"].ne("")
    problems = [
        (nid.eq(""), "notification_id", lambda i: "notification_id is blank"),
        (nid.ne("") & first.ne(nid.index), "notification_id",
         lambda i: f"notification_id '{nid[i]}' repeated (first on row {first[i] + 2})"),
        (received.isna(), "received_at",
         lambda i: f"cannot read '{text['received_at'][i]}' as an ISO 8601 time"),
        (program.isna(), "program",
         lambda i: f"program '{text['program'][i]}' is not one of {', '.join(NOTIFICATION_PROGRAMS)}"),
        (has_lat & (num["latitude"].isna() | (num["latitude"].abs() > 90)), "latitude",
         lambda i: f"latitude '{text['latitude'][i]}' invalid"),
        (has_lon & (num["longitude"].isna() | (num["longitude"].abs() > 180)), "longitude",
         lambda i: f"longitude '{text['longitude'][i]}' invalid"),
        (has_lat & ~has_lon, "longitude", lambda i: "longitude is blank while latitude is given"),
        (has_lon & ~has_lat, "latitude", lambda i: "latitude is blank while longitude is given"),
        (text["detection_ref"].eq("") & ~(has_lat & has_lon), "detection_ref",
         lambda i: "needs a detection_ref, or latitude and longitude, to find the leak it concerns"),
        (text["rate_kg_h"].ne("") & ~(num["rate_kg_h"] >= 0), "rate_kg_h",
         lambda i: f"rate_kg_h '{text['rate_kg_h'][i]}' must be a number ≥ 0"),
    ]
    taken = pd.Series(False, index=df.index)
    rejects = []
    for mask, column, why in problems:
        hit = mask.fillna(True).astype(bool) & ~taken
        rejects += [(int(i) + 2, column, why(i)) for i in hit[hit].index]
        taken |= hit
    rej = pd.DataFrame(sorted(rejects), columns=["row", "column", "reason"])
    ok = ~taken

    def blank_none(s: pd.Series) -> pd.Series:
        return s[ok].where(s[ok].ne(""), None)

    good = pd.DataFrame({
        "notification_id": nid[ok],
        "received_at": received[ok],
        "program": program[ok],
        "notifier": blank_none(text["notifier"]),
        "detection_ref": blank_none(text["detection_ref"]),
        "latitude": num["latitude"][ok].astype(float),
        "longitude": num["longitude"][ok].astype(float),
        "rate_kg_h": num["rate_kg_h"][ok].astype(float),
        "notes": blank_none(text["notes"]),
        "source_row": (df.index[ok] + 2).astype(int),
    }).reset_index(drop=True)
    return good, rej
