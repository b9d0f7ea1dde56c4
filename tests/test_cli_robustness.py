"""The command line at its edges: a reader that closes the pipe early, a store that cannot be opened or does not
exist, an output path that is a folder, errors that are bugs rather than bad input, and the help texts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


# --------------------------------------------------------------------------------------------- the store's path


@pytest.mark.parametrize(("db", "why"), [
    ("/proc/mlpe-test/s.db", "cannot make its folder /proc/mlpe-test"),  # a place no one can write, even root
    ("/proc/s.db", "the folder is not writable"),
    ("{w}/file.txt/s.db", "file.txt is a file, not a folder"),
    ("{w}/file.txt", "the file is not a SQLite database"),
    ("{w}", "it is a folder, not a store file"),
])
def test_a_store_that_cannot_be_opened_exits_2_naming_it(tmp_path, capsys, db, why):
    (tmp_path / "file.txt").write_text("not a store\n")
    db = db.format(w=tmp_path)
    assert cli.main(["--db", db, "--user", "ana", "fuse"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mlpe: cannot open the store {db}: ") and why in err and "\n" not in err, err
    assert "sqlalche.me" not in err


def test_a_database_server_that_cannot_be_reached_is_named_without_its_password(capsys):
    assert cli.main(["--db", "postgresql://u:secret@127.0.0.1:1/x", "--user", "ana", "fuse"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlpe: cannot open the store postgresql://u:***@127.0.0.1:1/x: ") and "secret" not in err


@pytest.mark.parametrize("command", [["export", "leaks", "-o", "{w}/e.csv"], ["status"], ["ranking"], ["sites"],
                                     ["operators"], ["obligations"], ["runs"], ["audit", "verify"],
                                     ["leak", "show", "L000001"], ["dispatch", "list"], ["dispatch", "show", "1"],
                                     ["report", "--operator", "X", "-o", "{w}/r.json"], ["users", "list"],
                                     ["dispatch", "plan"], ["alerts", "deliver"]])
def test_a_command_that_reads_a_store_that_does_not_exist_creates_nothing(tmp_path, capsys, command):
    """A mistyped --db made the folders and an empty store, and the export 'worked' (exit 0)."""
    db = tmp_path / "typo" / "dir" / "nope.db"
    assert cli.main(["--db", str(db), "--user", "ana", *[c.format(w=tmp_path) for c in command]]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mlpe: no store at {db} (create one with `mlpe demo` or `mlpe ingest FILE`)")
    assert list(tmp_path.iterdir()) == []


def test_a_command_that_writes_still_creates_the_store(tmp_path, capsys):
    db = tmp_path / "new" / "s.db"
    (tmp_path / "good.csv").write_text(GOOD)
    assert cli.main(["--db", str(db), "--user", "ana", "ingest", str(tmp_path / "good.csv")]) == 0
    assert db.exists()
    assert cli.main(["--db", str(db), "status"]) == 0 and "detections: 1" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- output files


def test_an_export_to_a_folder_is_refused_before_anything_is_written(small_store, tmp_path, capsys):
    """`-o DIR/` wrote DIR.part beside the folder, then failed with IsADirectoryError (exit 1)."""
    out = tmp_path / "out"
    out.mkdir()
    for o in (f"{out}/", str(out)):
        assert cli.main(["--db", str(small_store), "export", "leaks", "-o", o]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{o} names a folder; give a file name" in err and "(see `mlpe export --help`)" in err
    assert list(tmp_path.iterdir()) == [out] and list(out.iterdir()) == []


def test_an_export_to_a_place_that_cannot_be_written_exits_2_and_leaves_no_part_file(small_store, capsys):
    assert cli.main(["--db", str(small_store), "export", "leaks", "-o", "/proc/mlpe-test.csv"]) == 2
    assert capsys.readouterr().err.startswith("mlpe: cannot write /proc/mlpe-test.csv: ")
    assert not os.path.exists("/proc/mlpe-test.csv.part")


def test_the_atomic_writer_never_leaves_its_part_file(tmp_path):
    target = tmp_path / "x.csv"

    def half(p):
        p.write_text("half a file")
        raise RuntimeError("the writer broke")

    with pytest.raises(RuntimeError, match="the writer broke"):
        cli._atomic_write(target, half)
    with pytest.raises(cli.UsageError, match="cannot write"):
        cli._atomic_write(target, lambda p: (p.write_text("x"), (_ for _ in ()).throw(PermissionError(13, "no"))))
    assert list(tmp_path.iterdir()) == []
    cli._atomic_write(target, lambda p: p.write_text("whole"))
    assert [f.name for f in tmp_path.iterdir()] == ["x.csv"] and target.read_text() == "whole"


# --------------------------------------------------------------------------------------------- bad input or a bug


@pytest.mark.parametrize("exc", [ValueError("cannot convert float NaN to integer"), KeyError("rank")])
def test_a_bare_value_or_key_error_is_a_bug_not_bad_input(monkeypatch, capsys, exc):
    """Any ValueError or KeyError was exit 2, as if the user had erred; an internal one is exit 1."""
    def broken(argv):
        raise exc

    monkeypatch.setattr(cli, "run", broken)
    assert cli.main(["status"]) == 1
    assert capsys.readouterr().err.startswith(f"mlpe: unexpected failure: {type(exc).__name__}")


@pytest.mark.parametrize(("args", "line"), [
    (["leak", "show", "L999"], "mlpe: no leak 'L999'"),
    (["dispatch", "approve", "99"], "mlpe: no dispatch list 99"),
    (["report", "--operator", "Nobody", "-o", "{w}/r.json"], "mlpe: no operator 'Nobody'"),
    (["backup", "-o", "{db}"], "mlpe: {db}: already exists; choose a new file name"),
    (["dispatch", "plan", "--date", "tomorrow"], "mlpe: --date 'tomorrow' is not a YYYY-MM-DD date"),
    (["users", "add", "bob", "--role", "analyst"], "mlpe: the first user must be an admin (creating it ends open "
                                                     "mode)"),
])
def test_what_a_person_can_fix_is_still_bad_input(small_store, tmp_path, monkeypatch, capsys, args, line):
    monkeypatch.setenv("MLPE_NEW_PASSWORD", "a good long password")
    args = [a.format(w=tmp_path, db=small_store) for a in args]
    assert cli.main(["--db", str(small_store), "--user", "ana", *args]) == 2
    assert capsys.readouterr().err.strip() == line.format(db=small_store)


# --------------------------------------------------------------------------------------------- help


def _sub_parsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                yield sp
                yield from _sub_parsers(sp)


def test_the_main_help_says_what_mlpe_does_and_ends_with_examples(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "loads methane detections" in out
    examples = out[out.index("examples:"):].splitlines()
    for cmd in ("mlpe ingest ", "mlpe fuse ", "mlpe score ", "mlpe export leaks -o ", "mlpe dispatch plan "):
        assert any(line.startswith(f"  {cmd}") for line in examples), cmd  # kept as written (raw epilog)


def test_every_command_and_option_says_what_it_does():
    """`ingest --help` had no description; train, status, the three imports showed only -h; --top, --seed and
    --limit had no help."""
    import argparse

    missing = []
    for sp in _sub_parsers(cli.build_parser()):
        if not (sp.description or "").strip():
            missing.append(sp.prog)
        missing += [f"{sp.prog} {a.option_strings or a.dest}" for a in sp._actions
                    if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction) and not a.help]
    assert missing == []


@pytest.mark.parametrize(("command", "says"), [
    (["ingest"], "Bad rows are rejected"), (["train"], "held-out data"), (["status"], "Count what the store holds"),
    (["validations", "import"], "leak_id, visited_at, outcome"), (["assets", "import"], "asset_id, latitude"),
    (["notifications", "import"], "notification_id"), (["score"], "(default: now)"),
    (["export"], "--top K leaks: the K first in rank order"), (["demo"], "random seed"),
    (["runs"], "at most this many runs"),
])
def test_a_sub_command_help_describes_it(capsys, command, says):
    assert cli.main([*command, "--help"]) == 0
    assert says in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("args", "names"), [
    (["export", "leaks"], "`mlpe export --help`"), (["dispatch", "plan", "--top", "x"], "`mlpe dispatch plan --help`"),
    (["bogus"], "`mlpe --help`"),
])
def test_a_usage_error_names_the_help_of_the_command_it_is_in(capsys, args, names):
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlpe: usage: ") and err.endswith(f"(see {names})") and "\n" not in err


@pytest.mark.parametrize(("args", "says"), [
    (["demo", "--seed", "-1"], "--seed: must be ≥ 0, not -1"),
    (["demo", "--assets", "1"], "--assets: a basin needs at least 2 assets, not 1"),
    (["export", "leaks", "-o", "/dev/null"], "/dev/null is not a plain file"),
])
def test_arguments_a_person_got_wrong_exit_2_naming_the_flag(tmp_path, capsys, args, says):
    """Before: `demo --seed -1` was "unexpected failure: ValueError" (exit 1); `-o /dev/stdout` replaced the device
    link with a file (the file is written beside its target and moved into place)."""
    assert cli.main(["--db", str(tmp_path / "s.db"), "--user", "ana", *args]) == 2
    assert says in capsys.readouterr().err
    assert Path("/dev/null").is_char_device()


def test_an_export_through_a_link_writes_the_file_it_names_and_keeps_the_link(tmp_path):
    from mlpe_core.cli import _output_file

    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "latest.csv").symlink_to(tmp_path / "real.csv")
    assert _output_file(str(tmp_path / "latest.csv")) == (tmp_path / "real.csv").resolve()


@pytest.mark.parametrize(("text", "says"), [("foo: 1\n", "needs a 'source_types' mapping"),
                                            ("source_types: {satellite: {}}\n", "source_types lacks"),
                                            ("source_types: [\n", "cannot be read as YAML")])
def test_a_broken_instrument_table_is_bad_input_naming_the_file(tmp_path, text, says):
    from mlpe_core.errors import BadInput
    from mlpe_core.ingest.instruments import load_instruments

    f = tmp_path / "instruments.yaml"
    f.write_text(text)
    with pytest.raises(BadInput, match=says) as info:
        load_instruments(str(f))
    assert str(f) in str(info.value)
