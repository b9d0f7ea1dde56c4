"""Ranking values: priority (expected kg/h a visit finds, plus bounded compliance urgency), the risk band (defined
once, in :func:`band_reasons`, with the sentence that says why), and the scored table with reasons and
contributions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .explain import reasons
from .rates import expected_rate

HIGH_KG_H, MEDIUM_KG_H = 20.0, 2.0  # risk bands on expected methane found per visit


URGENCY_CAP_KG_H = HIGH_KG_H  # a compliance clock adds at most urgency × P(find) × this (``priority``)


def priority(p_real: np.ndarray, rate: np.ndarray, urgency: np.ndarray | None = None) -> np.ndarray:
    """Expected kg/h found by a visit plus the compliance urgency (0 none, 0.5 due soon, 1 overdue):

    p·rate + urgency·p·min(rate, ``URGENCY_CAP_KG_H``). A running clock counts the leak's expected methane
    again up to the cap: a small overdue leak counts double, a large one gains at most p × 20 kg/h, so an
    overdue clock reorders leaks of comparable expected methane and never lifts a leak that has probably
    stopped (small p) over one that is probably emitting much more."""
    p = np.asarray(p_real, float)
    r = np.asarray(rate, float)
    u = np.zeros(len(p)) if urgency is None else np.asarray(urgency, float)
    return p * r + u * p * np.minimum(r, URGENCY_CAP_KG_H)


HIGH_MIN_P = 0.1  # HIGH on methane alone needs at least one visit in ten to find the leak (band_reasons)


def _kg(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def band_reasons(expected_kg_h, p_real=None, legal_state=None, legal_what=None, watch=None,
                 voluntary_state=None) -> tuple[np.ndarray, list[str]]:
    """The risk band, defined here and nowhere else, and the sentence that says why.

    From the expected methane a visit finds (p × rate, kg/h) and the state of the leak's *legal* obligations only:

    * HIGH when a legal obligation is overdue or due within 7 days ("HIGH because an OOOOb super-emitter
      investigation is overdue"), or when the expected methane is ≥ 20 kg/h and P(find) ≥ ``HIGH_MIN_P``;
    * MEDIUM when the expected methane is ≥ 2 kg/h (also ≥ 20 kg/h that a crew would probably not find:
      "…, but only a 6% chance a crew finds it");
    * LOW otherwise.

    A likely-notification watch item (``watch``) and a voluntary clock (``voluntary_state``: overdue, due soon,
    running) never set the band: the sentence mentions them. ``legal_state`` is overdue, due soon, running or
    None per leak and ``legal_what`` the clock in words (``comply.deadlines``). Without ``p_real`` the P(find)
    floor is not applied (a priority alone)."""
    e = np.asarray(expected_kg_h, float)
    n = len(e)
    p = None if p_real is None else np.asarray(p_real, float)
    state = [None] * n if legal_state is None else list(legal_state)
    whats = [None] * n if legal_what is None else list(legal_what)
    w = np.zeros(n, bool) if watch is None else np.asarray(pd.Series(watch).fillna(False), bool)
    vol = [None] * n if voluntary_state is None else list(voluntary_state)
    bands = np.empty(n, dtype=object)
    why: list[str] = []
    for i in range(n):
        st = state[i] if isinstance(state[i], str) else None
        clock = whats[i] if isinstance(whats[i], str) else "a legal deadline"
        ei = float(e[i]) if np.isfinite(e[i]) else 0.0
        found = f"expected {_kg(ei)} kg/h found per visit"
        if st in ("overdue", "due soon"):
            bands[i] = "HIGH"
            text = f"HIGH because {clock} is {'overdue' if st == 'overdue' else 'due within 7 days'}; {found}"
        elif ei >= HIGH_KG_H and (p is None or p[i] >= HIGH_MIN_P):
            bands[i], text = "HIGH", f"HIGH: {found}"
        elif ei >= HIGH_KG_H:
            bands[i] = "MEDIUM"
            text = (f"MEDIUM: {found}, but only a {p[i]:.0%} chance a crew finds it (HIGH needs "
                    f"{HIGH_MIN_P:.0%})")
        elif ei >= MEDIUM_KG_H:
            bands[i], text = "MEDIUM", f"MEDIUM: {found}"
        else:
            bands[i], text = "LOW", f"LOW: {found}"
        if st == "running":
            text += f"; {clock} is running"
        v = vol[i] if isinstance(vol[i], str) else None
        if v:
            text += f"; a voluntary clock is {v} (voluntary: does not set the band)"
        if w[i]:
            text += "; likely notification: on the watch list, no legal clock until a notice is received"
        why.append(text)
    return bands, why


def risk_band(priority_score: np.ndarray, overdue: np.ndarray | None = None, p_real: np.ndarray | None = None,
              due_soon: np.ndarray | None = None) -> np.ndarray:
    """The band alone (``band_reasons``): HIGH ≥ 20 kg/h expected (with P(find) ≥ 0.1 when ``p_real`` is given),
    or a legal clock overdue or due soon; MEDIUM ≥ 2 kg/h; else LOW. ``priority_score`` must be the expected
    methane (p × rate), not a priority that holds a watch item's policy urgency."""
    s = np.asarray(priority_score, float)
    o = np.zeros(len(s), bool) if overdue is None else np.asarray(overdue, bool)
    d = np.zeros(len(s), bool) if due_soon is None else np.asarray(due_soon, bool)
    state = np.where(o, "overdue", np.where(d, "due soon", None))
    return band_reasons(s, p_real, state)[0]


def obligation_bands(p_real: np.ndarray, rate: np.ndarray, dl: pd.DataFrame | None) -> tuple[np.ndarray, list[str]]:
    """Bands and reasons for leaks from their ``comply.deadlines`` rows (``dl`` indexed like the leaks, NaN rows
    for leaks without a clock): the one call every face's ranking goes through."""
    p, r = np.asarray(p_real, float), np.asarray(rate, float)
    if dl is None or not len(dl):
        return band_reasons(p * r, p)
    vol = np.where(dl["voluntary"].fillna(False).astype(bool),
                   np.where(dl["overdue"].fillna(False).astype(bool), "overdue",
                            np.where(dl["due_soon"].fillna(False).astype(bool), "due soon", "running")), None)
    return band_reasons(p * r, p, dl["legal_state"], dl["legal_what"], dl["watch"], vol)


RATE_COLUMNS = ["log_rate", "log_sigma", "est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h"]


def model_rates(model, X: pd.DataFrame) -> pd.DataFrame:
    """The rate a model scores with: its learned rate model's when it has one (``learn.RateModel``),
    else the estimate in the features (:func:`estimate_rates`)."""
    rm = getattr(model, "rate_model_", None)
    if rm is not None:
        return rm.predict(X)[RATE_COLUMNS]
    return X[RATE_COLUMNS].copy()


def visit_rates(model, rates: pd.DataFrame, quantified, silence=None) -> np.ndarray:
    """The rate (kg/h) the expected methane of a visit uses: with the cold-start estimate, its posterior mean
    given the leak-size prior (:func:`rates.expected_rate`: a single noisy high reading is on average an
    overestimate), times exp(``silence``) (the features' ``log_silence_rate``: a leak still emitting after its
    sensors looked and missed it is more likely one of the smaller rates its posterior allows,
    ``features._silence_rate``); a learned rate model (``learn.RateModel``) already predicts what crews
    measured, so its rate is used as is."""
    est = rates["est_rate_kg_h"].to_numpy(float)
    if getattr(model, "rate_model_", None) is not None:
        return est
    q = np.broadcast_to(np.asarray(quantified, bool), est.shape)
    r = expected_rate(rates["log_rate"].to_numpy(float), rates["log_sigma"].to_numpy(float), q)
    if silence is not None:
        r = r * np.exp(np.minimum(np.nan_to_num(np.asarray(silence, float)), 0.0))
    return r


def score_table(X: pd.DataFrame, model, urgency: np.ndarray | None = None,
                overdue: np.ndarray | None = None, obligations: pd.DataFrame | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a features frame with ``model``: p_real, rate, priority, band (and its reason), reasons and
    contributions.

    ``obligations`` is the leaks' ``comply.deadlines`` rows indexed like X (NaN for leaks without a clock): it
    gives the urgency and the legal state the band reads. Without it ``urgency`` and ``overdue`` are used.
    The priority and the band read the expected methane P(find) × :func:`visit_rates` (the rate's posterior mean
    given the leak-size prior); ``est_rate_kg_h`` stays the sensors' estimate.
    Returns (scores indexed like X, contributions). ``contributions`` (a JSON column) holds ``base`` and
    every non-zero term, rounded to 4 places; they sum to the logit of ``p_real``.
    """
    contrib = model.contributions(X)
    logit = float(model.base_) + contrib.sum(axis=1).to_numpy()
    p = 1 / (1 + np.exp(-logit))
    rates = model_rates(model, X)
    s = pd.DataFrame(index=X.index)
    s["p_real"] = p
    s["est_rate_kg_h"] = rates["est_rate_kg_h"].to_numpy(float)
    s["rate_lo_kg_h"] = rates["rate_lo_kg_h"].to_numpy(float)
    s["rate_hi_kg_h"] = rates["rate_hi_kg_h"].to_numpy(float)
    s["rate_quantified"] = X["rate_quantified"].fillna(False).astype(bool).to_numpy() if "rate_quantified" in X \
        else True
    rate = visit_rates(model, rates, s["rate_quantified"],
                       X["log_silence_rate"].to_numpy(float) if "log_silence_rate" in X else None)
    if obligations is not None:
        urgency = obligations["urgency"].fillna(0.0).to_numpy(float) if len(obligations) else None
        s["priority_score"] = priority(p, rate, urgency)
        s["risk_band"], s["band_reason"] = obligation_bands(p, rate, obligations)
    else:
        s["priority_score"] = priority(p, rate, urgency)
        o = np.zeros(len(p), bool) if overdue is None else np.asarray(overdue, bool)
        s["risk_band"], s["band_reason"] = band_reasons(p * rate, p, np.where(o, "overdue", None))
    feats = X.drop(columns=[c for c in RATE_COLUMNS + ["rate_quantified"] if c in X]).join(s)
    s["top_reasons"] = reasons(feats, contrib)
    base = round(float(model.base_), 4)
    vals = contrib.to_numpy(float).round(4)
    names = list(contrib.columns)
    s["contributions"] = [json.dumps({"base": base, **{names[j]: float(row[j]) for j in np.flatnonzero(row)}})
                          for row in vals]
    return s, contrib
