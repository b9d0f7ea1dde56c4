"""Users: the accounts behind roles (password hashes only, never passwords)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from ..lazy import lazy
from .common import now

if TYPE_CHECKING:
    from sqlmodel import Session

    from . import models
    from .models import User
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
