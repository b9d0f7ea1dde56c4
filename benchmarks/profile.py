#!/usr/bin/env python3
"""Profile each store-bound stage of the ``mlpe`` command line on a simulated basin (``make profile``).

Builds the basin of ``benchmarks/basin.py`` (100,000 assets, ~77k detections by default), then runs
``mlpe assets import``, ``mlpe ingest``, ``mlpe fuse``, ``mlpe score`` and ``mlpe status`` each in its own
process under cProfile, and prints, per stage, the functions with the most cumulative and own time. The
``.prof`` files (open them with ``python -m pstats`` or snakeviz) and the store stay in a temporary folder,
never in the repository; its path is printed.

    python benchmarks/profile.py [--assets 100000] [--days 16] [--top 25] [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from basin import write_feeds  # noqa: E402


def profile_stage(name: str, args: list[str], db: Path, out: Path) -> tuple[Path, float]:
    prof = out / f"{name}.prof"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "mlpe_core.cli", "--db", str(db),
                    *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # cwd: this checkout's mlpe_core
    return prof, time.perf_counter() - t0


def summary(prof: Path, top: int) -> str:
    buf = io.StringIO()
    st = pstats.Stats(str(prof), stream=buf)
    st.strip_dirs()
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip() and not ln.lstrip().startswith(("Ordered", "List"))]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top", type=int, default=25, help="functions listed per stage and ordering")
    ap.add_argument("--out", type=Path, default=None, help="folder for the profiles (default: a new temp folder)")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="mlpe-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    files = write_feeds(out / "basin", a.seed, a.assets, a.days)
    db = out / "store.db"
    stages = [
        ("assets_import", ["assets", "import", str(files["assets"])]),
        ("ingest", ["ingest", *(str(files[f]) for f in files["feeds"])]),
        ("fuse", ["fuse"]),
        ("score", ["score", "--as-of", files["as_of"]]),
        ("status", ["status"]),
    ]
    for name, args in stages:
        prof, wall = profile_stage(name, args, db, out)
        print(f"\n===== {name}: {wall:.2f} s wall under cProfile ({prof})")
        print(summary(prof, a.top))
    print(f"\nprofiles and store in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
