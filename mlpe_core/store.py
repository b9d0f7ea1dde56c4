"""Store functions: read frames from and write results to the store, each taking a ``Session``.

Stages compute on pandas frames; these functions are the only place that knows the tables, so a
team can point MLPE at any SQLAlchemy URL and every stage still works.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from .auth import require
from .ingest import IngestError, file_sha256, parse_times, read_table
from .models import Asset, AuditEvent, Detection, IngestBatch, Leak, ModelVersion, Validation
from .schema import ASSET_REQUIRED, OUTCOMES, VALIDATION_REQUIRED

# optional validation columns beyond contract §2, used by the lifecycle and the compliance clocks
VALIDATION_EXTRA: tuple[str, ...] = ("found_by", "rate_method", "repair_attempted_at", "delay_reason")
FOUND_BY: tuple[str, ...] = ("ogi", "method21", "avo", "other")  # how the crew found the leak


def now() -> datetime:
    return datetime.now(UTC)


def _frame(session: Session, stmt) -> pd.DataFrame:
    return pd.read_sql(stmt, session.connection())


def _utc(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    for c in cols:
        if c in df:
            df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df


def audit(session: Session, actor: str, action: str, target: str | None = None, detail: dict | None = None) -> None:
    """Append one audit event (committed with the caller's transaction)."""
    session.add(
        AuditEvent(
            at=now(),
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(detail, default=str) if detail else None,
        )
    )


# --------------------------------------------------------------------------------------------- reads


def detections_frame(session: Session, leak_id: str | None = None) -> pd.DataFrame:
    stmt = select(Detection)
    if leak_id is not None:
        stmt = stmt.where(Detection.leak_id == leak_id)
    df = _frame(session, stmt.order_by(Detection.id))
    return _utc(df, ["observed_at"])


def assets_frame(session: Session) -> pd.DataFrame:
    return _frame(session, select(Asset))


def leaks_frame(session: Session, active_only: bool = True) -> pd.DataFrame:
    stmt = select(Leak)
    if active_only:
        stmt = stmt.where(Leak.active == True)  # noqa: E712 - SQL expression
    df = _frame(session, stmt)
    df = _utc(df, ["first_seen", "last_seen", "due_by", "scored_at"])
    if "rank" in df:
        df["rank"] = df["rank"].astype("Int64")  # a rank is a whole number, blank when unranked
        df = df.sort_values(["rank", "leak_id"], na_position="last").reset_index(drop=True)
    return df


def validations_frame(session: Session) -> pd.DataFrame:
    df = _frame(session, select(Validation).order_by(Validation.id))
    return _utc(df, ["visited_at", "repaired_at", "recorded_at"])


def batches_frame(session: Session) -> pd.DataFrame:
    return _utc(_frame(session, select(IngestBatch).order_by(IngestBatch.id.desc())), ["ingested_at"])


def models_frame(session: Session) -> pd.DataFrame:
    cols = [c for c in ModelVersion.__table__.columns if c.name != "blob"]
    return _utc(_frame(session, select(*cols).order_by(ModelVersion.id.desc())), ["created_at"])


def audit_frame(session: Session, target: str | None = None) -> pd.DataFrame:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc())
    if target:
        stmt = stmt.where(AuditEvent.target == target)
    return _utc(_frame(session, stmt), ["at"])


def counts(session: Session) -> dict[str, int]:
    def n(model) -> int:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())

    leaks = int(session.execute(select(func.count()).select_from(Leak).where(Leak.active == True)).scalar_one())  # noqa: E712
    return {
        "detections": n(Detection),
        "leaks": leaks,
        "assets": n(Asset),
        "validations": n(Validation),
        "batches": n(IngestBatch),
        "models": n(ModelVersion),
    }


def active_model(session: Session) -> ModelVersion | None:
    return session.execute(select(ModelVersion).where(ModelVersion.active == True)).scalars().first()  # noqa: E712


# --------------------------------------------------------------------------------------------- writes


def upsert(session: Session, model, key: str, rows: list[dict], existing: set) -> tuple[list[dict], list[dict]]:
    """Insert rows whose ``key`` is new, bulk-update the others; returns (inserted, updated)."""
    new = [r for r in rows if r[key] not in existing]
    upd = [r for r in rows if r[key] in existing]
    if new:
        session.add_all([model(**r) for r in new])
    if upd:
        session.execute(update(model), upd)
    return new, upd


