"""Users, roles and permissions, enforced here in the core so no interface can skip them.

Roles (issue 9): analysts triage and annotate; supervisors also approve and override rankings and
promote models; field leads record validations; admins manage users and rules. Every action a
person can take has a name in :data:`PERMISSIONS`; :func:`require` refuses what a role may not do.

Open mode: a store with no users yet (a fresh install, a demo, the acceptance checks) lets every
actor do everything, recorded under the name it gives. Creating the first user (an admin) ends
open mode for good. Passwords are hashed with bcrypt; only hashes are stored.

Identity (issue 16): a face never takes a name at its word once users exist. The command line proves
it with a password or a token (:func:`resolve_actor`), the API with a bearer token (:func:`token_user`;
HTTP Basic only to obtain one, throttled by :class:`LoginThrottle`), the app with its sign-in. The names
in :data:`RESERVED_NAMES` (the program's own steps, e.g. ``system``) can be neither created nor claimed
from a face, so :data:`SYSTEM_ACTORS` is reachable only from code. Tokens are random, shown once, and
stored as their SHA-256, so checking one costs a hash and an indexed lookup instead of a bcrypt.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import bcrypt

from . import store
from .errors import BadInput, NotFound
from .lazy import lazy

if TYPE_CHECKING:
    from sqlmodel import Session

    from .store import models
    from .store.models import ApiToken, User
else:  # the table classes load with the first lookup, not with the command line
    models = lazy("mlpe_core.store.models")

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
    "backup": {"admin"},
    "activate_model": {"admin"},
    "alerts": {"analyst", "supervisor", "field_lead", "admin"},  # acknowledge or snooze an alert, with a reason
}

SYSTEM_ACTORS = {"system"}  # internal steps the program takes on its own (e.g. registering the cold-start model)
RESERVED_NAMES = frozenset({*SYSTEM_ACTORS, "root@system", "demo-system"})  # no face may create or claim these
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further: longer passwords are refused, never cut silently
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")  # a name recorded in open mode
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # an account


class IdentityRequired(PermissionError):
    """The store has users and the caller has not proved who it is (no password or token given)."""


class PermissionDenied(PermissionError):
    """The actor may not do this; the message says who, what and which roles may."""


def open_mode(session: Session) -> bool:
    """True while no user exists: everyone may do everything (single-user install)."""
    return store.user_count(session) == 0


def is_reserved(name: str) -> bool:
    return name.strip().lower() in RESERVED_NAMES


def claimable_name(name: str | None, default: str) -> str:
    """A name a face may record in open mode: letters, digits and ``._@-`` (64 at most), never a reserved one."""
    name = (name or "").strip() or default
    if is_reserved(name):
        raise PermissionDenied(f"'{name}' is reserved for the program's own steps; give your own name")
    if not _NAME.match(name):
        raise PermissionDenied(f"name '{name[:40]}' must be 1-64 letters, digits, '.', '_', '@' or '-'")
    return name


def role_of(session: Session, username: str) -> str | None:
    u = session.get(models.User, username)
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
        raise BadInput("password must have at least 8 characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise BadInput(f"password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt ignores the rest)")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


# a real bcrypt hash of a random secret at the same cost: unknown users are checked against it, so a wrong
# name takes as long as a wrong password and names cannot be told apart by timing
_DUMMY_HASH = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt()).decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches; a password over 72 bytes never does (it is still hashed, for timing)."""
    raw = password.encode("utf-8")
    too_long = len(raw) > MAX_PASSWORD_BYTES
    try:
        ok = bcrypt.checkpw(raw[:MAX_PASSWORD_BYTES], hashed.encode("ascii"))
    except ValueError:
        return False
    return ok and not too_long


