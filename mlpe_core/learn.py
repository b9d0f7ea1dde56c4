"""Learn: fit the scoring model from field outcomes, and promote it only when it is better.

A gradient-boosted tree model (scikit-learn, shallow trees so SHAP is fast) is fitted on leak
features labelled by what crews found. Its raw log-odds are calibrated with Platt scaling fitted on
out-of-fold predictions, which keeps SHAP exact: calibrated logit = a·(Σφ + E) + b, so the
contributions are the SHAP values times a. Promotion compares the candidate with the current model
on the most recent validations held out by time (the future is what the model must predict).
"""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .score import FEATURES, ColdStartScorer

POSITIVE = {"confirmed"}
NEGATIVE = {"not_found", "already_repaired"}  # already repaired: nothing left for a crew to find
MIN_TRAIN = 30


def outcome_labels(validations: pd.DataFrame) -> pd.DataFrame:
    """One label per leak from its latest usable visit (not_accessible says nothing about the leak)."""
    v = validations[validations["outcome"].isin(POSITIVE | NEGATIVE)].copy()
    v["visited_at"] = pd.to_datetime(v["visited_at"], utc=True)
    v = v.sort_values("visited_at").groupby("leak_id").last()
    v["y"] = v["outcome"].isin(POSITIVE).astype(int)
    return v[["visited_at", "y", "measured_rate_kg_h"]]


class LearnedScorer:
    """Calibrated gradient boosting on :data:`FEATURES`, explained by SHAP TreeExplainer."""

    kind = "learned"

    def __init__(self, n_estimators: int = 150, max_depth: int = 3, learning_rate: float = 0.05,
                 random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _model(self) -> GradientBoostingClassifier:
        return GradientBoostingClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                          learning_rate=self.learning_rate, subsample=0.8,
                                          random_state=self.random_state)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LearnedScorer:
        Xf = X[FEATURES].astype(float)
        y = np.asarray(y, int)
        self.feature_names_in_ = list(FEATURES)
        self.model_ = self._model().fit(Xf, y)
        folds = min(5, int(np.bincount(y).min())) if len(np.unique(y)) == 2 else 0
        if folds >= 2:
            oof = cross_val_predict(self._model(), Xf, y, method="decision_function",
                                    cv=StratifiedKFold(folds, shuffle=True, random_state=self.random_state))
            platt = LogisticRegression(C=1e6).fit(oof.reshape(-1, 1), y)
            self.a_, self.b_ = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        else:
            self.a_, self.b_ = 1.0, 0.0
        import shap

        self.expected_logit_ = float(np.ravel(shap.TreeExplainer(self.model_).expected_value)[-1])
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.a_ * self.model_.decision_function(X[FEATURES].astype(float)) + self.b_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    @property
    def base_(self) -> float:
        return self.a_ * self.expected_logit_ + self.b_

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """SHAP values of the booster (log-odds), scaled by the Platt slope: rows sum to logit − base_."""
        import shap

        explainer = shap.TreeExplainer(self.model_)
        Xf = X[FEATURES].astype(float)
        parts = []
        for start in range(0, len(Xf), 20_000):  # chunked: bounded memory on large basins
            parts.append(np.asarray(explainer.shap_values(Xf.iloc[start:start + 20_000], check_additivity=False)))
        phi = np.vstack(parts) if parts else np.zeros((0, len(FEATURES)))
        if phi.ndim == 3:
            phi = phi[..., 1]
        return pd.DataFrame(self.a_ * phi, index=X.index, columns=FEATURES)


def evaluate(model, X: pd.DataFrame, y: np.ndarray) -> dict:
    """Hold-out metrics: Brier score, log loss, AUC (when both classes are present), calibration bins."""
    p = np.clip(model.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
    out = {"n": int(len(y)), "brier": float(brier_score_loss(y, p)), "log_loss": float(log_loss(y, p, labels=[0, 1])),
           "base_rate": float(np.mean(y)) if len(y) else float("nan")}
    out["auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    bins = np.clip((p * 5).astype(int), 0, 4)
    out["calibration"] = [
        {"bin": f"{b / 5:.1f}-{(b + 1) / 5:.1f}", "mean_p": float(p[bins == b].mean()), "observed": float(y[bins == b].mean()),
         "n": int((bins == b).sum())}
        for b in range(5) if (bins == b).any()
    ]
    return out


def time_split(labels: pd.DataFrame, holdout_share: float = 0.3) -> tuple[pd.Index, pd.Index]:
    """Oldest visits train, the most recent ``holdout_share`` are held out."""
    order = labels.sort_values("visited_at").index
    cut = int(round(len(order) * (1 - holdout_share)))
    return order[:cut], order[cut:]


def data_hash(X: pd.DataFrame, y: np.ndarray) -> str:
    h = hashlib.sha256(pd.util.hash_pandas_object(X[FEATURES].round(9), index=True).to_numpy().tobytes())
    h.update(np.asarray(y, np.int8).tobytes())
    return h.hexdigest()[:16]


def train_candidate(features: pd.DataFrame, labels: pd.DataFrame, current, holdout_share: float = 0.3) -> dict:
    """Fit a candidate on older outcomes, compare with ``current`` on the newest; decide promotion.

    Returns a dict with the fitted candidate (refit on all labelled leaks when promoted), metrics of
    both on the hold-out, and the decision with its reason.
    """
    idx = labels.index.intersection(features.index)
    labels = labels.loc[idx]
    if len(idx) < MIN_TRAIN or labels["y"].nunique() < 2:
        return {"promote": False, "model": None, "metrics": {},
                "decision": f"not trained: {len(idx)} usable validations with both outcomes needed "
                            f"(at least {MIN_TRAIN}; not_accessible visits do not count)"}
    train, hold = time_split(labels, holdout_share)
    ytr, yho = labels.loc[train, "y"].to_numpy(), labels.loc[hold, "y"].to_numpy()
    if len(np.unique(ytr)) < 2:
        return {"promote": False, "model": None, "metrics": {}, "decision": "not trained: the older validations hold one outcome only"}
    cand = LearnedScorer().fit(features.loc[train], ytr)
    m_cand = evaluate(cand, features.loc[hold], yho)
    m_cur = evaluate(current, features.loc[hold], yho)
    better = m_cand["brier"] < m_cur["brier"]
    decision = (f"{'promoted' if better else 'kept current'}: hold-out Brier {m_cand['brier']:.4f} (candidate) vs "
                f"{m_cur['brier']:.4f} (current) on the {len(hold)} most recent validations")
    final = LearnedScorer().fit(features.loc[idx], labels["y"].to_numpy()) if better else cand
    return {"promote": better, "model": final, "decision": decision,
            "metrics": {"candidate": m_cand, "current": m_cur, "n_train": int(len(train)), "n_holdout": int(len(hold))},
            "data_hash": data_hash(features.loc[idx], labels["y"].to_numpy())}


def dumps(model) -> bytes:
    return pickle.dumps(model)


def loads(blob: bytes):
    return pickle.loads(blob)  # noqa: S301 - blobs are written by this program into its own store


def default_model() -> ColdStartScorer:
    return ColdStartScorer().fit()


def metrics_json(metrics: dict) -> str:
    return json.dumps(metrics, default=float)
