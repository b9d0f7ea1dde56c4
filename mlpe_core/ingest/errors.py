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

    def summary(self) -> str:
        if self.already_ingested:
            return f"{self.file_name}: already ingested (same content), nothing changed"
        return (
            f"{self.file_name} [{self.format}]: {self.n_rows} rows, {self.n_accepted} accepted, "
            f"{self.n_rejected} rejected, {self.n_duplicate} already loaded"
        )


class _Shared:
    """Holds a large array in ``DataFrame.attrs`` without pandas deep-copying it on every operation."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray):
        self.value = value

    def __deepcopy__(self, memo: dict) -> _Shared:
        return self

    def __len__(self) -> int:
        return len(self.value)
