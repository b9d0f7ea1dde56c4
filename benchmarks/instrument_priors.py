"""Instrument priors measured on real controlled-release data, per platform.

Why: ``config/instruments.yaml`` and the constants of the scorer (detection limit and slope, default
log-sigma of a reported rate, leak-size prior of an unquantified detection) were set from the literature
and by hand. The blind controlled-release tests in ``../shared/data/real`` measure them directly: the gas
meter is the truth, the operator or vendor report is the observation. This script measures, per platform
(each sensor, operator or vendor):

* probability of detection against the metered rate: a logistic in log rate fitted by maximum likelihood,
  P(detect | rate) = 1 / (1 + (L50 / rate) ** k) (the scorer's ``p_detect``), with L50, the slope k and
  L90 = L50 * 9 ** (1 / k), each with a 90 % bootstrap interval (plus a Firth-penalised fit, finite when
  the detections separate perfectly, and for monitors a ceiling c: P = c / (1 + (L50 / rate) ** k));
* false positives on zero-release looks (aircraft) or false-alarm windows (continuous monitors), with a
  90 % Wilson interval;
* quantification: bias = median of ln(reported / true) (and as a factor), robust log-scatter
  (1.4826 * MAD) and plain SD of the log ratio, and how often the operator's stated bounds cover the truth;
* for continuous monitors also time to detection, offline time and alarm cadence (window lengths, gaps,
  windows per day, day/night pattern in Arizona local time, UTC-7), which feed a realistic simulator;
* from METEC ADED: release rates, durations, simultaneous sources and their spacing;
* from LDAR / OGI surveys: log-normal leak-size fits (g/s converted to kg/h) and leaks found per site visit;
* from the Kairos New Mexico Permian survey: source rate distribution and the variability of repeat
  sightings of one source.

Data are read at run time from ``<repo>/../shared/data/real`` (or ``$MLPE_REAL_DATA``) and never copied;
when the folder is absent the script says so and exits 0. Only numpy, pandas and scipy are used (no
``mlpe_core``, which may be mid-refactor). Deterministic for a given ``--seed``; ~1 CPU-minute at 1000
resamples.
Every number goes to a JSON file (``--json``) together with the file it came from.

    .venv/bin/python benchmarks/instrument_priors.py [--json /tmp/instrument_priors.json] [--stage 1]
                                                     [--n-boot 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

# the fits are thousands of tiny (2x2) solves: BLAS threads only contend (5x slower on a busy machine)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import optimize, special, stats  # noqa: E402

Z90 = stats.norm.ppf(0.95)  # two-sided 90 % intervals everywhere (bootstrap percentiles 5-95, Wilson)
AZ_UTC_OFFSET_H = -7  # Arizona does not observe daylight saving time
DAY_HOURS_LOCAL = (7, 18)  # "day" = 07:00-18:00 local (sunrise ~06:40-07:10, sunset ~17:20-18:00 in Oct-Nov)
G_PER_S_TO_KG_PER_H = 3.6


def real_data_dir() -> Path:
    env = os.environ.get("MLPE_REAL_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


# ----------------------------------------------------------------------------------------------------------
# statistics helpers
# ----------------------------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z90) -> dict:
    """Share k/n with its Wilson score interval (90 % by default)."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "lo": None, "hi": None}
    p = k / n
    den = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return {"k": int(k), "n": int(n), "rate": p, "lo": max(0.0, centre - half), "hi": min(1.0, centre + half)}


def dist(x, digits: int | None = None) -> dict:
    """n, median, quartiles, 10th/90th percentiles, mean, min, max of a sample."""
    x = np.asarray(pd.Series(x, dtype=float).dropna())
    if len(x) == 0:
        return {"n": 0}
    q = np.percentile(x, [10, 25, 50, 75, 90])
    out = {"n": int(len(x)), "median": q[2], "q25": q[1], "q75": q[3], "p10": q[0], "p90": q[4],
           "mean": float(x.mean()), "min": float(x.min()), "max": float(x.max())}
    return {k: (round(float(v), digits) if digits is not None and k != "n" else v) for k, v in out.items()}


K_CAP = 29.0  # a fitted k above this is a perfect separation, not a slope


def _newton_logistic(x: np.ndarray, y: np.ndarray, firth: bool) -> tuple[float, float]:
    """Logistic regression y ~ expit(b0 + b1 x) by Newton-Raphson with step halving; ``firth``: Firth's
    penalised likelihood (log-likelihood + 0.5 ln det of the Fisher information; Heinze & Schemper 2002),
    which stays finite under perfect separation. Returns (b0, b1); an unpenalised fit that separates
    stops when b1 passes the cap."""
    X = np.column_stack([np.ones_like(x), x])
    xc = float(np.median(x))
    beta = np.array([-2.0 * xc, 2.0])

    def objective(bt):
        z = X @ bt
        ll = float(np.sum(y * special.log_expit(z) + (1 - y) * special.log_expit(-z)))
        if firth:
            p = special.expit(z)
            sign, logdet = np.linalg.slogdet(X.T @ (X * (p * (1 - p))[:, None]))
            ll += 0.5 * logdet if sign > 0 else -1e12
        return ll

    cur = objective(beta)
    for _ in range(200):
        p = special.expit(X @ beta)
        w = p * (1 - p)
        info = X.T @ (X * w[:, None])
        try:
            inv = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            break
        resid = y - p
        if firth:
            h = np.einsum("ij,jk,ik->i", X, inv, X) * w  # hat values
            resid = resid + h * (0.5 - p)
        step = inv @ (X.T @ resid)
        t = 1.0
        while t > 1e-4:
            new = beta + t * step
            val = objective(new)
            if val >= cur - 1e-12:
                break
            t /= 2
        beta, cur = new, val
        if np.max(np.abs(t * step)) < 1e-9 or (not firth and beta[1] > K_CAP + 1):
            break
    return float(beta[0]), float(beta[1])


def l90(L50, k):
    """Rate at 90 % detection, L50 * 9^(1/k), computed in logs and capped at 1e6 kg/h (flat curves)."""
    return np.exp(np.minimum(np.log(L50) + math.log(9) / np.asarray(k, float), math.log(1e6)))


def _to_l50(b0: float, b1: float) -> tuple[float, float]:
    k = min(max(b1, 1e-3), 30.0)
    return float(np.clip(math.exp(-b0 / b1) if b1 > 1e-9 else 1e5, 1e-3, 1e5)), k


def _pod_mle(rate: np.ndarray, det: np.ndarray) -> tuple[float, float]:
    """Maximum likelihood of P = 1 / (1 + (L50/rate)^k) = expit(k ln rate - k ln L50)."""
    return _to_l50(*_newton_logistic(np.log(rate), det.astype(float), firth=False))


def _pod_firth(rate: np.ndarray, det: np.ndarray) -> tuple[float, float]:
    """Firth-penalised version of :func:`_pod_mle` (finite under separation, ~MLE otherwise)."""
    return _to_l50(*_newton_logistic(np.log(rate), det.astype(float), firth=True))


def _ceiling_nll(t, x, y):
    a, b, cl = t
    k, c = math.exp(b), special.expit(cl)
    z = k * (x - a * math.log(10))
    s = special.expit(z)
    p = np.clip(c * s, 1e-12, 1 - 1e-12)
    d = y / p - (1 - y) / (1 - p)
    dz = d * c * s * (1 - s)
    grad = np.array([np.sum(dz * -k * math.log(10)), np.sum(dz * z), np.sum(d * s) * c * (1 - c)])
    return -float(np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))), -grad


def _pod_ceiling(rate: np.ndarray, det: np.ndarray, starts: int = 2) -> tuple[float, float, float]:
    """P = c / (1 + (L50/rate)^k): a ceiling c < 1 for monitors that miss some large releases (wind away from
    the sensors, alarm logic). c is the scorer's look efficiency."""
    x, y = np.log(rate), det.astype(float)
    L0, k0 = _pod_firth(rate, det)
    best = None
    for start in [[math.log10(L0), math.log(k0), 3.0], [np.log10(np.median(rate)), 0.5, 1.0]][:starts]:
        r = optimize.minimize(_ceiling_nll, start, args=(x, y), jac=True, method="L-BFGS-B",
                              bounds=[(-3.0, 5.0), (math.log(0.05), math.log(30.0)), (-3.0, 8.0)])
        if best is None or r.fun < best.fun:
            best = r
    a, b, cl = best.x
    return 10**a, math.exp(b), float(special.expit(cl))


def _boot(fn, rate, det, rng, n_boot) -> np.ndarray:
    out = []
    for _ in range(n_boot):
        i = rng.integers(0, len(rate), len(rate))
        if det[i].all() or not det[i].any():
            continue
        out.append(fn(rate[i], det[i]))
    return np.array(out)


def _ci(out: dict, key: str, values: np.ndarray) -> None:
    out[f"{key}_lo"], out[f"{key}_hi"] = float(np.percentile(values, 5)), float(np.percentile(values, 95))


