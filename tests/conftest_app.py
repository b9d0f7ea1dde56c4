"""Helpers shared by the app tests: a filled store in a temp folder (imported, not a pytest conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "app" / "main.py"
BASIN = ROOT.parent / "shared" / "checks" / "basin"


def fill_store(db: Path) -> str:
    """Fill ``db`` with the simulated demo basin (or, before simulate.py exists, the shared check basin).

    Returns which of the two was used.
    """
    from sqlmodel import Session

    from mlpe_core import pipeline
    from mlpe_core.store.db import get_engine

    try:
        import mlpe_core.simulate  # noqa: F401
    except ImportError:
        env = {**os.environ, "MLPE_DB": str(db)}
        cli = [sys.executable, "-m", "mlpe_core.cli"]
        feeds = sorted(str(p) for p in BASIN.glob("*.csv") if p.name != "assets.csv")
        for args in (["assets", "import", str(BASIN / "assets.csv")], ["ingest", *feeds], ["fuse"], ["score"]):
            subprocess.run(cli + args, env=env, check=True, capture_output=True, cwd=ROOT)
        return "basin"
    engine = get_engine(str(db))
    with Session(engine) as s:
        pipeline.run_demo(s, seed=1, n_assets=300)
    engine.dispose()
    return "demo"


def fill_demo(db: Path) -> dict:
    """Fill ``db`` with the demo basin exactly as the app does on first start (``pipeline.ensure_demo``)."""
    from sqlmodel import Session

    from mlpe_core import desk
    from mlpe_core.store.db import get_engine

    engine = get_engine(str(db))
    with Session(engine) as s:
        out = desk.ensure_demo(s)
    engine.dispose()
    return out


def copy_store(src: Path, dst: Path) -> Path:
    """A fresh copy of a filled SQLite store (SQLite's own backup: consistent even while ``src`` is open), for a
    test that writes to it; returns ``dst``."""
    import sqlite3

    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst
