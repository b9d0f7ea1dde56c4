"""What an ingest reports: a structural error that writes nothing, and the per-file report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


class IngestError(ValueError):
    """A structural problem: nothing from this file was written."""

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.message = file, row, column, message
        where = [file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass
class IngestReport:
    """What happened to one file: counts, the rejected rows and why, and the batch written."""

    file_name: str
    sha256: str
    format: str
    n_rows: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    n_duplicate: int = 0
    already_ingested: bool = False
    batch_id: int | None = None
    rejects: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["row", "column", "value", "reason"])
    )
    n_from_registry: int = 0  # accepted rows whose position came from the asset registry
    # window files (a monitor's or aircraft's report): rows that are coverage only are not detection rows;
    # n_rows, n_accepted, n_rejected and n_duplicate count detection rows, these the coverage windows
    n_coverage_rows: int = 0  # rows that were windows watched with nothing seen, or offline
    n_coverage: int = 0  # coverage windows stored (those of accepted detections included)
    n_coverage_rejected: int = 0  # coverage-only rows rejected (their reasons are in ``rejects``)
    coverage_states: dict = field(default_factory=dict)  # stored windows by state
    flags: pd.DataFrame = field(  # rows loaded but reported (e.g. rate bounds that do not bracket the rate)
        default_factory=lambda: pd.DataFrame(columns=["row", "column", "value", "reason"])
    )

    def summary(self) -> str:
        if self.already_ingested:
            return f"{self.file_name}: already ingested (same content), nothing changed"
        text = (
            f"{self.file_name} [{self.format}]: {self.n_rows} rows, {self.n_accepted} accepted, "
            f"{self.n_rejected} rejected, {self.n_duplicate} already loaded"
        )
        if self.n_coverage_rows or self.n_coverage:
            states = ", ".join(f"{v} {k}" for k, v in sorted(self.coverage_states.items()))
            text += (f"; {self.n_coverage} coverage windows kept ({states or 'none new'}) from "
                     f"{self.n_coverage_rows} coverage-only rows and the detections' own windows, "
                     f"{self.n_coverage_rejected} coverage rows rejected")
        if len(self.flags):
            first = self.flags.iloc[0]
            text += (f"; {self.flags['row'].nunique()} rows flagged, loaded without the flagged value "
                     f"(row {first['row']}, column '{first['column']}': {first['reason']})")
        return text


class _Shared:
    """Holds a large array in ``DataFrame.attrs`` without pandas deep-copying it on every operation."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray):
        self.value = value

    def __deepcopy__(self, memo: dict) -> _Shared:
        return self

    def __len__(self) -> int:
        return len(self.value)