def save_fusion(
    session: Session,
    det_ids: np.ndarray,
    leak_ids: np.ndarray,
    ambiguous: np.ndarray,
    leaks: pd.DataFrame,
    retire: set | None = None,
) -> None:
    """Write memberships and leaks in one transaction; leaks no longer produced become inactive.

    ``det_ids``/``leak_ids``/``ambiguous`` may be only the detections re-fused (an incremental fusion) and
    ``leaks`` only their leaks; then ``retire`` names the leaks to make inactive (those the re-fused
    detections belonged to that are produced no more). Without it, every leak not in ``leaks`` is retired.
    """
    memb = pd.DataFrame({"id": det_ids.astype(int), "leak_id": leak_ids, "ambiguous": ambiguous.astype(bool)})
    if len(memb):
        session.execute(update(Detection), memb.to_dict(orient="records"))
    keep = set(leaks["leak_id"])
    old = {r for r in session.execute(select(Leak.leak_id)).scalars()}
    gone = (old - keep) if retire is None else (set(retire) & old) - keep
    if gone:
        session.execute(update(Leak).where(Leak.leak_id.in_(gone)).values(active=False, rank=None))
    rows = leaks.astype(object).where(leaks.notna(), None).to_dict(orient="records")
    upsert(session, Leak, "leak_id", rows, old & keep)


def save_scores(session: Session, scored: pd.DataFrame) -> None:
    cols = [
        "leak_id",
        "p_real",
        "est_rate_kg_h",
        "rate_lo_kg_h",
        "rate_hi_kg_h",
        "rate_quantified",
        "priority_score",
        "risk_band",
        "rank",
        "top_reasons",
        "contributions",
        "model_version",
        "due_by",
        "due_rule",
        "scored_at",
    ]
    df = scored[cols].astype(object).where(scored[cols].notna(), None)
    session.execute(update(Leak), df.to_dict(orient="records"))


def add_note(session: Session, user: str, leak_id: str, text: str) -> int:
    """An analyst's note on a leak, kept in the append-only audit trail; returns the event id."""
    require(session, user, "note")
    text = (text or "").strip()
    if not text:
        raise ValueError("a note needs some text")
    if session.get(Leak, leak_id) is None:
        raise KeyError(f"no leak '{leak_id}'")
    ev = AuditEvent(at=now(), actor=user, action="note", target=leak_id, detail=json.dumps({"note": text[:4000]}))
    session.add(ev)
    session.commit()
    return int(ev.id)


def set_status(session: Session, leak_ids: list[str], status: str, user: str = "system") -> None:
    """Move leaks to ``status`` through the lifecycle (no commit); an illegal move raises
    ``lifecycle.TransitionError`` with the reason."""
    from .lifecycle import set_status as _set

    _set(session, leak_ids, status, actor=user)


def file_batch(path: Path, kind: str, user: str, **counts: int) -> IngestBatch:
    """The lineage record of one imported file (name, hash, time, who, row counts)."""
    return IngestBatch(
        file_name=path.name,
        sha256=file_sha256(path),
        format=kind,
        kind=kind,
        ingested_at=now(),
        recorded_by=user,
        **counts,
    )


