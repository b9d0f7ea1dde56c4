#!/usr/bin/env python3
"""Ranking benchmark: how much methane a crew finds by following MLPE, measured on simulated basins.

For each seeded basin (``mlpe_core.simulate``) the real pipeline runs in memory: ingest → fuse → score.
Every leak is mapped to the real sources behind its detections (``basin.truth``). Visiting a set of
leaks "finds" the true rate of every still-emitting source behind them (``emitting_at_end``), each source
counted once. For K = 25, 50, 100 it prints that methane as a share of an oracle's top K (the oracle
knows the truth and picks greedily by marginal methane) for MLPE's cold-start ranking and for the
baseline "largest reported rate first".

Then the learning loop: round 1 visits the top 60 plus a random 40, outcomes come from the truth,
``mlpe train`` runs (labels from each cycle's first usable visit, features as of each visit, time hold-out,
promotion rule), and round 2 visits the next 100 open leaks, with and
without the training; both are printed (methane not already found in round 1). Then the calibration of
the cold-start probability against the truth (is a still-emitting real source behind the leak?) and the
time to score 100k leaks with explanations with both scorers.

    python benchmarks/ranking.py                 # 5 seeds at 500 m spacing + 3 dense (200 m)
    python benchmarks/ranking.py --seeds 0 1 --dense-seeds --n-assets 1000 --no-timing
    python benchmarks/ranking.py --seeds $(seq 0 19) --dense-seeds --no-loop   # generalisation: 20 basins
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sqlmodel import Session

from mlpe_core import pipeline, store
from mlpe_core.ingest import ingest_frame, to_canonical
from mlpe_core.learn import LearnedScorer, default_model
from mlpe_core.score import leak_features, score_table
from mlpe_core.score.rates import expected_rate
from mlpe_core.simulate import Basin, simulate_basin
from mlpe_core.store.db import get_engine

KS = (25, 50, 100)


@dataclass
class Loaded:
    basin: Basin
    session: Session
    seconds: float


def load_basin(seed: int, n_assets: int = 2000, spacing_m: float = 500.0, n_days: int = 120) -> Loaded:
    """Simulate a basin and run ingest → fuse → score into a fresh in-memory store."""
    t0 = time.perf_counter()
    basin = simulate_basin(seed=seed, n_assets=n_assets, spacing_m=spacing_m, n_days=n_days)
    session = Session(get_engine("sqlite://"))
    pipeline.store_assets(session, basin.assets, "bench")
    for name, feed in sorted(basin.feeds.items()):
        text = feed.astype(object).where(feed.notna(), "")
        text["observed_at"] = pd.to_datetime(feed["observed_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        canon = to_canonical(text.astype(str), "canonical", None, f"{name}.csv")
        ingest_frame(session, canon, f"bench-{seed}-{name}.csv", user="bench")
    if len(basin.coverage):  # the monitors' watched windows
        cov = basin.coverage.astype(object).where(basin.coverage.notna(), "")
        for c in ("start_at", "end_at"):
            cov[c] = pd.to_datetime(basin.coverage[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        ingest_frame(session, to_canonical(cov.astype(str), "coverage", None, "coverage.csv"),
                     f"bench-{seed}-coverage.csv", user="bench")
    pipeline.run_fuse(session, user="bench")
    pipeline.run_score(session, as_of=basin.as_of, user="bench")  # as of the end of the simulated period
    return Loaded(basin, session, time.perf_counter() - t0)


def truth(session: Session, basin: Basin, leak_ids: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray, pd.Index]:
    """(leak × source incidence, methane of each source if found = true rate when still emitting, sources)."""
    dets = store.detections_frame(session)[["source_name", "detection_id", "leak_id"]]
    t = basin.truth.merge(dets, on=["source_name", "detection_id"])
    t = t[(t["source_id"] != "") & t["leak_id"].isin(leak_ids)][["leak_id", "source_id"]].drop_duplicates()
    src = basin.sources.set_index("source_id")
    sids = pd.Index(src.index)
    rows = pd.Index(leak_ids).get_indexer(t["leak_id"])
    M = sparse.csr_matrix((np.ones(len(t)), (rows, sids.get_indexer(t["source_id"]))), shape=(len(leak_ids), len(sids)))
    val = (src["rate_kg_h"].astype(float) * src["emitting_at_end"].astype(bool)).to_numpy()
    return M, val, sids


def methane(M: sparse.csr_matrix, val: np.ndarray, rows, exclude: np.ndarray | None = None) -> float:
    """kg/h of still-emitting sources behind the leaks ``rows`` (each source once, ``exclude`` mask skipped)."""
    rows = np.asarray(rows, int)
    if len(rows) == 0:
        return 0.0
    hit = np.asarray(M[rows].sum(axis=0)).ravel() > 0
    if exclude is not None:
        hit &= ~exclude
    return float(val[hit].sum())


def oracle(M: sparse.csr_matrix, val: np.ndarray, K: int, eligible: np.ndarray | None = None,
           exclude: np.ndarray | None = None) -> float:
    """The most methane K visits can find, knowing the truth (greedy by marginal methane)."""
    left = val.copy()
    if exclude is not None:
        left[exclude] = 0.0
    got = 0.0
    ok = np.ones(M.shape[0], bool) if eligible is None else eligible.copy()
    for _ in range(K):
        gain = np.where(ok, M @ left, -1.0)
        i = int(np.argmax(gain))
        if gain[i] <= 0:
            break
        got += gain[i]
        left[M[i].indices] = 0.0
        ok[i] = False
    return got


def visit_rate(open_: pd.DataFrame, X: pd.DataFrame) -> np.ndarray:
    """The rate a visit finds on average for the stored leaks ``open_`` (score.rank.visit_rates: the posterior mean,
    lowered by the silence since the last sighting, ``log_silence_rate`` of the features ``X``, not stored)."""
    est = open_["est_rate_kg_h"].to_numpy(float)
    log_sigma = np.log(open_["rate_hi_kg_h"].to_numpy(float) / est)
    visit = expected_rate(np.log(est), log_sigma, open_["rate_quantified"].fillna(False).astype(bool).to_numpy())
    if "log_silence_rate" in X:
        ids = open_["leak_id"].to_numpy()
        visit = visit * np.exp(np.minimum(X["log_silence_rate"].reindex(ids).fillna(0.0).to_numpy(float), 0.0))
    return visit


def ranking_shares(L: Loaded) -> dict:
    """Methane found by MLPE's and the baseline's top K, as shares of the oracle's, over open leaks."""
    leaks = store.leaks_frame(L.session)
    open_ = leaks[leaks["rank"].notna()].sort_values("rank")
    ids = open_["leak_id"].to_numpy()
    M, val, _ = truth(L.session, L.basin, ids)
    dets = store.detections_frame(L.session)
    maxrate = dets.groupby("leak_id")["rate_kg_h"].max().reindex(ids).fillna(-1.0).to_numpy()
    base_order = np.argsort(-maxrate, kind="stable")
    # without the compliance urgency: P(find) × the rate a visit finds on average (its silence term is a feature
    # not stored: scored again here)
    _, X = pipeline.score_frame(L.session, L.basin.as_of, user="bench")
    expected = open_["p_real"].to_numpy(float) * visit_rate(open_, X)
    pxr_order = np.argsort(-expected, kind="stable")
    out = {"leaks": len(ids), "methane_total": float(val[np.asarray(M.sum(axis=0)).ravel() > 0].sum()),
           "urgent": int((open_["priority_score"].to_numpy(float) > expected * 1.0001).sum())}
    for K in KS:
        o = oracle(M, val, K)
        out[f"oracle{K}"] = o
        out[f"mlpe{K}"] = methane(M, val, np.arange(min(K, len(ids)))) / o if o > 0 else float("nan")
        out[f"pxr{K}"] = methane(M, val, pxr_order[:K]) / o if o > 0 else float("nan")
        out[f"base{K}"] = methane(M, val, base_order[:K]) / o if o > 0 else float("nan")
    return out


