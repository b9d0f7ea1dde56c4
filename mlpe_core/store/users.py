"""Users: the accounts behind roles (password hashes only, never passwords)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from ..lazy import lazy
from .common import now

if TYPE_CHECKING:
    from sqlmodel import Session

    from . import models
    from .models import ApiToken, User
else:  # light: the package binds `store.users` at import, and `mlpe status` must not load the table classes
    models = lazy("mlpe_core.store.models")


def user_count(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(models.User)).scalar_one())


def get_user(session: Session, username: str) -> User | None:
    return session.get(models.User, username)


def insert_user(session: Session, username: str, role: str, password_hash: str) -> User:
    """Add a user (no commit)."""
    user = models.User(username=username, role=role, password_hash=password_hash, created_at=now())
    session.add(user)
    return user


def users(session: Session) -> list[User]:
    return list(session.execute(select(models.User).order_by(models.User.username)).scalars())


def insert_token(session: Session, username: str, digest: str, label: str | None, kind: str, created_by: str,
                 expires_at: datetime | None) -> ApiToken:
    """Record a token by its SHA-256 (no commit)."""
    rec = models.ApiToken(username=username, token_hash=digest, label=label, kind=kind, created_at=now(),
                          created_by=created_by, expires_at=expires_at)
    session.add(rec)
    session.flush()
    return rec


def token_by_digest(session: Session, digest: str) -> ApiToken | None:
    return session.execute(select(models.ApiToken).where(models.ApiToken.token_hash == digest)).scalars().first()


def revoke_token(session: Session, rec: ApiToken, by: str) -> None:
    """Mark a token revoked (no commit)."""
    rec.revoked_at, rec.revoked_by = now(), by
    session.add(rec)


def tokens(session: Session) -> list[ApiToken]:
    return list(session.execute(select(models.ApiToken).order_by(models.ApiToken.id)).scalars())
