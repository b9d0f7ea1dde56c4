#!/usr/bin/env python3
"""Basin-scale benchmark: the whole pipeline through the store and the command line, against in-memory stages.

A simulated basin (``mlpe_core.simulate.simulate_basin``, public parameters only) of 100,000 assets at 500 m
spacing over 16 days (seed 0: ~77k detections from the simulator's feeds) is written as CSV files, then each
step runs as its own ``mlpe`` process on a fresh SQLite store, as a user would run it:

    mlpe assets import assets.csv; mlpe ingest <every feed>; mlpe fuse; mlpe score --as-of <end of the period>

Each step's wall time, CPU time and peak RSS are measured on its own process (``os.wait4``). In the same run:

* **baseline**: one process that reads the same feed files with ``pandas.read_csv`` (UTC times parsed),
  projects the points to UTM zone 13 and runs plain HDBSCAN (the ``hdbscan`` package, min_cluster_size=2,
  min_samples=1) on (x, y). Wall time of the whole process, imports included, like a command's.
* **in-memory stages**: the same stage functions on frames already in memory, each in its own process with
  only the stage timed (frames read from the store the pipeline built): fuse = ``IncrementalFuser(full=True)
  .fit`` (what a first ``mlpe fuse`` runs, i.e. ``LeakFuser.fit``); score = ``leak_features`` + ``deadlines``
  + ``score_table`` with the cold-start model.
* **start-up**: ``mlpe --help`` and ``mlpe status`` (best of 5) against ``python -c pass``.

``--million`` adds a basin of ~1,000,000 detections over the same 100,000 assets (n_days 365). ``--compare DIR``
runs the command-line steps a second time with the ``mlpe_core`` found in DIR (e.g. an export of the code before
a change) in the same run, so before and after are measured under the same load. Load averages are printed with
the numbers: on a shared machine compare ratios, not seconds. Nothing is written into the repository; the work
folder is a temporary one unless ``--keep DIR``.

    python benchmarks/basin.py [--repeat 2] [--million] [--compare DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = Path(__file__).resolve()
ROOT = SELF.parents[1]
SIZES = {"100k": {"n_assets": 100_000, "n_days": 16}, "1M": {"n_assets": 100_000, "n_days": 365}}
SPACING_M = 500.0
FEEDS: list[str] = []  # set by write_feeds: the simulator's feed names, in its order


def child_write(folder: str, seed: str, n_assets: str, n_days: str) -> dict:
    """In a child, so this process stays small: a child's peak RSS counts what it was forked from."""
    files = write_feeds(Path(folder), int(seed), int(n_assets), int(n_days))
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in files.items()}


def write_feeds(folder: Path, seed: int, n_assets: int, n_days: int) -> dict:
    """Simulate the basin and write it (``write_basin``): returns the paths by name, plus ``feeds`` (feed names)
    and ``n_detections``, ``as_of`` (end of the period, ISO)."""
    sys.path.insert(0, str(ROOT))
    from mlpe_core.simulate import simulate_basin, write_basin

    basin = simulate_basin(seed=seed, n_assets=n_assets, spacing_m=SPACING_M, n_days=n_days)
    paths = write_basin(basin, folder)
    FEEDS[:] = list(basin.feeds)
    return {**paths, "feeds": list(basin.feeds), "n_detections": sum(len(f) for f in basin.feeds.values()),
            "as_of": basin.as_of.isoformat()}


# ----------------------------------------------------------------------------------- measuring one process


