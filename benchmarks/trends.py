"""Worsening sites: the coverage-aware change test against an Isolation Forest, on simulated basins with injected
changes (issue 19). Numbers and method: docs/sites.md.

Each seed: ``simulate_basin(seed, worsening=N)`` (N sites made worse at a time in the middle of the period, half by
a rate step of an emitting source, half by a new source), loaded through the real ingest and fusion into an
in-memory store, then the same functions the desk calls (``trends.sensor_days`` on the store's detections, leaks
and coverage; ``trends.change_test``; ``trends.isolation_forest_flags``). Sites are then:

* injected: in ``Basin.changes`` (the positives);
* natural up / down: a source started (or stopped) inside the period without injection: a real change, counted
  neither as a hit nor as a false flag for the strict figures (the lenient precision counts a flagged natural-up
  site as right);
* stable: everything else (no source started or stopped in the period): a flag there is a false flag.

    python benchmarks/trends.py --seeds 0 1 2 3 4 [--n-assets 2000] [--worsening 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
from sqlmodel import Session

from mlpe_core import pipeline, store, trends
from mlpe_core.ingest import ingest_frame, to_canonical
from mlpe_core.simulate import simulate_basin
from mlpe_core.store.db import get_engine


def _text(df: pd.DataFrame, times: tuple[str, ...]) -> pd.DataFrame:
    t = df.astype(object).where(df.notna(), "")
    for c in times:
        t[c] = pd.to_datetime(df[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.astype(str)


def load(basin) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The basin through ingest and fusion, as a user would load it: (detections, leaks, coverage) of the store."""
    eng = get_engine("sqlite://")
    with Session(eng) as s:
        pipeline.store_assets(s, basin.assets, "bench")
        for name, feed in sorted(basin.feeds.items()):
            ingest_frame(s, to_canonical(_text(feed, ("observed_at",)), "canonical", None, f"{name}.csv"),
                         f"{name}.csv", user="bench")
        ingest_frame(s, to_canonical(_text(basin.coverage, ("start_at", "end_at")), "coverage", None, "cov.csv"),
                     "cov.csv", user="bench")
        pipeline.run_fuse(s, user="bench")
        out = store.detections_frame(s), store.leaks_frame(s), store.coverage_frame(s)
    eng.dispose()
    return out


def truth_classes(basin, n_days: int) -> pd.Series:
    """Per asset: injected, natural_up, natural_down or stable."""
    src = basin.sources
    start = pd.to_datetime(src["start"], utc=True)
    end = pd.to_datetime(src["end"], utc=True)
    period0 = basin.as_of - pd.Timedelta(days=n_days)
    injected_sources = {s for ids in basin.changes["source_ids"] for s in str(ids).split(",")}
    natural = ~src["source_id"].isin(injected_sources)
    up = set(src.loc[natural & (start > period0) & (start < basin.as_of), "asset_id"])
    down = set(src.loc[natural & end.notna() & (end > period0) & (end < basin.as_of), "asset_id"])
    out = pd.Series("stable", index=basin.assets["asset_id"], dtype=object)
    out[out.index.isin(down)] = "natural_down"
    out[out.index.isin(up)] = "natural_up"
    out[out.index.isin(set(basin.changes["asset_id"]))] = "injected"
    return out


def observable(basin, dets: pd.DataFrame, leaks: pd.DataFrame) -> set[str]:
    """Injected sites with at least two sited detections after their change (what any test could go on)."""
    site = trends.detection_sites(dets, leaks)
    d = dets.assign(site=site)
    out = set()
    for r in basin.changes.itertuples():
        after = d[(d["site"] == r.asset_id) & (pd.to_datetime(d["observed_at"], utc=True) >= r.changed_at)]
        if len(after) >= 2:
            out.add(r.asset_id)
    return out


def score(flagged: set[str], classes: pd.Series, tested: set[str], obs: set[str]) -> dict:
    inj = set(classes.index[classes == "injected"])
    up = set(classes.index[classes == "natural_up"])
    stable = set(classes.index[classes == "stable"])
    tp = len(flagged & inj)
    return {"flagged": len(flagged), "hits": tp,
            "precision": tp / len(flagged) if flagged else float("nan"),
            "precision_lenient": len(flagged & (inj | up)) / len(flagged) if flagged else float("nan"),
            "recall": tp / len(inj) if inj else float("nan"),
            "recall_observable": len(flagged & obs) / len(obs) if obs else float("nan"),
            "false_flags_stable": len(flagged & stable),
            "false_flag_share_stable": len(flagged & stable) / len(stable),
            "false_flag_share_stable_tested": len(flagged & stable) / max(len(stable & tested), 1),
            "n_injected": len(inj), "n_observable": len(obs), "n_stable": len(stable),
            "n_stable_tested": len(stable & tested), "n_natural_up": len(up)}