def fit_pod(rate, detected, rng: np.random.Generator, n_boot: int, ceiling: bool = False) -> dict:
    """Logistic probability of detection in log rate, P = 1 / (1 + (L50/rate)^k), by maximum likelihood.

    Returns L50, k, L90 with 90 % percentile-bootstrap intervals (resampling looks), n looks with rate > 0,
    detections, and ``identified`` = False when the fit sits on a bound (perfect separation makes k run to
    its cap, or L50 runs below the data). The Firth-penalised fit (``firth``) is always given too: it stays
    finite under separation and is the value to use when ``identified`` is False. ``ceiling``: also fit
    P = c / (1 + (L50/rate)^k) (continuous monitors).
    """
    rate = np.asarray(rate, float)
    det = np.asarray(detected, bool)
    keep = np.isfinite(rate) & (rate > 0)
    rate, det = rate[keep], det[keep]
    out = {"n": int(len(rate)), "n_detected": int(det.sum())}
    out["bins"] = pod_bins(rate, det)
    if len(rate):
        out["min_detected_kg_h"] = float(rate[det].min()) if det.any() else None
        out["max_missed_kg_h"] = float(rate[~det].max()) if (~det).any() else None
    if len(rate) < 3 or det.all() or not det.any():
        out.update(L50=None, k=None, L90=None, identified=False,
                   note="all looks detected" if len(rate) and det.all() else "too few looks or no detection")
        return out
    L50, k = _pod_mle(rate, det)
    at_bound = (k > K_CAP) or (L50 < 10 ** -2.9) or (L50 > 10 ** 4.9) or (L50 < 0.5 * rate.min())
    at_bound = at_bound or (k < 0.3 and L50 < rate.min())  # flat curve whose 50 % point lies below the data
    out.update(L50=L50, k=k, L90=float(l90(L50, k)), identified=not at_bound)
    b = _boot(_pod_mle, rate, det, rng, n_boot)
    if len(b):
        _ci(out, "L50", b[:, 0])
        _ci(out, "k", b[:, 1])
        _ci(out, "L90", l90(b[:, 0], b[:, 1]))
        out["n_boot"] = int(len(b))
        out["boot_share_separated"] = float(np.mean(b[:, 1] > K_CAP))
    fL, fk = _pod_firth(rate, det)
    firth = {"L50": fL, "k": fk, "L90": float(l90(fL, fk))}
    b = _boot(_pod_firth, rate, det, rng, n_boot)
    if len(b):
        _ci(firth, "L50", b[:, 0])
        _ci(firth, "k", b[:, 1])
        _ci(firth, "L90", l90(b[:, 0], b[:, 1]))
    out["firth"] = firth
    if ceiling:
        cL, ck, cc = _pod_ceiling(rate, det)
        ceil = {"L50": cL, "k": ck, "c": cc, "L90_of_ceiling": float(l90(cL, ck))}
        b = _boot(lambda r, d: _pod_ceiling(r, d, starts=1), rate, det, rng, n_boot)
        if len(b):
            _ci(ceil, "L50", b[:, 0])
            _ci(ceil, "k", b[:, 1])
            _ci(ceil, "c", b[:, 2])
        ceil["identified"] = bool(ck < K_CAP and cL > 0.5 * rate.min())
        out["ceiling"] = ceil
    return out


POD_EDGES = [0, 1, 3, 10, 30, 100, 300, 1000, np.inf]


def pod_bins(rate, det) -> list[dict]:
    """Empirical detection share per rate bin (kg/h), to read next to the fit."""
    rows = []
    for lo, hi in zip(POD_EDGES[:-1], POD_EDGES[1:], strict=True):
        m = (rate >= lo) & (rate < hi)
        if m.any():
            rows.append({"bin_kg_h": f"{lo:g}-{hi:g}", "n": int(m.sum()), "detected": int(det[m].sum())})
    return rows


def quant_stats(true, reported, lower=None, upper=None, sigma_bounds: bool = False) -> dict:
    """Bias and scatter of ln(reported / true), share within +-50 %, and coverage of the stated bounds.

    ``sigma_bounds``: the bounds are claimed to be 1-sigma; then the coverage of the same interval widened
    to +-1.96 sigma (what a 95 % interval would be) is reported too.
    """
    true, rep = np.asarray(true, float), np.asarray(reported, float)
    ok = np.isfinite(true) & np.isfinite(rep) & (true > 0) & (rep > 0)
    lr = np.log(rep[ok] / true[ok])
    out: dict = {"n": int(ok.sum())}
    if ok.sum() == 0:
        return out
    med = float(np.median(lr))
    out.update(bias_ln=med, bias_factor=math.exp(med), mean_ln=float(lr.mean()),
               robust_sd_ln=float(1.4826 * np.median(np.abs(lr - med))),
               sd_ln=float(lr.std(ddof=1)) if len(lr) > 1 else None,
               within_50pct=float(np.mean(np.abs(rep[ok] / true[ok] - 1) <= 0.5)),
               within_factor2=float(np.mean(np.abs(lr) <= math.log(2))))
    if ok.sum() >= 3:
        # ln(reported) = a + b ln(true): b < 1 means large releases are under-reported (saturation)
        b, a = np.polyfit(np.log(true[ok]), np.log(rep[ok]), 1)
        out.update(slope_ln=float(b), intercept_ln=float(a))
    if lower is not None and upper is not None:
        lo, hi = np.asarray(lower, float)[ok], np.asarray(upper, float)[ok]
        t, r = true[ok], rep[ok]
        has = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
        out["bounds_n"] = int(has.sum())
        if has.any():
            out["coverage"] = float(np.mean((lo[has] <= t[has]) & (t[has] <= hi[has])))
            out["truth_below_lower"] = float(np.mean(t[has] < lo[has]))
            out["truth_above_upper"] = float(np.mean(t[has] > hi[has]))
            if sigma_bounds:
                lo2 = r[has] - 1.96 * (r[has] - lo[has])
                hi2 = r[has] + 1.96 * (hi[has] - r[has])
                out["coverage_if_widened_to_1.96sigma"] = float(np.mean((lo2 <= t[has]) & (t[has] <= hi2)))
    return out


def lognormal_fit(x_kg_h) -> dict:
    """Log-normal fitted by maximum likelihood (mean and SD of ln x) to the positive values, with the
    empirical median, mean and the share of the total emitted by the largest 5 % of values."""
    x = np.asarray(x_kg_h, float)
    n_nonpos = int(np.sum(~(x > 0)))
    x = np.sort(x[x > 0])
    lx = np.log(x)
    mu, sd = float(lx.mean()), float(lx.std(ddof=0))
    top = int(math.ceil(0.05 * len(x)))
    ks = stats.kstest(lx, "norm", args=(mu, sd))
    return {"n": int(len(x)), "n_zero_dropped": n_nonpos, "n_distinct": int(len(np.unique(x))),
            "lognormal_median_kg_h": math.exp(mu), "log_sd": sd, "lognormal_mean_kg_h": math.exp(mu + sd**2 / 2),
            "empirical_median_kg_h": float(np.median(x)), "empirical_mean_kg_h": float(x.mean()),
            "p90_kg_h": float(np.percentile(x, 90)), "max_kg_h": float(x.max()),
            "top5pct_share_of_total": float(x[-top:].sum() / x.sum()), "ks_stat_log": float(ks.statistic)}


# ----------------------------------------------------------------------------------------------------------
# aircraft (Stanford 2022 single-blind test)
# ----------------------------------------------------------------------------------------------------------

AIRCRAFT_FILE = "stanford_aircraft_2022/aircraft_overpasses_with_metered_truth.csv"
KAIROS_COMBINED = "Kairos/Insight M (both pods combined)"
# what each operator's operator_lower / operator_upper are (operator_reports_clean/*: UncertaintyType, and the
# MethaneAIR submission README); "sigma" = 1-sigma, so coverage should be ~68 %
AIRCRAFT_BOUNDS = {
    "Carbon Mapper (AVIRIS-NG/GAO)": ("1-sigma (UncertaintyType in cm_1_clean.csv)", True),
    "GHGSat-AV": ("1-sigma (UncertaintyType in ghg_1_clean.csv)", True),
    KAIROS_COMBINED: ("min / max of the two pods' estimates (Kairos states no uncertainty)", False),
    "Kairos/Insight M pod LS23": ("none reported", False),
    "Kairos/Insight M pod LS25": ("none reported", False),
    "MethaneAIR (avg of mIME & DI)": ("95 % CI = E +- 2 combined s.d. (22 passes), max/min (2), fixed +-100 kg/h "
                                      "below the quantification limit (README_MethaneAIR_as_submitted.txt)", False),
    "Scientific Aviation (in-situ mass balance)": ("1-sigma (UncertaintyType in sciav_1_clean.csv)", True),
}


