"""Start-up (issue 20): a command imports only what it uses, and the program leaves cleanly without teardown.

Each check runs in a fresh interpreter (``sys.modules`` of this test process holds everything already). Times are
measured by ``benchmarks/basin.py``, not here: a shared machine makes them flaky; what is imported is not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "sklearn", "shap", "fastapi", "plotly", "pydeck", "streamlit", "scipy", "alembic",
         "sqlmodel", "hdbscan", "pyarrow")


def _loaded(code: str, cwd: Path = REPO) -> set[str]:
    """Top-level packages among HEAVY that ``code`` leaves imported, in a fresh interpreter."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, check=True)
    return set(json.loads(r.stdout.strip().splitlines()[-1])) & set(HEAVY)


@pytest.fixture(scope="module")
def store_at_head(tmp_path_factory) -> Path:
    from mlpe_core.store.db import get_engine

    path = tmp_path_factory.mktemp("startup") / "s.db"
    get_engine(str(path)).dispose()  # built and migrated here: the commands below find it at the newest revision
    return path


def test_importing_the_command_line_loads_no_heavy_library():
    assert _loaded("import mlpe_core.cli") == set()


def test_importing_the_desk_loads_no_heavy_library():
    assert _loaded("import mlpe_core.desk") == set()


def test_help_loads_no_heavy_library():
    assert _loaded("from mlpe_core import cli\ntry:\n    cli.run(['--help'])\nexcept SystemExit:\n    pass") == set()


def test_status_needs_neither_pandas_nor_the_orm_nor_alembic(store_at_head):
    assert _loaded(f"from mlpe_core import cli\ncli.main(['--db', {str(store_at_head)!r}, 'status'])") == set()


def test_a_store_at_the_newest_revision_is_opened_without_alembic(store_at_head):
    assert "alembic" not in _loaded(f"from mlpe_core.store.db import get_engine\nget_engine({str(store_at_head)!r})")


def test_schema_head_from_the_file_names_is_alembics_head():
    from alembic.script import ScriptDirectory

    from mlpe_core.store.db import alembic_config, schema_head

    assert schema_head() == ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.mark.slow
def test_scoring_with_the_cold_start_model_loads_neither_scikit_learn_nor_shap(tmp_path):
    db = str(tmp_path / "demo.db")
    subprocess.run([sys.executable, "-m", "mlpe_core.cli", "--db", db, "demo", "--assets", "150", "--seed", "3"],
                   check=True, capture_output=True, cwd=REPO)
    loaded = _loaded(f"from mlpe_core import cli\nassert cli.main(['--db', {db!r}, 'score']) == 0")
    assert {"pandas", "scipy"} <= loaded  # it did score
    assert not loaded & {"sklearn", "shap", "fastapi", "hdbscan"}


def test_the_program_prints_exits_with_its_code_and_closes_the_store(tmp_path):
    """``console`` leaves with os._exit: output, exit code and the store's WAL must still be as on a normal exit."""
    db = tmp_path / "s.db"
    assets = tmp_path / "a.csv"
    assets.write_text("asset_id,latitude,longitude\nA1,32.0,-102.0\nA2,32.1,-102.1\n")
    cmd = [sys.executable, "-m", "mlpe_core.cli", "--db", str(db)]
    r = subprocess.run([*cmd, "assets", "import", str(assets)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "2 new" in r.stdout
    assert not Path(str(db) + "-wal").exists()  # connections closed: SQLite checkpointed and removed its WAL
    r = subprocess.run([*cmd, "status"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "assets: 2" in r.stdout
    r = subprocess.run([*cmd, "fuse", "--bogus"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_status_does_not_import_sqlalchemy_orm(store_at_head):
    """SQLAlchemy's ORM costs ``mlpe status`` about 0.05 s (a sixth of its budget); the audit chain's listener on
    ORM sessions is registered when the first event is chained, not when ``store`` binds ``store.audit``."""
    code = (f"import sys\nfrom mlpe_core import cli\ncli.main(['--db', {str(store_at_head)!r}, 'status'])\n"
            "print('sqlalchemy.orm' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert r.stdout.strip().splitlines()[-1] == "False"
