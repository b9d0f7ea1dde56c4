"""Arrow helpers for the vectorised checks: text, blanks and numbers without touching Python objects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_NUMBER = r"^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity|nan)$"

def _arrow_text(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow strings (nulls kept), without copying when it already is Arrow-backed."""
    try:
        return pa.array(s, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array(s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v)),
                        type=pa.large_string(), from_pandas=True)


def _ls(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _combined(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _np(a: pa.Array | pa.ChunkedArray, fill: bool = False) -> np.ndarray:
    """A boolean Arrow array as numpy (nulls → ``fill``)."""
    return np.asarray(pc.fill_null(a, fill).to_numpy(zero_copy_only=False), dtype=bool)


def _offsets(a: pa.Array) -> np.ndarray:
    width = np.int64 if pa.types.is_large_string(a.type) else np.int32
    return np.frombuffer(a.buffers()[1], dtype=width)[a.offset:a.offset + len(a) + 1]


def _chunks(a: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return a.chunks if isinstance(a, pa.ChunkedArray) else [a]


def _edge_space(a: pa.Array) -> bool:
    """Whether any value starts or ends with a space, a control character or a non-ASCII byte."""
    if len(a) == 0 or a.buffers()[2] is None:
        return False
    off = _offsets(a)
    data = np.frombuffer(a.buffers()[2], dtype=np.uint8)
    start, end = off[:-1], off[1:]
    filled = end > start
    first, last = data[start[filled]], data[end[filled] - 1]
    return bool(((first <= 0x20) | (first >= 0x80) | (last <= 0x20) | (last >= 0x80)).any())


_CONTROL_BYTES = np.zeros(256, dtype=bool)
_CONTROL_BYTES[[*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]] = True  # C0 controls and DEL, not tab/LF/CR


def _control_rows(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which values hold a NUL or another control character (tab, LF and CR are text): one table lookup over
    the string bytes, and the rows found from the offsets only where there is a hit."""
    parts = []
    for c in _chunks(a):
        hit = np.zeros(len(c), dtype=bool)
        if len(c) and c.buffers()[2] is not None:
            off = _offsets(c)
            data = np.frombuffer(c.buffers()[2], dtype=np.uint8)[off[0]:off[-1]]
            pos = np.flatnonzero(_CONTROL_BYTES[data])
            if pos.size:
                hit[np.unique(np.searchsorted(off, pos + off[0], side="right") - 1)] = True
        parts.append(hit)
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _text(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow strings without nulls (null → ""), stripped of surrounding whitespace.

    The chunks of the reader are kept (combining them would copy the column), and the strip, itself
    a copy, is skipped when a look at the first and last byte of every value shows nothing to strip.
    """
    a = _arrow_text(s)
    if a.null_count:
        a = pc.fill_null(a, "")
    if any(_edge_space(c) for c in _chunks(a)):
        a = pc.utf8_trim_whitespace(a)
    return a


def _blank(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which values of a null-free string array are empty (from the offsets, no string work)."""
    parts = []
    for c in _chunks(a):
        off = _offsets(c)
        parts.append(off[1:] == off[:-1])
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _nulled_chunk(t: pa.Array, blank: np.ndarray) -> pa.Array:
    if t.null_count == 0 and t.offset == 0 and (pa.types.is_string(t.type) or pa.types.is_large_string(t.type)):
        if not blank.any():
            return t
        validity = pa.array(~blank).buffers()[1]
        return pa.Array.from_buffers(t.type, len(t), [validity, t.buffers()[1], t.buffers()[2]])
    return pc.if_else(pc.equal(t, ""), pa.scalar(None, t.type), t)


def _nulled(t: pa.Array | pa.ChunkedArray, blank: np.ndarray | None = None) -> pa.Array | pa.ChunkedArray:
    """The same strings with "" as null; without copying them when the array allows."""
    if t.null_count:
        return pc.if_else(pc.equal(t, ""), pa.scalar(None, t.type), t)
    blank = _blank(t) if blank is None else blank
    if not isinstance(t, pa.ChunkedArray):
        return _nulled_chunk(t, blank)
    out, at = [], 0
    for c in t.chunks:
        out.append(_nulled_chunk(c, blank[at:at + len(c)]))
        at += len(c)
    return pa.chunked_array(out, type=t.type)


def _floats(t: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Stripped text → float64 (NaN for blank or not a number). One Arrow cast in the common case."""
    nulled = _nulled(t)
    try:
        return np.array(pc.cast(nulled, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)  # writable
    except (pa.ArrowException, ValueError):
        pass
    ok = pc.match_substring_regex(nulled, _NUMBER, ignore_case=True)
    try:
        vals = pc.cast(pc.if_else(ok, nulled, pa.scalar(None, nulled.type)), pa.float64())
        return np.array(pc.fill_null(vals, np.nan).to_numpy(zero_copy_only=False), dtype=float)
    except (pa.ArrowException, ValueError):  # pragma: no cover - the regex admits only what Arrow parses
        out = np.full(len(t), np.nan)
        for i, v in enumerate(pc.if_else(ok, nulled, pa.scalar(None, nulled.type)).to_pylist()):
            if v is not None:
                try:
                    out[i] = float(v)
                except (ValueError, OverflowError):
                    pass
        return out
