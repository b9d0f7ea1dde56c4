"""Input limits: how big a file, how many rows and columns, how much it may unpack to, and what values are
plausible. Read from the environment on each call, so an operator raises one without a code change.

=========================== ========================= ==============================================
variable                    default                   refuses
=========================== ========================= ==============================================
``MLPE_MAX_FILE_BYTES``     512 MiB                   a file larger on disk (before it is read)
``MLPE_MAX_ROWS``           3,000,000                 more data rows (Parquet and XLSX: from their
                                                      metadata, before reading; CSV: once parsed)
``MLPE_MAX_COLUMNS``        500                       more columns (from the header or metadata)
``MLPE_MAX_UNPACKED_BYTES`` 256 MiB                   an XLSX whose zip members, or a Parquet whose
                                                      column chunks, unpack to more
``MLPE_MAX_RATE_KG_H``      1,000,000 kg/h            a rate above it (the largest recorded blowouts
                                                      are ~100 t/h; 1e300 is a typo or an attack)
``MLPE_MAX_REJECT_ROWS``    10,000                    nothing: rejects past it are counted, not kept
``MLPE_MAX_JSON_BYTES``     16 MiB                    an API request whose JSON body is larger (413,
                                                      before it is parsed; ``POST /detections`` has
                                                      ``MLPE_MAX_FILE_BYTES``)
=========================== ========================= ==============================================

Times: a detection or a visit dated before 1990 or more than a day after now is refused with its reason.
``SECURITY.md`` lists the guarantees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

MIN_TIME = pd.Timestamp("1990-01-01", tz="UTC")
FUTURE_SLACK = pd.Timedelta(days=1)  # clocks differ and time zones are mislabelled; more than a day is an error


def _env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        v = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc
    if v <= 0:
        raise ValueError(f"{name} must be > 0")
    return v


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_rows: int
    max_columns: int
    max_unpacked_bytes: int
    max_rate_kg_h: float
    max_reject_rows: int
    max_json_bytes: int = 16 * 2**20

    def latest_time(self) -> pd.Timestamp:
        """The latest plausible observation or visit time: now plus a day."""
        return pd.Timestamp.now(tz="UTC") + FUTURE_SLACK


def limits() -> Limits:
    """The limits in force (environment variables over the defaults above)."""
    return Limits(
        max_file_bytes=int(_env("MLPE_MAX_FILE_BYTES", 512 * 2**20)),
        max_rows=int(_env("MLPE_MAX_ROWS", 3_000_000)),
        max_columns=int(_env("MLPE_MAX_COLUMNS", 500)),
        max_unpacked_bytes=int(_env("MLPE_MAX_UNPACKED_BYTES", 256 * 2**20)),
        max_rate_kg_h=_env("MLPE_MAX_RATE_KG_H", 1e6),
        max_reject_rows=int(_env("MLPE_MAX_REJECT_ROWS", 10_000)),
        max_json_bytes=int(_env("MLPE_MAX_JSON_BYTES", 16 * 2**20)),
    )


def mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"
