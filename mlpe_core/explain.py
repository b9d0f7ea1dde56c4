"""Explain: turn the scoring model's own contributions into sentences an analyst can check.

The sentence is built from the contributions of the model that made the score (exact terms for
the cold-start model, SHAP values for the learned one), ordered by how much each moved the
log-odds, with the facts behind each term quoted from the leak's features. Nothing here re-derives
a score: it only reads what the scorer produced.
"""

from __future__ import annotations

import math

import pandas as pd

from .schema import SOURCE_TYPES

TYPE_WORDS = {
    "satellite": "satellite",
    "aerial": "aircraft",
    "continuous_monitor": "continuous monitor",
    "scada": "SCADA alarm",
    "ogi": "OGI survey",
}


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


def _phrase(term: str, f: pd.Series) -> str | None:
    """The fact behind one model term, in words."""
    if term in SOURCE_TYPES:
        n = int(f.get(f"n_{term}", 0) or 0)
        return f"{_plural(n, TYPE_WORDS[term] + ' detection')}" if n else None
    if term.startswith("n_") and term[2:] in SOURCE_TYPES:
        n = int(f.get(term, 0) or 0)
        return f"{_plural(n, TYPE_WORDS[term[2:]] + ' detection')}" if n else f"no {TYPE_WORDS[term[2:]]} detection"
    if term in ("n_sources", "n_source_types"):
        n = int(f.get("n_sources", 0) or 0)
        return f"seen by {_plural(n, 'independent sensor')}"
    if term == "n_detections":
        return _plural(int(f.get("n_detections", 0) or 0), "detection")
    if term in ("recency", "days_since_last"):
        return _ago(float(f.get("days_since_last", float("nan"))))
    if term in ("confidence", "mean_confidence", "max_confidence"):
        c = f.get("mean_confidence")
        return None if c is None or pd.isna(c) else f"mean sensor confidence {float(c):.2f}"
    if term == "span_days":
        return f"seen over {float(f.get('span_days', 0)):.0f} days"
    if term in ("log_rate", "n_quantified", "rate_rel_unc"):
        return None  # the rate is always stated on its own
    if term == "radius_m":
        return f"located to ±{float(f.get('radius_m', 0)):.0f} m"
    if term == "ambiguous_share":
        return "some detections could belong to a neighbouring leak"
    if term == "precision":
        return "sensor history from field checks"
    return term.replace("_", " ")


def rate_phrase(f: pd.Series) -> str:
    est, lo, hi = (float(f.get(k, float("nan"))) for k in ("est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h"))
    if not math.isfinite(est):
        return "rate unknown"
    if not bool(f.get("rate_quantified", True)):
        return f"not quantified (≥ ~{est:.0f} kg/h from the detection limit)"
    half = (hi - lo) / 2
    return f"~{est:,.0f} kg/h (±{half:,.0f})" if est >= 10 else f"~{est:.1f} kg/h (±{half:.1f})"


def top_reasons(features: pd.Series, contributions: pd.Series, k: int = 3) -> str:
    """A short sentence: the k terms that moved the probability most, then the rate.

    Corroboration by several sensors is said once ("seen by 3 independent sensors") rather than
    listing each sensor's term.
    """
    order = contributions.abs().sort_values(ascending=False).index
    parts: list[str] = []
    sensor_terms = [t for t in order if t in SOURCE_TYPES or (t.startswith("n_") and t[2:] in SOURCE_TYPES)]
    n_sources = int(features.get("n_sources", 0) or 0)
    used_sensors = False
    for term in order:
        if len(parts) >= k:
            break
        if abs(float(contributions[term])) < 0.05:
            continue
        if term in sensor_terms:
            if used_sensors:
                continue
            used_sensors = True
            if n_sources > 1:
                kinds = [TYPE_WORDS[t] for t in SOURCE_TYPES if int(features.get(f"n_{t}", 0) or 0) > 0]
                parts.append(f"seen by {_plural(n_sources, 'independent sensor')} ({', '.join(kinds)})")
                continue
        text = _phrase(term, features)
        if text and text not in parts:
            parts.append(text)
    parts.append(rate_phrase(features))
    return "; ".join(parts)
