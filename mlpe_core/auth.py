"""Users, roles and permissions, enforced here in the core so no interface can skip them.

Roles (issue 9): analysts triage and annotate; supervisors also approve and override rankings and
promote models; field leads record validations; admins manage users and rules. Every action a
person can take has a name in :data:`PERMISSIONS`; :func:`require` refuses what a role may not do.

Open mode: a store with no users yet (a fresh install, a demo, the acceptance checks) lets every
actor do everything, recorded under the name it gives. Creating the first user (an admin) ends
open mode for good. Passwords are hashed with bcrypt; only hashes are stored.
"""

from __future__ import annotations

import bcrypt
from sqlmodel import Session

from . import store
from .store.models import User

ROLES: tuple[str, ...] = ("analyst", "supervisor", "field_lead", "admin")

PERMISSIONS: dict[str, set[str]] = {
    "ingest": {"analyst", "supervisor", "admin"},
    "assets_import": {"analyst", "supervisor", "admin"},
    "fuse": {"analyst", "supervisor", "admin"},
    "score": {"analyst", "supervisor", "admin"},
    "note": {"analyst", "supervisor", "field_lead", "admin"},
    "mark_dispatch": {"analyst", "supervisor", "admin"},
    "plan_dispatch": {"analyst", "supervisor", "admin"},
    "export": {"analyst", "supervisor", "field_lead", "admin"},
    "validate": {"field_lead", "supervisor", "admin"},
    "notifications": {"analyst", "supervisor", "admin"},  # record notices that start legal clocks; correct matches
    "approve_dispatch": {"supervisor", "admin"},
    "override_rank": {"supervisor", "admin"},
    "review_ranking": {"supervisor", "admin"},
    "train": {"supervisor", "admin"},
    "promote_model": {"supervisor", "admin"},
    "manage_users": {"admin"},
    "edit_rules": {"admin"},
    "demo": {"admin"},
    "restore": {"admin"},
}

SYSTEM_ACTORS = {"system"}  # internal steps the program takes on its own (e.g. registering the cold-start model)


class PermissionDenied(PermissionError):
    """The actor may not do this; the message says who, what and which roles may."""


def open_mode(session: Session) -> bool:
    """True while no user exists: everyone may do everything (single-user install)."""
    return store.user_count(session) == 0


def role_of(session: Session, username: str) -> str | None:
    u = session.get(User, username)
    return u.role if u is not None and u.active else None


def require(session: Session, username: str, action: str) -> None:
    """Refuse ``action`` unless ``username``'s role allows it (or the store is in open mode)."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action '{action}'")
    if username in SYSTEM_ACTORS or open_mode(session):
        return
    role = role_of(session, username)
    if role is None:
        raise PermissionDenied(f"'{username}' is not an active user of this store; ask an admin to add you "
                               f"(`mlpe users add {username} --role ROLE`)")
    if role not in PERMISSIONS[action]:
        allowed = ", ".join(sorted(PERMISSIONS[action]))
        raise PermissionDenied(f"'{username}' ({role}) may not {action.replace('_', ' ')}; roles that may: {allowed}")


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    return bcrypt.hashpw(password.encode("utf-8")[:72], bcrypt.gensalt()).decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8")[:72], hashed.encode("ascii"))
    except ValueError:
        return False


def add_user(session: Session, actor: str, username: str, role: str, password: str) -> User:
    """Create a user. The first user must be an admin (it ends open mode); later ones need an admin."""
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}' (one of {', '.join(ROLES)})")
    if not username or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise ValueError(f"user name '{username}' must be letters, digits, '.', '_' or '-'")
    first = open_mode(session)
    if first and role != "admin":
        raise ValueError("the first user must be an admin (creating it ends open mode)")
    if not first:
        require(session, actor, "manage_users")
    if session.get(User, username) is not None:
        raise ValueError(f"user '{username}' already exists")
    user = store.insert_user(session, username, role, hash_password(password))
    store.audit(session, actor, "user_added", f"user:{username}", {"role": role})
    session.commit()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user when the password matches and the account is active, else None."""
    u = session.get(User, username)
    if u is None or not u.active or not check_password(password, u.password_hash):
        return None
    return u


def can(session: Session, username: str | None, action: str) -> bool:
    """Whether ``username`` may take ``action`` (what a face offers; :func:`require` enforces the same rule)."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action '{action}'")
    if open_mode(session):
        return True
    role = role_of(session, username) if username else None
    return role is not None and role in PERMISSIONS[action]