def calibration(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Expected calibration error (equal-width bins) and Brier score of probabilities ``p`` vs outcomes ``y``."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    b = np.clip((p * bins).astype(int), 0, bins - 1)
    ece = sum(abs(p[b == i].mean() - y[b == i].mean()) * (b == i).sum() for i in range(bins) if (b == i).any())
    return {"ece": float(ece / len(p)), "brier": float(np.mean((p - y) ** 2)), "mean_p": float(p.mean()),
            "observed": float(y.mean()), "n": int(len(p))}


def cold_start_calibration(L: Loaded) -> dict:
    """Cold-start p_real of every open leak against the truth: a still-emitting real source behind it."""
    leaks = store.leaks_frame(L.session)
    open_ = leaks[leaks["rank"].notna()]
    M, val, _ = truth(L.session, L.basin, open_["leak_id"].to_numpy())
    alive = (M @ (val > 0).astype(float)) > 0
    return calibration(open_["p_real"].to_numpy(float), alive)


def learning_loop(L: Loaded, seed: int, n_round: int = 100, top_share: float = 0.6, diagnose: bool = True) -> dict:
    """Round 1 (top 60 + random 40) → outcomes from truth → train → round 2 with and without training.

    ``diagnose`` also scores round 2 with a refused candidate, to show what the promotion rule cost."""
    s = L.session
    pipeline.simulate_visits(s, L.basin, n_visits=n_round, seed=seed, user="bench", top_share=top_share,
                             p_no_access=0.0)
    vals = store.validations_frame(s)
    leaks_all = store.leaks_frame(s)
    ids = leaks_all["leak_id"].to_numpy()
    M, val, _ = truth(s, L.basin, ids)
    pos = pd.Index(ids)
    r1 = pos.get_indexer(vals["leak_id"])
    r1 = r1[r1 >= 0]
    found1 = np.asarray(M[r1].sum(axis=0)).ravel() > 0  # sources found (and fixed) in round 1
    out = {"round1_methane": methane(M, val, r1), "round1_confirmed": int((vals["outcome"] == "confirmed").sum()),
           "round1_measured": int(vals["measured_rate_kg_h"].notna().sum())}

    def round2() -> tuple[float, pd.DataFrame]:
        sc, _ = pipeline.score_frame(s, L.basin.as_of, user="bench")
        sc = sc[sc["rank"].notna()].sort_values("rank")
        return methane(M, val, pos.get_indexer(sc["leak_id"].head(n_round)), exclude=found1), sc

    def calib(sc: pd.DataFrame) -> dict:
        alive = (M @ (val > 0).astype(float))[pos.get_indexer(sc["leak_id"])] > 0
        return calibration(sc["p_real"].to_numpy(float), alive)

    out["round2_without"], sc_wo = round2()
    out["calibration_cold"] = calib(sc_wo)
    eligible = ~pos.isin(vals["leak_id"])
    out["round2_oracle"] = oracle(M, val, n_round, eligible=eligible, exclude=found1)
    res = pipeline.run_train(s, user="bench")
    out["promoted"], out["decision"] = bool(res.get("promoted")), res.get("decision", "")
    out["holdout"] = int(res.get("n_holdout", 0))
    model, active = pipeline.current_model(s)
    rm = getattr(model, "rate_model_", None)
    out["rate_model"] = None if rm is None else {"n": rm.n_, "sigma_log": rm.sigma_, "alpha": rm.alpha_,
                                                 "sigma_log_uncorrected": rm.sigma_uncorrected_}
    out["round2_with"], sc_w = round2()
    out["round2_overlap"] = int(len(set(sc_w["leak_id"].head(n_round)) & set(sc_wo["leak_id"].head(n_round))))
    out["calibration_learned"] = calib(sc_w) if out["promoted"] else None
    out["round2_candidate"] = out["round2_with"]
    if diagnose and not out["promoted"] and res.get("version"):
        # diagnostic only: what the refused candidate (fitted on the older visits) would have found
        store.activate_model(s, res["version"], user="bench")
        out["round2_candidate"], _ = round2()
        store.activate_model(s, active, user="bench")
    return out


def synthetic_rows(X: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """n feature rows drawn from a basin's leaks with their numbers jittered (for timing only)."""
    rng = np.random.default_rng(seed)
    big = X.iloc[rng.integers(0, len(X), n)].copy()
    big.index = pd.Index([f"S{i:07d}" for i in range(n)], name="leak_id")
    for c in ("days_since_last", "span_days", "log_rate", "confidence_evidence", "log_p_silence", "missed_looks"):
        if c in big:
            big[c] = big[c].astype(float) * np.exp(rng.normal(0, 0.1, n))
    big["est_rate_kg_h"] = np.exp(big["log_rate"])
    big["rate_lo_kg_h"] = np.exp(big["log_rate"] - big["log_sigma"])
    big["rate_hi_kg_h"] = np.exp(big["log_rate"] + big["log_sigma"])
    return big


def timing(L: Loaded, n: int = 100_000) -> dict:
    """Seconds to score ``n`` leaks with reasons and contributions, cold-start and learned."""
    s = L.session
    leaks, dets = store.leaks_frame(s), store.detections_frame(s)
    X = leak_features(dets, leaks, dets["observed_at"].max())
    big = synthetic_rows(X, n)
    out = {"n": n}
    t0 = time.perf_counter()
    score_table(big, default_model())
    out["cold_start_s"] = time.perf_counter() - t0
    model, _ = pipeline.current_model(s)
    if not isinstance(model, LearnedScorer):  # no promoted model yet: fit one on the simulated outcomes
        from mlpe_core.learn import outcome_labels

        lab = outcome_labels(store.validations_frame(s))
        lab = lab[lab.index.isin(X.index)]
        model = LearnedScorer().fit(X.loc[lab.index], lab["y"].to_numpy(), lab["measured_rate_kg_h"].to_numpy(float))
    t0 = time.perf_counter()
    score_table(big, model)
    out["learned_s"] = time.perf_counter() - t0
    return out


def print_loop(lp: pd.DataFrame) -> None:
    print("\nLearning loop: round 1 = top 60 + random 40 visits, outcomes from the truth, `mlpe train`,")
    print("round 2 = the next 100 open leaks (methane not already found in round 1), without and with the training")
    print(f"{'basin':<18s} {'r1 kg/h':>8s} {'conf':>5s} {'rates':>5s} {'promoted':>8s} {'hold-out':>8s} "
          f"{'r2 without':>10s} {'r2 with':>8s} {'r2 oracle':>9s} {'same':>5s} {'candidate':>9s}")
    for _, x in lp.iterrows():
        print(f"seed {x['seed']:<3d} @{x['spacing']:>4.0f} m  {x['round1_methane']:8.0f} {x['round1_confirmed']:5d} "
              f"{x['round1_measured']:5d} {str(x['promoted']):>8s} {x['holdout']:8d} {x['round2_without']:10.0f} "
              f"{x['round2_with']:8.0f} {x['round2_oracle']:9.0f} {x['round2_overlap']:5d} "
              f"{x['round2_candidate']:9.0f}")
    tot = lp[["round1_methane", "round2_without", "round2_with", "round2_oracle", "round2_candidate"]].sum()
    print(f"{'total':<18s} {tot['round1_methane']:8.0f} {'':5s} {'':5s} {'':8s} {'':8s} {tot['round2_without']:10.0f} "
          f"{tot['round2_with']:8.0f} {tot['round2_oracle']:9.0f} {'':5s} {tot['round2_candidate']:9.0f}")
    better = int((lp["round2_with"] > lp["round2_without"]).sum())
    worse = int((lp["round2_with"] < lp["round2_without"]).sum())
    print(f"round 2 with training found more methane in {better} basins, less in {worse}, the same in "
          f"{len(lp) - better - worse} (model not promoted); in total "
          f"{tot['round2_with'] / tot['round2_without']:.3f}× "
          f"as much. 'same' = leaks shared by both round-2 lists; 'candidate' = what the candidate would have found "
          f"had it been promoted (diagnostic).")
    for _, x in lp.iterrows():
        print(f"  seed {x['seed']}: {x['decision']}")
        rm = x.get("rate_model")
        if isinstance(rm, dict):
            how = "no correction chosen" if rm["alpha"] is None else f"Huber alpha {rm['alpha']:g}"
            print(f"      rate model: {rm['n']} measured rates, {how}, cross-validated log-space residual sd "
                  f"{rm['sigma_log']:.2f} (uncorrected estimate {rm['sigma_log_uncorrected']:.2f})")
    prom = lp[lp["promoted"]]
    if len(prom):
        cold = pd.DataFrame(list(prom["calibration_cold"]))
        lrn = pd.DataFrame(list(prom["calibration_learned"]))
        print(f"Calibration on the open leaks after round 1 ({len(prom)} basins with a promoted model): "
              f"cold start ECE {cold['ece'].mean():.3f} / Brier {cold['brier'].mean():.3f}, "
              f"learned ECE {lrn['ece'].mean():.3f} / Brier {lrn['brier'].mean():.3f}")


def _fmt(x: float) -> str:
    return "  –  " if x is None or not np.isfinite(x) else f"{x:5.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--dense-seeds", type=int, nargs="*", default=[100, 101, 102])
    ap.add_argument("--n-assets", type=int, default=2000)
    ap.add_argument("--dense-spacing", type=float, default=200.0)
    ap.add_argument("--timing-n", type=int, default=100_000)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-loop", action="store_true")
    args = ap.parse_args(argv)
    runs = [(s, 500.0) for s in args.seeds] + [(s, args.dense_spacing) for s in args.dense_seeds]
    rows, loops, cals = [], [], []
    last = None
    print(f"MLPE ranking benchmark: {len(runs)} basins of {args.n_assets} assets, 120 days\n")
    print("MLPE = the ranking as dispatched (p_real × rate + urgency × p_real × min(rate, 20 kg/h), rate = the visit")
    print("rate, score.rates.expected_rate); p×r = the same without the urgency (expected methane only); base =")
    print("largest reported rate first. Shares of the oracle's top K.\n")
    head = "  ".join(f"{'MLPE@' + str(k):>7s} {'p×r@' + str(k):>7s} {'base@' + str(k):>8s}" for k in KS)
    print(f"{'basin':<18s} {'leaks':>5s} {'kg/h':>6s}  {head}")
    for seed, spacing in runs:
        with contextlib.redirect_stderr(io.StringIO()):
            L = load_basin(seed, args.n_assets, spacing)
        r = ranking_shares(L)
        r.update(seed=seed, spacing=spacing)
        rows.append(r)
        cal = cold_start_calibration(L)
        cal.update(seed=seed, spacing=spacing)
        cals.append(cal)
        name = f"seed {seed:<3d} @{spacing:>4.0f} m"
        print(f"{name:<18s} {r['leaks']:5d} {r['methane_total']:6.0f}  "
              + "  ".join(f"{_fmt(r[f'mlpe{k}']):>7s} {_fmt(r[f'pxr{k}']):>7s} {_fmt(r[f'base{k}']):>8s}" for k in KS),
              flush=True)
        if not args.no_loop:
            lp = learning_loop(L, seed)
            lp.update(seed=seed, spacing=spacing)
            loops.append(lp)
        last = L
    df = pd.DataFrame(rows)
    for label, sel in (("mean, 500 m", df["spacing"] == 500.0), ("mean, dense", df["spacing"] != 500.0),
                       ("mean, all", df["spacing"].notna()), ("worst basin", None)):
        d = df if sel is None else df[sel]
        if d.empty:
            continue
        agg = d.min(numeric_only=True) if sel is None else d.mean(numeric_only=True)
        print(f"{label:<18s} {'':5s} {'':6s}  "
              + "  ".join(f"{_fmt(agg[f'mlpe{k}']):>7s} {_fmt(agg[f'pxr{k}']):>7s} {_fmt(agg[f'base{k}']):>8s}"
                          for k in KS))
    below = {k: int((df[k] < 0.85).sum()) for k in [f"{m}{K}" for K in KS for m in ("mlpe", "pxr", "base")]}
    print(f"{'basins < 0.85':<18s} {'':5s} {'':6s}  "
          + "  ".join(f"{below[f'mlpe{k}']:>7d} {below[f'pxr{k}']:>7d} {below[f'base{k}']:>8d}" for k in KS))
    print("\nShare = methane (true kg/h of still-emitting sources, each once) found by the top K / oracle's top K;"
          "\nkg/h = all still-emitting methane behind the open leaks.")

    c = pd.DataFrame(cals)
    print("\nCold-start calibration (p_real vs 'a still-emitting real source is behind the leak', open leaks):")
    print(f"  ECE {c['ece'].mean():.3f} (basins {c['ece'].min():.3f}-{c['ece'].max():.3f}), "
          f"Brier {c['brier'].mean():.3f}, mean p {c['mean_p'].mean():.3f} vs observed {c['observed'].mean():.3f}, "
          f"{int(c['n'].sum())} leaks")

    if loops:
        print_loop(pd.DataFrame(loops))

    if not args.no_timing and last is not None:
        t = timing(last, args.timing_n)
        print(f"\nScoring {t['n']:,} leaks with reasons and contributions: cold start {t['cold_start_s']:.1f} s, "
              f"learned {t['learned_s']:.1f} s (target ≤ 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
