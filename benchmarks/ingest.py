"""Ingest benchmark: 1,000,000 canonical rows, MLPE ``ingest_file`` against ``pyarrow.csv.read_csv``.

    .venv/bin/python benchmarks/ingest.py            # 1M rows (~200 MB CSV in a temp folder)
    .venv/bin/python benchmarks/ingest.py --rows 100000 --keep /tmp/mlpe-bench

Every measurement runs in a fresh subprocess so its peak RSS (``resource.getrusage``, the whole
process: interpreter, libraries, data) is its own. The baseline is the best of 3 plain
``pyarrow.csv.read_csv`` of the file (type inference, timestamps parsed); MLPE is the best of
``--repeat`` (default 2) runs of ``ingest_file`` into a fresh SQLite file store, from reading and
hashing the file to the committed transaction, with the stages timed from its progress messages.
``--dup`` also ingests the file into a store that already holds its first half (the duplicate
path); ``--floor`` times the same rows copied inside SQLite alone (``INSERT … SELECT`` from a
staged temp table, with the store's indexes, commit): the part of the cost that no Python change can remove.
Target (issue 4): MLPE ≤ 4× the baseline, peak RSS < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["detection_id", "source_type", "source_name", "observed_at", "latitude", "longitude",
           "location_uncertainty_m", "rate_kg_h", "rate_uncertainty_kg_h", "confidence", "wind_speed_m_s",
           "asset_id", "event_type"]
SOURCES = [("satellite", "EMIT", 60), ("satellite", "Sentinel-2", 30), ("satellite", "PointSat", 25),
           ("aerial", "AirLidar", 5), ("continuous_monitor", "FenceCMS", 150), ("scada", "SCADA", 200),
           ("ogi", "OGI", 3)]
EVENTS = ["plume", "concentration_alert", "compressor_vent", "tank_pressure_high", "survey_hit", ""]


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` canonical rows (13 columns, ISO 8601 timestamps with offset) to ``path``; seeded, valid."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    chunk = 250_000
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    with pacsv.CSVWriter(str(path), schema, write_options=pacsv.WriteOptions(quoting_style="none")) as writer:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            src = rng.integers(0, len(SOURCES), m)
            st = np.array([s[0] for s in SOURCES], dtype=object)[src]
            name = np.array([s[1] for s in SOURCES], dtype=object)[src]
            sigma = np.array([str(s[2]) for s in SOURCES], dtype=object)[src]
            sigma[rng.random(m) < 0.3] = ""  # blank: the instrument default applies
            t0 = np.datetime64("2025-01-01T00:00:00", "s")
            t = t0 + rng.integers(0, 365 * 86400 * 10**6, m).astype("timedelta64[us]")
            rate = rng.lognormal(3.0, 1.5, m)
            rate_s = np.char.mod("%.12f", rate).astype(object)
            unq_s = np.char.mod("%.12f", rate * rng.uniform(0.1, 0.6, m)).astype(object)
            noq = rng.random(m) < 0.1  # detected, not quantified
            rate_s[noq] = ""
            unq_s[noq] = ""
            asset = np.char.add("A", np.char.zfill(rng.integers(0, 20_000, m).astype(str), 6)).astype(object)
            asset[rng.random(m) < 0.3] = ""
            cols = {
                "detection_id": np.char.add("BEN-", np.char.zfill(np.arange(start, start + m).astype(str), 8)),
                "source_type": st,
                "source_name": name,
                "observed_at": np.char.add(np.datetime_as_string(t, unit="us"), "+00:00"),
                "latitude": np.char.mod("%.15f", rng.uniform(31.0, 33.0, m)),
                "longitude": np.char.mod("%.15f", rng.uniform(-104.0, -101.0, m)),
                "location_uncertainty_m": sigma,
                "rate_kg_h": rate_s,
                "rate_uncertainty_kg_h": unq_s,
                "confidence": np.char.mod("%.12f", rng.uniform(0.2, 1.0, m)),
                "wind_speed_m_s": np.char.mod("%.12f", rng.uniform(0.5, 12.0, m)),
                "asset_id": asset,
                "event_type": np.array(EVENTS, dtype=object)[rng.integers(0, len(EVENTS), m)],
            }
            writer.write_table(pa.table({c: pa.array(list(v), pa.string()) for c, v in cols.items()}))


# --------------------------------------------------------------------------------------------- measurements


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is KiB on Linux


def measure_pyarrow(csv_path: str) -> dict:
    import pyarrow.csv as pacsv

    t = time.perf_counter()
    table = pacsv.read_csv(csv_path)
    sec = time.perf_counter() - t
    return {"seconds": sec, "rows": table.num_rows, "peak_rss_gb": _peak_rss_gb()}


def measure_mlpe(csv_path: str, db_path: str, pre_path: str | None = None) -> dict:
    sys.path.insert(0, str(ROOT))
    from sqlmodel import Session

    from mlpe_core.ingest import ingest_file
    from mlpe_core.store.db import get_engine

    engine = get_engine(db_path)  # creating the empty tables is not timed
    if pre_path:  # untimed: the store already holds part of this data
        with Session(engine) as s:
            ingest_file(s, pre_path)
    marks: list[tuple[float, str]] = []
    with Session(engine) as s:
        t = time.perf_counter()
        rep = ingest_file(s, csv_path, progress=lambda f, text: marks.append((time.perf_counter() - t, text)))
        sec = time.perf_counter() - t
    return {"seconds": sec, "rows": rep.n_rows, "accepted": rep.n_accepted, "rejected": rep.n_rejected,
            "duplicate": rep.n_duplicate, "peak_rss_gb": _peak_rss_gb(), "phases": _phases(marks, sec)}


def _phases(marks: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Wall seconds per stage, from the progress messages (hash + read, check, write, indexes, commit)."""
    def at(prefix: str, last: bool = False) -> float | None:
        hits = [t for t, text in marks if text.startswith(prefix)]
        return (hits[-1] if last else hits[0]) if hits else None

    read = at("read ")
    good = next((t for t, text in marks if text.endswith("good rows")), None)
    written, indexed, commit = at("written", last=True), at("rebuilding"), at("committing")
    end = marks[-1][0] if marks else total
    out = {"hash + read + map": read, "check": (good - read) if good is not None and read is not None else None}
    if written is not None and good is not None:
        out["write rows"] = written - good
    if indexed is not None and commit is not None:
        out["rebuild indexes"] = commit - indexed
    if commit is not None:
        out["commit"] = end - commit
    return {k: round(v, 2) for k, v in out.items() if v is not None}


