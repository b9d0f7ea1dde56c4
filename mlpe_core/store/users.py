"""Users: the accounts behind roles (password hashes only, never passwords)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from .common import now
from .models import ApiToken, User


def user_count(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(User)).scalar_one())


def get_user(session: Session, username: str) -> User | None:
    return session.get(User, username)


def insert_user(session: Session, username: str, role: str, password_hash: str) -> User:
    """Add a user (no commit)."""
    user = User(username=username, role=role, password_hash=password_hash, created_at=now())
    session.add(user)
    return user


def users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.username)).scalars())


def insert_token(session: Session, username: str, digest: str, label: str | None, kind: str, created_by: str,
                 expires_at: datetime | None) -> ApiToken:
    """Record a token by its SHA-256 (no commit)."""
    rec = ApiToken(username=username, token_hash=digest, label=label, kind=kind, created_at=now(),
                   created_by=created_by, expires_at=expires_at)
    session.add(rec)
    session.flush()
    return rec


def token_by_digest(session: Session, digest: str) -> ApiToken | None:
    return session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalars().first()


def revoke_token(session: Session, rec: ApiToken, by: str) -> None:
    """Mark a token revoked (no commit)."""
    rec.revoked_at, rec.revoked_by = now(), by
    session.add(rec)


def tokens(session: Session) -> list[ApiToken]:
    return list(session.execute(select(ApiToken).order_by(ApiToken.id)).scalars())
