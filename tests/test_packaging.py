"""Finding 8 of issue 16: the wheel carries its migrations and default configuration, and the runtime lock
holds no test tool. (``.ci/wheel_check`` installs the wheel into a fresh venv and runs the demo from it.)"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

TEST_TOOLS = {"pytest", "hypothesis", "ruff", "playwright", "schemathesis", "httpx", "psycopg", "psycopg-binary"}


def _names(lock: Path) -> set[str]:
    return {line.split("==")[0].strip().lower() for line in lock.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def test_the_runtime_lock_holds_no_test_tools_and_the_dev_lock_adds_them() -> None:
    runtime, dev = _names(REPO / "requirements.lock"), _names(REPO / "requirements-dev.lock")
    assert not runtime & TEST_TOOLS
    assert TEST_TOOLS <= dev and not runtime & dev
    assert {"streamlit", "fastapi", "alembic", "bcrypt", "pandas"} <= runtime


def test_the_wheel_carries_migrations_and_config(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-800:]
    (wheel,) = tmp_path.glob("mlpe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = {p.name for p in (REPO / "mlpe_core" / "store" / "migrations" / "versions").glob("*.py")}
    assert {f"mlpe_core/store/migrations/versions/{v}" for v in versions} <= names
    assert {"mlpe_core/store/migrations/env.py", "mlpe_core/store/migrations/script.py.mako"} <= names
    assert {f"mlpe_core/config/{n}.yaml" for n in ("compliance", "dispatch", "instruments")} <= names
    assert not any(n.startswith(("tests/", "app/", "pages/")) for n in names)