def import_assets(session: Session, path: str | Path, user: str = "system") -> dict:
    """Load or update the asset registry; rows with bad coordinates are rejected with reasons."""
    require(session, user, "assets_import")
    path = Path(path)
    raw = read_table(path)
    cols = {c.lower(): c for c in raw.columns}
    missing = [c for c in ASSET_REQUIRED if c not in cols]
    if missing:
        raise IngestError(path.name, f"required column missing: {', '.join(missing)}", column=missing[0])
    df = raw.rename(columns={v: k for k, v in cols.items()})
    lat = pd.to_numeric(df["latitude"], errors="coerce")
    lon = pd.to_numeric(df["longitude"], errors="coerce")
    aid = df["asset_id"].astype(str).str.strip()
    rejects = []
    first_row_of = {a: i for i, a in reversed(list(aid.items()))}
    for i in df.index:
        if not aid[i]:
            rejects.append({"row": i + 2, "column": "asset_id", "reason": "asset_id is blank"})
        elif aid[i] in first_row_of and first_row_of[aid[i]] != i:
            rejects.append(
                {
                    "row": i + 2,
                    "column": "asset_id",
                    "reason": f"asset_id '{aid[i]}' repeated (first on row {first_row_of[aid[i]] + 2})",
                }
            )
        elif pd.isna(lat[i]) or abs(lat[i]) > 90:
            rejects.append({"row": i + 2, "column": "latitude", "reason": f"latitude '{df['latitude'][i]}' invalid"})
        elif pd.isna(lon[i]) or abs(lon[i]) > 180:
            rejects.append({"row": i + 2, "column": "longitude", "reason": f"longitude '{df['longitude'][i]}' invalid"})
    bad = {r["row"] - 2 for r in rejects}
    good = df.index[~df.index.isin(list(bad))]
    records = [
        {
            "asset_id": aid[i],
            "latitude": float(lat[i]),
            "longitude": float(lon[i]),
            "asset_type": (df["asset_type"][i] or None) if "asset_type" in df else None,
            "operator": (df["operator"][i] or None) if "operator" in df else None,
        }
        for i in good
    ]
    existing = set(session.execute(select(Asset.asset_id)).scalars())
    try:
        new, upd = upsert(session, Asset, "asset_id", records, existing)
        session.add(file_batch(path, "assets", user, n_rows=len(df), n_accepted=len(records), n_rejected=len(rejects)))
        audit(
            session, user, "assets_import", path.name, {"new": len(new), "updated": len(upd), "rejected": len(rejects)}
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {
        "file": path.name,
        "rows": len(df),
        "new": len(new),
        "updated": len(upd),
        "rejected": len(rejects),
        "rejects": pd.DataFrame(rejects, columns=["row", "column", "reason"]),
    }


def validate_validations(df: pd.DataFrame, known_leaks: set[str], label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check field outcomes row by row (contract §2); returns typed good rows and rejects."""
    cols = {c.lower(): c for c in df.columns}
    missing = [c for c in VALIDATION_REQUIRED if c not in cols]
    if missing:
        raise IngestError(label, f"required column missing: {', '.join(missing)}", column=missing[0])
    df = df.rename(columns={v: k for k, v in cols.items()})
    for c in ("measured_rate_kg_h", "component", "repaired_at", "crew", "notes", *VALIDATION_EXTRA):
        if c not in df:
            df[c] = ""
    rej = []
    visited = parse_times(df["visited_at"])
    repaired = parse_times(df["repaired_at"])
    attempted = parse_times(df["repair_attempted_at"])
    found_by = df["found_by"].fillna("").astype(str).str.strip().str.lower()
    rate = pd.to_numeric(df["measured_rate_kg_h"].astype(str).str.strip().replace("", np.nan), errors="coerce")
    outcome = df["outcome"].astype(str).str.strip().str.lower()
    for i in df.index:
        lk = str(df.at[i, "leak_id"]).strip()
        r = i + 2
        if not lk:
            rej.append((r, "leak_id", "leak_id is blank"))
        elif lk not in known_leaks:
            rej.append((r, "leak_id", f"unknown leak_id '{lk}'"))
        if pd.isna(visited[i]):
            rej.append((r, "visited_at", f"cannot read '{df.at[i, 'visited_at']}' as an ISO 8601 time"))
        if outcome[i] not in OUTCOMES:
            rej.append((r, "outcome", f"outcome '{df.at[i, 'outcome']}' is not one of {', '.join(OUTCOMES)}"))
        raw_rate = str(df.at[i, "measured_rate_kg_h"]).strip()
        if raw_rate and (pd.isna(rate[i]) or rate[i] < 0 or not np.isfinite(rate[i])):
            rej.append((r, "measured_rate_kg_h", f"measured_rate_kg_h '{raw_rate}' must be a number ≥ 0"))
        if str(df.at[i, "repaired_at"]).strip() and pd.isna(repaired[i]):
            rej.append((r, "repaired_at", f"cannot read '{df.at[i, 'repaired_at']}' as an ISO 8601 time"))
        # optional columns beyond contract §2 (lifecycle and compliance): checked the same way
        if str(df.at[i, "repair_attempted_at"]).strip() and pd.isna(attempted[i]):
            rej.append(
                (r, "repair_attempted_at", f"cannot read '{df.at[i, 'repair_attempted_at']}' as an ISO 8601 time")
            )
        if found_by[i] and found_by[i] not in FOUND_BY:
            rej.append((r, "found_by", f"found_by '{df.at[i, 'found_by']}' is not one of {', '.join(FOUND_BY)}"))
    rejects = pd.DataFrame(rej, columns=["row", "column", "reason"])
    bad = set(rejects["row"] - 2)
    ok = df.index[~df.index.isin(list(bad))]
    good = pd.DataFrame(
        {
            "leak_id": df.loc[ok, "leak_id"].astype(str).str.strip(),
            "visited_at": visited[ok],
            "outcome": outcome[ok],
            "measured_rate_kg_h": rate[ok],
            "component": df.loc[ok, "component"].replace("", None),
            "repaired_at": repaired[ok],
            "crew": df.loc[ok, "crew"].replace("", None),
            "notes": df.loc[ok, "notes"].replace("", None),
            "found_by": found_by[ok].replace("", None),
            "rate_method": df.loc[ok, "rate_method"].replace("", None),
            "repair_attempted_at": attempted[ok],
            "delay_reason": df.loc[ok, "delay_reason"].replace("", None),
        }
    )
    return good, rejects


def record_validations(
    session: Session, good: pd.DataFrame, user: str = "system", batch: IngestBatch | None = None
) -> dict:
    """Insert outcomes (the same leak, time and outcome again is a duplicate, not a new row) and move each
    leak through its lifecycle (``mlpe_core.lifecycle``); rows with an illegal move come back in
    ``rejects`` (row, column, reason) and are not recorded.

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
    """One attempt: lock the leaks, drop duplicates, run the rows through the lifecycle, write, commit.

    A row whose move is illegal for its leak (e.g. ``not_found`` for a leak a crew confirmed, a repair
    of a leak never confirmed) is rejected with the reason, like any other bad row (row number =
    frame index + 2, the file line).
    """
    from .lifecycle import lock_states, plan_validations, save_states

    recs = [(int(i) + 2, r) for i, r in zip(good.index, good.to_dict(orient="records"), strict=True)]
    try:
        states = lock_states(session, [r["leak_id"] for _, r in recs])  # takes the write lock first
        existing = {
            (a, pd.Timestamp(b).tz_localize("UTC") if pd.Timestamp(b).tzinfo is None else pd.Timestamp(b), c)
            for a, b, c in session.execute(select(Validation.leak_id, Validation.visited_at, Validation.outcome))
        }
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
            session.add(batch)
            session.flush()
        for r in rows:
            clean = {
                k: (None if (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT) else v)
                for k, v in r.items()
            }
            for k in ("visited_at", "repaired_at", "repair_attempted_at"):
                if clean.get(k) is not None:
                    clean[k] = pd.Timestamp(clean[k]).to_pydatetime()
            session.add(
                Validation(
                    **clean, recorded_at=now(), recorded_by=user, batch_id=batch.id if batch is not None else None
                )
            )
        save_states(session, states)
        for r in rows:
            audit(session, user, "validation", r["leak_id"], {"outcome": r["outcome"], "visited_at": r["visited_at"]})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {
        "recorded": len(rows),
        "duplicates": dup,
        "rejected": len({n for n, _, _ in rej}),
        "rejects": pd.DataFrame(rej, columns=["row", "column", "reason"]),
    }


def import_validations(session: Session, path: str | Path, user: str = "system") -> dict:
    path = Path(path)
    raw = read_table(path)
    known = set(session.execute(select(Leak.leak_id)).scalars())
    good, rejects = validate_validations(raw, known, path.name)
    batch = file_batch(path, "validations", user, n_rows=len(raw), n_rejected=len(set(rejects["row"])))
    res = record_validations(session, good, user, batch)
    lifecycle_rejects = res.pop("rejects")
    res.pop("rejected")
    if len(lifecycle_rejects):
        rejects = pd.concat([rejects, lifecycle_rejects], ignore_index=True).sort_values("row", kind="stable")
        rejects = rejects.reset_index(drop=True)
    return {"file": path.name, "rows": len(raw), "rejected": int(batch.n_rejected), "rejects": rejects, **res}


def save_model(
    session: Session,
    kind: str,
    model_blob: bytes | None,
    metrics: dict,
    features: list[str],
    data_hash: str,
    decision: str,
    promote: bool,
    n_train: int = 0,
    n_holdout: int = 0,
    user: str = "system",
) -> ModelVersion:
    if promote:
        session.execute(update(ModelVersion).values(active=False))
    mv = ModelVersion(
        created_at=now(),
        kind=kind,
        active=promote,
        promoted=promote,
        decision=decision,
        metrics=json.dumps(metrics, default=float),
        features=json.dumps(features),
        data_hash=data_hash,
        n_train=n_train,
        n_holdout=n_holdout,
        blob=model_blob,
    )
    session.add(mv)
    session.flush()
    audit(session, user, "model_promoted" if promote else "model_trained", f"model:{mv.id}", {"decision": decision})
    session.commit()
    return mv


def activate_model(session: Session, version_id: int, user: str = "system") -> None:
    """Roll back (or forward) to a recorded model version."""
    require(session, user, "promote_model")
    mv = session.get(ModelVersion, version_id)
    if mv is None:
        raise ValueError(f"no model version {version_id}")
    session.execute(update(ModelVersion).values(active=False))
    mv.active = True
    session.add(mv)
    audit(session, user, "model_activated", f"model:{version_id}", {})
    session.commit()


def clear_store(session: Session) -> None:
    for m in (Validation, Detection, Leak, IngestBatch, ModelVersion, AuditEvent, Asset):
        session.execute(delete(m))
    session.commit()
