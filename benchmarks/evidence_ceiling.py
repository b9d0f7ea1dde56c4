#!/usr/bin/env python3
"""How far the evidence goes: can any ranking built from MLPE's features find more methane than MLPE's own?

The cold-start ranking orders leaks by P(find) × the visit rate (``benchmarks/ranking.py``'s p×r). Here a
gradient-boosted model is fit on the simulator's *truth* (which no product has): P(a still-emitting source is behind
the leak) × E[methane found | found], from every numeric feature of the scorer, MLPE's own P and visit rate, and the
leak's detection count per feed (which vendors saw it). It is trained on one set of basins and ranks another, both
ways. If a model that learned from the truth does not beat MLPE's ranking on basins it has not seen, the top-K
capture left on the table is not in the features: more of it needs new evidence (another sensor, a visit), not
another weighting of what the sensors said.

    python benchmarks/evidence_ceiling.py                       # benchmark basins vs held-out ones, K = 25
    python benchmarks/evidence_ceiling.py --a 0 1 --b 2 3 --dense-a --dense-b --k 50

Prints per basin the share of the oracle's top-K methane found by MLPE (p×r) and by the truth-fitted model, then the
calibration of MLPE's P(find) by visit rate (where a top K is chosen, and where it is not).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranking import load_basin, methane, oracle, truth, visit_rate  # noqa: E402

from mlpe_core import pipeline, store  # noqa: E402

FEEDS = ("WideSat", "PointSat", "CoarseSat", "AirLidar", "SCADA", "OGI")  # the simulator's feeds but the monitors


def basin_frame(seed: int, spacing: float) -> dict:
    """One basin through ingest → fuse → score: features, MLPE's p×r and the methane each open leak would find."""
    with contextlib.redirect_stderr(io.StringIO()):
        L = load_basin(seed, 2000, spacing)
    leaks = store.leaks_frame(L.session)
    open_ = leaks[leaks["rank"].notna()].sort_values("rank").reset_index(drop=True)
    ids = open_["leak_id"].to_numpy()
    M, val, _ = truth(L.session, L.basin, ids)
    _, X = pipeline.score_frame(L.session, L.basin.as_of, user="bench")
    X = X.reindex(ids)
    visit = visit_rate(open_, X)
    feats = X.select_dtypes("number").reset_index(drop=True)
    per_feed = store.detections_frame(L.session).groupby(["leak_id", "source_name"]).size().unstack(fill_value=0)
    per_feed = per_feed.reindex(ids).fillna(0)
    for f in FEEDS:
        feats[f"n_{f}"] = per_feed[f].to_numpy(float) if f in per_feed else 0.0
    feats["p_real"] = open_["p_real"].to_numpy(float)
    feats["log_visit"] = np.log(visit)
    return {"name": f"seed {seed} @{spacing:.0f} m", "X": feats, "y": np.asarray(M @ val).ravel(), "M": M,
            "val": val, "pxr": open_["p_real"].to_numpy(float) * visit, "p": open_["p_real"].to_numpy(float),
            "visit": visit}


def calibration_by_visit(basins: list[dict], edges=(0.0, 10.0, 30.0, np.inf)) -> pd.DataFrame:
    """Mean P(find) against the share of leaks with a still-emitting source behind them, and the expected calibration
    error (10 bins of P), per band of visit rate (kg/h)."""
    p = np.concatenate([b["p"] for b in basins])
    y = np.concatenate([b["y"] for b in basins]) > 0
    v = np.concatenate([b["visit"] for b in basins])
    rows = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        m = (v > lo) & (v <= hi)
        bins = np.minimum((p[m] * 10).astype(int), 9)
        ece = sum(abs(p[m][bins == k].mean() - y[m][bins == k].mean()) * (bins == k).sum()
                  for k in range(10) if (bins == k).any()) / max(m.sum(), 1)
        rows.append((f"{lo:g}–{hi:g} kg/h" if np.isfinite(hi) else f"> {lo:g} kg/h", int(m.sum()), p[m].mean(),
                     y[m].mean(), ece))
    return pd.DataFrame(rows, columns=["visit rate", "leaks", "mean P", "observed", "ECE"])


def share(b: dict, score: np.ndarray, k: int) -> float:
    o = oracle(b["M"], b["val"], k)
    return methane(b["M"], b["val"], np.argsort(-score, kind="stable")[:k]) / o if o > 0 else float("nan")


def truth_model(train: list[dict], cols: list[str]):
    """P(found) × E[kg/h | found], fit on the truth of ``train``."""
    X = pd.concat([b["X"][cols] for b in train], ignore_index=True)
    y = np.concatenate([b["y"] for b in train])
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0).fit(X, y > 0)
    reg = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=0).fit(X[y > 0], y[y > 0])
    return lambda Z: clf.predict_proba(Z[cols])[:, 1] * np.maximum(reg.predict(Z[cols]), 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=int, nargs="*", default=[0, 1, 2, 3, 4], help="first set: seeds at 500 m")
    ap.add_argument("--dense-a", type=int, nargs="*", default=[100, 101, 102], help="first set: dense seeds")
    ap.add_argument("--b", type=int, nargs="*", default=[5, 6, 7, 8, 9], help="second set: seeds at 500 m")
    ap.add_argument("--dense-b", type=int, nargs="*", default=[103, 104, 105], help="second set: dense seeds")
    ap.add_argument("--dense-spacing", type=float, default=200.0)
    ap.add_argument("--k", type=int, default=25)
    args = ap.parse_args(argv)
    sets = []
    for seeds, dense in ((args.a, args.dense_a), (args.b, args.dense_b)):
        runs = [(s, 500.0) for s in seeds] + [(s, args.dense_spacing) for s in dense]
        sets.append([basin_frame(s, sp) for s, sp in runs])
        print(f"loaded {len(runs)} basins", file=sys.stderr, flush=True)
    cols = sorted(set.intersection(*[set(b["X"].columns) for b in sets[0] + sets[1]]))
    print(f"Top-{args.k} methane as a share of the oracle's: MLPE's p×r ranking against a model fit on the other "
          f"set's truth ({len(cols)} features)\n")
    means = []
    for label, train, test in (("first set ranked, model fit on the second", sets[1], sets[0]),
                               ("second set ranked, model fit on the first", sets[0], sets[1])):
        f = truth_model(train, cols)
        rows = [(b["name"], share(b, b["pxr"], args.k), share(b, f(b["X"]), args.k)) for b in test]
        d = pd.DataFrame(rows, columns=["basin", "MLPE p×r", "truth-fitted"])
        print(label)
        print(d.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        m = d[["MLPE p×r", "truth-fitted"]].mean()
        means.append(m)
        print(f"{'mean':>18s} {m['MLPE p×r']:.3f} {m['truth-fitted']:.3f}\n")
    both = pd.concat(means, axis=1).mean(axis=1)
    print(f"Both ways: MLPE {both['MLPE p×r']:.3f}, truth-fitted model {both['truth-fitted']:.3f}")
    for label, basins in (("first set", sets[0]), ("second set", sets[1])):
        print(f"\nCalibration of MLPE's P(find) by visit rate, {label} (observed: a still-emitting source is "
              "behind the leak)")
        print(calibration_by_visit(basins).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
