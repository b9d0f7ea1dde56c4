"""Loading: check a file's structure (nothing written on a structural error), then load its good rows
in one transaction through the store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .. import store
from ..auth import require
from ..progress import Progress, say, scaled
from ..runlog import lap
from ..store.models import Asset, IngestBatch
from .errors import IngestError, IngestReport
from .formats import FORMATS, to_canonical
from .readers import file_sha256, read_table
from .validate import validate_coverage, validate_detections


@dataclass
class PreparedFile:
    """A file that passed every structural check: its hash and canonical rows (None when already loaded)."""

    label: str
    sha256: str
    canon: pd.DataFrame | None
    seen: IngestBatch | None


def prepare_file(
    session: Session, path: str | Path, fmt: str = "auto", source_name: str | None = None, label: str | None = None,
    asset: str | None = None,
) -> PreparedFile:
    """Read and map one file, raising IngestError on any structural problem; writes nothing.

    ``asset`` names the site of a window file that has no site column (``--asset``).

    A file whose bytes were loaded before is not read at all. Callers that load several files check
    them all with this first, so a bad file among several loads nothing, and each file is read once.
    """
    path = Path(path)
    label = label or path.name
    if fmt not in FORMATS:
        raise IngestError(label, f"unknown --format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not path.exists():
        raise IngestError(label, "file not found")
    if path.is_dir():
        raise IngestError(label, "is a folder, not a file")
    sha = file_sha256(path)
    seen = _batch_with_sha(session, sha)
    lap("hash")
    if seen is not None:
        return PreparedFile(label, sha, None, seen)
    canon = to_canonical(read_table(path, label), fmt, source_name, label, asset)
    lap("read")
    return PreparedFile(label, sha, canon, None)


def load_prepared(
    session: Session, prep: PreparedFile, user: str = "system", *, progress: Progress = None
) -> IngestReport:
    """Load a prepared file in one transaction (see :func:`ingest_frame`)."""
    # the same bytes loaded before, or since it was prepared (the same file twice in one command): nothing to do
    seen = prep.seen or _batch_with_sha(session, prep.sha256)
    if seen is not None:
        require(session, user, "ingest")
        say(progress, 1.0, f"{prep.label}: already ingested")
        return IngestReport(file_name=prep.label, sha256=prep.sha256, format=seen.format, n_rows=seen.n_rows,
                            n_duplicate=seen.n_rows, already_ingested=True, batch_id=seen.id)
    say(progress, 0.2, f"read {len(prep.canon):,} rows")
    return ingest_frame(session, prep.canon, prep.label, sha256=prep.sha256, user=user,
                        progress=scaled(progress, 0.2, 1.0))


def ingest_file(
    session: Session,
    path: str | Path,
    fmt: str = "auto",
    source_name: str | None = None,
    user: str = "system",
    label: str | None = None,
    *,
    progress: Progress = None,
    asset: str | None = None,
) -> IngestReport:
    """Validate one file and load its good rows in one transaction; structural errors write nothing.

    ``progress(fraction, text)``, when given, is called as the file is read, checked and written. ``asset``
    names the site of a window file without a site column (``--asset``).
    """
    require(session, user, "ingest")
    say(progress, 0.0, f"reading {label or Path(path).name}")
    return load_prepared(session, prepare_file(session, path, fmt, source_name, label, asset), user,
                         progress=progress)


def _batch_with_sha(session: Session, sha256: str) -> IngestBatch | None:
    return session.execute(
        select(IngestBatch).where(IngestBatch.sha256 == sha256,
                                  IngestBatch.kind.in_(("detections", "coverage")))  # a window file alone: coverage
        .order_by(IngestBatch.id).limit(1)
    ).scalars().first()


def ingest_frame(
    session: Session,
    canon: pd.DataFrame,
    file_name: str,
    sha256: str | None = None,
    user: str = "system",
    first_row: int = 2,
    *,
    progress: Progress = None,
) -> IngestReport:
    """Load a canonical text frame (as from :func:`to_canonical`); the same content twice changes nothing.

    Rows that name an ``asset_id`` but leave both coordinates blank take the asset's position from
    the registry (the Asset table); an unknown asset rejects the row.
    """
    require(session, user, "ingest")
    fmt = canon.attrs.get("format", "canonical")
    if sha256 is None:
        sha256 = hashlib.sha256(pd.util.hash_pandas_object(canon.astype(str), index=False).values.tobytes()).hexdigest()
    skip = getattr(canon.attrs.get("not_detection"), "value", None)
    n_cov_rows = int(np.sum(skip)) if skip is not None else 0
    n_rows = len(canon) - n_cov_rows  # detection rows: coverage-only rows of a window file are not detections
    report = IngestReport(file_name=file_name, sha256=sha256, format=fmt, n_rows=n_rows, n_coverage_rows=n_cov_rows)
    seen = _batch_with_sha(session, sha256)
    if seen is not None:
        report.already_ingested = True
        report.batch_id = seen.id
        report.n_duplicate = n_rows
        return report
    say(progress, 0.0, f"checking {len(canon):,} rows")
    lookup = lambda ids: _asset_positions(session, ids)  # noqa: E731
    good, rejects = validate_detections(canon, first_row=first_row, assets=lookup, progress=scaled(progress, 0.0, 0.3))
    # exact even when only the first MLPE_MAX_REJECT_ROWS rejected rows keep their reasons (validate._reject_table)
    n_rejected = int(rejects.attrs.get("n_rows", rejects["row"].nunique() if len(rejects) else 0))
    windows, cov_rejects = validate_coverage(canon, good, first_row=first_row, assets=lookup)
    lap("validate")
    if len(cov_rejects):
        attrs = dict(rejects.attrs)
        rejects = pd.concat([rejects, cov_rejects], ignore_index=True).sort_values(["row", "column"], kind="stable")
        rejects = rejects.reset_index(drop=True)
        rejects.attrs.update(attrs)
    # a file of coverage windows alone (the monitors' watched and offline time) is a coverage batch: the ingest
    # history said "Detections, 0 rows, 0 accepted" for it
    coverage_only = n_rows == 0 and n_cov_rows > 0
    batch = IngestBatch(
        file_name=file_name, sha256=sha256, format=fmt, kind="coverage" if coverage_only else "detections",
        ingested_at=datetime.now(UTC), recorded_by=user, n_rows=n_cov_rows if coverage_only else n_rows,
        n_accepted=len(good), n_rejected=n_rejected, n_duplicate=0,
    )
    try:
        store.add_batch(session, batch)
        n_new = store.insert_detections(session, good, batch.id, scaled(progress, 0.3, 0.99)) if len(good) else 0
        if len(windows):
            report.coverage_states = store.insert_coverage(session, windows, batch.id)
            report.n_coverage = int(sum(report.coverage_states.values()))
        batch.n_accepted, batch.n_duplicate = n_new, len(good) - n_new
        if coverage_only:  # the windows kept, and the rows refused
            batch.n_accepted = report.n_coverage
            batch.n_rejected = int(cov_rejects["row"].nunique()) if len(cov_rejects) else 0
        store.add_batch(session, batch)
        say(progress, 0.99, "committing")
        session.commit()
        lap("write")
    except BaseException:
        session.rollback()
        raise
    report.batch_id = batch.id
    report.n_accepted, report.n_rejected, report.n_duplicate = batch.n_accepted, batch.n_rejected, batch.n_duplicate
    report.rejects = rejects
    report.n_from_registry = int(good.attrs.get("n_from_registry", 0))
    report.n_coverage_rejected = int(cov_rejects["row"].nunique()) if len(cov_rejects) else 0
    report.flags = _flag_table(canon, first_row)
    say(progress, 1.0, f"{file_name}: {report.n_accepted:,} accepted, {report.n_rejected:,} rejected, "
                        f"{report.n_duplicate:,} already loaded")
    return report


def _flag_table(canon: pd.DataFrame, first_row: int) -> pd.DataFrame:
    """Rows the mapping reported without rejecting them (``attrs['flags']``), as row, column, value, reason."""
    flags = getattr(canon.attrs.get("flags"), "value", None) or []
    parts = [pd.DataFrame({"row": np.asarray(idx, np.int64) + first_row, "column": column,
                           "value": [str(v) for v in values],
                           "reason": reason if isinstance(reason, list) else [reason] * len(idx)})
             for idx, column, reason, values in flags]
    if not parts:
        return pd.DataFrame(columns=["row", "column", "value", "reason"])
    return pd.concat(parts, ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)


def _asset_positions(session: Session, ids: list[str]) -> pd.DataFrame:
    """Registry positions of ``ids`` (the whole registry when that is cheaper than asking id by id)."""
    cols = (Asset.asset_id, Asset.latitude, Asset.longitude)
    if len(ids) > 5000:
        rows = session.execute(select(*cols)).all()
    else:
        rows = []
        for start in range(0, len(ids), 500):
            rows += session.execute(select(*cols).where(Asset.asset_id.in_(ids[start:start + 500]))).all()
    return pd.DataFrame(rows, columns=["asset_id", "latitude", "longitude"])
