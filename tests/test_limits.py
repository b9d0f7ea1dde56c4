"""Finding 6 of issue 16: bounded input.

Size, rows, columns and unpacked size are checked before a file is read (Parquet and XLSX from their own
metadata); rejects past the first ``MLPE_MAX_REJECT_ROWS`` rows are counted, not kept; NUL and control
characters are refused with row and column; implausible times and rates are refused with the reason.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpe_core.ingest import IngestError, ingest_file, read_table
from mlpe_core.ingest.tables import validate_validations

ROOT = Path(__file__).resolve().parents[1]
HEAD = "detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h\n"


def _peak_rss_mb(code: str, *args: str, env: dict | None = None) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; (its peak resident memory in MB, its stdout)."""
    import os

    # VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) high-water mark across exec
    wrapped = code + ("\nprint('RSS', [int(x.split()[1]) / 1024 for x in open('/proc/self/status') "
                      "if x.startswith('VmHWM')][0])")
    r = subprocess.run([sys.executable, "-c", wrapped, *args], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, **(env or {})}, timeout=600)
    assert r.returncode == 0, r.stderr[-800:]
    rss = float(r.stdout.strip().splitlines()[-1].split()[1])
    return rss, r.stdout


def test_a_parquet_of_30_million_repeated_rows_is_refused_from_its_footer(tmp_path) -> None:
    p = tmp_path / "bomb.parquet"
    chunk = pa.table({"detection_id": pa.array(["d"] * 1_000_000).dictionary_encode(),
                      "source_type": pa.array(["aerial"] * 1_000_000).dictionary_encode(),
                      "source_name": pa.array(["Air"] * 1_000_000).dictionary_encode(),
                      "observed_at": pa.array(["2025-03-03T10:00:00Z"] * 1_000_000).dictionary_encode(),
                      "latitude": pa.array(np.full(1_000_000, 32.0)),
                      "longitude": pa.array(np.full(1_000_000, -102.0))})
    with pq.ParquetWriter(p, chunk.schema, compression="zstd") as w:
        for _ in range(30):
            w.write_table(chunk)
    del chunk
    assert p.stat().st_size < 2_000_000
    rss, out = _peak_rss_mb("import sys\nfrom mlpe_core.ingest import read_table, IngestError\n"
                            "try:\n    read_table(sys.argv[1])\nexcept IngestError as e:\n    print(e)", str(p))
    assert "has 30,000,000 rows; more than 3,000,000 are refused (MLPE_MAX_ROWS)" in out
    assert rss < 600, f"peak {rss:.0f} MB"  # before: past 6 GB


def test_an_xlsx_that_unpacks_to_far_more_than_its_size_is_refused_before_openpyxl(tmp_path) -> None:
    p = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write(b'<worksheet><dimension ref="A1:G2"/><sheetData>')
            row = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>' * 20_000
            for _ in range(300):  # ~300 MB unpacked, ~1 MB packed
                fh.write(row)
            fh.write(b"</sheetData></worksheet>")
    assert p.stat().st_size < 3_000_000
    with pytest.raises(IngestError, match=r"unpacks to .* MiB; more than 256.0 MiB is refused"):
        read_table(p)
    big_dim = tmp_path / "rows.xlsx"
    with zipfile.ZipFile(big_dim, "w") as z:
        z.writestr("xl/worksheets/sheet1.xml", '<worksheet><dimension ref="A1:F5000001"/><sheetData/></worksheet>')
    with pytest.raises(IngestError, match="has 5,000,000 rows"):
        read_table(big_dim)


def test_size_rows_and_columns_limits_are_configurable(tmp_path, monkeypatch) -> None:
    f = tmp_path / "d.csv"
    f.write_text(HEAD + "".join(f"d{i},aerial,Air,2025-03-03T10:00:00Z,32,-102,1\n" for i in range(50)))
    read_table(f)
    monkeypatch.setenv("MLPE_MAX_FILE_BYTES", "1000")
    with pytest.raises(IngestError, match="files above .* are refused .MLPE_MAX_FILE_BYTES"):
        read_table(f)
    monkeypatch.setenv("MLPE_MAX_FILE_BYTES", "1e9")
    monkeypatch.setenv("MLPE_MAX_ROWS", "49")
    with pytest.raises(IngestError, match="has 50 rows"):
        read_table(f)
    monkeypatch.setenv("MLPE_MAX_COLUMNS", "6")
    with pytest.raises(IngestError, match="has 7 columns"):
        read_table(f)


