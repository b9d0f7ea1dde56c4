"""Score: how likely a crew finds a real leak, how big it is, and so what a visit is worth.

priority_score = P(crew finds a real, still-emitting leak) × expected rate × (1 + regulatory urgency),
i.e. the kg/h of methane a visit is expected to find, raised for leaks with a compliance clock running.
(Method and references: ``docs/scoring.md``.)

The cold-start scorer needs no validations: it is an additive log-odds model whose terms come from
what is known about each instrument (``config/instruments.yaml``), so its explanation is exact: the
terms *are* the model. Until field outcomes exist its probability is a prior, not a calibrated one,
and the app says so; ``learn.py`` fits and calibrates a model from validations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .ingest import instrument_defaults, load_instruments
from .schema import SOURCE_TYPES

FEATURES: list[str] = [
    "n_detections",
    "n_sources",
    "n_source_types",
    *[f"n_{t}" for t in SOURCE_TYPES],
    "mean_confidence",
    "max_confidence",
    "days_since_last",
    "span_days",
    "n_quantified",
    "log_rate",
    "rate_rel_unc",
    "radius_m",
    "ambiguous_share",
]

# log-space 1-sigma of a single rate when the source gives none, by source type
DEFAULT_LOG_SIGMA = {"satellite": 0.5, "aerial": 0.35, "continuous_monitor": 0.9, "scada": 1.2, "ogi": 1.0}
RECENCY_TAU_DAYS = 30.0  # a leak unseen for this long has lost one unit of log-odds of still emitting
REPEAT_WEIGHT = 0.5  # log-odds per e-fold of repeated sightings by the same kind of sensor
CONFIDENCE_WEIGHT = 2.0  # log-odds per unit of mean source confidence above 0.6
HIGH_KG_H, MEDIUM_KG_H = 20.0, 2.0  # risk bands on expected methane found per visit


def estimate_rates(dets: pd.DataFrame) -> pd.DataFrame:
    """Per leak: rate combined across quantified detections by inverse variance in log space.

    Rates are log-normal-ish and errors multiplicative, so a log-space mean is the right average;
    the spread between repeat measurements is kept too (an intermittent source varies), so the
    reported interval is the larger of the propagated error and the scatter. A leak with no
    quantified detection gets the detection limit of the most sensitive sensor that saw it, with a
    wide log-sigma of 1, and ``rate_quantified`` False.
    """
    q = dets[dets["rate_kg_h"].notna() & (dets["rate_kg_h"] > 0)]
    rate = q["rate_kg_h"].to_numpy(float)
    unc = q["rate_uncertainty_kg_h"].to_numpy(float)
    default = q["source_type"].map(DEFAULT_LOG_SIGMA).fillna(0.7).to_numpy(float)
    s = np.where(np.isfinite(unc) & (unc > 0), np.clip(unc / rate, 0.05, 3.0), default)
    tmp = pd.DataFrame({"leak_id": q["leak_id"].to_numpy(), "w": 1 / s**2, "lr": np.log(rate)})
    tmp["wlr"] = tmp["w"] * tmp["lr"]
    g = tmp.groupby("leak_id")
    mu = g["wlr"].sum() / g["w"].sum()
    prop = 1 / np.sqrt(g["w"].sum())
    n = g.size()
    scatter = g["lr"].std(ddof=1).fillna(0) / np.sqrt(n)
    sig = np.maximum(prop, scatter)
    out = pd.DataFrame({"log_rate": mu, "log_sigma": sig, "n_quantified": n, "rate_quantified": True})
    leaks = pd.Index(dets["leak_id"].unique())
    missing = leaks.difference(out.index)
    if len(missing):
        u = dets[dets["leak_id"].isin(missing)]
        limit = instrument_defaults(u["source_name"], u["source_type"], "detection_limit_kg_h")
        floor = limit.groupby(u["leak_id"]).min()
        out = pd.concat([out, pd.DataFrame({"log_rate": np.log(floor), "log_sigma": 1.0, "n_quantified": 0,
                                            "rate_quantified": False}, index=floor.index)])
    out.index.name = "leak_id"
    out["est_rate_kg_h"] = np.exp(out["log_rate"])
    out["rate_lo_kg_h"] = np.exp(out["log_rate"] - out["log_sigma"])
    out["rate_hi_kg_h"] = np.exp(out["log_rate"] + out["log_sigma"])
    return out.reindex(leaks)


def leak_features(dets: pd.DataFrame, leaks: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per leak (index leak_id) with :data:`FEATURES` plus the rate estimate columns."""
    d = dets
    g = d.groupby("leak_id")
    counts = pd.crosstab(d["leak_id"], d["source_type"]).reindex(columns=list(SOURCE_TYPES), fill_value=0)
    counts.columns = [f"n_{c}" for c in counts.columns]
    t = pd.to_datetime(d["observed_at"], utc=True)
    last = t.groupby(d["leak_id"]).max()
    first = t.groupby(d["leak_id"]).min()
    rates = estimate_rates(d)
    f = pd.DataFrame(index=pd.Index(d["leak_id"].unique(), name="leak_id"))
    f["n_detections"] = g.size()
    f["n_sources"] = g["source_name"].nunique()
    f["n_source_types"] = g["source_type"].nunique()
    f = f.join(counts)
    f["mean_confidence"] = g["confidence"].mean()
    f["max_confidence"] = g["confidence"].max()
    f["days_since_last"] = ((as_of - last).dt.total_seconds() / 86400.0).clip(lower=0)
    f["span_days"] = (last - first).dt.total_seconds() / 86400.0
    f = f.join(rates)
    f["rate_rel_unc"] = f["log_sigma"]
    amb = d["ambiguous"] if "ambiguous" in d else pd.Series(False, index=d.index)
    f["ambiguous_share"] = amb.astype(float).groupby(d["leak_id"]).mean()
    f["radius_m"] = leaks.set_index("leak_id")["radius_m"].reindex(f.index) if len(leaks) else np.nan
    f["first_seen"], f["last_seen"] = first, last
    return f