def measure_floor(csv_path: str, db_path: str) -> dict:
    """What the store alone costs: the same rows copied inside SQLite (no Python per row), timed from
    the INSERT … SELECT (the store's indexes kept up to date) to the commit. Staging them is not timed."""
    sys.path.insert(0, str(ROOT))
    from datetime import UTC, datetime

    from sqlmodel import Session

    from mlpe_core import ingest
    from mlpe_core.store import detections as writer
    from mlpe_core.store.db import get_engine
    from mlpe_core.store.models import IngestBatch

    engine = get_engine(db_path)
    good, _ = ingest.validate_detections(ingest.to_canonical(ingest.read_table(Path(csv_path)), "auto", None, "f"))
    good = good.iloc[good.attrs["key_order"].value].reset_index(drop=True)
    cols = [c for c in writer._DATA_COLUMNS if not good[c].isna().all()]
    with Session(engine) as s:
        batch = IngestBatch(file_name="floor", sha256="floor", format="canonical", ingested_at=datetime.now(UTC))
        s.add(batch)
        s.commit()
        raw = s.connection().connection.dbapi_connection
        cur = raw.cursor()
        cur.execute(f"CREATE TEMP TABLE staging ({', '.join(cols)})")
        plan = writer._sqlite_plan(s.connection().dialect, batch.id)
        times = writer._time_texts(good["observed_at"], plan.time_processor)  # the store's own text
        for start in range(0, len(good), 100_000):
            stop = min(start + 100_000, len(good))
            lists = writer._column_lists(good, start, stop, times, cols)
            cur.executemany(f"INSERT INTO staging VALUES ({', '.join('?' * len(cols))})", zip(*lists, strict=True))
        raw.commit()
        cur.execute("PRAGMA cache_size=-131072")
        t = time.perf_counter()
        cur.execute(f"INSERT INTO detection ({', '.join(cols)}, batch_id, ambiguous) "
                    f"SELECT {', '.join(cols)}, {batch.id}, 0 FROM staging")
        t_insert = time.perf_counter() - t
        raw.commit()
        sec = time.perf_counter() - t
    return {"seconds": sec, "insert": t_insert, "commit": sec - t_insert, "peak_rss_gb": _peak_rss_gb()}