def add_user(session: Session, actor: str, username: str, role: str, password: str) -> User:
    """Create a user. The first user must be an admin (it ends open mode); later ones need an admin."""
    if role not in ROLES:
        raise BadInput(f"unknown role '{role}' (one of {', '.join(ROLES)})")
    if not _USERNAME.match(username or ""):
        raise BadInput(f"user name '{username[:40]}' must be 1-64 ASCII letters, digits, '.', '_' or '-'")
    if is_reserved(username):
        raise BadInput(f"user name '{username}' is reserved for the program's own steps")
    first = open_mode(session)
    if first and role != "admin":
        raise BadInput("the first user must be an admin (creating it ends open mode)")
    if not first:
        require(session, actor, "manage_users")
    if session.get(models.User, username) is not None:
        raise BadInput(f"user '{username}' already exists")
    user = store.insert_user(session, username, role, hash_password(password))
    store.audit(session, actor, "user_added", f"user:{username}", {"role": role})
    session.commit()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user when the password matches and the account is active, else None.

    An unknown or inactive name is checked against a dummy hash, so it costs the same bcrypt as a known one.
    """
    u = session.get(models.User, username) if username and not is_reserved(username) else None
    if u is None or not u.active:
        check_password(password, _DUMMY_HASH)
        return None
    return u if check_password(password, u.password_hash) else None


# --------------------------------------------------------------------------------------------- tokens

TOKEN_PREFIX = "mlpe_"
LOGIN_TOKEN_HOURS = 12


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, actor: str, username: str, label: str | None = None,
                 expires_days: float | None = None, kind: str = "api") -> tuple[str, ApiToken]:
    """A new bearer token for ``username``; returns (the token, shown this once, and its record).

    Admins create ``api`` tokens for any user (scripts, other systems); ``login`` tokens are made by
    :func:`login` for the user who proved a password, and expire after :data:`LOGIN_TOKEN_HOURS`.
    """
    if kind == "api":
        require(session, actor, "manage_users")
    u = session.get(models.User, username)
    if u is None or not u.active:
        raise NotFound(f"no active user '{username}'")
    if expires_days is not None and not (0 < expires_days <= 3650):
        raise BadInput("expires_days must be between 0 and 3650")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = store.now()
    expires = now + timedelta(days=expires_days) if expires_days is not None else (
        now + timedelta(hours=LOGIN_TOKEN_HOURS) if kind == "login" else None)
    rec = store.insert_token(session, username, _token_digest(token), label, kind, actor, expires)
    store.audit(session, actor, "token_created", f"user:{username}",
                {"token_id": rec.id, "kind": kind, "label": label, "expires_at": expires})
    session.commit()
    return token, rec


def token_user(session: Session, token: str | None) -> User | None:
    """The active user a valid (known, unrevoked, unexpired) token belongs to, else None: one hash, one lookup."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    rec = store.token_by_digest(session, _token_digest(token))
    if rec is None or rec.revoked_at is not None:
        return None
    if rec.expires_at is not None and _aware(rec.expires_at) <= store.now():
        return None
    u = session.get(models.User, rec.username)
    return u if u is not None and u.active and not is_reserved(u.username) else None


def _aware(t: datetime) -> datetime:
    from datetime import UTC

    return t.replace(tzinfo=UTC) if t.utcoffset() is None else t


def revoke_token(session: Session, actor: str, token_id: int) -> ApiToken:
    """Revoke a token: an admin any, a user their own."""
    rec = session.get(models.ApiToken, token_id)
    if rec is None:
        raise NotFound(f"no token {token_id}")
    if rec.username != actor:
        require(session, actor, "manage_users")
    if rec.revoked_at is None:
        store.revoke_token(session, rec, actor)
        store.audit(session, actor, "token_revoked", f"user:{rec.username}", {"token_id": token_id})
        session.commit()
    return rec


def tokens(session: Session, actor: str) -> list[ApiToken]:
    """Every token record (never the tokens themselves), for admins."""
    require(session, actor, "manage_users")
    return store.tokens(session)


def resolve_actor(session: Session, name: str | None, *, password: str | None = None, token: str | None = None,
                  default: str = "cli") -> str:
    """Who a command-line call acts as.

    Open mode: the name given (recorded as it is), unless it is reserved. Once users exist the caller proves
    it: a valid token (its user; a different ``name`` given with it is refused) or the password of ``name``.
    """
    if open_mode(session):
        return claimable_name(name, default)
    if token:
        u = token_user(session, token)
        if u is None:
            raise PermissionDenied("the token is unknown, revoked or expired")
        if name and name.strip() and name.strip() != u.username:
            raise PermissionDenied(f"the token belongs to '{u.username}', not '{name.strip()}'")
        return u.username
    if password is None:
        raise IdentityRequired("this store has users: prove who you are with MLPE_PASSWORD (or in a terminal, "
                               "where you are asked) or MLPE_TOKEN")
    u = authenticate(session, (name or "").strip(), password)
    if u is None:
        raise PermissionDenied(f"unknown user or wrong password for '{(name or '').strip()[:40]}'")
    return u.username


# --------------------------------------------------------------------------------------------- throttling


class LoginThrottle:
    """Back-off after repeated failed sign-ins, per user name and per client (in this process).

    After ``free`` failures in a row on a key, each further attempt must wait ``base_s`` × 2^(extra failures),
    at most ``max_s``; a refused attempt costs no bcrypt. A success clears the user's key.
    """

    def __init__(self, free: int = 5, base_s: float = 1.0, max_s: float = 900.0) -> None:
        self.free, self.base_s, self.max_s = free, base_s, max_s
        self._fails: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, *keys: str) -> float:
        """Seconds before another attempt on any of ``keys`` is heard (0: now)."""
        now = time.monotonic()
        with self._lock:
            worst = 0.0
            for k in keys:
                n, last = self._fails.get(k, (0, 0.0))
                if n >= self.free:
                    worst = max(worst, last + min(self.max_s, self.base_s * 2 ** (n - self.free)) - now)
            return max(0.0, worst)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._fails[k] = (self._fails.get(k, (0, 0.0))[0] + 1, now)
            if len(self._fails) > 100_000:  # a flood of distinct keys: forget the oldest half
                for k, _ in sorted(self._fails.items(), key=lambda kv: kv[1][1])[:50_000]:
                    del self._fails[k]

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)


def can(session: Session, username: str | None, action: str) -> bool:
    """Whether ``username`` may take ``action`` (what a face offers; :func:`require` enforces the same rule)."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action '{action}'")
    if open_mode(session):
        return True
    role = role_of(session, username) if username else None
    return role is not None and role in PERMISSIONS[action]
