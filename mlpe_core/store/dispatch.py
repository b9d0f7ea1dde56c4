"""Dispatch lists and their stops (work orders): the only code that writes them."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .common import _frame, _utc, now
from .models import DispatchItem, DispatchList


def _items(list_id: int):
    return select(DispatchItem).where(DispatchItem.list_id == list_id).order_by(DispatchItem.crew, DispatchItem.stop)


def insert_list(session: Session, created_by: str, plan_date: str, note: str | None, total_km: float,
                settings: dict, items: list[dict]) -> DispatchList:
    """A new draft list with its stops (no commit). ``items`` are DispatchItem fields without ids; each
    stop's work-order id is ``MLPE-<list id>-<leak id>``."""
    dl = DispatchList(created_at=now(), created_by=created_by, plan_date=plan_date, status="draft", note=note,
                      n_items=len(items), total_km=round(float(total_km), 2),
                      settings=json.dumps(settings, default=list))
    session.add(dl)
    session.flush()
    for it in items:
        session.add(DispatchItem(list_id=dl.id, work_order_id=f"MLPE-{dl.id:05d}-{it['leak_id']}", **it))
    return dl


def get_list(session: Session, list_id: int) -> DispatchList | None:
    return session.get(DispatchList, list_id)


def list_items(session: Session, list_id: int) -> list[DispatchItem]:
    return list(session.execute(_items(list_id)).scalars())


def item_by_work_order(session: Session, work_order_id: str) -> DispatchItem | None:
    return session.execute(select(DispatchItem).where(DispatchItem.work_order_id == work_order_id)).scalars().first()


def set_item_status(session: Session, item: DispatchItem, status: str, at: datetime) -> None:
    """A work order's progress (no commit)."""
    item.wo_status, item.wo_status_at = status, at
    session.add(item)


def set_list_status(session: Session, dl: DispatchList, status: str, by: str | None = None,
                    at: datetime | None = None, note: str | None = None) -> None:
    """Approve or withdraw a list (no commit); an approval records who and when, a note is appended."""
    dl.status = status
    if status == "approved":
        dl.approved_by, dl.approved_at = by, at
    if note:
        dl.note = f"{dl.note}\n{note}" if dl.note else note
    session.add(dl)


def lists_frame(session: Session) -> pd.DataFrame:
    """Every dispatch list, newest first."""
    df = _utc(_frame(session, select(DispatchList).order_by(DispatchList.id.desc())), ["created_at", "approved_at"])
    return df.drop(columns=["settings"])


def list_items_frame(session: Session, list_id: int) -> pd.DataFrame:
    """A stored list's stops ordered by crew and stop."""
    df = _utc(_frame(session, _items(list_id)), ["due_by", "wo_status_at"])
    return df.sort_values(["crew", "stop"]).reset_index(drop=True)
