"""Ranking values: priority (expected kg/h a visit finds, plus bounded compliance urgency), the risk band,
and the scored table with reasons and contributions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .explain import reasons

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


def risk_band(priority_score: np.ndarray, overdue: np.ndarray | None = None) -> np.ndarray:
    """HIGH ≥ 20 kg/h expected (or overdue), MEDIUM ≥ 2 kg/h, else LOW."""
    s = np.asarray(priority_score, float)
    band = np.where(s >= HIGH_KG_H, "HIGH", np.where(s >= MEDIUM_KG_H, "MEDIUM", "LOW"))
    if overdue is not None:
        band = np.where(np.asarray(overdue, bool), "HIGH", band)
    return band


RATE_COLUMNS = ["log_rate", "log_sigma", "est_rate_kg_h", "rate_lo_kg_h", "rate_hi_kg_h"]


def model_rates(model, X: pd.DataFrame) -> pd.DataFrame:
    """The rate a model scores with: its learned rate model's when it has one (``learn.RateModel``),
    else the estimate in the features (:func:`estimate_rates`)."""
    rm = getattr(model, "rate_model_", None)
    if rm is not None:
        return rm.predict(X)[RATE_COLUMNS]
    return X[RATE_COLUMNS].copy()


def score_table(X: pd.DataFrame, model, urgency: np.ndarray | None = None,
                overdue: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a features frame with ``model``: p_real, rate, priority, band, reasons and contributions.

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
    s["priority_score"] = priority(p, s["est_rate_kg_h"].to_numpy(float), urgency)
    s["risk_band"] = risk_band(s["priority_score"].to_numpy(), overdue)
    feats = X.drop(columns=[c for c in RATE_COLUMNS + ["rate_quantified"] if c in X]).join(s)
    s["top_reasons"] = reasons(feats, contrib)
    base = round(float(model.base_), 4)
    vals = contrib.to_numpy(float).round(4)
    names = list(contrib.columns)
    s["contributions"] = [json.dumps({"base": base, **{names[j]: float(row[j]) for j in np.flatnonzero(row)}})
                          for row in vals]
    return s, contrib