def aircraft(root: Path, stage: int, rng: np.random.Generator, n_boot: int) -> dict:
    """Per aircraft operator: POD fit, false positives on zero-release passes, quantification.

    Filters: ``stage`` (1 = fully blind, operator's own wind); ``pass_all_qc`` (operator and Stanford QC both
    kept the pass). Kairos: the study gives pods LS23 and LS25 and a combined row per pass. The combined row
    is the platform (one aircraft pass = one look; detected if either pod saw the plume). Its
    quantification is the plain mean of the two pods with a non-detecting pod counted as 0 kg/h, which
    halves the rate when one pod misses; so the quantification of "Kairos" uses the mean of the pods that
    reported a positive rate. Pods are reported separately for reference only (never pooled: they are
    the same passes).
    """
    d = pd.read_csv(root / AIRCRAFT_FILE)
    s = d[d["stage"] == stage]
    out = {"source": AIRCRAFT_FILE, "stage": stage,
           "filters": f"stage == {stage}, pass_all_qc == True (operator and Stanford QC); rate > 0 for POD",
           "platforms": {}}
    pods = s[s["operator"].str.contains("pod")]
    pod_mean = (pods[pods["operator_detected"] & (pods["operator_quantification"] > 0)]
                .groupby("overpass_id")["operator_quantification"].mean())
    for op, g in s.groupby("operator", sort=False):
        q = g[g["pass_all_qc"]]
        nz = q[q["release_rate_kgh"] > 0]
        res: dict = {"n_rows_stage": int(len(g)), "n_pass_qc": int(len(q)),
                     "qc_summary": g["qc_summary"].value_counts().to_dict(),
                     "reference_only": " pod " in op}
        res["pod"] = fit_pod(nz["release_rate_kgh"], nz["operator_detected"], rng, n_boot)
        z = q[q["zero_release"]]
        z_all = g[g["zero_release"]]
        res["false_positive_qc"] = wilson(int(z["operator_detected"].sum()), len(z))
        res["false_positive_all_zero_passes"] = wilson(int(z_all["operator_detected"].sum()), len(z_all))
        dq = nz[nz["operator_detected"] & (nz["operator_quantification"] > 0)]
        kind, is_sigma = AIRCRAFT_BOUNDS.get(op, ("unknown", False))
        rep = dq["operator_quantification"]
        if op == KAIROS_COMBINED:
            res["quant_as_given"] = quant_stats(dq["release_rate_kgh"], rep)
            rep = dq["overpass_id"].map(pod_mean).fillna(rep)
            res["quant_note"] = "reported = mean of the pods with a positive estimate (the combined row averages " \
                                "in a 0 for a pod that missed)"
        res["quant"] = quant_stats(dq["release_rate_kgh"], rep, dq["operator_lower"], dq["operator_upper"], is_sigma)
        res["quant"]["bounds_claimed"] = kind
        res["detected_not_quantified_qc"] = int((nz["operator_detected"] & ~(nz["operator_quantification"] > 0)).sum())
        out["platforms"][op] = res
    # effect of the wind source: quantification at every stage (same QC filter), for the report
    out["quant_by_stage"] = {}
    for (op, st), g in d[d["pass_all_qc"] & (d["release_rate_kgh"] > 0) & d["operator_detected"]
                         & (d["operator_quantification"] > 0)].groupby(["operator", "stage"]):
        qs = quant_stats(g["release_rate_kgh"], g["operator_quantification"])
        out["quant_by_stage"][f"{op} | stage {st}"] = {k: qs.get(k) for k in ("n", "bias_factor", "robust_sd_ln",
                                                                              "sd_ln")}
    return out


# ----------------------------------------------------------------------------------------------------------
# satellites
# ----------------------------------------------------------------------------------------------------------

SAT_FILE = "stanford_2022_satellite_overpasses.csv"
CM_STAGE1_FILE = "stanford_2022_carbonmapper_stage1.csv"
CM_STAGE1_CLEAN = "stanford_aircraft_2022/operator_reports_clean/cm_1_clean.csv"


def satellites(root: Path) -> dict:
    """What the satellite files hold. The overpass table has the metered truth only (no team's detection or
    rate), so no POD or quantification can be measured from it; the "Carbon Mapper stage 1" file is the
    aircraft (GAO) report, identical to cm_1_clean.csv, not a satellite."""
    d = pd.read_csv(root / SAT_FILE)
    out = {"source": SAT_FILE, "columns": list(d.columns),
           "has_detection_column": any(c.lower() in ("detected", "detection", "operator_detected") for c in d.columns),
           "satellites": {}}
    for (team, sat), g in d.groupby(["Team", "Satellite"]):
        r = g["ch4_kgh_mean"].fillna(0.0)
        out["satellites"][f"{sat} ({team})"] = {"n_overpasses": int(len(g)), "n_zero": int((r <= 0).sum()),
                                                "n_release": int((r > 0).sum()),
                                                "release_kg_h": dist(r[r > 0], 1)}
    r = d["ch4_kgh_mean"].fillna(0.0)
    out["all"] = {"n_overpasses": int(len(d)), "n_zero_or_missing": int((r <= 0).sum()),
                  "n_missing_rate": int(d["ch4_kgh_mean"].isna().sum()), "release_kg_h": dist(r[r > 0], 1)}
    a = pd.read_csv(root / CM_STAGE1_FILE)
    cm = {"source": CM_STAGE1_FILE, "n_rows": int(len(a)), "dates": sorted(a["DateOfSurvey"].unique().tolist())}
    clean = root / CM_STAGE1_CLEAN
    if clean.exists():
        b = pd.read_csv(clean)
        same = bool(a.drop(columns=a.columns[0]).equals(b.drop(columns=b.columns[0])))
        cm["identical_to"] = CM_STAGE1_CLEAN if same else None
    cm["what_it_is"] = "Carbon Mapper aircraft (GAO/AVIRIS-NG) stage-1 reports of the aircraft test; measured in " \
                       "the aircraft section (its truth is there), not a satellite"
    out["carbonmapper_stage1_file"] = cm
    return out


# ----------------------------------------------------------------------------------------------------------
# continuous monitors (Stanford 2022 CMS test)
# ----------------------------------------------------------------------------------------------------------

CMS = "stanford_cms_2022"
CMS_VENDORS = {"Qube": "Qube", "Canary": "ProjectCanary", "Sensirion": "Sensirion", "Andium": "Andium"}
# what each vendor's bounds are claimed to be (vendor_reports/<vendor>_performer_info.csv, question 9)
CMS_BOUNDS = {"Qube": "min / max over model-parameter adjustments, 'not fundamentally statistical'",
              "Canary": "none given (performer info answers '?')", "Sensirion": "+-2 sigma",
              "Andium": "none (Andium does not quantify)"}


def _read_windows(path: Path, start: str, end: str) -> pd.DataFrame:
    w = pd.read_csv(path, keep_default_na=False, na_values=[""])
    w["start"] = pd.to_datetime(w[start], format="mixed")
    w["end"] = pd.to_datetime(w[end], format="mixed")
    return w.sort_values("start").reset_index(drop=True)


def _merge(w: pd.DataFrame, tol_s: float = 2.0) -> pd.DataFrame:
    """Join consecutive windows (start, end) closer than ``tol_s``: the study splits every window at UTC
    midnight (23:59:59 / 00:00:00), which is not a real break in an alarm."""
    if w.empty:
        return w[["start", "end"]].copy()
    s, e = w["start"].to_numpy(), w["end"].to_numpy()
    starts, ends = [s[0]], [e[0]]
    for a, b in zip(s[1:], e[1:], strict=True):
        if (a - ends[-1]) / np.timedelta64(1, "s") <= tol_s:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    return pd.DataFrame({"start": starts, "end": ends})


def _overlap_s(s1, e1, s2, e2) -> np.ndarray:
    """Matrix of overlap seconds between intervals (s1, e1) (rows) and (s2, e2) (columns)."""
    a = np.maximum(np.asarray(s1)[:, None], np.asarray(s2)[None, :])
    b = np.minimum(np.asarray(e1)[:, None], np.asarray(e2)[None, :])
    return np.maximum((b - a) / np.timedelta64(1, "s"), 0.0)


def _window_mean(meter: pd.Series, start, end, positive_only: bool = False) -> float:
    s = meter.loc[pd.Timestamp(start).floor("min"):pd.Timestamp(end)]
    s = s.dropna()
    if positive_only:
        s = s[s > 0]
    return float(s.mean()) if len(s) else float("nan")


def _local_hour(t: pd.Series) -> pd.Series:
    return (t + pd.Timedelta(hours=AZ_UTC_OFFSET_H)).dt.hour + (t + pd.Timedelta(hours=AZ_UTC_OFFSET_H)).dt.minute / 60


def _gas_runs(raw: pd.Series) -> pd.DataFrame:
    """Contiguous runs of minutes with metered gas (> 0, any tag_mode, informal testing included): when gas
    actually started and stopped flowing."""
    on = raw.fillna(0) > 0
    t = raw.index
    brk = on.ne(on.shift()) | (t.to_series().diff() != pd.Timedelta(minutes=1))
    rid = brk.cumsum()[on.to_numpy()]
    g = pd.Series(t[on.to_numpy()], index=rid.index).groupby(rid.to_numpy())
    return pd.DataFrame({"start": g.min().to_numpy(), "end": (g.max() + pd.Timedelta(minutes=1)).to_numpy()})


