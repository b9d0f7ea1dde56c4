"""The command line at its edges: a reader that closes the pipe early, a store that cannot be opened or does not
exist, an output path that is a folder, errors that are bugs rather than bad input, and the help texts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import HEADER, REPO

from mlpe_core import cli

GOOD = f"{HEADER}\ng1,aerial,AirLidar,2025-01-01T00:00:00Z,32.0,-102.0\n"


def _mlpe(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlpe_core.cli", *args]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), MLPE_USER="pytest")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """A store with one ingested and fused detection."""
    w = tmp_path_factory.mktemp("small")
    (w / "good.csv").write_text(GOOD)
    db = w / "s.db"
    for args in (["ingest", str(w / "good.csv")], ["fuse"]):
        r = subprocess.run(_mlpe("--db", str(db), *args), capture_output=True, text=True, env=_env(), timeout=300)
        assert r.returncode == 0, r.stderr
    return db


# --------------------------------------------------------------------------------------------- a closed pipe


@pytest.mark.parametrize("command", ["sites", "ranking", "status"])
def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly(small_store, command):
    """`mlpe sites | head -1` said "unexpected failure: BrokenPipeError" and exited 1."""
    p = subprocess.Popen(_mlpe("--db", str(small_store), command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env())
    p.stdout.close()  # the reader goes before the command has written a byte (it is still starting)
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0 and err == ""


def test_a_broken_pipe_that_is_not_stdout_is_still_a_failure(monkeypatch, capsys):
    def broken(argv):
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a connector's HTTP peer went away

    monkeypatch.setattr(cli, "run", broken)
    assert cli.main(["status"]) == 1
    assert "unexpected failure: BrokenPipeError" in capsys.readouterr().err
