"""The cold-start scorer: a log-odds model from instrument knowledge and the feeds' own revisit history,
exact in its explanation because its terms are the model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ingest import load_instruments
from ..schema import SOURCE_TYPES
from .features import FEATURES, PERSISTENCE_DAYS, persistence_days

RECENCY_TAU_DAYS = PERSISTENCE_DAYS  # former name, kept for callers


PRIOR_REAL = 0.25  # prior P(real) of a place before any sensor: the reference the sensor precisions update


REPEAT_WEIGHT = 0.5  # log-odds per e-fold of repeated sightings by the same kind of sensor


CONFIDENCE_WEIGHT = 0.5  # log-odds per unit of confidence evidence (confidence_evidence)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


class ColdStartScorer:
    """Log-odds model from instrument knowledge and the feeds' own revisit history; needs no validations.

    P(find) = P(real) × P(still emitting | real):

    * logit P(real) = logit(π0) + Σ_types present [k_type·(logit(precision_type) − logit(π0)) + 0.5·ln(n_type)]
      + isolated + 0.5·confidence_evidence: naive Bayes with π0 = ``PRIOR_REAL``, so each independent
      instrument (k_type distinct sensors of a kind: two vendors' monitors, two satellites) multiplies the
      odds by its kind's likelihood ratio (one sensor alone gives its precision, a second independent one
      always raises P), repeats of one instrument add a little, an imager's one-off detection of a source
      that size loses what :func:`look_stats` says (``log_lr_isolated``), and detections rated more (less)
      confident than their feed usually is add (remove) a little (:func:`confidence_evidence`);
    * P(still emitting | real) combines a survival prior exp(−d / τ(rate)) since the last sighting
      (:func:`persistence_days`: 180 days, down to 30 for the largest emissions) with the silence since:
      if the sensors that saw the leak have looked k more times without seeing it, the odds are multiplied
      by P(silence | emitting) / P(silence | stopped in between) (``log_p_silence``, :func:`look_stats`).

    Contributions are log-odds terms that sum exactly to logit P(find) − ``base_``: the sensor, isolated
    and confidence terms are additive; ``recency`` and ``silence`` are the changes of the logit when the
    survival prior and then the silence are applied, in that order. ``fit`` learns nothing (it reads
    the instrument table) and returns ``self`` so the cold-start and learned scorers are used alike.
    """

    kind = "cold_start"

    def __init__(self, recency_tau_days: float = PERSISTENCE_DAYS, repeat_weight: float = REPEAT_WEIGHT,
                 confidence_weight: float = CONFIDENCE_WEIGHT, prior_real: float = PRIOR_REAL):
        self.recency_tau_days = recency_tau_days
        self.repeat_weight = repeat_weight
        self.confidence_weight = confidence_weight
        self.prior_real = prior_real

    def fit(self, X: pd.DataFrame | None = None, y: np.ndarray | None = None) -> ColdStartScorer:
        table = load_instruments()["source_types"]
        self.precision_ = {t: float(table[t]["precision"]) for t in SOURCE_TYPES}
        self.base_ = float(_logit(np.array(getattr(self, "prior_real", PRIOR_REAL))))
        self.feature_names_in_ = list(FEATURES)
        return self

    def _col(self, X: pd.DataFrame, name: str, default: float) -> np.ndarray:
        return X[name].fillna(default).to_numpy(float) if name in X else np.full(len(X), default)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Log-odds terms per leak; their row sum plus ``base_`` is the logit of P(find)."""
        out = pd.DataFrame(index=X.index)
        for t in SOURCE_TYPES:
            n = self._col(X, f"n_{t}", 0.0)
            k = np.maximum(self._col(X, f"sensors_{t}", 1.0), 1.0)  # independent instruments of this kind
            lr = float(_logit(np.array(self.precision_[t]))) - self.base_
            out[t] = np.where(n > 0, lr * k + self.repeat_weight * np.log(np.maximum(n, 1)), 0.0)
        out["isolated"] = np.minimum(self._col(X, "log_lr_isolated", 0.0), 0.0)
        out["confidence"] = self.confidence_weight * self._col(X, "confidence_evidence", 0.0)
        z_real = self.base_ + out.sum(axis=1).to_numpy()
        # in log space throughout, so that the terms stay exact for P(find) near 0 or 1
        lp_real, lp_false = -np.logaddexp(0.0, -z_real), -np.logaddexp(0.0, z_real)
        days = np.maximum(self._col(X, "days_since_last", 0.0), 0.0)
        log_surv = -days / persistence_days(np.exp(self._col(X, "log_rate", 0.0)), self.recency_tau_days)
        log_alive = log_surv + np.minimum(self._col(X, "log_p_unrepaired", 0.0), 0.0)
        logp0 = np.minimum(self._col(X, "log_p_silence", 0.0), 0.0)
        # a sensor silent before the leak's last sighting (by another) missed a source that was there: as likely
        # emitting or stopped since, against the detections having been false (P(silence | false) = 1)
        logp_b = np.minimum(self._col(X, "log_p_silence_before", 0.0), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # P(silence | stopped at a uniform time in the window) = (1 − P0) / (−ln P0)
            log_p0_stopped = np.where(logp0 < -1e-9, np.log(-np.expm1(logp0)) - np.log(np.maximum(-logp0, 1e-300)),
                                      0.0)

            def z(log_a: np.ndarray, log_sil_alive: np.ndarray, log_sil_stopped: np.ndarray,
                  log_before: np.ndarray) -> np.ndarray:
                """logit P(real, emitting | evidence) with P(emitting | real) = exp(log_a) before the silence.
                Three states: false (never seen again: P(silence) = 1), real but stopped, real and emitting."""
                log_stopped = np.log(-np.expm1(np.minimum(log_a, -1e-300)))
                other = np.logaddexp(lp_false, lp_real + log_before + log_stopped + log_sil_stopped)
                return lp_real + log_before + log_a + log_sil_alive - other

            zero = np.zeros(len(X))
            z1 = z(log_surv, zero, zero, zero)
            z2 = z(log_alive, zero, zero, zero)
            z3 = z(log_alive, logp0, log_p0_stopped, logp_b)
        out["recency"] = z1 - z_real
        out["repair_clock"] = z2 - z1
        out["silence"] = z3 - z2
        return out

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.base_ + self.contributions(X).sum(axis=1).to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = _sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])
