"""Roles are enforced in the core: each role tries every action it may not take, and is refused."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from mlpe_core.auth import (
    PERMISSIONS,
    ROLES,
    PermissionDenied,
    add_user,
    authenticate,
    open_mode,
    require,
)
from mlpe_core.store.db import get_engine


def _one_detection(tmp_path):
    import pandas as pd

    f = tmp_path / "d.csv"
    pd.DataFrame(
        {
            "detection_id": ["a"],
            "source_type": ["aerial"],
            "source_name": ["Air"],
            "observed_at": ["2026-06-01T00:00:00Z"],
            "latitude": [32.0],
            "longitude": [-102.0],
        }
    ).to_csv(f, index=False)
    return f


@pytest.fixture
def session():
    with Session(get_engine("sqlite://")) as s:
        yield s


@pytest.fixture
def staffed(session):
    add_user(session, "bootstrap", "root", "admin", "correct horse")
    for role in ROLES:
        add_user(session, "root", f"u_{role}", role, "password123")
    return session


def test_open_mode_allows_everything_until_the_first_user(session) -> None:
    assert open_mode(session)
    for action in PERMISSIONS:
        require(session, "anyone", action)
    with pytest.raises(ValueError, match="first user must be an admin"):
        add_user(session, "anyone", "ana", "analyst", "password123")
    add_user(session, "anyone", "root", "admin", "password123")
    assert not open_mode(session)
    with pytest.raises(PermissionDenied, match="not an active user"):
        require(session, "anyone", "ingest")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_refused_every_forbidden_action(staffed, role: str) -> None:
    user = f"u_{role}"
    for action, allowed in PERMISSIONS.items():
        if role in allowed:
            require(staffed, user, action)
        else:
            with pytest.raises(PermissionDenied, match=action.replace("_", " ")):
                require(staffed, user, action)


def test_only_admins_add_users(staffed) -> None:
    with pytest.raises(PermissionDenied):
        add_user(staffed, "u_supervisor", "eve", "admin", "password123")
    add_user(staffed, "u_admin", "eve", "analyst", "password123")
    with pytest.raises(ValueError, match="already exists"):
        add_user(staffed, "u_admin", "eve", "analyst", "password123")


def test_passwords_are_hashed_and_checked(staffed) -> None:
    from mlpe_core.store.models import User

    u = staffed.get(User, "root")
    assert "correct horse" not in u.password_hash and u.password_hash.startswith("$2")
    assert authenticate(staffed, "root", "correct horse") is not None
    assert authenticate(staffed, "root", "wrong horse!") is None
    assert authenticate(staffed, "nobody", "correct horse") is None
    with pytest.raises(ValueError, match="at least 8"):
        add_user(staffed, "root", "shorty", "analyst", "short")


def test_core_functions_refuse_forbidden_roles_and_write_nothing(staffed, tmp_path) -> None:
    import pandas as pd
    from sqlalchemy import func, select

    from mlpe_core.ingest import ingest_file
    from mlpe_core.outcomes import record_validations
    from mlpe_core.pipeline import run_fuse, run_score, run_train
    from mlpe_core.store.models import Detection, Validation

    f = _one_detection(tmp_path)
    with pytest.raises(PermissionDenied, match="u_field_lead"):
        ingest_file(staffed, f, user="u_field_lead")
    assert staffed.execute(select(func.count()).select_from(Detection)).scalar_one() == 0
    ingest_file(staffed, f, user="u_analyst")
    run_fuse(staffed, user="u_analyst")
    run_score(staffed, user="u_analyst")
    with pytest.raises(PermissionDenied):
        run_train(staffed, user="u_analyst")
    with pytest.raises(PermissionDenied):
        run_fuse(staffed, user="u_field_lead")
    row = pd.DataFrame(
        [
            {
                "leak_id": "L000001",
                "visited_at": pd.Timestamp("2026-06-02", tz="UTC"),
                "outcome": "not_found",
                "measured_rate_kg_h": None,
                "component": None,
                "repaired_at": pd.NaT,
                "crew": None,
                "notes": None,
            }
        ]
    )
    with pytest.raises(PermissionDenied):
        record_validations(staffed, row, user="u_analyst")
    assert staffed.execute(select(func.count()).select_from(Validation)).scalar_one() == 0
    record_validations(staffed, row, user="u_field_lead")
    assert staffed.execute(select(func.count()).select_from(Validation)).scalar_one() == 1


def test_cli_acts_as_named_user(tmp_path) -> None:
    import os
    import subprocess
    import sys

    db = str(tmp_path / "s.db")
    env = dict(os.environ, MLPE_PASSWORD="long enough pw", MLPE_NEW_PASSWORD="long enough pw")

    def mlpe(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mlpe_core.cli", "--db", db, *a], capture_output=True, text=True, env=env
        )

    assert mlpe("--user", "root", "users", "add", "root", "--role", "admin").returncode == 0
    assert mlpe("--user", "root", "users", "add", "fran", "--role", "field_lead").returncode == 0
    r = mlpe("--user", "fran", "train")
    assert r.returncode == 2 and "may not train" in r.stderr
    r = mlpe("--user", "mallory", "fuse")
    assert r.returncode == 2 and "unknown user or wrong password" in r.stderr
    assert mlpe("--user", "root", "fuse").returncode == 0


def test_notes_and_dispatch_marks_are_checked_in_core(staffed, tmp_path) -> None:

    from mlpe_core.ingest import ingest_file
    from mlpe_core.lifecycle import apply_event
    from mlpe_core.pipeline import run_fuse
    from mlpe_core.store import add_note, audit_events

    f = _one_detection(tmp_path)
    ingest_file(staffed, f, user="u_analyst")
    run_fuse(staffed, user="u_analyst")
    add_note(staffed, "u_field_lead", "L000001", "gate locked, call ahead")
    assert audit_events(staffed, action="note")["detail"].str.contains("gate locked").any()
    with pytest.raises(ValueError, match="needs some text"):
        add_note(staffed, "u_analyst", "L000001", "   ")
    with pytest.raises(PermissionDenied):
        apply_event(staffed, "L000001", "dispatch", actor="u_field_lead")
    assert apply_event(staffed, "L000001", "dispatch", actor="u_analyst").status == "dispatched"
