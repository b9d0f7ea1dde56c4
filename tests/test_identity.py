"""Finding 3 of issue 16: no name passes a role check on trust.

Reserved names cannot be created or claimed; once users exist the command line proves who it is (password
or token); admin actions (users, tokens, backup, restore, model activation) need an admin; a restore is
audited, keeps the store it replaced and refuses a backup whose audit chain is broken.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlmodel import Session

from mlpe_core import auth, cli
from mlpe_core.store.audit import verify_all
from mlpe_core.store.db import get_engine

ADMIN_PW, ANA_PW = "admin password 1", "analyst password"


@pytest.fixture
def run(monkeypatch, capsys):
    """``mlpe`` in this process: (exit code, stdout, stderr); env vars as keyword arguments (None unsets)."""

    def _run(db: Path, *args: str, **env: str | None) -> tuple[int, str, str]:
        for k in ("MLPE_PASSWORD", "MLPE_TOKEN", "MLPE_NEW_PASSWORD", "MLPE_USER"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            if v is not None:
                monkeypatch.setenv(k, v)
        cli._ENGINES.clear()
        code = cli.main(["--db", str(db), *args])
        for e in cli._ENGINES.values():
            e.dispose()
        cli._ENGINES.clear()
        o = capsys.readouterr()
        return code, o.out, o.err

    return _run


@pytest.fixture
def staffed(tmp_path, run) -> Path:
    db = tmp_path / "s.db"
    assert run(db, "--user", "root", "users", "add", "root", "--role", "admin", MLPE_PASSWORD=ADMIN_PW)[0] == 0
    assert run(db, "--user", "root", "users", "add", "ana", "--role", "analyst", MLPE_PASSWORD=ADMIN_PW,
               MLPE_NEW_PASSWORD=ANA_PW)[0] == 0
    return db


def test_system_is_reserved_everywhere(tmp_path, run) -> None:
    with Session(get_engine("sqlite://")) as s:
        with pytest.raises(ValueError, match="reserved"):
            auth.add_user(s, "x", "system", "admin", "password123")
        with pytest.raises(auth.PermissionDenied, match="reserved"):
            auth.resolve_actor(s, "System")  # open mode: the name is recorded, but never a reserved one
        assert auth.authenticate(s, "system", "anything at all") is None
    code, _, err = run(tmp_path / "open.db", "--user", "system", "fuse")
    assert code == 2 and "reserved" in err


def test_cli_takes_no_name_on_trust_once_users_exist(staffed, run) -> None:
    code, _, err = run(staffed, "--user", "root", "users", "add", "evil", "--role", "admin", MLPE_NEW_PASSWORD="x" * 9)
    assert code == 2 and "prove who you are" in err
    code, _, err = run(staffed, "--user", "root", "users", "add", "evil", "--role", "admin",
                       MLPE_PASSWORD="guessed wrong", MLPE_NEW_PASSWORD="x" * 9)
    assert code == 2 and "unknown user or wrong password" in err
    code, _, err = run(staffed, "--user", "system", "fuse", MLPE_PASSWORD=ADMIN_PW)
    assert code == 2 and "wrong password" in err
    code, _, err = run(staffed, "--user", "ana", "users", "add", "evil", "--role", "admin", MLPE_PASSWORD=ANA_PW,
                       MLPE_NEW_PASSWORD="x" * 9)
    assert code == 2 and "may not manage users" in err
    assert run(staffed, "--user", "ana", "fuse", MLPE_PASSWORD=ANA_PW)[0] == 0
    code, out, _ = run(staffed, "--user", "root", "users", "list", MLPE_PASSWORD=ADMIN_PW)
    assert code == 0 and "evil" not in out and "ana\tanalyst" in out


def test_tokens_prove_identity_and_can_be_revoked(staffed, run) -> None:
    code, tok, _ = run(staffed, "--user", "root", "users", "token", "create", "ana", "--label", "script",
                       MLPE_PASSWORD=ADMIN_PW)
    tok = tok.strip()
    assert code == 0 and tok.startswith("mlpe_")
    with Session(get_engine(str(staffed))) as s:
        stored = auth.tokens(s, "root")
    assert [t.username for t in stored] == ["ana"] and tok not in stored[0].token_hash  # only the hash is kept
    assert run(staffed, "fuse", MLPE_TOKEN=tok)[0] == 0
    code, _, err = run(staffed, "--user", "root", "users", "list", MLPE_TOKEN=tok)
    assert code == 2 and "belongs to 'ana'" in err  # a token cannot be combined with another name
    code, _, err = run(staffed, "users", "token", "create", "ana", MLPE_TOKEN=tok)
    assert code == 2 and "may not manage users" in err
    assert run(staffed, "--user", "root", "users", "token", "revoke", str(stored[0].id), MLPE_PASSWORD=ADMIN_PW)[0] == 0
    code, _, err = run(staffed, "fuse", MLPE_TOKEN=tok)
    assert code == 2 and "revoked" in err


def test_model_activation_needs_an_admin(tmp_path) -> None:
    from mlpe_core.pipeline import activate_model, current_model

    with Session(get_engine("sqlite://")) as s:
        auth.add_user(s, "setup", "root", "admin", ADMIN_PW)
        auth.add_user(s, "root", "sup", "supervisor", "sup password")
        _, version = current_model(s, "root")
        with pytest.raises(auth.PermissionDenied, match="activate model"):
            activate_model(s, version, "sup")
        activate_model(s, version, "root")


def _tamper(db: Path, sql: str) -> None:
    """What a person with the sqlite3 shell does: drop the append-only triggers, then edit history."""
    con = sqlite3.connect(db)
    for t in ("auditevent", "leakevent"):
        for w in ("update", "delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {t}_no_{w}")
    con.execute(sql)
    con.commit()
    con.close()


def test_restore_needs_an_admin_is_audited_and_refuses_tampered_backups(staffed, run, tmp_path) -> None:
    bak = tmp_path / "b.db"
    code, _, err = run(staffed, "--user", "ana", "backup", "-o", str(bak), MLPE_PASSWORD=ANA_PW)
    assert code == 2 and "may not backup" in err
    assert run(staffed, "--user", "root", "backup", "-o", str(bak), MLPE_PASSWORD=ADMIN_PW)[0] == 0
    code, _, err = run(staffed, "--user", "ana", "restore", str(bak), MLPE_PASSWORD=ANA_PW)
    assert code == 2 and "may not restore" in err
    code, out, _ = run(staffed, "--user", "root", "restore", str(bak), MLPE_PASSWORD=ADMIN_PW)
    assert code == 0 and "replaced store is kept" in out
    with Session(get_engine(str(staffed))) as s:
        ev = auth.store.audit_events(s, action="restore")
        assert len(ev) == 1 and ev["actor"].iloc[0] == "root" and "sha256" in ev["detail"].iloc[0]
        assert all(r.ok for r in verify_all(s))
    assert list(tmp_path.glob("s.replaced-*.db"))

    bad = tmp_path / "bad.db"
    bad.write_bytes(bak.read_bytes())
    _tamper(bad, "UPDATE auditevent SET actor = 'nobody' WHERE action = 'user_added'")
    code, _, err = run(staffed, "--user", "root", "restore", str(bad), MLPE_PASSWORD=ADMIN_PW)
    assert code == 2 and "tampered" in err and "chain broken at event 1" in err

    empty = tmp_path / "open.db"
    get_engine(str(empty)).dispose()  # an empty store in open mode (`mlpe status` no longer creates one)
    assert run(empty, "--user", "x", "status")[0] == 0
    assert run(empty, "--user", "x", "backup", "-o", str(tmp_path / "open_bak.db"))[0] == 0
    code, _, err = run(staffed, "--user", "root", "restore", str(tmp_path / "open_bak.db"), MLPE_PASSWORD=ADMIN_PW)
    assert code == 2 and "switch sign-in off" in err
