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
from mlpe_core.db import get_engine


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
    from mlpe_core.auth import User

    u = staffed.get(User, "root")
    assert "correct horse" not in u.password_hash and u.password_hash.startswith("$2")
    assert authenticate(staffed, "root", "correct horse") is not None
    assert authenticate(staffed, "root", "wrong horse!") is None
    assert authenticate(staffed, "nobody", "correct horse") is None
    with pytest.raises(ValueError, match="at least 8"):
        add_user(staffed, "root", "shorty", "analyst", "short")
