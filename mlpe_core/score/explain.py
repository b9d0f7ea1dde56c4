"""Explain: turn the scoring model's own contributions into sentences an analyst can check.

The sentence is built from the contributions of the model that made the score (exact terms for
the cold-start model; the prior's terms and SHAP values for the learned one), ordered by how much each
moved the log-odds, with the facts behind each term quoted from the leak's features. Nothing here
re-derives a score: it only reads what the scorer produced.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..present import SENSOR_WORDS
from ..schema import SOURCE_TYPES

_SENSOR_TERMS = set(SOURCE_TYPES) | {f"n_{t}" for t in SOURCE_TYPES} | {"n_sources", "n_source_types", "n_detections"}
_RECENCY_TERMS = {"recency", "days_since_last"}
_SILENCE_TERMS = {"silence", "missed_looks", "log_p_silence"}
_REPAIR_TERMS = {"repair_clock", "log_p_unrepaired"}
_FEATURE_COLUMNS = ["n_detections", "n_sources", *[f"n_{t}" for t in SOURCE_TYPES], "mean_confidence",
                    "confidence_evidence", "days_since_last", "span_days", "n_days_seen", "missed_looks",
                    "radius_m", "source_names", "days_since_ogi", "est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h",
                    "rate_quantified"]
MIN_TERM = 0.05  # log-odds: smaller terms are not worth a phrase


def _num(f: dict, key: str, default: float = float("nan")) -> float:
    v = f.get(key, default)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def _ago(days: float) -> str:
    if not math.isfinite(days):
        return "time unknown"
    if days < 1:
        return "last seen today"
    if days < 2:
        return "last seen yesterday"
    return f"last seen {days:.0f} days ago"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _names(f: dict) -> list[str]:
    names = f.get("source_names")
    if isinstance(names, str) and names:
        return [s.strip() for s in names.split(",") if s.strip()]
    return []


def _sensors(f: dict) -> str | None:
    """'seen by 3 independent sensors (PointSat, AirLidar, FenceCMS)' or '4 detections by PointSat'."""
    names = _names(f)
    n_src = int(_num(f, "n_sources", len(names) or 0) or 0)
    n_det = int(_num(f, "n_detections", 0) or 0)
    if n_src > 1:
        what = ", ".join(names) if names else ", ".join(
            SENSOR_WORDS[t] for t in SOURCE_TYPES if _num(f, f"n_{t}", 0) > 0)
        return f"seen by {_plural(n_src, 'independent sensor')} ({what})"
    if names:
        return f"{_plural(n_det, 'detection')} by {names[0]}"
    kinds = [t for t in SOURCE_TYPES if _num(f, f"n_{t}", 0) > 0]
    return _plural(n_det, f"{SENSOR_WORDS[kinds[0]]} detection") if kinds else None


def _phrase(term: str, f: dict, value: float) -> str | None:
    """The fact behind one model term, in words."""
    if term in _SENSOR_TERMS:
        return _sensors(f)
    if term in _RECENCY_TERMS:
        return _ago(_num(f, "days_since_last"))
    if term in _SILENCE_TERMS:
        m = _num(f, "missed_looks", 0.0)
        if value < 0 and m >= 0.5:
            return f"not seen again in ~{m:.0f} expected sighting{'s' if round(m) != 1 else ''}"
        return "seen again whenever expected" if value > 0 else None
    if term in _REPAIR_TERMS:
        d = _num(f, "days_since_ogi")
        if value < 0 and math.isfinite(d):
            return f"found by an OGI survey {d:.0f} days ago: probably repaired since (30-day repair clock)"
        return None
    if term in ("isolated", "log_lr_isolated"):
        return "a one-off detection: a source that size would likely have been seen before" if value < 0 else None
    if term in ("confidence", "confidence_evidence", "mean_confidence", "max_confidence"):
        ev = _num(f, "confidence_evidence", 0.0)
        c = _num(f, "mean_confidence")
        tail = f" (mean {c:.2f})" if math.isfinite(c) else ""
        return f"sensor confidence {'above' if ev >= 0 else 'below'} its usual{tail}"
    if term == "span_days":
        return f"seen over {_num(f, 'span_days', 0):.0f} days"
    if term == "n_days_seen":
        return f"seen on {_plural(int(_num(f, 'n_days_seen', 0)), 'day')}"
    if term in ("log_rate", "n_quantified", "rate_rel_unc"):
        return None  # the rate is always stated on its own
    if term == "radius_m":
        r = _num(f, "radius_m")
        return f"located to ±{r:.0f} m" if math.isfinite(r) else None
    if term == "ambiguous_share":
        return "some detections could belong to a neighbouring leak"
    if term == "precision":
        return "sensor history from field checks"
    return term.replace("_", " ")


def rate_phrase(f) -> str:
    f = f if isinstance(f, dict) else dict(f)
    est, lo, hi = (_num(f, k) for k in ("est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h"))
    if not math.isfinite(est):
        return "rate unknown"
    if not bool(f.get("rate_quantified", True)):
        return f"not quantified (~{est:.0f} kg/h expected from what detected it)"
    half = (hi - lo) / 2 if math.isfinite(hi) and math.isfinite(lo) else float("nan")
    if not math.isfinite(half):
        return f"~{est:,.0f} kg/h" if est >= 10 else f"~{est:.1f} kg/h"
    return f"~{est:,.0f} kg/h (±{half:,.0f})" if est >= 10 else f"~{est:.1f} kg/h (±{half:.1f})"


def _sentence(f: dict, terms: list[str], values: np.ndarray, k: int) -> str:
    parts: list[str] = []
    groups: set[str] = set()
    for j in np.argsort(-np.abs(values), kind="stable"):
        if len(parts) >= k:
            break
        v = float(values[j])
        if not math.isfinite(v) or abs(v) < MIN_TERM:
            break
        term = terms[j]
        group = ("sensors" if term in _SENSOR_TERMS else "recency" if term in _RECENCY_TERMS
                 else "silence" if term in _SILENCE_TERMS else "repair" if term in _REPAIR_TERMS else term)
        if group in groups:
            continue
        groups.add(group)
        text = _phrase(term, f, v)
        if text and text not in parts:
            parts.append(text)
    parts.append(rate_phrase(f))
    return "; ".join(parts)


def top_reasons(features: pd.Series, contributions: pd.Series, k: int = 3) -> str:
    """A short sentence: the k terms that moved the probability most, then the rate.

    Corroboration is said once ("seen by 3 independent sensors (PointSat, AirLidar, FenceCMS)") rather
    than one phrase per sensor term, e.g. "seen by 3 independent sensors (PointSat, AirLidar, FenceCMS);
    last seen 2 days ago; ~140 kg/h (±40)".
    """
    c = pd.Series(contributions).astype(float)
    return _sentence(dict(features), list(c.index), c.to_numpy(), k)


def reasons(features: pd.DataFrame, contributions: pd.DataFrame, k: int = 3) -> list[str]:
    """:func:`top_reasons` for every row at once (fast enough for 100k leaks)."""
    cols = [c for c in _FEATURE_COLUMNS if c in features]
    recs = features[cols].to_dict(orient="records")
    terms = list(contributions.columns)
    vals = contributions.to_numpy(float)
    return [_sentence(recs[i], terms, vals[i], k) for i in range(len(recs))]
