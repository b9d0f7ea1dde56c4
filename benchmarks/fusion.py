"""Fusion benchmark: accuracy against ground truth, and speed and memory against plain HDBSCAN.

Accuracy: seeded simulated basins (``mlpe_core.simulate``, 2000 assets, seeds 0-19) at asset spacings
of 500 m and 150 m. For MLPE, a 200 m grid-snap baseline and plain DBSCAN (eps 100 m, min_samples 1)
it prints, over detections of one real source: adjusted Rand index, sources split across more than one
leak, and leaks merging two or more sources, as the mean over seeds; for MLPE also the worst seed,
how many seeds reach 0.98, and the mean of seeds 0-2 (the three seeds earlier notes reported). Since
issue 14 a monitor that does not localise reads its site's total: a reading taken while several sources of
the site emitted, none with at least ``ONE_SOURCE`` of the total, has no single true source and is left out
of ``ARI`` (``ARI_all`` keeps it, attributed to the largest, as the truth table does).
Targets (issue 5): ARI ≥ 0.98 on the dense basin; at most a third of the grid baseline's split
sources. One basin's ARI swings by a few thousandths with one pad (two sources of one pad that only
a fence-line monitor sees, at rates within its measurement error, cannot be told apart), so the
target is judged on the mean of 20 basins.

Speed: fusion of ~100k and ~300k detections as a ratio to plain HDBSCAN (the ``hdbscan`` package,
min_cluster_size=2, min_samples=1) on the same points' projected (x, y) in the same run; each
measurement runs in its own process so its peak RSS is its own. Target ≤ 2×, memory < 4 GB.

Incremental (``--incremental``): a ~300k store fused, then ~1,000 new detections fused into it with
``IncrementalFuser`` (local re-fusion), timed against a full re-fuse of the same store in the same run
(best of 2 each), with the adjusted Rand index between the two results. Two kinds of new data: the
last 1,000 detections of the period (mostly fence-line alerts, so every site alerting that day has
its whole stream re-fused) and a remote-sensing batch (the last 1,000 satellite, aircraft and OGI
detections).

    python benchmarks/fusion.py [--quick] [--incremental]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlpe_core.fuse import IncrementalFuser, LeakFuser  # noqa: E402
from mlpe_core.simulate import simulate_basin  # noqa: E402

UTM13 = Transformer.from_crs("EPSG:4326", "EPSG:32613", always_xy=True)  # the simulated basin is in zone 13


ONE_SOURCE = 0.75  # a reading is one source's when that source emits at least this share of what was read


def detections(basin) -> pd.DataFrame:
    d = pd.concat(list(basin.feeds.values()), ignore_index=True)
    return d.merge(basin.truth, on=["source_name", "detection_id"], how="left")


def xy(d: pd.DataFrame) -> np.ndarray:
    x, y = UTM13.transform(d["longitude"].to_numpy(float), d["latitude"].to_numpy(float))
    return np.column_stack([x, y])


def scores(truth: pd.Series, labels: np.ndarray, share: pd.Series | None = None) -> dict:
    """ARI and counts over detections of real sources; with ``share``, only those one source caused (a
    monitor's reading of a site's total while several sources emitted, share < ``ONE_SOURCE``, has no single
    true source to be grouped with)."""
    real = (truth != "").to_numpy().copy()
    if share is not None:
        real &= share.fillna(1.0).to_numpy(float) >= ONE_SOURCE
    g = pd.DataFrame({"s": truth[real].to_numpy(), "l": labels[real]})
    return {
        "ARI": adjusted_rand_score(g["s"], g["l"]),
        "split": int((g.groupby("s")["l"].nunique() > 1).sum()),
        "merged": int((g.groupby("l")["s"].nunique() > 1).sum()),
        "sources": int(g["s"].nunique()),
        "leaks": int(len(np.unique(labels))),
    }


def accuracy(seeds: list[int], n_assets: int) -> pd.DataFrame:
    rows = []
    for spacing in (500.0, 150.0):
        for seed in seeds:
            b = simulate_basin(seed=seed, n_assets=n_assets, spacing_m=spacing)
            d = detections(b)
            p = xy(d)
            methods = {
                "MLPE": LeakFuser().fit(d, b.assets, b.coverage).labels_,
                "grid 200 m": pd.factorize(pd.Series(list(zip(*(np.floor(p / 200).astype(np.int64).T), strict=True))))[
                    0
                ],
                "DBSCAN 100 m": DBSCAN(eps=100, min_samples=1).fit_predict(p),
            }
            for name, lab in methods.items():
                one = scores(d["source_id"].fillna(""), lab, d["source_share"])
                every = scores(d["source_id"].fillna(""), lab)
                rows.append({"spacing_m": spacing, "seed": seed, "method": name, **one, "ARI_all": every["ARI"]})
    return pd.DataFrame(rows)


def _measure(kind: str, n_assets: int, seed: int) -> dict:
    """Run in a child process: one fusion of one basin, wall time and peak RSS."""
    b = simulate_basin(seed=seed, n_assets=n_assets, n_days=365)
    d = detections(b)
    import hdbscan

    warm = xy(d.head(2000))
    hdbscan.HDBSCAN(min_cluster_size=2, min_samples=1).fit(warm)  # first fit in a process is slower
    LeakFuser().fit(d.head(2000), b.assets)
    t0 = time.perf_counter()
    if kind == "hdbscan":
        hdbscan.HDBSCAN(min_cluster_size=2, min_samples=1).fit(xy(d))
    else:
        LeakFuser().fit(d, b.assets, b.coverage)
    wall = time.perf_counter() - t0
    return {"n": len(d), "seconds": wall, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def speed(sizes: dict[str, int]) -> pd.DataFrame:
    rows = []
    for label, n_assets in sizes.items():
        for kind in ("hdbscan", "mlpe"):
            best = None
            for _ in range(2):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", kind, str(n_assets)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                best = r if best is None or r["seconds"] < best["seconds"] else best
            rows.append({"size": label, "method": kind, **best})
    df = pd.DataFrame(rows)
    base = df[df["method"] == "hdbscan"].set_index("size")["seconds"]
    df["ratio_to_hdbscan"] = df["seconds"] / df["size"].map(base)
    return df


def incremental(n_assets: int, n_new: int = 1000, seed: int = 7) -> pd.DataFrame:
    """Time an incremental fuse of ``n_new`` detections into a fused store against a full re-fuse."""
    b = simulate_basin(seed=seed, n_assets=n_assets, n_days=365)
    d0 = pd.concat(list(b.feeds.values()), ignore_index=True)
    t = pd.to_datetime(d0["observed_at"], utc=True)
    remote = d0["source_type"].isin(["satellite", "aerial", "ogi"])
    cases = {
        "last detections": (t.rank(method="first") > len(d0) - n_new).to_numpy(),
        "remote-sensing batch": (remote & (t.where(remote).rank(method="first") > remote.sum() - n_new)).to_numpy(),
    }
    LeakFuser().fit(d0.head(2000), b.assets)  # warm up (imports)
    rows = []
    for name, late in cases.items():
        d = pd.concat([d0[~late], d0[late]], ignore_index=True)  # the store's order: the new ones came last
        n1 = int((~late).sum())
        f1 = LeakFuser().fit(d.iloc[:n1], b.assets, b.coverage)
        d["leak_id"] = pd.Series([f"L{k:06d}" for k in f1.labels_] + [None] * (len(d) - n1), dtype=object)
        d["ambiguous"] = np.r_[f1.ambiguous_, np.zeros(len(d) - n1, bool)]
        t_inc, t_full = [], []
        for _ in range(2):
            t0 = time.perf_counter()
            # never fall back: measure the local path
            inc = IncrementalFuser(max_share=1.0).fit(d, b.assets, b.coverage)
            t_inc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            full = LeakFuser().fit(d, b.assets, b.coverage)
            t_full.append(time.perf_counter() - t0)
        combined = np.where(inc.region_, pd.Series(inc.labels_).map("R{}".format), d["leak_id"])
        rows.append(
            {
                "new data": name,
                "store": len(d),
                "new": int(late.sum()),
                "re-fused": int(inc.region_.sum()),
                "share": inc.region_.mean(),
                "fits": inc.rounds_,
                "incremental_s": min(t_inc),
                "full_s": min(t_full),
                "ratio": min(t_inc) / min(t_full),
                "ARI": adjusted_rand_score(full.labels_, combined),
                "ambiguous_agree": float((inc.ambiguous_ == full.ambiguous_).mean()),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one seed, small speed sizes")
    ap.add_argument("--incremental", action="store_true", help="only the incremental-fusion timing")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_measure(a.child[0], int(a.child[1]), seed=7)))
        return
    if a.incremental:
        inc = incremental(3000 if a.quick else 30000)
        pd.set_option("display.width", 160)
        print("Incremental fusion of new detections into a fused store vs a full re-fuse (best of 2)")
        print(inc.round(3).to_string(index=False))
        return
    seeds = [0] if a.quick else list(range(20))
    acc = accuracy(seeds, 2000)
    pd.set_option("display.width", 140)
    print(f"Accuracy on detections of one real source (share >= {ONE_SOURCE}; ARI_all: every real-source "
          f"detection, as before issue 14), mean over {len(seeds)} seed(s)")
    summary = acc.groupby(["spacing_m", "method"])[["ARI", "ARI_all", "split", "merged", "sources",
                                                    "leaks"]].mean().round(4)
    print(summary.to_string())
    for spacing in (500.0, 150.0):
        s = summary.loc[spacing]
        mine = acc[(acc["spacing_m"] == spacing) & (acc["method"] == "MLPE")].set_index("seed")["ARI"]
        print(
            f"spacing {spacing:.0f} m: MLPE split sources / grid baseline's = "
            f"{s.loc['MLPE', 'split'] / max(s.loc['grid 200 m', 'split'], 1):.2f} (target ≤ 0.33); "
            f"MLPE ARI mean {s.loc['MLPE', 'ARI']:.3f} (target ≥ 0.98 on 150 m), worst seed {mine.min():.3f}, "
            f"{int((mine >= 0.98).sum())} of {len(mine)} seeds ≥ 0.98, seeds 0-2 {mine.loc[mine.index < 3].mean():.3f}"
        )
    sizes = {"~30k": 3000} if a.quick else {"~100k": 10000, "~300k": 30000}
    sp = speed(sizes)
    print("\nSpeed (best of 2, each in its own process)")
    print(sp.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
