"""The canonical detection CSV (contract §1), with rates in any unit the column suffix names."""

from __future__ import annotations

import pandas as pd

from ...schema import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from ..errors import IngestError
from .common import _rate_columns


def map_canonical(raw: pd.DataFrame, source_name: str | None, label: str) -> pd.DataFrame:
    cols = {c.lower(): c for c in raw.columns}
    df = raw.rename(columns={v: k for k, v in cols.items()})
    rate_col, unc_col, factor = _rate_columns(df.columns, ("rate_",), label)
    out = pd.DataFrame(index=df.index)
    if source_name:
        df["source_name"] = source_name
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    for c in CANONICAL_COLUMNS:
        out[c] = df[c] if c in df.columns else ""
    if rate_col:
        out["rate_kg_h"] = df[rate_col]
        out.attrs["rate_factor"] = factor
        out.attrs["rate_column"] = rate_col
        if unc_col:
            out["rate_uncertainty_kg_h"] = df[unc_col]
        # rejects name the file's own column (rate_g_s), not the canonical one it is converted into
        out.attrs["source_columns"] = {k: v for k, v in (("rate_kg_h", rate_col), ("rate_uncertainty_kg_h", unc_col))
                                       if v and v != k}
    return out
