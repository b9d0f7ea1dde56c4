"""The instrument table (``config/instruments.yaml``): defaults and priors per sensor, looked up once
per distinct sensor."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from ..config import config_path
from ..errors import BadInput
from ..schema import SOURCE_TYPES
from .arrow import _text


@lru_cache(maxsize=4)
def load_instruments(path: str | None = None) -> dict:
    """The instrument table (``config/instruments.yaml``): default uncertainty and priors by sensor."""
    p = Path(path) if path else config_path("instruments.yaml")
    try:
        with open(p, encoding="utf-8") as fh:
            table = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:  # a person's file: said as bad input naming it (exit 2), not a crash
        raise BadInput(f"{p}: cannot be read as YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(table, dict) or not isinstance(table.get("source_types"), dict):
        raise BadInput(f"{p}: needs a 'source_types' mapping with an entry per sensor type "
                       f"({', '.join(SOURCE_TYPES)})")
    for st in SOURCE_TYPES:
        if st not in table["source_types"]:
            raise BadInput(f"{p}: source_types lacks '{st}'")
    return table


def registry_sigma_m() -> float:
    """1-sigma error of a position taken from the asset registry (the site's extent), from the config."""
    return float(load_instruments().get("asset_registry", {}).get("sigma_m", 150.0))


def _defaults_one(name: str, stype: str, key: str, table: dict) -> float:
    lname = name.lower()
    for inst in table.get("instruments", []):
        if key in inst and inst["match"] in lname:
            return float(inst[key])
    v = table["source_types"].get(stype, {}).get(key)
    return float(v) if v is not None else np.nan


def instrument_defaults(source_name: pd.Series, source_type: pd.Series, key: str) -> pd.Series:
    """Per-row default of ``key`` (sigma_m, detection_limit_kg_h): by instrument name, else source type.

    Computed once per distinct (source_name, source_type) pair, so it costs nothing per row.
    """
    values = _defaults_for(_text(source_name), _text(source_type), key)
    return pd.Series(values, index=source_name.index, dtype=float)


def _dictionary(a: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list]:
    """Integer codes (int64) and the distinct values of a string column."""
    enc = pc.dictionary_encode(a)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.unify_dictionaries()
        if enc.num_chunks == 0:
            return np.zeros(0, dtype=np.int64), []
        values = enc.chunk(0).dictionary.to_pylist()
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False).astype(np.int64) for c in enc.chunks])
        return codes, values
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def _defaults_for(names: pa.Array, types: pa.Array, key: str) -> np.ndarray:
    table = load_instruments()
    (n_codes, n_names), (t_codes, t_names) = _dictionary(names), _dictionary(types)
    width = max(len(t_names), 1)
    codes, uniq = pd.factorize(n_codes * width + t_codes)
    vals = np.array([_defaults_one(n_names[u // width], t_names[u % width], key, table) for u in uniq], dtype=float)
    return vals[codes] if len(vals) else np.full(len(codes), np.nan)