def continuous_monitors(root: Path, rng: np.random.Generator, n_boot: int) -> dict:
    """Per CMS vendor, against the meter: detection per release, false alarms, time to detection, quantification,
    offline time, alarm cadence; and the unit / bound checks of the raw template reports.

    Truth: ``stanford_true_event_windows.csv`` (P = gas on in official testing, N = off, NA = excluded) and the
    1-minute meter. Detection is scored three ways: (1, primary) a *release episode* (``pod_step``) = a meter
    episode of ``release_episodes_from_meter.csv`` lasting >= 10 min at a steady rate, detected when vendor P
    windows cover >= 50 % of it (``pod_step_any_overlap``: any overlap); the meter changes rate every few
    minutes inside one release, seconds apart, so shorter episodes are rate transitions; (2) a *release*
    (``pod_release``) = a truth P window (gas on after off), rate = mean of the 1-minute meter over it
    (tag_mode 1, informal testing, left out), detected when a vendor P window overlaps it. Only releases
    entirely inside the vendor's timeline (P or N windows) are scored. Gas on / off for false alarms and
    time to detection comes from the meter itself (any minute > 0, informal testing included).
    """
    gt, vr = root / CMS / "ground_truth", root / CMS / "vendor_reports"
    truth = _read_windows(gt / "stanford_true_event_windows.csv", "ManualStartDateTime", "ManualEndDateTime")
    tp = truth[truth["Label"] == "P"].reset_index(drop=True)
    tna = truth[truth["Label"] == "NA"].reset_index(drop=True)  # informal testing / no meter data: unknown
    m = pd.read_csv(gt / "metered_release_rate_1min.csv", parse_dates=["minute_utc"]).set_index("minute_utc")
    raw = m["true_ch4_kgh_mean"]
    meter = raw.where(m["tag_mode"] != 1)  # tag_mode 1 = informal testing: not an official rate
    runs = _gas_runs(raw)
    tp["rate_kg_h"] = [_window_mean(meter, a, b) for a, b in zip(tp["start"], tp["end"], strict=True)]
    tp["dur_min"] = (tp["end"] - tp["start"]).dt.total_seconds() / 60
    ep = pd.read_csv(gt / "release_episodes_from_meter.csv", parse_dates=["start_utc", "end_utc"])
    ep = ep.rename(columns={"start_utc": "start", "end_utc": "end"})
    steps = ep[ep["duration_min"] >= 10].reset_index(drop=True)
    span_start, span_end = truth["start"].min(), truth["end"].max()
    span_days = (span_end - span_start) / pd.Timedelta(days=1)
    all_days = pd.date_range(span_start.floor("D"), span_end.floor("D"), freq="D")
    meter_days = pd.DatetimeIndex(sorted(set(m.index.floor("D"))))
    wind_p = _read_windows(gt / "true_events_wind_filtered_2xradius_P.csv", "ManualStartDateTime", "ManualEndDateTime")
    out = {"source": [f"{CMS}/ground_truth/stanford_true_event_windows.csv",
                      f"{CMS}/ground_truth/metered_release_rate_1min.csv",
                      f"{CMS}/ground_truth/release_episodes_from_meter.csv",
                      f"{CMS}/vendor_reports/<vendor>_event_windows.csv",
                      f"{CMS}/vendor_reports/detection_reports.csv"],
           "truth": {"n_releases": int(len(tp)), "release_kg_h": dist(tp["rate_kg_h"], 2),
                     "release_duration_min": dist(tp["dur_min"], 1), "n_meter_episodes": int(len(ep)),
                     "n_steps_ge_10min": int(len(steps)), "step_kg_h": dist(steps["mean_kgh"], 2),
                     "campaign_days": round(span_days, 2), "n_gas_runs": int(len(runs)),
                     "days_without_meter_data": [str(d.date()) for d in all_days.difference(meter_days)],
                     "wind_filtered_P_identical": bool(len(wind_p) == len(tp) and np.isclose(
                         (wind_p["end"] - wind_p["start"]).sum() / pd.Timedelta(minutes=1), tp["dur_min"].sum()))},
           "definitions": {"release": "truth P window (gas on after off); rate = mean 1-min meter (tag_mode != 1)",
                           "step": "meter episode >= 10 min; detected if vendor P covers >= 50 % of it",
                           "false_alarm": "merged vendor P window (midnight splits joined) during which the meter "
                                          "shows no gas in any minute and which touches no truth NA time (informal "
                                          "testing: gas may flow, meter rows absent) - those are 'unknown'",
                           "time_to_detection": "start of the first P window beginning inside a gas run minus the run "
                                                "start, for runs whose start is known (no NA time in the 30 min "
                                                "before) and with no alarm already on at the start",
                           "day": f"{DAY_HOURS_LOCAL[0]:02d}:00-{DAY_HOURS_LOCAL[1]:02d}:00 Arizona local (UTC-7)"},
           "vendors": {}}
    for v, info_name in CMS_VENDORS.items():
        w = _read_windows(vr / f"{v}_event_windows.csv", "EmissionStartDateTime", "EmissionEndDateTime")
        w["rate"] = pd.to_numeric(w["Reported Release Rate (kg/h)"], errors="coerce")
        labels = w["ReportLabel"].value_counts().to_dict()
        cover = _merge(w[w["ReportLabel"].isin(["P", "N"])])
        pw = _merge(w[w["ReportLabel"] == "P"])
        res: dict = {"labels": {k: int(val) for k, val in labels.items()}, "bounds_claimed": CMS_BOUNDS[v],
                     "performer_info": f"{CMS}/vendor_reports/{info_name}_performer_info.csv"}
        # coverage: the timelines have no NA label; days missing from a timeline are days the study left out
        cov_days = float(((cover["end"] - cover["start"]).dt.total_seconds().sum()) / 86400)
        in_cov = _overlap_s(tp["start"], tp["end"], cover["start"], cover["end"]).sum(axis=1)
        tp_cov = in_cov >= tp["dur_min"].to_numpy() * 60 - 2
        days = pd.DatetimeIndex(sorted(set(w["start"].dt.floor("D"))))
        res["coverage"] = {"first": str(cover["start"].min()), "last": str(cover["end"].max()),
                           "covered_days": round(cov_days, 2), "na_labels": int(labels.get("NA", 0)),
                           "days_missing": [str(d.date()) for d in all_days.difference(days)],
                           "uncovered_share_of_campaign": 1 - cov_days / span_days,
                           "releases_in_timeline": int(tp_cov.sum()),
                           "release_time_uncovered_share": 1 - float(in_cov.sum() / (tp["dur_min"].sum() * 60))}
        # detection per release and per steady rate step
        rel = tp[tp_cov].reset_index(drop=True)
        ov = _overlap_s(rel["start"], rel["end"], pw["start"], pw["end"])
        rel["det"] = ov.sum(axis=1) > 0
        res["pod_release"] = fit_pod(rel["rate_kg_h"], rel["det"], rng, n_boot, ceiling=True)
        st_in = _overlap_s(steps["start"], steps["end"], cover["start"], cover["end"]).sum(axis=1)
        st = steps[st_in >= steps["duration_min"].to_numpy() * 60 - 2].reset_index(drop=True)
        st_ov = _overlap_s(st["start"], st["end"], pw["start"], pw["end"]).sum(axis=1)
        res["pod_step"] = fit_pod(st["mean_kgh"], st_ov >= 0.5 * st["duration_min"].to_numpy() * 60, rng, n_boot,
                                  ceiling=True)
        res["pod_step_any_overlap"] = fit_pod(st["mean_kgh"], st_ov > 0, rng, n_boot, ceiling=True)
        # time to detection: gas runs in the timeline whose start is known (no NA time in the 30 min before);
        # a run that starts while an alarm (from the previous run) is still on cannot measure it
        rin = _overlap_s(runs["start"], runs["end"], cover["start"], cover["end"]).sum(axis=1)
        rr = runs[rin >= (runs["end"] - runs["start"]).dt.total_seconds().to_numpy() - 2].reset_index(drop=True)
        n_runs_all = len(rr)
        pre = rr["start"] - pd.Timedelta(minutes=30)
        known = _overlap_s(pre, rr["start"], tna["start"], tna["end"]).sum(axis=1) == 0
        rr = rr[known].reset_index(drop=True)
        on_at_start = np.array([((pw["start"] <= t0) & (pw["end"] > t0)).any() for t0 in rr["start"]], bool)
        ttd = []
        for t0, t1 in zip(rr["start"][~on_at_start], rr["end"][~on_at_start], strict=True):
            nxt = pw["start"][(pw["start"] >= t0) & (pw["start"] < t1)]
            if len(nxt):
                ttd.append((nxt.min() - t0).total_seconds() / 60)
        res["time_to_detection_min"] = dist(ttd, 1)
        res["time_to_detection_min"].update(
            gas_runs_in_timeline=int(n_runs_all), runs_with_known_start=int(len(rr)),
            share_alarm_already_on=float(on_at_start.mean()) if len(rr) else None,
            runs_alarm_off_at_start=int((~on_at_start).sum()), gas_runs_detected=int(len(ttd)),
            detected_share=wilson(len(ttd), int((~on_at_start).sum())))
        # false alarms: merged P windows with no gas in any minute
        dur_p = (pw["end"] - pw["start"]).dt.total_seconds().to_numpy()
        gas_s = _overlap_s(pw["start"], pw["end"], runs["start"], runs["end"]).sum(axis=1)
        gas_ov = gas_s + _overlap_s(pw["start"], pw["end"], tp["start"], tp["end"]).sum(axis=1)
        na_s = _overlap_s(pw["start"], pw["end"], tna["start"], tna["end"]).sum(axis=1)
        unknown = (gas_ov == 0) & (na_s > 0)
        false = (gas_ov == 0) & ~unknown
        off_s = np.maximum(dur_p - gas_s - na_s, 0.0)  # alarm time while the meter says no gas
        after = np.array([((runs["end"] <= a) & (runs["end"] >= a - pd.Timedelta(minutes=30))).any()
                          for a in pw["start"]], bool)
        res["false_alarms"] = {
            "n_p_windows_merged": int(len(pw)), "n_false": int(false.sum()), "n_unknown": int(unknown.sum()),
            "share_of_p_windows": wilson(int(false.sum()), int((~unknown).sum())),
            "per_covered_day": false.sum() / cov_days if cov_days else None,
            "per_covered_day_ci90": [wilson(int(false.sum()), int(round(cov_days)))["lo"],
                                     wilson(int(false.sum()), int(round(cov_days)))["hi"]],
            "n_false_starting_within_30min_after_gas_off": int((false & after).sum()),
            "per_covered_day_excluding_late": (false & ~after).sum() / cov_days if cov_days else None,
            "p_time_while_gas_off_share": float(off_s.sum() / (dur_p - na_s).clip(0).sum())
            if (dur_p - na_s).clip(0).sum() else None,
            "false_window_length_min": dist(dur_p[false] / 60, 1),
            "false_start_day_share": float(np.mean(_day(pw["start"][false]))) if false.any() else None}
        # quantification: each P window with a rate against the meter over the same window (a window the study
        # split at UTC midnight carries the same rate in both pieces: joined back into one)
        pr = _join_midnight_splits(w[(w["ReportLabel"] == "P")])
        pr["true_window"] = [_window_mean(meter, a, b) for a, b in zip(pr["start"], pr["end"], strict=True)]
        pr["true_on"] = [_window_mean(meter, a, b, True) for a, b in zip(pr["start"], pr["end"], strict=True)]
        q = pr[pr["rate"] > 0]
        lo = pd.to_numeric(q["EmissionRateLower"], errors="coerce")
        hi = pd.to_numeric(q["EmissionRateUpper"], errors="coerce")
        res["n_p_windows_raw"] = int(len(pr))
        res["n_p_windows_with_rate"] = int(len(q))
        res["n_p_with_rate_and_no_metered_gas"] = int(((q["true_window"].fillna(0) <= 0)).sum())
        res["quant_window_mean"] = quant_stats(q["true_window"], q["rate"], lo, hi, False)
        res["quant_gas_on_minutes"] = quant_stats(q["true_on"], q["rate"])
        # cadence (merged P windows)
        gaps_p = (pw["start"].to_numpy()[1:] - pw["end"].to_numpy()[:-1]) / np.timedelta64(1, "m")
        gaps_p = gaps_p[gaps_p > 0]
        local_start = pw["start"] + pd.Timedelta(hours=AZ_UTC_OFFSET_H)
        full_local_days = [d for d in pd.date_range(span_start.floor("D"), span_end.floor("D"), freq="D")
                           if _overlap_s([d - pd.Timedelta(hours=AZ_UTC_OFFSET_H)],
                                         [d + pd.Timedelta(hours=24 - AZ_UTC_OFFSET_H)],
                                         cover["start"], cover["end"]).sum() > 20 * 3600]
        per_day = local_start.dt.floor("D").value_counts().reindex(full_local_days, fill_value=0)
        hours = np.floor(_local_hour(pw["start"])).astype(int)
        res["cadence"] = {"p_window_length_min": dist(dur_p / 60, 1), "gap_between_p_windows_min": dist(gaps_p, 1),
                          "p_windows_per_local_day": dist(per_day, 2), "n_local_days": int(len(per_day)),
                          "share_days_without_alarm": float(np.mean(per_day == 0)) if len(per_day) else None,
                          "start_day_share": float(np.mean(_day(pw["start"]))) if len(pw) else None,
                          "p_time_night_share": _night_minutes(pw),
                          "starts_by_local_hour": np.bincount(hours, minlength=24).tolist(),
                          "raw_p_window_length_min": dist((pr["end"] - pr["start"]).dt.total_seconds() / 60, 1),
                          "split_at_utc_midnight": int(len(w[w["ReportLabel"] == "P"]) - len(pw))}
        out["vendors"][v] = res
    out["template_reports"] = template_report_checks(vr / "detection_reports.csv", raw, runs, tna, span_start)
    site = pd.read_csv(gt / "release_point_and_site.csv").set_index("feature")
    out["template_reports"]["localisation"] = localisation(vr / "detection_reports.csv",
                                                           site.loc["release_point_stack_flowskid"])
    return out


