"""A bounded schemathesis run against ``mlpe serve`` on loopback (issue 16, finding 4): no 5xx, and every
response (status code, content type, body) matches the OpenAPI schema the server publishes."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import offset

BIN = Path(sys.prefix) / "bin"
MLPE = shutil.which("mlpe") or str(BIN / "mlpe")
ST = shutil.which("schemathesis") or str(BIN / "schemathesis")
pytestmark = pytest.mark.skipif(not (Path(MLPE).exists() and Path(ST).exists()),
                                reason="needs the `mlpe` and `schemathesis` scripts (make test installs both)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _small_store(tmp: Path) -> Path:
    """Six leaks, scored, with a draft dispatch list: enough for every endpoint to reach its logic."""
    db = tmp / "api.db"
    rows = []
    for k in range(6):
        lat, lon = offset(1500 * k, 0)
        for j in range(2):
            rows.append({"detection_id": f"d{k}-{j}", "source_type": "aerial", "source_name": "Air",
                         "observed_at": f"2025-03-0{1 + j}T10:00:00Z", "latitude": lat, "longitude": lon,
                         "rate_kg_h": 10 + k})
    pd.DataFrame(rows).to_csv(tmp / "d.csv", index=False)
    env = dict(os.environ, MLPE_DB=str(db))
    for args in (["ingest", tmp / "d.csv"], ["fuse"], ["score"], ["dispatch", "plan", "--top", "3"]):
        subprocess.run([MLPE, "--db", db, *map(str, args)], check=True, capture_output=True, env=env, timeout=300)
    return db


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(tmp_path: Path) -> None:
    db = _small_store(tmp_path)
    port = _free_port()
    server = subprocess.Popen([MLPE, "--db", str(db), "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = subprocess.run(
            [ST, "run", f"http://127.0.0.1:{port}/openapi.json", "--checks",
             "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
             "--max-examples", "5", "--no-shrink", "--generation-deterministic", "--max-failures", "10", "--no-color",
             "--request-timeout", "30"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    tail = r.stdout[-4000:]
    assert r.returncode == 0, tail  # schemathesis exits 1 on any failed check
    sel = re.search(r"Selected: (\d+)/(\d+)", tail)
    assert sel and sel.group(1) == sel.group(2) and int(sel.group(1)) >= 18, tail  # every operation was exercised
    assert " generated" in tail, tail
