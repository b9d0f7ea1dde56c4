"""Learn: fit the scoring model from field outcomes, and promote it only when it is better.

The learned scorer boosts from the cold-start prior: a scikit-learn gradient-boosted model (shallow
trees, so SHAP is fast) starts from the cold-start log-odds of each leak and fits corrections to them
from what crews found, so a few dozen outcomes refine the prior instead of replacing it. Its raw log-odds
are calibrated with Platt scaling fitted on out-of-fold predictions, which keeps the explanation exact:
calibrated logit = a·(prior logit + Σ tree SHAP values + E) + b, so the contributions are the prior's own
terms and the trees' SHAP values, both times a. A rate model fitted on the rates crews measured corrects
the rate estimate and carries its uncertainty. Promotion compares the candidate with the current model on
the most recent validations held out by time (the future is what the model must predict).
"""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import HuberRegressor
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

from .schema import SOURCE_TYPES
from .score import FEATURES, ColdStartScorer, leak_features, model_rates
from .score.rates import expected_rate
from .score.stored import default_model, dumps, loads  # noqa: F401  (kept here: callers name them so)

POSITIVE = {"confirmed"}
NEGATIVE = {"not_found", "already_repaired"}  # already repaired: nothing left for a crew to find
MIN_TRAIN = 30  # usable validations before a model is fitted at all
MIN_HOLDOUT = 10  # held-out validations before a promotion decision is trusted
MIN_RATES = 20  # measured rates before the rate model is fitted
RATE_FEATURES = ["log_rate", "rate_rel_unc", "unquantified", "log_n_quantified", *[f"has_{t}" for t in SOURCE_TYPES]]


def outcome_labels(validations: pd.DataFrame, detections: pd.DataFrame | None = None) -> pd.DataFrame:
    """One label per leak and cycle: the outcome of the first usable visit of the cycle.

    The first visit is what a crew found when the ranking sent it; later visits of the same cycle are
    follow-ups (a crew that repaired the leak and came back reports ``already_repaired``) and would teach
    the model the wrong answer. ``not_accessible`` says nothing about the leak and is skipped. A cycle ends
    with a visit that found nothing to fix (``not_found``, ``already_repaired``) or a repair (``repaired_at``);
    the next cycle begins when ``detections`` show the leak again after that end (the leak re-opens, see
    ``lifecycle.reopen_seen_again``), and its first usable visit after that sighting is labelled too.
    Without ``detections`` every leak has one cycle.

    Index: the leak id for a leak's first cycle, ``"<leak_id>#<k>"`` for its k-th re-opening; columns
    ``leak_id``, ``cycle``, ``visited_at``, ``y`` (1 = confirmed), ``measured_rate_kg_h``.
    """
    cols = ["leak_id", "cycle", "visited_at", "y", "measured_rate_kg_h"]
    v = validations[validations["outcome"].isin(POSITIVE | NEGATIVE)].copy()
    if v.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="label_id"))
    v["visited_at"] = pd.to_datetime(v["visited_at"], utc=True)
    if "measured_rate_kg_h" not in v:
        v["measured_rate_kg_h"] = np.nan
    rep = pd.to_datetime(v["repaired_at"], utc=True) if "repaired_at" in v else pd.Series(pd.NaT, index=v.index)
    v["ends_at"] = np.where(v["outcome"].isin(NEGATIVE), v["visited_at"], rep.where(rep.notna(), pd.NaT))
    v["ends_at"] = pd.to_datetime(v["ends_at"], utc=True)
    v = v.sort_values(["leak_id", "visited_at"], kind="stable")
    seen: dict[str, np.ndarray] = {}
    if detections is not None and len(detections):
        d = detections[detections["leak_id"].isin(set(v["leak_id"]))]
        t = pd.to_datetime(d["observed_at"], utc=True).dt.tz_localize(None)  # naive UTC, comparable as datetime64
        seen = {k: np.sort(g.to_numpy("datetime64[ns]")) for k, g in t.groupby(d["leak_id"].to_numpy())}
    rows = []
    for lid, g in v.groupby("leak_id", sort=False):
        times = seen.get(lid)
        cycle, end, labelled = 0, None, False
        for r in g.itertuples():
            if end is not None:  # the cycle ended: a later visit starts a new one only if the leak was seen again
                lo, hi = (np.datetime64(x.tz_convert("UTC").tz_localize(None), "ns") for x in (end, r.visited_at))
                again = times is not None and bool(np.any((times > lo) & (times <= hi)))
                if not again:
                    continue
                cycle, end, labelled = cycle + 1, None, False
            if not labelled:
                key = lid if cycle == 0 else f"{lid}#{cycle}"
                rows.append((key, lid, cycle, r.visited_at, int(r.outcome in POSITIVE), r.measured_rate_kg_h))
                labelled = True
            if pd.notna(r.ends_at):
                end = r.ends_at
    out = pd.DataFrame(rows, columns=["label_id", *cols]).set_index("label_id")
    out["measured_rate_kg_h"] = out["measured_rate_kg_h"].astype(float)
    return out