def _join_midnight_splits(p: pd.DataFrame) -> pd.DataFrame:
    """Join consecutive P windows that abut (<= 2 s) and report the same rate (or both no rate)."""
    p = p.sort_values("start").reset_index(drop=True)
    gap = (p["start"] - p["end"].shift()).dt.total_seconds()
    same = (p["rate"] == p["rate"].shift()) | (p["rate"].isna() & p["rate"].shift().isna())
    grp = (~((gap <= 2) & same)).cumsum()
    agg = {c: "first" for c in p.columns if c not in ("start", "end")}
    return p.groupby(grp).agg({"start": "min", "end": "max", **agg}).reset_index(drop=True)


def localisation(path: Path, stack: pd.Series) -> dict:
    """Distance from each reported emission location to the one release stack (every report is of it)."""
    r = pd.read_csv(path).dropna(subset=["EmissionLatitude", "EmissionLongitude"])
    out = {"source": [f"{CMS}/vendor_reports/detection_reports.csv", f"{CMS}/ground_truth/release_point_and_site.csv"]}
    for v, g in r.groupby("vendor"):
        d = _haversine_m(g["EmissionLatitude"].to_numpy(float), g["EmissionLongitude"].to_numpy(float),
                         float(stack["latitude"]), float(stack["longitude"]))
        out[v] = dist(d, 1)
    return out


def _day(t: pd.Series) -> np.ndarray:
    h = _local_hour(pd.Series(t))
    return ((h >= DAY_HOURS_LOCAL[0]) & (h < DAY_HOURS_LOCAL[1])).to_numpy()


def _night_minutes(pw: pd.DataFrame) -> float | None:
    """Share of the vendor's P minutes that fall at night (local)."""
    tot, night = 0, 0
    for a, b in zip(pw["start"], pw["end"], strict=True):
        mins = pd.date_range(a.ceil("min"), b.floor("min"), freq="min")
        if len(mins) == 0:
            continue
        tot += len(mins)
        night += int((~_day(pd.Series(mins))).sum())
    return night / tot if tot else None