def test_rejects_are_counted_not_kept_past_the_limit(session, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLPE_MAX_REJECT_ROWS", "100")
    f = tmp_path / "bad.csv"
    f.write_text(HEAD + "".join(f"d{i},aerial,Air,not a time,abc,-102,1\n" for i in range(5000))
                 + "ok,aerial,Air,2025-03-03T10:00:00Z,32,-102,1\n")
    rep = ingest_file(session, f, user="t")
    assert (rep.n_rejected, rep.n_accepted) == (5000, 1)
    assert rep.rejects["row"].nunique() == 100 and rep.rejects["row"].max() == 101


def test_a_csv_of_only_bad_rows_costs_memory_for_counts_not_reasons(tmp_path) -> None:
    f = tmp_path / "allbad.csv"
    line = "d{},aerial,Air,not a time,abc,-102,1\n"
    with open(f, "w") as fh:
        fh.write(HEAD)
        for start in range(0, 600_000, 100_000):
            fh.write("".join(line.format(i) for i in range(start, start + 100_000)))
    size_mb = f.stat().st_size / 2**20
    rss, out = _peak_rss_mb("import sys\nfrom sqlmodel import Session\nfrom mlpe_core.store.db import get_engine\n"
                            "from mlpe_core.ingest import ingest_file\n"
                            "r = ingest_file(Session(get_engine('sqlite://')), sys.argv[1], user='t')\n"
                            "print(r.n_rejected, len(r.rejects))", str(f))
    n, kept = map(int, out.splitlines()[0].split())
    assert n == 600_000 and kept <= 3 * 10_000
    base, _ = _peak_rss_mb("from sqlmodel import Session\nfrom mlpe_core.store.db import get_engine\n"
                           "import mlpe_core.ingest\nSession(get_engine('sqlite://'))")
    assert rss - base < 25 * size_mb, f"{rss - base:.0f} MB for a {size_mb:.0f} MB file"  # before: ~45x


def test_nul_and_control_characters_are_refused_with_row_and_column(session, tmp_path) -> None:
    rows = "".join(f"d{i},aerial,Nul,2025-03-03T10:00:00Z,32.{i:04d},-102,1\n" for i in range(200))  # > 4 KB
    f = tmp_path / "nul.csv"
    f.write_bytes((HEAD + rows + "x1,aerial,Nul\0,2025-03-03T10:00:00Z,32,-102,1\n"
                   + "x2,aerial,Air,2025-03-03T10:00:00Z,32,-102,1\x07\n").encode())
    rep = ingest_file(session, f, user="t")
    assert rep.n_accepted == 200 and rep.n_rejected == 2
    r = rep.rejects
    assert r[r["row"] == 202][["column", "reason"]].values.tolist() == [
        ["source_name", "source_name contains a control character (U+0000) at position 4"]]
    assert ["rate_kg_h", "rate_kg_h contains a control character (U+0007) at position 2"] in \
        r[r["row"] == 203][["column", "reason"]].values.tolist()
    from mlpe_core import store

    assert set(store.detections_frame(session)["source_name"]) == {"Nul"}  # not two sensors


def test_implausible_times_and_rates_are_refused_with_the_reason(session, tmp_path) -> None:
    f = tmp_path / "odd.csv"
    f.write_text(HEAD + "a,aerial,Air,2099-01-01T00:00:00Z,32,-102,1\n"
                 "b,aerial,Air,1985-01-01T00:00:00Z,32,-102,1\n"
                 "c,aerial,Air,2025-03-03T10:00:00Z,32,-102,1e300\n"
                 "d,aerial,Air,2025-03-03T10:00:00Z,32,-102,999999\n")
    rep = ingest_file(session, f, user="t")
    reasons = dict(zip(rep.rejects["row"], rep.rejects["reason"], strict=True))
    assert rep.n_accepted == 1
    assert "in the future" in reasons[2] and "before 1990-01-01" in reasons[3]
    assert "above the plausible maximum of 1,000,000 kg/h" in reasons[4]
    soon = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=12)).isoformat()
    raw = pd.DataFrame({"leak_id": ["L1", "L1", "L1"], "visited_at": ["2099-01-01", "2025-03-04", soon],
                        "outcome": ["confirmed"] * 3, "measured_rate_kg_h": ["1", "1e300", "2"]})
    good, rej = validate_validations(raw, {"L1"}, "v.csv")
    assert len(good) == 1 and sorted(rej["column"]) == ["measured_rate_kg_h", "visited_at"]
    assert rej["reason"].str.contains("in the future").any() and rej["reason"].str.contains("plausible").any()
