"""Every CSV the command line writes, read back with the ``csv`` module: no row split, no live formula.

Hostile text rides in every free-text field a file or a user controls (detection ids, source names, asset
ids, event types, validation components, crews and notes), with CRs, LFs, quotes and formula signs.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO
from test_export import live_formulas

from mlpe_core.export import neutralise

MLPE = shutil.which("mlpe") or str(REPO / ".venv" / "bin" / "mlpe")
pytestmark = pytest.mark.skipif(not Path(MLPE).exists(), reason="the `mlpe` console script is not installed")

EVIL = ["x\r=1+1", "=HYPERLINK(\"http://h/x\")", "@SUM(1)", " =1+1", "+cmd|' /C calc'!A0", "-2+3", "a\nb, \"c\""]


def _run(db: Path, *args) -> subprocess.CompletedProcess:
    r = subprocess.run([MLPE, "--db", str(db), *map(str, args)], capture_output=True, text=True, cwd=db.parent,
                       env=dict(os.environ, MLPE_DB=str(db)), timeout=300)
    assert r.returncode == 0, f"mlpe {' '.join(map(str, args))}: {r.stderr[-400:]}"
    return r


def _write_input(path: Path, df: pd.DataFrame) -> None:
    """Hostile input written independently of the writer under test: every field quoted, CRLF line ends."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writerow(df.columns)
        w.writerows(df.astype(object).where(df.notna(), "").itertuples(index=False))


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_every_cli_csv_reads_back_without_live_formulas(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    dets = pd.DataFrame({
        "detection_id": [f"{EVIL[i % len(EVIL)]}#{i}" for i in range(14)],
        "source_type": ["aerial"] * 7 + ["ogi"] * 7,
        "source_name": [EVIL[i % len(EVIL)] + "cam" for i in range(14)],
        "observed_at": [f"2025-03-0{1 + i % 7}T10:00:00Z" for i in range(14)],
        "latitude": [32.0 + (i % 7) * 0.01 for i in range(14)],
        "longitude": [-102.0] * 14,
        "rate_kg_h": [10.0 + i for i in range(14)],
        "asset_id": [None] * 14,
        "event_type": [EVIL[i % len(EVIL)] for i in range(14)],
    })
    f = tmp_path / "dets.csv"
    _write_input(f, dets)
    bad = tmp_path / "bad.csv"
    bad.write_text("detection_id,source_type,source_name,observed_at,latitude,longitude\n"
                   '"=1+1",aerial,"x\r=2",2025-03-01T00:00:00Z,abc,-102\n', encoding="utf-8")
    _run(db, "ingest", f, bad, "--rejects", tmp_path / "rejects.csv")
    _run(db, "fuse")
    _run(db, "score")
    leaks = pd.read_csv(io.StringIO(_run_export(db, tmp_path, "leaks").read_text()))
    vals = pd.DataFrame({"leak_id": leaks["leak_id"].head(3), "visited_at": "2025-03-09T09:00:00Z",
                         "outcome": "confirmed", "measured_rate_kg_h": 3.0, "component": EVIL[:3],
                         "crew": EVIL[3:6], "notes": ["line one\r=1+1", "@SUM(1)", "ok"]})
    vf = tmp_path / "vals.csv"
    _write_input(vf, vals)
    _run(db, "validations", "import", vf)
    _run(db, "dispatch", "plan", "--top", "3")
    _run(db, "dispatch", "show", "1", "-o", tmp_path / "list.csv")
    written = {w: _run_export(db, tmp_path, w) for w in ("leaks", "detections", "dispatch", "validations")}
    written |= {"rejects": tmp_path / "rejects.csv", "list": tmp_path / "list.csv"}
    expect_rows = {"detections": len(dets), "validations": 3, "rejects": 1}
    for name, path in written.items():
        text = path.read_text(encoding="utf-8")
        assert live_formulas(text) == [], name
        rows = _rows(path)
        assert len({len(r) for r in rows}) == 1, f"{name}: a row was split"
        if name in expect_rows:
            assert len(rows) - 1 == expect_rows[name], name
    det_rows = _rows(written["detections"])
    col = det_rows[0].index("event_type")
    stored = {e.strip().replace("\r", "\n") for e in EVIL}  # ingest trims a cell and reads a bare CR as LF
    assert {r[col] for r in det_rows[1:]} == {neutralise(e) for e in stored}
    notes = [r[_rows(written["validations"])[0].index("notes")] for r in _rows(written["validations"])[1:]]
    assert sorted(notes) == sorted(["line one\n=1+1", "'@SUM(1)", "ok"])  # the reader reads a bare CR as LF


def _run_export(db: Path, tmp: Path, what: str) -> Path:
    out = tmp / f"{what}.csv"
    _run(db, "export", what, "-o", out)
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