def template_report_checks(path: Path, raw: pd.Series, runs: pd.DataFrame, tna: pd.DataFrame, campaign_start) -> dict:
    """Per vendor, flags in the raw template reports (detection_reports.csv): rate and bounds consistency
    (missing, upper < rate, lower > rate, lower < 0, bounds ~1000x the rate as if in g/h) and, for reports
    whose window the meter covers (>= 90 % of minutes, no truth NA time), whether gas flowed at any minute of it."""
    r = pd.read_csv(path)
    r["start"] = pd.to_datetime(r["EmissionStartDateTime"], format="mixed")
    r["end"] = pd.to_datetime(r["EmissionEndDateTime"], format="mixed")
    rate, up, lo = r["EmissionRate"], r["EmissionRateUpper"], r["EmissionRateLower"]
    ratio_u, ratio_l = up / rate, lo / rate
    f = pd.DataFrame({
        "no_rate": rate.isna(),
        "no_bounds": rate.notna() & (up.isna() | lo.isna()),
        "upper_below_rate": up < rate,
        "lower_above_rate": lo > rate,
        "lower_negative": lo < 0,
        "bounds_about_1000x": (ratio_u.between(100, 10000)) | (ratio_l.between(100, 10000)),
        "bounds_consistent_after_div_1000": (ratio_u.between(100, 10000))
        & (lo / 1000 <= rate * 1.0001) & (up / 1000 >= rate * 0.9999),
    })
    minutes = [pd.date_range(a.floor("min"), b.floor("min"), freq="min") for a, b in zip(r["start"], r["end"],
                                                                                        strict=True)]
    r["meter_cover"] = [float(raw.reindex(mm).notna().mean()) if len(mm) else 0.0 for mm in minutes]
    r["gas"] = _overlap_s(r["start"], r["end"], runs["start"], runs["end"]).sum(axis=1) > 0
    r["touches_na"] = _overlap_s(r["start"], r["end"], tna["start"], tna["end"]).sum(axis=1) > 0
    out = {"source": f"{CMS}/vendor_reports/detection_reports.csv", "vendors": {}}
    for v, idx in r.groupby("vendor").groups.items():
        g = f.loc[idx]
        rr = r.loc[idx]
        ev = (rr["meter_cover"] >= 0.9) & (rr["start"] >= campaign_start) & (rr["gas"] | ~rr["touches_na"])
        res = {"n_reports": int(len(idx)), **{k: int(g[k].sum()) for k in g.columns},
               "any_bound_flag": int((g[["upper_below_rate", "lower_above_rate", "lower_negative",
                                         "bounds_about_1000x"]].any(axis=1)).sum()),
               "before_campaign": int((rr["start"] < campaign_start).sum()),
               "no_meter_data": int((rr["meter_cover"] < 0.9).sum()),
               "unknown_touches_na": int(((rr["meter_cover"] >= 0.9) & ~rr["gas"] & rr["touches_na"]).sum()),
               "uncertainty_type": rr["UncertaintyType"].fillna("none").value_counts().to_dict(),
               "alarm_flag": rr["Alarm (Y/N)"].fillna("none").value_counts().to_dict(),
               "evaluable_reports_with_no_gas": wilson(int((ev & ~rr["gas"]).sum()), int(ev.sum())),
               "reports_with_no_gas_start_day_share": float(np.mean(_day(rr.loc[ev & ~rr["gas"], "start"])))
               if (ev & ~rr["gas"]).any() else None}
        if v == "Qube":
            res["median_upper_over_rate"] = float(ratio_u.loc[idx].median())
            res["median_lower_over_rate"] = float(ratio_l.loc[idx].median())
        out["vendors"][v] = res
    return out


# ----------------------------------------------------------------------------------------------------------
# METEC ADED, LDAR leak sizes, Kairos NM Permian survey
# ----------------------------------------------------------------------------------------------------------


def _haversine_m(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371000.0 * np.arcsin(np.sqrt(a))


def metec(root: Path) -> dict:
    """ADED 2022/2023 release schedules: rates (g/h -> kg/h), durations, simultaneous sources, spacing, idle time."""
    files = {"2022": "metec_aded/aded2022_controlled_releases.csv",
             "2023": "metec_aded/aded2023_controlled_releases.csv"}
    a = pd.read_csv(root / files["2022"])
    pos = a.groupby("tc_EPID")[["tc_Latitude", "tc_Longitude"]].first()
    out = {"source": list(files.values()), "years": {}}
    for y, f in files.items():
        d = pd.read_csv(root / f)
        d["start"] = pd.to_datetime(d["tc_ExpStartDatetime"], utc=True)
        d["end"] = pd.to_datetime(d["tc_ExpEndDatetime"], utc=True)
        d["kg_h"] = d["tc_C1MassFlow"] / 1000.0
        if "tc_Latitude" not in d:
            d = d.join(pos, on="tc_EPID")
        live = d[d["kg_h"] > 0]
        exp = d.groupby("start").agg(end=("end", "max"), hrs=("tc_ExpDurationHrs", "max"),
                                     declared=("tc_ExpEPCount", "max"), rows=("kg_h", "size"),
                                     live=("kg_h", lambda s: int((s > 0).sum())), total=("kg_h", "sum"))
        exp = exp.sort_index()
        idle_h = (exp.index.to_series().shift(-1) - exp["end"]).dt.total_seconds().dropna() / 3600
        spacing = []
        for _, g in live.groupby("start"):
            g = g.dropna(subset=["tc_Latitude"])
            la, lo_ = g["tc_Latitude"].to_numpy(), g["tc_Longitude"].to_numpy()
            for i in range(len(g)):
                for j in range(i + 1, len(g)):
                    spacing.append(float(_haversine_m(la[i], lo_[i], la[j], lo_[j])))
        span_h = (exp["end"].max() - exp.index.min()).total_seconds() / 3600
        busy_h = float(pd.Series(_union_hours(exp.index, exp["end"])).sum())
        out["years"][y] = {
            "n_rows": int(len(d)), "n_zero_rate_rows": int((d["kg_h"] <= 0).sum()), "n_experiments": int(len(exp)),
            "n_emission_points": int(d["tc_EPID"].nunique()),
            "rate_kg_h": dist(live["kg_h"], 3), "rate_lognormal": lognormal_fit(live["kg_h"]),
            "rate_rel_uncertainty": dist((live["tc_C1MassFlowUncertainty"] / live["tc_C1MassFlow"]), 3),
            "experiment_total_kg_h": dist(exp["total"], 3),
            "duration_h": dist(exp["hrs"], 2),
            "simultaneous_sources_live": {int(k): int(val)
                                          for k, val in exp["live"].value_counts().sort_index().items()},
            "declared_ep_count_mismatch": int((exp["declared"] != exp["rows"]).sum()),
            "pair_spacing_m": dist(spacing, 1), "n_pairs_with_position": len(spacing),
            "idle_between_experiments_h": dist(idle_h[idle_h >= 0], 2),
            "overlapping_experiments": int((idle_h < 0).sum()),
            "release_duty_cycle": busy_h / span_h if span_h else None,
        }
    return out


def _union_hours(starts, ends) -> list[float]:
    iv = sorted(zip(starts, ends, strict=True))
    merged: list[list] = []
    for a, b in iv:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(b - a).total_seconds() / 3600 for a, b in merged]


LDAR = {
    "clearstone_alberta_2018": "ldar_and_facilities/clearstone_alberta_leak_rates_gps.csv",
    "fort_worth_2011": "ldar_and_facilities/fort_worth_aqs_2011_leak_rates_gps.csv",
    "allen_2013": "ldar_and_facilities/allen_2013_component_rates_gps.csv",
    "zavala_araiza_2018_site_totals": "ldar_and_facilities/zavala_araiza_2018_alberta_site_emissions_gps.csv",
}
LEAKS_PER_SURVEY = "ldar_and_facilities/clearstone_alberta_leaks_per_site_survey.csv"


def ldar(root: Path) -> dict:
    """Leak-size tables (g/s per the folder README; x 3.6 -> kg/h): log-normal fits; leaks per site survey."""
    out = {"source": list(LDAR.values()) + [LEAKS_PER_SURVEY], "units": "g/s in the files (README.txt); kg/h here",
           "tables": {}}
    for name, f in LDAR.items():
        x = pd.read_csv(root / f)["gpersec"].to_numpy(float) * G_PER_S_TO_KG_PER_H
        out["tables"][name] = {"source": f, **lognormal_fit(x)}
    c = pd.read_csv(root / LEAKS_PER_SURVEY)["counts"].to_numpy(float)
    mean, var = float(c.mean()), float(c.var(ddof=1))
    nb_r = mean**2 / (var - mean) if var > mean else None
    pos = c[c > 0]
    out["leaks_per_site_survey"] = {
        "source": LEAKS_PER_SURVEY, "n_surveys": int(len(c)), "mean": mean, "variance": var,
        "share_zero": float(np.mean(c == 0)), "mean_given_any": float(pos.mean()),
        "distribution": {int(k): int(val) for k, val in pd.Series(c).value_counts().sort_index().items()},
        "negative_binomial_r": nb_r, "poisson_share_zero_at_same_mean": math.exp(-mean),
        "total_leaks": int(c.sum())}
    return out


KAIROS_PERMIAN = "stanford_aircraft_2022/chen_sherwin_2022_nm_permian_kairos_plume_table.csv"


