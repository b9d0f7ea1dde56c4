"""Field outcomes: run checked rows through each leak's lifecycle and record them, exactly once.

A row whose move is illegal for its leak (``not_found`` for a leak a crew confirmed, a repair of a leak
never confirmed) is rejected with the reason, like any other bad row; the same leak, time and outcome
again is a duplicate, not a new row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from . import store
from .auth import require
from .ingest import file_sha256, read_table
from .ingest.tables import validate_validations
from .lifecycle import plan_validations
from .schema import VALIDATION_REQUIRED
from .store.models import IngestBatch


def record_validations(
    session: Session, good: pd.DataFrame, user: str = "system", batch: IngestBatch | None = None
) -> dict:
    """Insert outcomes and move each leak through its lifecycle (``mlpe_core.lifecycle``); rows with an
    illegal move come back in ``rejects`` (row, column, reason) and are not recorded.

    All rows commit together. When another process records one of the same outcomes at the same
    moment, the unique constraint refuses our transaction; it is then retried with that row counted
    as a duplicate, so concurrent field leads never lose an outcome nor store one twice.
    """
    require(session, user, "validate")
    base = batch.n_rejected if batch is not None else 0
    for attempt in range(5):
        try:
            return _record_validations_once(session, good, user, batch, base)
        except IntegrityError:
            session.rollback()
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _record_validations_once(
    session: Session, good: pd.DataFrame, user: str, batch: IngestBatch | None, base_rejected: int = 0
) -> dict:
    """One attempt: lock the leaks, drop duplicates, run the rows through the lifecycle, write, commit
    (row number = frame index + 2, the file line)."""
    recs = [(int(i) + 2, r) for i, r in zip(good.index, good.to_dict(orient="records"), strict=True)]
    try:
        states = store.lock_states(session, [r["leak_id"] for _, r in recs])  # takes the write lock first
        existing = store.validation_keys(session)
        fresh, dup = [], 0
        for rownum, r in recs:
            key = (r["leak_id"], pd.Timestamp(r["visited_at"]), r["outcome"])
            if key in existing:
                dup += 1
                continue
            existing.add(key)
            fresh.append((rownum, r))
        accepted, rej = plan_validations(states, fresh, actor=user)
        keep = set(accepted)
        rows = [r for n, r in fresh if n in keep]
        if batch is not None:
            batch.n_accepted, batch.n_duplicate = len(rows), dup
            batch.n_rejected = base_rejected + len({n for n, _, _ in rej})
            store.add_batch(session, batch)
        store.insert_validations(session, rows, user, batch.id if batch is not None else None)
        store.save_states(session, states)
        for r in rows:
            store.audit(session, user, "validation", r["leak_id"],
                        {"outcome": r["outcome"], "visited_at": r["visited_at"]})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {
        "recorded": len(rows),
        "leak_ids": sorted({r["leak_id"] for r in rows}),
        "duplicates": dup,
        "rejected": len({n for n, _, _ in rej}),
        "rejects": pd.DataFrame(rej, columns=["row", "column", "reason"]),
    }


def import_validations(session: Session, path: str | Path, user: str = "system") -> dict:
    """``mlpe validations import``: check a field-outcome file row by row, then record its good rows."""
    path = Path(path)
    raw = read_table(path, required=VALIDATION_REQUIRED, kinds="CSV or XLSX")  # the columns named, not "no rows"
    good, rejects = validate_validations(raw, store.leak_ids(session), path.name)
    batch = store.file_batch(path.name, file_sha256(path), "validations", user, n_rows=len(raw),
                             n_rejected=len(set(rejects["row"])))
    res = record_validations(session, good, user, batch)
    lifecycle_rejects = res.pop("rejects")
    res.pop("rejected")
    if len(lifecycle_rejects):
        rejects = pd.concat([rejects, lifecycle_rejects], ignore_index=True).sort_values("row", kind="stable")
        rejects = rejects.reset_index(drop=True)
    return {"file": path.name, "rows": len(raw), "rejected": int(batch.n_rejected), "rejects": rejects, **res}
