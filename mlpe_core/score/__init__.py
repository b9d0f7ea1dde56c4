"""Score: how likely a crew finds a real, still-emitting leak, how big it is, and so what a visit is worth.

priority_score = P(crew finds a real, still-emitting leak) × estimated rate, i.e. the kg/h of methane a visit
is expected to find, plus a bounded regulatory urgency for leaks with a compliance clock running
(urgency × P × min(rate, 20 kg/h), see :func:`priority`).
(Method, references and measured ranking quality: ``docs/scoring.md``.)

The cold-start scorer needs no validations: it is a log-odds model whose terms come from what is known
about each instrument (``config/instruments.yaml``) and from what the feeds themselves show (how often a
sensor sees a leak it has seen before), so its explanation is exact: the terms *are* the model. Until
field outcomes exist its probability is a prior, not a calibrated one, and the app says so; ``learn.py``
fits and calibrates a model from validations.

Modules: ``features`` (what the detections say), ``rates`` (rate and its uncertainty), ``cold`` (the
cold-start scorer), ``rank`` (priority, band, the scored table), ``explain`` (reasons from contributions),
``stored`` (how a model is kept in the store, and the default one).
"""

from .cold import CONFIDENCE_WEIGHT, PRIOR_REAL, ColdStartScorer
from .explain import reasons, top_reasons
from .features import FEATURES, PERSISTENCE_DAYS, leak_features, look_stats, persistence_days
from .rank import (
    HIGH_KG_H,
    HIGH_MIN_P,
    MEDIUM_KG_H,
    RATE_COLUMNS,
    URGENCY_CAP_KG_H,
    band_reasons,
    model_rates,
    obligation_bands,
    priority,
    risk_band,
    score_table,
)
from .rates import DEFAULT_LOG_SIGMA, estimate_rates, p_detect, sensor_default
from .stored import default_model, dumps, loads

__all__ = ["band_reasons", "ColdStartScorer", "CONFIDENCE_WEIGHT", "DEFAULT_LOG_SIGMA", "default_model", "dumps",
           "estimate_rates", "loads", "FEATURES",
           "HIGH_KG_H", "HIGH_MIN_P", "leak_features", "obligation_bands", "look_stats", "MEDIUM_KG_H", "model_rates",
           "p_detect", "PERSISTENCE_DAYS", "persistence_days", "PRIOR_REAL", "priority", "RATE_COLUMNS", "reasons",
           "risk_band", "score_table", "sensor_default", "top_reasons", "URGENCY_CAP_KG_H"]