def kairos_permian(root: Path) -> dict:
    """Source rates and repeat-sighting variability in the Kairos NM Permian survey (Chen, Sherwin et al. 2022)."""
    d = pd.read_csv(root / KAIROS_PERMIAN)
    d["kg_h"] = d["wind_independent_emission_rate_kghmps"] * d["wind_mps"]
    d["lr"] = np.log(d["kg_h"])
    d["lr_wi"] = np.log(d["wind_independent_emission_rate_kghmps"])
    g = d.groupby("emission_source_id")
    n = g.size()
    per_src = g["kg_h"].mean()
    rep = d[d["emission_source_id"].isin(n[n >= 2].index)]

    def pooled_sd(frame, col, by):
        dev = frame[col] - frame.groupby(by)[col].transform("mean")
        dof = len(frame) - frame[by].nunique()
        return float(np.sqrt((dev**2).sum() / dof)) if dof > 0 else None

    sd_src = rep.groupby("emission_source_id")["lr"].std(ddof=1)
    # sightings with the same wind value are almost surely from one flight pass / day: split them out
    rep = rep.assign(pass_key=rep["emission_source_id"].astype(str) + "|" + rep["wind_mps"].round(6).astype(str))
    per_pass = rep.groupby("pass_key").agg(src=("emission_source_id", "first"), lr=("lr", "mean"))
    multi_pass = per_pass[per_pass.groupby("src")["lr"].transform("size") >= 2]
    return {
        "source": KAIROS_PERMIAN, "rate_kg_h": "wind_independent_emission_rate_kghmps * wind_mps",
        "n_plumes": int(len(d)), "n_sources": int(len(n)),
        "sightings_per_source": {int(k): int(val) for k, val in n.value_counts().sort_index().items()},
        "plume_rate_kg_h": dist(d["kg_h"], 1), "plume_lognormal": lognormal_fit(d["kg_h"]),
        "source_mean_rate_kg_h": dist(per_src, 1), "source_lognormal": lognormal_fit(per_src),
        "top5pct_sources_share": lognormal_fit(per_src)["top5pct_share_of_total"],
        "repeat_sources": int((n >= 2).sum()),
        "within_source_sd_ln_pooled": pooled_sd(rep, "lr", "emission_source_id"),
        "within_source_sd_ln_median": float(sd_src.median()),
        "within_source_sd_ln_wind_independent_pooled": pooled_sd(rep, "lr_wi", "emission_source_id"),
        "within_pass_sd_ln_pooled": pooled_sd(rep, "lr", "pass_key"),
        "between_pass_sd_ln_pooled": pooled_sd(multi_pass.reset_index(), "lr", "src"),
        "n_sources_seen_on_2plus_distinct_winds": int(multi_pass["src"].nunique()),
        "max_over_min_within_source": dist(rep.groupby("emission_source_id")["kg_h"].agg(lambda s: s.max() / s.min()),
                                           2),
        "note": "no coordinates or timestamps: the same wind value within a source is taken as the same flight pass",
    }


# ----------------------------------------------------------------------------------------------------------
# unquantified-detection prior implied by a leak-size prior and a measured POD
# ----------------------------------------------------------------------------------------------------------


def implied_unquantified(prior_median: float, prior_log_sd: float, L50: float, k: float) -> dict:
    """Posterior median and log-SD of the rate of a detection with no rate: log-normal prior x POD."""
    grid = np.linspace(math.log(prior_median) - 7 * prior_log_sd, math.log(prior_median) + 7 * prior_log_sd, 2001)
    w = np.exp(-0.5 * ((grid - math.log(prior_median)) / prior_log_sd) ** 2) / (1 + (L50 / np.exp(grid)) ** k)
    w /= w.sum()
    mu = float((w * grid).sum())
    cdf = np.cumsum(w)
    return {"median_kg_h": float(math.exp(grid[np.searchsorted(cdf, 0.5)])),
            "log_sd": float(np.sqrt((w * (grid - mu) ** 2).sum())),
            "p_detect_marginal": float(
                np.sum(np.exp(-0.5 * ((grid - math.log(prior_median)) / prior_log_sd) ** 2)
                       / (1 + (L50 / np.exp(grid)) ** k)) / np.sum(
                    np.exp(-0.5 * ((grid - math.log(prior_median)) / prior_log_sd) ** 2)))}


# ----------------------------------------------------------------------------------------------------------
# printing
# ----------------------------------------------------------------------------------------------------------


def fmt(x, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 10 ** -nd):
        return f"{x:.2g}"
    return f"{x:.{nd}f}"


def ci(d: dict, key: str, nd: int = 1) -> str:
    if d.get(key) is None:
        return "-"
    lo, hi = d.get(f"{key}_lo"), d.get(f"{key}_hi")
    return f"{fmt(d[key], nd)} [{fmt(lo, nd)}-{fmt(hi, nd)}]" if lo is not None else fmt(d[key], nd)


def table(title: str, rows: list[dict]) -> None:
    print(f"\n== {title}")
    if not rows:
        print("   (nothing)")
        return
    cols = list(rows[0])
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(width[c]) for c in cols))


def pod_row(name: str, p: dict) -> dict:
    f, c = p.get("firth") or {}, p.get("ceiling") or {}
    row = {"platform": name, "n": p["n"], "det": p["n_detected"], "MLE L50 kg/h [90%]": ci(p, "L50"),
           "k [90%]": ci(p, "k", 2), "L90 [90%]": ci(p, "L90"), "ident": "yes" if p.get("identified") else "NO",
           "Firth L50 / k": f"{ci(f, 'L50')} / {ci(f, 'k', 2)}" if f else "-"}
    if c:
        row["ceiling c / L50 / k"] = f"{ci(c, 'c', 2)} / {ci(c, 'L50')} / {ci(c, 'k', 2)}"
    row["bins (det/n)"] = " ".join(f"{b['bin_kg_h']}:{b['detected']}/{b['n']}" for b in p.get("bins", []))
    return row


def quant_row(name: str, q: dict) -> dict:
    return {"platform": name, "n": q.get("n", 0), "bias x": fmt(q.get("bias_factor")),
            "robust sd ln": fmt(q.get("robust_sd_ln")), "sd ln": fmt(q.get("sd_ln")),
            "within +-50%": fmt(q.get("within_50pct")), "cover": fmt(q.get("coverage")),
            "cover@1.96s": fmt(q.get("coverage_if_widened_to_1.96sigma")), "bounds": q.get("bounds_claimed", "")}


def wil(w: dict) -> str:
    if not w or not w.get("n"):
        return "-"
    return f"{w['k']}/{w['n']} = {fmt(w['rate'])} [{fmt(w['lo'])}-{fmt(w['hi'])}]"