def run_process(cmd: list[str], env: dict | None = None, log: Path | None = None) -> dict:
    """Run ``cmd`` to completion: wall seconds, CPU seconds (user + system) and peak RSS (GB) of that process.
    Its output goes to ``log`` (appended); without one it is discarded. It runs in the system's temp folder, so
    ``python -m mlpe_core.cli`` finds the ``mlpe_core`` of ``PYTHONPATH``, not one in the current folder."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir())
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()
    if p.returncode:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{tail}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "peak_gb": ru.ru_maxrss * 1024 / 1e9}


def env_for(code: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def cli_pipeline(code: Path, files: dict, db: Path, log: Path) -> dict[str, dict]:
    """The four commands on a fresh store, each its own process (the ``mlpe_core`` of ``code``)."""
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    mlpe = [sys.executable, "-m", "mlpe_core.cli", "--db", str(db)]
    env = env_for(code)
    steps = {
        "assets import": ["assets", "import", str(files["assets"])],
        "ingest": ["ingest", *(str(files[f]) for f in files["feeds"])],
        "fuse": ["fuse"],
        "score": ["score", "--as-of", files["as_of"]],
    }
    return {name: run_process(mlpe + args, env, log) for name, args in steps.items()}


def startup(code: Path, db: Path, log: Path, n: int = 5) -> dict[str, dict]:
    """Best of ``n``: a bare interpreter, ``mlpe --help`` and ``mlpe status`` on the built store."""
    env = env_for(code)
    cmds = {"python -c pass": [sys.executable, "-c", "pass"],
            "mlpe --help": [sys.executable, "-m", "mlpe_core.cli", "--help"],
            "mlpe status": [sys.executable, "-m", "mlpe_core.cli", "--db", str(db), "status"]}
    return {k: min((run_process(c, env, log) for _ in range(n)), key=lambda r: r["wall"]) for k, c in cmds.items()}


def child_process(kind: str, *args: str, folder: Path) -> dict:
    """Run one measurement child as a whole process: its own report plus the process's wall, CPU and peak."""
    out = folder / f"child-{kind}.json"
    out.unlink(missing_ok=True)
    r = run_process([sys.executable, str(SELF), "--child", kind, *args], log=out)
    return {**json.loads(out.read_text().strip().splitlines()[-1]), **r}


def child(kind: str, *args: str) -> dict:
    """Run one in-process measurement in a child of this script (its own peak RSS)."""
    r = subprocess.run([sys.executable, str(SELF), "--child", kind, *args], capture_output=True, text=True,
                       cwd=tempfile.gettempdir(), check=False)
    if r.returncode:
        raise SystemExit(f"child {kind} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- children


def _peak_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def child_baseline(files_json: str) -> dict:
    """Bare read + cluster: pandas reads the feeds, UTC times, UTM projection, plain HDBSCAN on (x, y)."""
    t0 = time.perf_counter()
    import hdbscan
    import numpy as np
    import pandas as pd
    from pyproj import Transformer

    files = json.loads(files_json)
    frames = []
    for f in files["feeds"]:
        d = pd.read_csv(files[f])
        d["observed_at"] = pd.to_datetime(d["observed_at"], utc=True, format="ISO8601")
        frames.append(d)
    d = pd.concat(frames, ignore_index=True)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32613", always_xy=True).transform(
        d["longitude"].to_numpy(float), d["latitude"].to_numpy(float))
    t1 = time.perf_counter()
    labels = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=1).fit(np.column_stack([x, y])).labels_
    t2 = time.perf_counter()
    return {"n": len(d), "read_s": t1 - t0, "cluster_s": t2 - t1, "clusters": int(labels.max()) + 1,
            "peak_gb": _peak_gb()}


def child_fuse(db: str) -> dict:
    """In memory: the fit a first ``mlpe fuse`` runs, on the detections and assets already read."""
    sys.path.insert(0, str(ROOT))
    from sqlmodel import Session

    from mlpe_core import store
    from mlpe_core.fuse import IncrementalFuser, LeakFuser
    from mlpe_core.pipeline import FUSE_DETECTION_COLUMNS
    from mlpe_core.store.db import get_engine

    with Session(get_engine(db)) as s:
        dets = store.detections_frame(s, columns=FUSE_DETECTION_COLUMNS)
        assets = store.assets_frame(s, columns=["asset_id", "latitude", "longitude"])
    dets["leak_id"], dets["ambiguous"] = None, False  # as before the first fusion
    t0, c0 = time.perf_counter(), time.process_time()
    inc = IncrementalFuser(LeakFuser(), full=True).fit(dets, assets)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": sec, "cpu": cpu, "leaks": len(inc.leaks_), "peak_gb": _peak_gb()}