def run_seed(seed: int, n_assets: int, worsening: int, contaminations: tuple[float, ...],
             alphas: tuple[float, ...] = (), n_days: int = 120) -> dict:
    t = time.perf_counter()
    basin = simulate_basin(seed=seed, n_assets=n_assets, worsening=worsening, n_days=n_days)
    dets, leaks, cov = load(basin)
    start = basin.as_of - pd.Timedelta(days=n_days)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    days = trends.sensor_days(dets, leaks, cov, start, basin.as_of)
    # at the laxest level measured: the early stop then leaves every group that any of the levels could flag with
    # all its reorderings, so each level below is the fixed-size test's (trends.change_test, H_STOP)
    res = trends.change_test(days, start, basin.as_of, seed=seed, alpha=max((trends.ALPHA, *alphas)))
    t_test = time.perf_counter() - t
    classes = truth_classes(basin, n_days)
    tested = set(res["group"])
    obs = observable(basin, dets, leaks)
    out = {"seed": seed, "load_s": round(t_load, 1), "test_s": round(t_test, 1), "n_tested": len(tested)}
    up = res["z_rate"].fillna(0) + res["z_count"].fillna(0) > 0
    for name, a in [("test", trends.ALPHA), *((f"test_a{a:g}", a) for a in alphas)]:
        hit = (res["p_value"] <= a) & (res["ratio"] >= trends.MIN_RATIO) & up  # the flag at level a
        out[name] = score(set(res.loc[hit, "group"]), classes, tested, obs)
    for c in contaminations:
        f = trends.isolation_forest_flags(days, start, basin.as_of, contamination=c, seed=seed)
        out[f"iforest_{c:g}"] = score(set(f.loc[f["flagged"], "group"]), classes, tested, obs)
    return out


def summary(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], dict)]
    out = {}
    for k in keys:
        tot = {m: sum(r[k][m] for r in runs) for m in ("flagged", "hits", "n_injected", "false_flags_stable",
                                                         "n_stable", "n_stable_tested")}
        obs_hits = sum(r[k]["recall_observable"] * r[k]["n_observable"] for r in runs)
        n_obs = sum(r[k]["n_observable"] for r in runs)
        lenient = sum(r[k]["precision_lenient"] * r[k]["flagged"] for r in runs if r[k]["flagged"])
        out[k] = {"precision": tot["hits"] / max(tot["flagged"], 1),
                  "precision_lenient": lenient / max(tot["flagged"], 1),
                  "recall": tot["hits"] / max(tot["n_injected"], 1), "recall_observable": obs_hits / max(n_obs, 1),
                  "false_flag_share_stable": tot["false_flags_stable"] / max(tot["n_stable"], 1),
                  "false_flag_share_stable_tested": tot["false_flags_stable"] / max(tot["n_stable_tested"], 1),
                  "worst_seed_false_flag_share_tested": max(r[k]["false_flag_share_stable_tested"] for r in runs),
                  **tot, "n_observable": n_obs}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--n-assets", type=int, default=2000)
    ap.add_argument("--worsening", type=int, default=40)
    ap.add_argument("--contamination", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    ap.add_argument("--alpha", type=float, nargs="+", default=[0.02, 0.05], help="the test at other levels too")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    runs = []
    for seed in a.seeds:
        r = run_seed(seed, a.n_assets, a.worsening, tuple(a.contamination), tuple(a.alpha))
        runs.append(r)
        line = {k: {m: (round(v, 3) if isinstance(v, float) else v) for m, v in r[k].items()
                    if m in ("flagged", "hits", "precision", "precision_lenient", "recall", "recall_observable",
                             "false_flag_share_stable_tested")}
                for k in r if isinstance(r[k], dict)}
        print(f"seed {seed}: load {r['load_s']} s, test {r['test_s']} s, {r['n_tested']} sites tested", flush=True)
        for k, v in line.items():
            print(f"  {k:14s} {v}", flush=True)
    s = summary(runs)
    print("\npooled over seeds", a.seeds)
    for k, v in s.items():
        print(f"  {k:14s} " + ", ".join(f"{m} {x:.3f}" if isinstance(x, float) else f"{m} {x}" for m, x in v.items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": runs, "summary": s, "args": vars(a)}, f, indent=1, default=float)


if __name__ == "__main__":
    main()