def _run(*args: str) -> dict:
    r = subprocess.run([sys.executable, __file__, "--measure", *args], capture_output=True, text=True, check=False)
    if r.returncode:
        raise SystemExit(f"measurement {args[0]} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _report(label: str, r: dict, baseline_s: float, peak_gb: float) -> None:
    """One measured MLPE run: time, memory, ratio to the pyarrow baseline, row counts, and its phases."""
    print(f"{label}: {r['seconds']:6.2f} s   peak RSS {peak_gb:.2f} GB   ratio {r['seconds'] / baseline_s:.1f}x   "
          f"({r['accepted']:,} accepted, {r['rejected']:,} rejected, {r['duplicate']:,} duplicate)")
    print("  where the time goes (s): " + ", ".join(f"{k} {v}" for k, v in r["phases"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="MLPE runs (best is reported)")
    ap.add_argument("--dup", action="store_true", help="also ingest into a store that holds half the rows")
    ap.add_argument("--floor", action="store_true", help="also time the same rows copied inside SQLite alone")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (and reuse the CSV from)")
    ap.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        kind, *rest = args.measure
        out = {"pyarrow": measure_pyarrow, "mlpe": measure_mlpe, "floor": measure_floor}[kind](*rest)
        print(json.dumps(out))
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="mlpe-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / f"detections_{args.rows}_{args.seed}.csv"
    try:
        if not csv_path.exists():
            t = time.perf_counter()
            generate(csv_path, args.rows, args.seed)
            print(f"generated {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB in "
                  f"{time.perf_counter() - t:.1f} s: {csv_path}")
        with open(csv_path, "rb") as fh:  # page cache warm for every reader alike
            while fh.read(1 << 24):
                pass
        base = [_run("pyarrow", str(csv_path)) for _ in range(3)]
        b = min(base, key=lambda r: r["seconds"])
        print(f"pyarrow.csv.read_csv     best of 3: {b['seconds']:6.2f} s   peak RSS {b['peak_rss_gb']:.2f} GB")
        runs = []
        for i in range(args.repeat):
            db = work / f"store_{i}.db"
            for p in work.glob(f"store_{i}.db*"):
                p.unlink()
            runs.append(_run("mlpe", str(csv_path), str(db)))
        m = min(runs, key=lambda r: r["seconds"])
        peak = max(r["peak_rss_gb"] for r in runs)
        _report(f"mlpe ingest_file (fresh) best of {args.repeat}", m, b["seconds"], peak)
        if args.dup:
            half = work / "first_half.csv"
            with open(csv_path, encoding="utf-8") as src, open(half, "w", encoding="utf-8") as dst:
                for i, line in enumerate(src):
                    if i > args.rows // 2:
                        break
                    dst.write(line)
            db = work / "store_dup.db"
            for p in work.glob("store_dup.db*"):
                p.unlink()
            d = _run("mlpe", str(csv_path), str(db), str(half))
            _report("mlpe ingest_file (half already stored)", d, b["seconds"], d["peak_rss_gb"])
        if args.floor:
            db = work / "store_floor.db"
            for p in work.glob("store_floor.db*"):
                p.unlink()
            f = _run("floor", str(csv_path), str(db))
            print(f"SQLite alone (INSERT ... SELECT with the store's indexes, commit): {f['seconds']:6.2f} s   "
                  f"(insert {f['insert']:.2f}, commit {f['commit']:.2f})   "
                  f"ratio {f['seconds'] / b['seconds']:.1f}x")
        target = "met" if m["seconds"] <= 4 * b["seconds"] and peak < 2 else "NOT met"
        print(f"target (<= 4x pyarrow, < 2 GB): {target}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for p in work.glob("store_*.db*"):
                os.remove(p)


if __name__ == "__main__":
    main()