def child_score(db: str, as_of: str) -> dict:
    """In memory: features, compliance deadlines and the cold-start scores of every leak (``score_frame``'s work)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd
    from sqlmodel import Session

    from mlpe_core import store
    from mlpe_core.comply import deadlines, load_rules
    from mlpe_core.pipeline import SCORE_DETECTION_COLUMNS, SCORE_LEAK_COLUMNS
    from mlpe_core.score import default_model, leak_features, score_table
    from mlpe_core.store.db import get_engine

    with Session(get_engine(db)) as s:
        leaks = store.leaks_frame(s, columns=SCORE_LEAK_COLUMNS)
        dets = store.detections_frame(s, columns=SCORE_DETECTION_COLUMNS)
        vals = store.validations_frame(s)
        assets = store.assets_frame(s, ["asset_id", "asset_type"])
    dets = dets[dets["leak_id"].isin(leaks["leak_id"])]
    model, rules, t = default_model(), load_rules(), pd.Timestamp(as_of)
    t0, c0 = time.perf_counter(), time.process_time()
    X = leak_features(dets, leaks, t)
    dl = deadlines(dets, vals, rules, t, assets=assets, leaks=leaks)
    urg = dl["urgency"].reindex(X.index).fillna(0.0).to_numpy(float) if len(dl) else np.zeros(len(X))
    overdue = dl["overdue"].reindex(X.index).fillna(False).to_numpy(bool) if len(dl) else np.zeros(len(X), bool)
    scored, _ = score_table(X, model, urg, overdue)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": sec, "cpu": cpu, "leaks": len(scored), "peak_gb": _peak_gb()}


# ----------------------------------------------------------------------------------- the report


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall"] if "wall" in r else r["seconds"])


def bench_size(label: str, spec: dict, work: Path, seed: int, repeat: int, compare: Path | None) -> dict:
    folder = work / label
    t0 = time.perf_counter()
    files = child("write", str(folder), str(seed), str(spec["n_assets"]), str(spec["n_days"]))
    print(f"\n## basin {label}: {spec['n_assets']:,} assets, spacing {SPACING_M:.0f} m, {spec['n_days']} days, seed "
          f"{seed}: {files['n_detections']:,} detections in {len(files['feeds'])} feeds "
          f"({', '.join(files['feeds'])}); simulated and written in {time.perf_counter() - t0:.0f} s")
    log = folder / "commands.log"
    codes = {"after": ROOT} | ({"before": compare} if compare else {})
    cli: dict[str, list] = {k: [] for k in codes}
    base, fuse, score = [], [], []
    for i in range(repeat):
        print(f"  repetition {i + 1}/{repeat}: {load()}", flush=True)
        base.append(child_process("baseline", json.dumps(files), folder=folder))
        for name, code in codes.items():
            cli[name].append(cli_pipeline(code, files, folder / f"{name}.db", log))
        fuse.append(child("fuse", str(folder / "after.db")))
        score.append(child("score", str(folder / "after.db"), files["as_of"]))
    print(f"  after the runs: {load()}")
    steps = ["assets import", "ingest", "fuse", "score"]
    b = dict(best(base))
    b["wall"], b["cpu"] = min(r["wall"] for r in base), min(r["cpu"] for r in base)
    mem = {"fuse": fuse, "score": score}
    inmem = {k: {"wall": min(r["seconds"] for r in v), "cpu": min(r["cpu"] for r in v),
                 "peak_gb": max(r["peak_gb"] for r in v), "leaks": v[0]["leaks"]} for k, v in mem.items()}
    table = {name: {st: {"wall": min(r[st]["wall"] for r in runs), "cpu": min(r[st]["cpu"] for r in runs),
                         "peak_gb": max(r[st]["peak_gb"] for r in runs)} for st in steps}
             for name, runs in cli.items()}
    for per in table.values():
        per["whole pipeline"] = {k: sum(per[st][k] for st in steps) for k in ("wall", "cpu")}
        per["whole pipeline"]["peak_gb"] = max(per[st]["peak_gb"] for st in steps)
    print(f"\n  baseline (pandas read of {len(files['feeds'])} feeds + hdbscan on {b['n']:,} points, one process): "
          f"{b['wall']:.2f} s wall, {b['cpu']:.2f} s cpu (read {b['read_s']:.2f} s incl. imports, hdbscan "
          f"{b['cluster_s']:.2f} s), peak {b['peak_gb']:.2f} GB")
    for k, v in inmem.items():
        print(f"  in memory, {k}: {v['wall']:.2f} s wall, {v['cpu']:.2f} s cpu ({v['leaks']:,} leaks, peak "
              f"{v['peak_gb']:.2f} GB)")
    print("  (best of the repetitions; cpu = user + system of the process, or of the timed stage in memory)")
    hdr = f"  {'step':20s}" + "".join(f" {n + ' wall':>12s} {n + ' cpu':>11s} {'peak GB':>7s}" for n in codes)
    hdr += "   after/in-memory wall, cpu   after/baseline wall, cpu"
    print(hdr)
    for st in [*steps, "whole pipeline"]:
        line = f"  {('mlpe ' + st) if st in steps else st:20s}"
        for name in codes:
            r = table[name][st]
            line += f" {r['wall']:12.2f} {r['cpu']:11.2f} {r['peak_gb']:7.2f}"
        a = table["after"][st]
        vs_mem = f"{a['wall'] / inmem[st]['wall']:.2f}x, {a['cpu'] / inmem[st]['cpu']:.2f}x" if st in inmem else "-"
        line += f"   {vs_mem:>25s}   {a['wall'] / b['wall']:13.2f}x, {a['cpu'] / b['cpu']:.2f}x"
        print(line)
    if compare:
        w, c = (table["before"]["whole pipeline"][k] / table["after"]["whole pipeline"][k] for k in ("wall", "cpu"))
        print(f"  whole pipeline, before / after: {w:.1f}x the wall time, {c:.1f}x the cpu time")
    return {"files": files, "table": table, "baseline": b, "inmem": inmem}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2, help="runs of every step (the best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--million", action="store_true", help="also the ~1,000,000-detection basin (slow)")
    ap.add_argument("--only-million", action="store_true", help="only the ~1,000,000-detection basin")
    ap.add_argument("--compare", type=Path, default=None, help="folder holding another mlpe_core to run as 'before'")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp folder, removed)")
    ap.add_argument("--assets", type=int, default=None, help="a smaller first basin, to try the benchmark quickly")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        kinds = {"baseline": child_baseline, "fuse": child_fuse, "score": child_score, "write": child_write}
        print(json.dumps(kinds[kind](*rest)))
        return 0
    work = a.keep or Path(tempfile.mkdtemp(prefix="mlpe-bench-basin-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# basin benchmark: python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    try:
        sizes = ["1M"] if a.only_million else ["100k"] + (["1M"] if a.million else [])
        for label in sizes:
            spec = SIZES[label] | ({"n_assets": a.assets} if a.assets and label == "100k" else {})
            name = label if spec == SIZES[label] else f"{a.assets} assets"
            bench_size(name, spec, work, a.seed, a.repeat, a.compare)
            if label == sizes[0]:
                folder = work / name
                st = startup(ROOT, folder / "after.db", folder / "commands.log")
                extra = startup(a.compare, folder / "before.db", folder / "commands.log") if a.compare else None
                print(f"\n  start-up (best of 5, {load()}):")
                for k, v in st.items():
                    before = f"   before {extra[k]['wall']:.3f} s wall, {extra[k]['cpu']:.3f} s cpu" if extra else ""
                    print(f"  {k:15s} {v['wall']:.3f} s wall, {v['cpu']:.3f} s cpu{before}")
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