class ColdStartScorer:
    """Additive log-odds model from instrument knowledge; needs no validations.

    logit P(find) = Σ_types present [logit(precision_type) + 0.5·ln(n_type)]
                    + 2·(mean confidence − 0.6) − days_since_last / 30

    Each bracket is one named contribution, so ``contributions`` is exact and sums to the logit.
    ``fit`` learns nothing (it only reads the instrument table), and returns ``self`` so the cold-start
    and learned scorers are used the same way.
    """

    kind = "cold_start"

    def __init__(self, recency_tau_days: float = RECENCY_TAU_DAYS, repeat_weight: float = REPEAT_WEIGHT,
                 confidence_weight: float = CONFIDENCE_WEIGHT):
        self.recency_tau_days = recency_tau_days
        self.repeat_weight = repeat_weight
        self.confidence_weight = confidence_weight

    def fit(self, X: pd.DataFrame | None = None, y: np.ndarray | None = None) -> ColdStartScorer:
        table = load_instruments()["source_types"]
        self.precision_ = {t: float(table[t]["precision"]) for t in SOURCE_TYPES}
        self.base_ = 0.0
        self.feature_names_in_ = list(FEATURES)
        return self

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Log-odds terms per leak; their row sum plus ``base_`` is the logit of P(find)."""
        out = pd.DataFrame(index=X.index)
        for t in SOURCE_TYPES:
            n = X[f"n_{t}"].fillna(0).to_numpy(float)
            p = self.precision_[t]
            out[t] = np.where(n > 0, np.log(p / (1 - p)) + self.repeat_weight * np.log(np.maximum(n, 1)), 0.0)
        conf = X["mean_confidence"].fillna(0.6).to_numpy(float)
        out["confidence"] = self.confidence_weight * (conf - 0.6)
        out["recency"] = -X["days_since_last"].fillna(0).to_numpy(float) / self.recency_tau_days
        return out

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.base_ + self.contributions(X).sum(axis=1).to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])


def priority(p_real: np.ndarray, rate: np.ndarray, urgency: np.ndarray | None = None) -> np.ndarray:
    """Expected kg/h found by a visit, raised by the compliance urgency factor (0 none, 1 overdue)."""
    u = np.zeros(len(p_real)) if urgency is None else np.asarray(urgency, float)
    return np.asarray(p_real, float) * np.asarray(rate, float) * (1.0 + u)


def risk_band(priority_score: np.ndarray, overdue: np.ndarray | None = None) -> np.ndarray:
    """HIGH ≥ 20 kg/h expected (or overdue), MEDIUM ≥ 2 kg/h, else LOW."""
    s = np.asarray(priority_score, float)
    band = np.where(s >= HIGH_KG_H, "HIGH", np.where(s >= MEDIUM_KG_H, "MEDIUM", "LOW"))
    if overdue is not None:
        band = np.where(np.asarray(overdue, bool), "HIGH", band)
    return band
