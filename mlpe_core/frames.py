"""Frame operations pandas 3 makes slow on Arrow-backed text columns, done the fast way.

pandas 3 stores text as Arrow strings. ``Series.isin`` then turns each value looked for into an Arrow scalar one at
a time (~8 µs each: 0.5 s to find a million detections' leaks among 100,000 ids) before one vectorised lookup;
iterating such a column makes a Python string per element through a slow path. At a million detections a watch
cycle paid ~1 s for this alone (issue 18). :func:`isin` builds the value set as one Arrow array instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def isin(column: pd.Series | pd.Index, values: Iterable) -> np.ndarray:
    """``column.isin(values)`` as a bool array, fast for text columns (as pandas: a missing value is in when
    ``values`` holds one)."""
    dtype = column.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return np.asarray(column.isin(values if isinstance(values, pd.Series | pd.Index | np.ndarray | list)
                                      else list(values)), dtype=bool)
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(column.array)
    if isinstance(values, pd.Series | pd.Index) and isinstance(values.dtype, pd.StringDtype):
        wanted = pa.array(values.array)
    else:
        values = list(values)
        wanted = pa.array([v for v in values if isinstance(v, str)]
                          + ([None] if any(v is None or (isinstance(v, float) and v != v) for v in values) else []),
                          type=pa.large_string())
    if not len(wanted):
        return np.zeros(len(column), dtype=bool)
    hit = pc.is_in(arr, value_set=wanted.cast(arr.type))  # (a null matches a null in the set, as in pandas)
    return hit.fill_null(False).to_numpy(zero_copy_only=False)


def distinct(column: pd.Series | pd.Index) -> set:
    """The distinct non-missing values of ``column`` as a set (``set(column.dropna())`` without making a Python
    object per row through pandas' element-wise path)."""
    return set(pd.unique(column.dropna()).tolist())
