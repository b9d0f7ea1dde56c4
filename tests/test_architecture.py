"""The house rules (issue 15): the layers hold, pages reach data only through the desk, the store package is the
only writer of every table, and docs/architecture.md names every table the models define."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "mlpe_core"
WRITE_NAMES = {"update", "insert", "delete"}  # sqlalchemy statement builders that change rows
SESSION_WRITES = {"add", "add_all", "merge", "delete", "bulk_save_objects", "bulk_insert_mappings"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, at any depth (function-level imports included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(("." * node.level + node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom):
            out.append(("." * node.level, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_import_linter_contracts_are_kept():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed in this environment (it is in requirements-dev)")
    r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


@pytest.mark.parametrize("page", sorted((ROOT / "pages").glob("*.py")), ids=lambda p: p.name)
def test_pages_reach_data_only_through_the_desk(page):
    for module, names in _imports(page):
        root = module.split(".")[0]
        assert root not in {"sqlalchemy", "sqlmodel"}, f"{page.name} imports {module}"
        if module == "mlpe_core":
            assert set(names) <= {"desk"}, f"{page.name} imports {names} from mlpe_core"
        elif root == "mlpe_core":
            # the desk answers; export writes files and text escapes what people typed: presentation, not data
            assert module in {"mlpe_core.desk", "mlpe_core.export", "mlpe_core.text"}, f"{page.name} imports {module}"


def _core_files(outside_store: bool = True) -> list[Path]:
    files = sorted(CORE.rglob("*.py"))
    return [f for f in files if not outside_store or "store" not in f.relative_to(CORE).parts]


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_only_the_store_package_writes_tables(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for module, names in _imports(path):
        if module.split(".")[0] in {"sqlalchemy", "sqlmodel"}:
            assert not WRITE_NAMES & set(names), f"{path.name} imports a row-changing statement {names}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SESSION_WRITES:
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            assert "session" not in name.lower() and name != "s", f"{path.name}:{node.lineno} writes through a session"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not re.match(r"\s*(INSERT|UPDATE|DELETE)\s", node.value), f"{path.name}: raw SQL write"


def test_architecture_doc_names_every_table():
    from sqlmodel import SQLModel

    import mlpe_core.store.models  # noqa: F401  (registers the tables)

    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\|\s*`(\w+)`\s*\|", doc, re.M))
    tables = set(SQLModel.metadata.tables)
    assert tables <= listed, f"docs/architecture.md lacks the tables {sorted(tables - listed)}"
    assert listed & tables == tables


def test_core_modules_state_their_job():
    for f in _core_files(outside_store=False):
        if "migrations" in f.parts:
            continue
        doc = ast.get_docstring(ast.parse(f.read_text(encoding="utf-8")))
        assert doc and len(doc.split("\n")[0]) > 20, f"{f.relative_to(ROOT)} has no first-line docstring"
