"""Users: the accounts behind roles (password hashes only, never passwords)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from .common import now
from .models import User


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