def features_at_visits(detections: pd.DataFrame, leaks: pd.DataFrame, labels: pd.DataFrame,
                       coverage: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features of each labelled visit as the ranking saw them: computed from the detections observed before
    the visit, as of the visit (silence, recency, the feeds' revisit and the sensors' fitted look efficiency
    included). Visits are grouped by UTC day: one cut-off per day, at its earliest visit, so no detection
    from after any visit of that day is used; ``days_since_last`` is then counted to each visit's own time.
    Indexed like ``labels``; a leak with no detection before its visit is left out (nothing to rank it by).
    ``coverage`` (the sensors' watched windows) is cut at the visit too (``leak_features``).
    """
    if labels.empty:
        return pd.DataFrame(columns=FEATURES)
    t = pd.to_datetime(detections["observed_at"], utc=True)
    visited = pd.to_datetime(labels["visited_at"], utc=True)
    parts = []
    for _day, g in labels.groupby(visited.dt.floor("D"), sort=True):
        cut = pd.to_datetime(g["visited_at"], utc=True).min()
        before = (t < cut).to_numpy()
        if not (before & detections["leak_id"].isin(set(g["leak_id"])).to_numpy()).any():
            continue
        # the sensors' look statistics need every detection before the cut-off, not only the visited leaks'
        X = leak_features(detections[before & detections["leak_id"].notna().to_numpy()], leaks, cut, coverage)
        ok = g[g["leak_id"].isin(X.index)]
        if ok.empty:
            continue
        f = X.loc[ok["leak_id"].to_numpy()].copy()
        f.index = ok.index
        at = pd.to_datetime(ok["visited_at"], utc=True)
        since = (at - pd.to_datetime(f["last_seen"], utc=True)).dt.total_seconds() / 86400.0
        f["days_since_last"] = since.clip(lower=0)
        parts.append(f)
    if not parts:
        return pd.DataFrame(columns=FEATURES)
    out = pd.concat(parts)
    out.index.name = labels.index.name
    return out.reindex([i for i in labels.index if i in out.index])


PLATT_PRIOR_SD = 0.5  # Gaussian prior of the Platt slope around 1 and intercept around 0 (no recalibration)


def platt(z: np.ndarray, y: np.ndarray, prior_sd: float = PLATT_PRIOR_SD) -> tuple[float, float]:
    """Platt scaling (Platt 1999) of out-of-fold log-odds ``z``: the (a, b) of P = sigmoid(a·z + b), maximum
    a posteriori with independent Gaussian priors a ~ N(1, sd²), b ~ N(0, sd²). The log-odds already start
    from the cold-start prior, so "no recalibration" is the reference; a few dozen outcomes move it only as
    far as they support (unpenalised, 70 outcomes stretched the log-odds by 1.5-2.3×, which did not hold
    on later visits)."""
    from scipy.optimize import minimize

    z, y = np.asarray(z, float).ravel(), np.asarray(y, float)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = w[0] * z + w[1]
        p = 1 / (1 + np.exp(-t))
        nll = float(np.sum(np.logaddexp(0.0, t) - y * t))
        g = np.array([np.sum((p - y) * z), np.sum(p - y)])
        off = np.array([w[0] - 1.0, w[1]])  # distance from "no recalibration"
        return nll + 0.5 * float(off @ off) / prior_sd**2, g + off / prior_sd**2

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def _matrix(X: pd.DataFrame) -> pd.DataFrame:
    """The FEATURES columns as floats; a missing value (e.g. no radius) becomes 0 for the trees."""
    return X.reindex(columns=FEATURES).astype(float).fillna(0.0)


class PriorInit(BaseEstimator, ClassifierMixin):
    """Initial log-odds of the booster: the cold-start scorer's, computed from the FEATURES columns."""

    def __init__(self, prior: ColdStartScorer | None = None):
        self.prior = prior

    def fit(self, X, y, sample_weight=None) -> PriorInit:
        self.classes_ = np.array([0, 1])
        self.prior_ = self.prior if self.prior is not None else ColdStartScorer().fit()
        return self

    def predict_proba(self, X) -> np.ndarray:
        df = pd.DataFrame(np.asarray(X, float), columns=FEATURES)
        return self.prior_.predict_proba(df)


class RateModel:
    """Correction of the rate estimate learned from rates crews measured, with its uncertainty.

    log(measured) − ln(the cold start's visit rate, :meth:`visit_log_rate`) is modelled as a penalised Huber
    regression on ``RATE_FEATURES`` (a log-linear correction: a sensor that reads high, unquantified leaks
    bigger than the leak-size prior says; robust, :meth:`_regressor`). The penalty is chosen by 5-fold
    cross-validation among ``ALPHAS`` and "no correction at all", on the mean absolute error of ln rate (the
    squared error let one visit far off set the choice), so with few or noisy measurements the model keeps
    the cold start's rate. ``sigma_`` is the cross-validated residual standard deviation in log space (of the
    chosen option): the 1-sigma of every rate it predicts, so the interval reflects how far estimates really
    were from what crews measured.
    """

    ALPHAS = (1.0, 10.0, 100.0)

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    @staticmethod
    def design(X: pd.DataFrame) -> pd.DataFrame:
        q = X["rate_quantified"].fillna(False).astype(bool) if "rate_quantified" in X \
            else X["n_quantified"].fillna(0) > 0
        out = pd.DataFrame({"log_rate": X["log_rate"].astype(float), "rate_rel_unc": X["rate_rel_unc"].astype(float),
                            "unquantified": (~q).astype(float),
                            "log_n_quantified": np.log1p(X["n_quantified"].fillna(0).astype(float))}, index=X.index)
        for t in SOURCE_TYPES:
            out[f"has_{t}"] = (X[f"n_{t}"].fillna(0) > 0).astype(float)
        return out[RATE_FEATURES].fillna(0.0)

    @staticmethod
    def _regressor(alpha: float) -> HuberRegressor:
        """Ridge-penalised Huber regression: a few visits whose measured rate is far off the estimate for a reason
        no feature sees (a fused leak whose crew measured only its small component: 2 kg/h against a 6,700 kg/h
        plume, e^-8) must not set the correction of every other leak, as they did with least squares."""
        return HuberRegressor(alpha=alpha, epsilon=1.35, max_iter=1000)

    @staticmethod
    def visit_log_rate(X: pd.DataFrame) -> np.ndarray:
        """ln of the rate the cold start expects a visit to find (``score.rates.expected_rate``: the estimate
        shrunk toward the leak-size prior as much as it is uncertain). The correction is learned from it, so
        that "no correction" is the cold start's own rate and a few noisy measurements refine it instead of
        re-learning the regression to the mean the prior already gives."""
        q = X["rate_quantified"].fillna(False).astype(bool).to_numpy() if "rate_quantified" in X \
            else (X["n_quantified"].fillna(0) > 0).to_numpy()
        return np.log(expected_rate(X["log_rate"].to_numpy(float), X["log_sigma"].to_numpy(float), q))

    def _base(self, X: pd.DataFrame) -> np.ndarray:
        # models fitted before the visit rate (no ``base_``) corrected the features' estimate itself
        if getattr(self, "base_", "estimate") == "visit":
            return self.visit_log_rate(X)
        return X["log_rate"].to_numpy(float)

    def fit(self, X: pd.DataFrame, measured: np.ndarray) -> RateModel:
        D = self.design(X)
        self.base_ = "visit"
        r = np.log(np.asarray(measured, float)) - self._base(X)
        self.mu_, self.sd_ = D.mean(), D.std(ddof=0).replace(0, 1.0)
        Z = ((D - self.mu_) / self.sd_).to_numpy()
        cv = KFold(min(5, len(r)), shuffle=True, random_state=self.random_state)
        scores = {None: float(np.sqrt(np.mean(r**2)))}
        mae = {None: float(np.mean(np.abs(r)))}
        for alpha in self.ALPHAS:
            oof = cross_val_predict(self._regressor(alpha), Z, r, cv=cv)
            scores[alpha] = float(np.sqrt(np.mean((r - oof) ** 2)))
            mae[alpha] = float(np.mean(np.abs(r - oof)))
        self.alpha_ = min(mae, key=lambda a: mae[a])
        self.model_ = None if self.alpha_ is None else self._regressor(self.alpha_).fit(Z, r)
        self.sigma_ = scores[self.alpha_]
        self.sigma_uncorrected_ = scores[None]
        self.cv_scores_ = {str(k): v for k, v in scores.items()}
        self.cv_mae_ = {str(k): v for k, v in mae.items()}  # the criterion the choice minimised
        self.n_ = int(len(r))
        return self

    def correction(self, X: pd.DataFrame) -> np.ndarray:
        if self.model_ is None:
            return np.zeros(len(X))
        return self.model_.predict(((self.design(X) - self.mu_) / self.sd_).to_numpy())

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Corrected log rate, its 1-sigma and the usual rate columns, per leak."""
        lr = self._base(X) + self.correction(X)
        s = np.full(len(X), self.sigma_)
        return pd.DataFrame({"log_rate": lr, "log_sigma": s, "est_rate_kg_h": np.exp(lr),
                             "rate_lo_kg_h": np.exp(lr - s), "rate_hi_kg_h": np.exp(lr + s)}, index=X.index)


def rate_estimate(model, X: pd.DataFrame) -> pd.DataFrame:
    """Rate columns for scoring: the model's learned rate when it has one, else the features' estimate."""
    return model_rates(model, X)


class LearnedScorer:
    """Gradient boosting from the cold-start prior on :data:`FEATURES`, Platt-calibrated, explained by SHAP."""

    kind = "learned"

    def __init__(self, n_estimators: int = 60, max_depth: int = 2, learning_rate: float = 0.05,
                 min_samples_leaf: int = 15, random_state: int = 0, select_trees: bool = True):
        self.select_trees = select_trees
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _model(self, n_estimators: int | None = None) -> GradientBoostingClassifier:
        n = n_estimators if n_estimators is not None else getattr(self, "n_trees_", None) or self.n_estimators
        return GradientBoostingClassifier(n_estimators=n, max_depth=self.max_depth,
                                          learning_rate=self.learning_rate, subsample=0.8,
                                          min_samples_leaf=self.min_samples_leaf, init=PriorInit(self.prior_),
                                          random_state=self.random_state)

    def fit(self, X: pd.DataFrame, y: np.ndarray, measured_rates: np.ndarray | None = None) -> LearnedScorer:
        """Fit on labelled leaks; ``measured_rates`` (kg/h, NaN where none) trains the rate model."""
        Xf = _matrix(X)
        y = np.asarray(y, int)
        self.feature_names_in_ = list(FEATURES)
        self.prior_ = ColdStartScorer().fit()
        folds = min(5, int(np.bincount(y, minlength=2).min())) if len(np.unique(y)) == 2 else 0
        self.n_trees_ = self._select_trees(Xf, y, folds) if self.select_trees else self.n_estimators
        self.model_ = self._model().fit(Xf, y)
        if folds >= 2:
            oof = cross_val_predict(self._model(), Xf, y, method="decision_function",
                                    cv=StratifiedKFold(folds, shuffle=True, random_state=self.random_state))
            self.a_, self.b_ = platt(oof, y)
        else:
            self.a_, self.b_ = 1.0, 0.0
        self.expected_trees_ = float(np.ravel(self._explainer().expected_value)[-1])
        self.rate_model_ = None
        if measured_rates is not None:
            m = np.asarray(measured_rates, float)
            ok = np.isfinite(m) & (m > 0) & np.isfinite(X["log_rate"].to_numpy(float))
            if ok.sum() >= MIN_RATES:
                self.rate_model_ = RateModel().fit(X.loc[ok], m[ok])
        return self

    def _select_trees(self, Xf: pd.DataFrame, y: np.ndarray, folds: int) -> int:
        """How many trees (1 to ``n_estimators``) the data support: the count with the lowest cross-validated
        Brier score (``folds`` stratified folds, every count read off one fit per fold). A few dozen outcomes
        support only a few small corrections of the prior; more trees would fit their noise."""
        if folds < 2:
            return self.n_estimators
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        err = np.zeros(self.n_estimators)
        for tr, te in cv.split(Xf, y):
            m = self._model(self.n_estimators).fit(Xf.iloc[tr], y[tr])
            for i, z in enumerate(m.staged_decision_function(Xf.iloc[te])):
                err[i] += float(np.sum((1 / (1 + np.exp(-np.ravel(z))) - y[te]) ** 2))
        return int(np.argmin(err)) + 1

    def _explainer(self):
        """SHAP TreeExplainer of the trees alone (the prior is explained by its own exact terms)."""
        import shap

        trees = copy.copy(self.model_)
        trees.init_ = DummyClassifier(strategy="prior").fit(np.zeros((2, 1)), [0, 1])  # offset logit(0.5) = 0
        return shap.TreeExplainer(trees)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.a_ * self.model_.decision_function(_matrix(X)) + self.b_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    @property
    def base_(self) -> float:
        return self.a_ * (self.prior_.base_ + self.expected_trees_) + self.b_

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The prior's exact terms and the trees' SHAP values (log-odds), both scaled by the Platt slope:
        rows sum to the calibrated logit − ``base_``."""
        Xf = _matrix(X)
        prior = self.prior_.contributions(X)
        explainer = self._explainer()
        parts = []
        for start in range(0, len(Xf), 20_000):  # chunked: bounded memory on large basins
            parts.append(np.asarray(explainer.shap_values(Xf.iloc[start:start + 20_000], check_additivity=False)))
        phi = np.vstack(parts) if parts else np.zeros((0, len(FEATURES)))
        if phi.ndim == 3:
            phi = phi[..., 1]
        trees = pd.DataFrame(self.a_ * phi, index=X.index, columns=FEATURES)
        return pd.concat([self.a_ * prior, trees], axis=1)


def evaluate(model, X: pd.DataFrame, y: np.ndarray) -> dict:
    """Hold-out metrics: Brier score, log loss, AUC (when both classes are present), calibration bins."""
    y = np.asarray(y, int)
    p = np.clip(model.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
    out = {"n": int(len(y)), "brier": float(brier_score_loss(y, p)), "log_loss": float(log_loss(y, p, labels=[0, 1])),
           "base_rate": float(np.mean(y)) if len(y) else float("nan")}
    out["auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    bins = np.clip((p * 5).astype(int), 0, 4)
    out["calibration"] = [
        {"bin": f"{b / 5:.1f}-{(b + 1) / 5:.1f}", "mean_p": float(p[bins == b].mean()),
         "observed": float(y[bins == b].mean()), "n": int((bins == b).sum())}
        for b in range(5) if (bins == b).any()
    ]
    out["ece"] = float(sum(c["n"] * abs(c["mean_p"] - c["observed"]) for c in out["calibration"]) / max(len(y), 1))
    return out


def evaluate_rates(model, X: pd.DataFrame, measured: np.ndarray) -> dict | None:
    """Hold-out error of the rate a model would use, in log space (RMSE and bias), on measured leaks."""
    m = np.asarray(measured, float)
    ok = np.isfinite(m) & (m > 0)
    if ok.sum() == 0:
        return None
    est = rate_estimate(model, X.loc[ok])["log_rate"].to_numpy(float)
    r = np.log(m[ok]) - est
    return {"n": int(ok.sum()), "rmse_log": float(np.sqrt(np.mean(r**2))), "bias_log": float(np.mean(r))}


def data_hash(X: pd.DataFrame, y: np.ndarray) -> str:
    h = hashlib.sha256(pd.util.hash_pandas_object(_matrix(X).round(9), index=True).to_numpy().tobytes())
    h.update(np.asarray(y, np.int8).tobytes())
    return h.hexdigest()[:16]


def _iso(t) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def train_candidate(features: pd.DataFrame, labels: pd.DataFrame, current, holdout_share: float = 0.3,
                    min_holdout: int = MIN_HOLDOUT, current_through: pd.Timestamp | None = None,
                    current_name: str = "the live model", last_hash: str | None = None) -> dict:
    """Fit a candidate on older outcomes and compare it with ``current`` on outcomes neither model saw.

    The gate is honest only if no model is graded on visits it was trained on. ``current_through`` is the
    newest visit the live model was fitted on (None for the cold-start model, which saw none): the hold-out
    is drawn only from visits after it, the most recent ``holdout_share`` of all labelled visits (at least
    ``min_holdout``), and the candidate is fitted on the visits before the hold-out. A promoted candidate is
    refitted on every labelled visit and records that newest visit as its own ``trained_through``, so the
    next training compares on outcomes that arrive after it. Training again on the same outcomes as the last
    recorded version (``last_hash``) fits nothing. The decision always states the sizes and dates.
    """
    idx = labels.index.intersection(features.index)
    labels = labels.loc[idx].sort_values("visited_at", kind="stable")
    if len(idx) < MIN_TRAIN or labels["y"].nunique() < 2:
        return {"promote": False, "model": None, "metrics": {},
                "decision": f"not trained: {len(idx)} usable validations with both outcomes needed "
                            f"(at least {MIN_TRAIN}; not_accessible visits do not count)"}
    labels = labels.assign(visited_at=pd.to_datetime(labels["visited_at"], utc=True))
    h_all = data_hash(features.loc[labels.index], labels["y"].to_numpy())
    if last_hash is not None and h_all == last_hash:
        return {"promote": False, "model": None, "metrics": {}, "unchanged": True,
                "decision": f"not trained: no new field outcome since the last model was fitted on the same "
                            f"{len(labels)} validations; nothing changed"}
    through = None if current_through is None else pd.Timestamp(current_through)
    if through is not None:
        through = through.tz_localize("UTC") if through.tzinfo is None else through.tz_convert("UTC")
    newer = labels if through is None else labels[labels["visited_at"] > through]
    want = max(int(np.ceil(holdout_share * len(labels))), min_holdout)
    hold = newer.index[-min(want, len(newer)):] if len(newer) else newer.index
    if len(hold) < min_holdout:
        return {"promote": False, "model": None, "metrics": {},
                "decision": f"not promoted: only {len(newer)} field outcomes are newer than the visits "
                            f"{current_name} was trained on (through {_iso(through)[:10]}); at least {min_holdout} "
                            "are needed to compare the two fairly"}
    start = labels.loc[hold, "visited_at"].min()
    train = labels.index[(labels["visited_at"] < start).to_numpy()]
    ytr, yho = labels.loc[train, "y"].to_numpy(), labels.loc[hold, "y"].to_numpy()
    if len(train) < MIN_HOLDOUT or len(np.unique(ytr)) < 2:
        return {"promote": False, "model": None, "metrics": {},
                "decision": f"not trained: the {len(train)} visits before the hold-out hold too few or one outcome "
                            f"only (hold-out {len(hold)} visits from {_iso(start)[:10]})"}
    rates = labels["measured_rate_kg_h"] if "measured_rate_kg_h" in labels else pd.Series(np.nan, index=labels.index)
    cand = LearnedScorer().fit(features.loc[train], ytr, rates.loc[train].to_numpy(float))
    m_cand = evaluate(cand, features.loc[hold], yho)
    m_cur = evaluate(current, features.loc[hold], yho)
    metrics = {"candidate": m_cand, "current": m_cur, "n_train": int(len(train)), "n_holdout": int(len(hold)),
               "holdout_from": _iso(start), "current_trained_through": _iso(through),
               "trained_through": _iso(labels.loc[train, "visited_at"].max()),
               "rates_candidate": evaluate_rates(cand, features.loc[hold], rates.loc[hold].to_numpy(float)),
               "rates_current": evaluate_rates(current, features.loc[hold], rates.loc[hold].to_numpy(float)),
               "rate_model": None if cand.rate_model_ is None else
               {"n": cand.rate_model_.n_, "sigma_log": cand.rate_model_.sigma_,
                "sigma_log_uncorrected": cand.rate_model_.sigma_uncorrected_}}
    out = {"model": cand, "metrics": metrics, "data_hash": h_all}
    better = m_cand["brier"] < m_cur["brier"]
    decision = (f"{'promoted' if better else 'kept current'}: hold-out Brier {m_cand['brier']:.4f} (candidate) vs "
                f"{m_cur['brier']:.4f} ({current_name}) on the {len(hold)} visits since {_iso(start)[:10]}, which "
                f"neither had seen (candidate trained on the {len(train)} before)")
    if better:
        out["model"] = LearnedScorer().fit(features.loc[labels.index], labels["y"].to_numpy(), rates.to_numpy(float))
        metrics["trained_through"] = _iso(labels["visited_at"].max())
        metrics["n_train_final"] = int(len(labels))
    out.update(promote=better, decision=decision)
    return out


def sensor_precision(dets: pd.DataFrame, validations: pd.DataFrame) -> pd.DataFrame:
    """Per sensor (source_name): how often the leaks it saw were real when a crew checked.

    Each validated leak counts once per sensor that saw it (its latest usable outcome). ``real`` =
    confirmed + already_repaired (the leak existed), ``precision`` = real / checked with a 90 % Jeffreys
    interval (``precision_lo``, ``precision_hi``); ``confirmed_share`` = confirmed / checked (still emitting
    when visited). not_accessible visits are left out.
    """
    cols = ["source_name", "source_type", "n_detections", "checked", "confirmed", "already_repaired", "not_found",
            "precision", "precision_lo", "precision_hi", "confirmed_share"]
    if dets is None or validations is None or dets.empty or validations.empty:
        return pd.DataFrame(columns=cols)
    from scipy.stats import beta

    v = validations[validations["outcome"].isin(POSITIVE | NEGATIVE)].copy()
    v["visited_at"] = pd.to_datetime(v["visited_at"], utc=True)
    last = v.sort_values("visited_at").groupby("leak_id")["outcome"].last()
    d = dets[dets["leak_id"].isin(last.index)]
    if d.empty:
        return pd.DataFrame(columns=cols)
    seen = d.groupby(["source_name", "leak_id"]).agg(source_type=("source_type", "first"), n=("leak_id", "size"))
    seen = seen.reset_index()
    seen["outcome"] = seen["leak_id"].map(last)
    g = seen.groupby("source_name")
    out = pd.DataFrame({"source_type": g["source_type"].first(), "n_detections": g["n"].sum(), "checked": g.size()})
    for o in ("confirmed", "already_repaired", "not_found"):
        out[o] = g["outcome"].apply(lambda s, o=o: int((s == o).sum()))
    real = out["confirmed"] + out["already_repaired"]
    out["precision"] = real / out["checked"]
    # Jeffreys interval, with the usual ends: 0 when nothing was real, 1 when everything was
    out["precision_lo"] = np.where(real > 0, beta.ppf(0.05, real + 0.5, out["checked"] - real + 0.5), 0.0)
    out["precision_hi"] = np.where(real < out["checked"], beta.ppf(0.95, real + 0.5, out["checked"] - real + 0.5), 1.0)
    out["confirmed_share"] = out["confirmed"] / out["checked"]
    return out.reset_index().sort_values("checked", ascending=False)[cols].reset_index(drop=True)


def metrics_json(metrics: dict) -> str:
    return json.dumps(metrics, default=float)
