"""Lineage: a leak's full story, from the file rows that created it to its repair.

Regulators and supervisors ask "why did you send a crew there, and what happened?". The answer is
assembled from what the store already keeps: each detection with the file, hash and row it came
from, the score and model that ranked the leak, lifecycle transitions, field visits and the
append-only audit trail. Nothing here writes.
"""

from __future__ import annotations

import math

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from .errors import NotFound
from .present import detail_text, label, rules_in_text
from .store import rank_of
from .store.models import AuditEvent, Detection, IngestBatch, Leak, LeakEvent, Validation

STORY_COLUMNS = ["at", "kind", "what", "who", "source"]


def _num(x: float) -> str:
    """A reading as precise as it is: "12.5", "0.043" (not "0.0"), "0"."""
    return "0" if x == 0 else f"{x:,.1f}" if abs(x) >= 1 else f"{x:.2g}"


def _rate(v: float | None, u: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "rate not quantified"
    if u is None or (isinstance(u, float) and math.isnan(u)) or u == 0:
        return f"{_num(v)} kg/h"
    return f"{_num(v)} ± {_num(u)} kg/h"


def leak_story(session: Session, leak_id: str) -> pd.DataFrame:
    """Every event of one leak, oldest first, with who did it and where it came from."""
    leak = session.get(Leak, leak_id)
    if leak is None:
        raise NotFound(f"no leak '{leak_id}'")
    rows: list[dict] = []
    q = (select(Detection, IngestBatch).join(IngestBatch, Detection.batch_id == IngestBatch.id, isouter=True)
         .where(Detection.leak_id == leak_id))
    for det, batch in session.execute(q):
        src = (f"{batch.file_name} row {det.source_row} (sha256 {batch.sha256[:10]}…, loaded "
               f"{pd.Timestamp(batch.ingested_at):%Y-%m-%d %H:%M})" if batch is not None else "unknown file")
        amb = "; ambiguous: could belong to a neighbouring leak" if det.ambiguous else ""
        rows.append({"at": det.observed_at, "kind": "detection",
                     "what": f"{det.source_name} ({label('sensor', det.source_type).lower()}) {det.detection_id}: "
                             f"{_rate(det.rate_kg_h, det.rate_uncertainty_kg_h)}{amb}",
                     "who": batch.recorded_by if batch is not None else "", "source": src})
    if leak.scored_at is not None:
        rank = rank_of(session, leak_id)
        ranked = f"rank {rank:,}" if rank is not None else "not ranked"
        rows.append({"at": leak.scored_at, "kind": "score",
                     "what": f"{ranked}, {label('band', leak.risk_band).lower()} risk, P(real) "
                             f"{leak.p_real:.0%}, ~{leak.est_rate_kg_h or 0:,.1f} kg/h: "
                             f"{rules_in_text(leak.top_reasons)}"
                     if leak.p_real is not None else "scored",
                     "who": "system", "source": f"model version {leak.model_version}"})
    for ev in session.execute(select(LeakEvent).where(LeakEvent.leak_id == leak_id)).scalars():
        extra = detail_text(ev.detail) if ev.detail else ""
        rows.append({"at": ev.at, "kind": "lifecycle",
                     "what": f"{label('event', ev.event)}: {label('status', ev.from_status).lower()} → "
                             f"{label('status', ev.to_status).lower()}" + (f" ({extra})" if extra else ""),
                     "who": ev.actor, "source": ev.source or ""})
    for v in session.execute(select(Validation).where(Validation.leak_id == leak_id)).scalars():
        measured = f", measured {v.measured_rate_kg_h:,.1f} kg/h" if v.measured_rate_kg_h is not None else ""
        rows.append({"at": v.visited_at, "kind": "field visit",
                     "what": f"{label('outcome', v.outcome)}{measured}"
                             + (f", component {v.component}" if v.component else "")
                             + (f", repaired {pd.Timestamp(v.repaired_at):%Y-%m-%d}" if v.repaired_at else "")
                             + (f": {v.notes}" if v.notes else ""),
                     "who": f"{v.crew or ''} (recorded by {v.recorded_by})".strip(),
                     "source": f"validation {v.id}" + (f", batch {v.batch_id}" if v.batch_id else "")})
    for a in session.execute(select(AuditEvent).where(AuditEvent.target == leak_id)).scalars():
        words = detail_text(a.detail) if a.detail else ""
        rows.append({"at": a.at, "kind": "audit", "what": label("action", a.action) + (f": {words}" if words else ""),
                     "who": a.actor, "source": f"audit {a.id}"})
    df = pd.DataFrame(rows, columns=STORY_COLUMNS)
    df["at"] = pd.to_datetime(df["at"], utc=True)
    return df.sort_values("at", kind="stable").reset_index(drop=True)