def report(res: dict) -> None:
    a = res["aircraft"]
    table(f"Aircraft POD (stage {a['stage']}, pass_all_qc, rate > 0): P = 1/(1+(L50/r)^k)",
          [pod_row(op, p["pod"]) for op, p in a["platforms"].items()])
    table("Aircraft false positives on zero-release passes (90 % Wilson)",
          [{"platform": op, "QC passes": wil(p["false_positive_qc"]),
            "all stage passes": wil(p["false_positive_all_zero_passes"])} for op, p in a["platforms"].items()])
    rows = [quant_row(op, {**p["quant"]}) for op, p in a["platforms"].items()]
    kq = a["platforms"].get(KAIROS_COMBINED, {}).get("quant_as_given")
    if kq:
        rows.append(quant_row("Kairos combined row as given (0 for a missing pod)", kq))
    table("Aircraft quantification: ln(reported / metered), detected non-zero QC passes", rows)
    table("Aircraft quantification by stage (1 = own wind, 2 = Stanford wind, 3 = later)",
          [{"operator | stage": k, **{kk: fmt(vv) for kk, vv in v.items()}} for k, v in a["quant_by_stage"].items()])

    s = res["satellites"]
    table(f"Satellites ({s['source']}): truth only, no detection column = {not s['has_detection_column']}",
          [{"satellite": k, "overpasses": v["n_overpasses"], "zero": v["n_zero"], "release": v["n_release"],
            "median kg/h": fmt(v["release_kg_h"].get("median"), 0), "min": fmt(v["release_kg_h"].get("min"), 1),
            "max": fmt(v["release_kg_h"].get("max"), 0)} for k, v in s["satellites"].items()])
    cm = s["carbonmapper_stage1_file"]
    print(f"   {cm['source']}: {cm['n_rows']} rows, dates {cm['dates'][0]}..{cm['dates'][-1]}; identical to "
          f"{cm.get('identical_to')} -> {cm['what_it_is']}")

    c = res["cms"]
    t = c["truth"]
    print(f"\n== Continuous monitors: {t['n_releases']} releases (truth P windows, median "
          f"{fmt(t['release_kg_h']['median'])} kg/h, median {fmt(t['release_duration_min']['median'], 0)} min), "
          f"{t['n_steps_ge_10min']} release episodes >= 10 min (median {fmt(t['step_kg_h']['median'])} kg/h), "
          f"campaign {t['campaign_days']} days; wind-filtered P identical: {t['wind_filtered_P_identical']}")
    table("CMS POD per release episode (meter episode >= 10 min, vendor P covers >= 50 % of it) [primary]",
          [pod_row(v, r["pod_step"]) for v, r in c["vendors"].items()])
    table("CMS POD per release episode, any overlap counts", [pod_row(v, r["pod_step_any_overlap"])
                                                               for v, r in c["vendors"].items()])
    table("CMS POD per release (truth P window = gas on after off, rate = its mean; any overlap)",
          [pod_row(v, r["pod_release"]) for v, r in c["vendors"].items()])
    table("CMS false alarms (P windows with no gas at any minute, not touching NA time), time to detection, coverage", [
        {"vendor": v, "P windows": r["false_alarms"]["n_p_windows_merged"], "unknown": r["false_alarms"]["n_unknown"],
         "false / P windows [90%]": wil(r["false_alarms"]["share_of_p_windows"]),
         "false per day": fmt(r["false_alarms"]["per_covered_day"]),
         "late (<30 min after gas off)": r["false_alarms"]["n_false_starting_within_30min_after_gas_off"],
         "P time gas off": fmt(r["false_alarms"]["p_time_while_gas_off_share"]),
         "TTD min med [q25-q75]": _mq(r["time_to_detection_min"], 0),
         "alarm already on": fmt(r["time_to_detection_min"]["share_alarm_already_on"]),
         "new alarm/runs": f"{r['time_to_detection_min']['gas_runs_detected']}/"
                           f"{r['time_to_detection_min']['runs_alarm_off_at_start']}",
         "covered d": r["coverage"]["covered_days"], "NA labels": r["coverage"]["na_labels"],
         "days missing": len(r["coverage"]["days_missing"])} for v, r in c["vendors"].items()])
    print(f"   days without meter data (left out of every vendor timeline): {t['days_without_meter_data']}")
    rows = []
    for v, r in c["vendors"].items():
        rows.append(quant_row(v + " (window mean)", {**r["quant_window_mean"], "bounds_claimed": r["bounds_claimed"]}))
        rows.append(quant_row(v + " (gas-on minutes)", r["quant_gas_on_minutes"]))
    table("CMS quantification: reported rate vs metered mean over the P window", rows)
    table("CMS alarm cadence (merged P windows; local = UTC-7)", [
        {"vendor": v, "len min med [q25-q75]": _mq(r["cadence"]["p_window_length_min"]),
         "gap min med [q25-q75]": _mq(r["cadence"]["gap_between_p_windows_min"]),
         "per day med [q25-q75]": _mq(r["cadence"]["p_windows_per_local_day"]),
         "days w/o alarm": fmt(r["cadence"]["share_days_without_alarm"]),
         "starts in day": fmt(r["cadence"]["start_day_share"]),
         "P time at night": fmt(r["cadence"]["p_time_night_share"])}
        for v, r in c["vendors"].items()])
    tr = c["template_reports"]["vendors"]
    table("CMS template reports (detection_reports.csv): rate / bound flags", [
        {"vendor": v, "n": r["n_reports"], "no rate": r["no_rate"], "no bounds": r["no_bounds"],
         "upper<rate": r["upper_below_rate"], "lower>rate": r["lower_above_rate"], "lower<0": r["lower_negative"],
         "~1000x": r["bounds_about_1000x"], "ok after /1000": r["bounds_consistent_after_div_1000"],
         "before campaign": r["before_campaign"], "no meter": r["no_meter_data"], "in NA": r["unknown_touches_na"],
         "no gas (evaluable) [90%]": wil(r["evaluable_reports_with_no_gas"])} for v, r in tr.items()])

    loc = c["template_reports"]["localisation"]
    print("   reported emission location vs the stack (m): " + "; ".join(
        f"{v}: n {d['n']}, median {fmt(d['median'], 1)}, max {fmt(d['max'], 1)}" for v, d in loc.items()
        if v != "source"))

    mt = res["metec"]["years"]
    table("METEC ADED release schedules", [
        {"year": y, "releases": r["rate_kg_h"]["n"], "exps": r["n_experiments"], "points": r["n_emission_points"],
         "rate kg/h med [q25-q75]": _mq(r["rate_kg_h"], 2), "ln-sd": fmt(r["rate_lognormal"]["log_sd"]),
         "dur h med [q25-q75]": _mq(r["duration_h"]), "sources/exp": r["simultaneous_sources_live"],
         "spacing m med [q25-q75]": _mq(r["pair_spacing_m"], 0),
         "idle h med": fmt(r["idle_between_experiments_h"].get("median")),
         "duty": fmt(r["release_duty_cycle"])} for y, r in mt.items()])

    ld = res["ldar"]
    table("LDAR / OGI leak sizes (kg/h; files in g/s x 3.6): log-normal MLE on ln x", [
        {"table": k, "n": r["n"], "zeros dropped": r["n_zero_dropped"], "median": fmt(r["lognormal_median_kg_h"], 3),
         "log-sd": fmt(r["log_sd"]), "LN mean": fmt(r["lognormal_mean_kg_h"], 3),
         "emp mean": fmt(r["empirical_mean_kg_h"], 3),
         "p90": fmt(r["p90_kg_h"], 3), "max": fmt(r["max_kg_h"], 1), "top 5% share": fmt(r["top5pct_share_of_total"]),
         "KS": fmt(r["ks_stat_log"])} for k, r in ld["tables"].items()])
    lp = ld["leaks_per_site_survey"]
    print(f"   leaks per site survey (Clearstone, {lp['n_surveys']} surveys): mean {fmt(lp['mean'])}, "
          f"var {fmt(lp['variance'])}, zero {fmt(lp['share_zero'])} (Poisson would give "
          f"{fmt(lp['poisson_share_zero_at_same_mean'])}), mean given >= 1: {fmt(lp['mean_given_any'])}, "
          f"NB r = {fmt(lp['negative_binomial_r'])}; {lp['distribution']}")

    k = res["kairos_permian"]
    print(f"\n== Kairos NM Permian survey: {k['n_plumes']} plumes, {k['n_sources']} sources "
          f"{k['sightings_per_source']}")
    pr, sr = k["plume_rate_kg_h"], k["source_mean_rate_kg_h"]
    print(f"   plume rate kg/h: median {fmt(pr['median'], 0)} [q25 {fmt(pr['q25'], 0)} - q75 {fmt(pr['q75'], 0)}], "
          f"LN log-sd {fmt(k['plume_lognormal']['log_sd'])}; source mean rate median {fmt(sr['median'], 0)}, "
          f"top 5 % of sources = {fmt(k['top5pct_sources_share'])} of the total")
    print(f"   repeat sightings ({k['repeat_sources']} sources): SD ln rate within source pooled "
          f"{fmt(k['within_source_sd_ln_pooled'])} (median per source {fmt(k['within_source_sd_ln_median'])}; wind-"
          f"independent {fmt(k['within_source_sd_ln_wind_independent_pooled'])}); within one pass "
          f"{fmt(k['within_pass_sd_ln_pooled'])}, between passes {fmt(k['between_pass_sd_ln_pooled'])} "
          f"({k['n_sources_seen_on_2plus_distinct_winds']} sources); max/min ratio median "
          f"{fmt(k['max_over_min_within_source']['median'])}")
    if res.get("implied_unquantified"):
        table("Rate of a detection with no rate: log-normal prior x measured POD (posterior median, log-SD)", [
            {"platform": p, "POD used": f"{d['fit']}: L50 {fmt(d['L50'], 1)}, k {fmt(d['k'])}",
             **{pr: f"{fmt(v['median_kg_h'], 1)} / {fmt(v['log_sd'])}" for pr, v in d.items() if isinstance(v, dict)}}
            for p, d in res["implied_unquantified"].items()])


def _mq(d: dict, nd: int = 1) -> str:
    if not d or not d.get("n"):
        return "-"
    return f"{fmt(d['median'], nd)} [{fmt(d['q25'], nd)}-{fmt(d['q75'], nd)}]"


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="/tmp/instrument_priors.json", help="where to write every number (JSON)")
    ap.add_argument("--stage", type=int, default=1, help="aircraft stage (1 = fully blind, default)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per POD fit")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    root = real_data_dir()
    if not root.is_dir():
        print(f"instrument_priors: real data folder {root} is absent (set MLPE_REAL_DATA); nothing to measure, "
              "skipping.")
        return 0
    rng = np.random.default_rng(args.seed)
    res: dict = {"data_root": str(root), "n_boot": args.n_boot, "seed": args.seed,
                 "pod_model": "P(detect | rate) = 1 / (1 + (L50 / rate)^k); L90 = L50 * 9^(1/k); 90 % bootstrap",
                 "quant_model": "ln(reported / metered): bias = median, robust_sd = 1.4826 * MAD, sd = plain SD"}
    res["aircraft"] = aircraft(root, args.stage, rng, args.n_boot)
    res["satellites"] = satellites(root)
    res["cms"] = continuous_monitors(root, rng, args.n_boot)
    res["metec"] = metec(root)
    res["ldar"] = ldar(root)
    res["kairos_permian"] = kairos_permian(root)
    priors = {"current_scorer_prior (5 kg/h, ln-sd 1.5)": (5.0, 1.5)}
    za = res["ldar"]["tables"]["zavala_araiza_2018_site_totals"]
    priors["zavala_araiza_site_totals"] = (za["lognormal_median_kg_h"], za["log_sd"])
    fits = {}
    for op, p in res["aircraft"]["platforms"].items():
        pod = p["pod"]
        if not p["reference_only"] and pod.get("L50"):
            fits[op] = (pod["L50"], pod["k"], "MLE") if pod["identified"] else (pod["firth"]["L50"], pod["firth"]["k"],
                                                                                  "Firth")
    for v, r in res["cms"]["vendors"].items():
        c = r["pod_step"].get("ceiling")
        if c and c["identified"]:
            fits[f"CMS {v}"] = (c["L50"], c["k"], "ceiling fit, release episodes")
    res["implied_unquantified"] = {
        name: {"fit": how, "L50": L50, "k": k,
               **{pn: implied_unquantified(m, s, L50, k) for pn, (m, s) in priors.items()}}
        for name, (L50, k, how) in fits.items()}
    report(res)
    Path(args.json).write_text(json.dumps(_jsonable(res), indent=1, default=str))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
