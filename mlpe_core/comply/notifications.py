"""Notifications: record the notices that start legal clocks, and tie each to the leak it concerns.

A notice (an EPA super-emitter notification, a UNEP IMEO MARS alert, a state's notice) starts the clocks of the
rules that name its program, dated from its receipt. To run them on a leak it must be matched:

1. **reference**: its ``detection_ref`` is a stored detection's ``detection_id`` (the source's plume id for
   Carbon Mapper and MARS files; ``source_name:detection_id`` when two sources share an id); the leak holding
   that detection. Two leaks holding detections of that id: the one nearest the notice's position, else the
   one seen last before its receipt.
2. **position**: else the leak with the nearest detection within ``settings.notifications.match_distance_m`` of
   the notice's position, observed at most ``match_days`` before its receipt (and not after it, a day of slack
   for clocks and time zones).
3. otherwise unmatched: listed with its clocks but no leak, for a person to match (:func:`set_match`).

A person's match (``manual``, audited, also "no leak") is kept; the others are recomputed after every fuse
(:func:`rematch_notifications`), so a notice that arrived before its detection matches once the detection is in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from sqlmodel import Session

from .. import store
from ..auth import require
from ..errors import BadInput, NotFound
from ..geo import to_ecef
from ..ingest import file_sha256, read_table
from ..ingest.notifications import check_notifications
from ..schema import NOTIFICATION_COLUMNS
from .rules import DEFAULT_SETTINGS, load_rules

MATCH_COLUMNS = ["notification_id", "leak_id", "match_method", "match_distance_m"]


def _ecef(lat, lon) -> np.ndarray:
    return to_ecef(np.asarray(lat, float), np.asarray(lon, float))


def match_notifications(notes: pd.DataFrame, dets: pd.DataFrame, settings: dict | None = None) -> pd.DataFrame:
    """The leak each notice concerns (see the module docstring), for every notice not matched by hand.

    ``notes``: notification_id, received_at, detection_ref, latitude, longitude (and match_method: rows whose
    method is ``manual`` are left out). ``dets``: detection_id, source_name, observed_at, latitude, longitude,
    leak_id. Returns ``MATCH_COLUMNS``; leak_id and match_method are None when unmatched; match_distance_m is the
    distance from the notice's position to the matched detection (None without a position).
    """
    cfg = {**DEFAULT_SETTINGS["notifications"], **((settings or {}).get("notifications") or {})}
    radius, days = float(cfg["match_distance_m"]), int(cfg["match_days"])
    if "match_method" in notes:
        notes = notes[notes["match_method"].fillna("") != "manual"]
    if notes.empty:
        return pd.DataFrame(columns=MATCH_COLUMNS)
    d = dets[dets["leak_id"].notna()].reset_index(drop=True)
    d_time = pd.to_datetime(d["observed_at"], utc=True)
    d_naive = d_time.dt.tz_localize(None).to_numpy()
    xyz = _ecef(d["latitude"], d["longitude"]) if len(d) else np.zeros((0, 3))
    tree = cKDTree(xyz) if len(d) else None
    ids = d["detection_id"].astype(str).str.strip()
    full = (d["source_name"].astype(str) + ":" + ids) if "source_name" in d else ids
    by_ref: dict[str, list[int]] = {}
    for key in (ids, full):
        for k, grp in pd.Series(range(len(d)), index=key.to_numpy()).groupby(level=0):
            by_ref.setdefault(str(k), []).extend(grp.tolist())
    rows = []
    for n in notes.itertuples(index=False):
        received = pd.Timestamp(n.received_at)
        received = received.tz_localize("UTC") if received.tzinfo is None else received
        has_pos = pd.notna(getattr(n, "latitude", np.nan)) and pd.notna(getattr(n, "longitude", np.nan))
        here = _ecef([n.latitude], [n.longitude])[0] if has_pos else None
        ref = str(n.detection_ref).strip() if isinstance(n.detection_ref, str) else ""
        hits = sorted(set(by_ref.get(ref, []))) if ref else []
        if hits:
            cand = d.loc[hits]
            if here is not None:
                dist = np.linalg.norm(xyz[hits] - here, axis=1)
                best = int(np.argmin(dist))
                rows.append((n.notification_id, cand["leak_id"].iloc[best], "reference", float(dist[best])))
            else:
                before = d_time[hits] <= received + pd.Timedelta(days=1)
                pick = d_time[hits][before].idxmax() if before.any() else d_time[hits].idxmax()
                rows.append((n.notification_id, d.at[pick, "leak_id"], "reference", None))
            continue
        if here is not None and tree is not None:
            near = tree.query_ball_point(here, r=radius)
            if near:
                near = np.asarray(near)
                t = d_naive[near]
                lo = (received - pd.Timedelta(days=days)).tz_convert("UTC").tz_localize(None).to_datetime64()
                hi = (received + pd.Timedelta(days=1)).tz_convert("UTC").tz_localize(None).to_datetime64()
                ok = near[(t >= lo) & (t <= hi)]
                if len(ok):
                    dist = np.linalg.norm(xyz[ok] - here, axis=1)
                    best = int(np.argmin(dist))
                    rows.append((n.notification_id, d.at[int(ok[best]), "leak_id"], "position", float(dist[best])))
                    continue
        rows.append((n.notification_id, None, None, None))
    return pd.DataFrame(rows, columns=MATCH_COLUMNS)


def rematch_notifications(session: Session, settings: dict | None = None) -> dict:
    """Recompute every match not set by hand and write the ones that changed (no commit: the caller's
    transaction, e.g. the fuse that just moved detections). Returns counts: matched, unmatched, changed."""
    notes = store.notifications_frame(session)
    if notes.empty:
        return {"matched": 0, "unmatched": 0, "changed": 0}
    if settings is None:
        settings = load_rules().settings
    dets = store.detections_frame(session)
    m = match_notifications(notes, dets, settings)
    cur = notes.set_index("notification_id")
    changed = []
    for r in m.itertuples(index=False):
        old = cur.loc[r.notification_id]
        same_leak = (old["leak_id"] if isinstance(old["leak_id"], str) else None) == r.leak_id
        same_how = (old["match_method"] if isinstance(old["match_method"], str) else None) == r.match_method
        if not (same_leak and same_how):
            changed.append(r._asdict())
    if changed:
        store.set_notification_matches(session, changed)
    manual = notes["match_method"].fillna("") == "manual"
    matched = int((m["leak_id"].notna()).sum() + (manual & notes["leak_id"].notna()).sum())
    return {"matched": matched, "unmatched": len(notes) - matched, "changed": len(changed)}


def record_notifications(session: Session, good: pd.DataFrame, user: str = "system", batch=None) -> dict:
    """Store checked notices whose id is new, match them, audit each, and commit. Returns recorded, duplicates,
    matched and unmatched (of the notices recorded now) and ``ids`` (those notices' ids)."""
    require(session, user, "notifications")
    try:
        known = store.notification_ids(session)
        rows = good.to_dict(orient="records")
        fresh, seen = [], set()
        for r in rows:
            if r["notification_id"] in known or r["notification_id"] in seen:
                continue
            seen.add(r["notification_id"])
            fresh.append(r)
        if batch is not None:
            batch.n_accepted, batch.n_duplicate = len(fresh), len(rows) - len(fresh)
            store.add_batch(session, batch)
        store.insert_notifications(session, fresh, user, batch.id if batch is not None else None)
        session.flush()
        rematch_notifications(session)
        session.flush()
        now = store.notifications_frame(session).set_index("notification_id")
        ids = [r["notification_id"] for r in fresh]
        matched = int(now.loc[ids, "leak_id"].notna().sum()) if ids else 0
        for r in fresh:  # an unmatched notice has no leak and no match method (NaN in the frame: None here)
            leak, how = (None if pd.isna(v) else v for v in now.loc[r["notification_id"], ["leak_id", "match_method"]])
            store.audit(session, user, "notification", leak, {"notification_id": r["notification_id"],
                        "program": r["program"], "received_at": r["received_at"], "match": how})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {"recorded": len(fresh), "duplicates": len(rows) - len(fresh), "matched": matched,
            "unmatched": len(fresh) - matched, "ids": [r["notification_id"] for r in fresh]}


def import_notifications(session: Session, path: str | Path, user: str = "system") -> dict:
    """``mlpe notifications import FILE``: check a notifications file (CSV, XLSX or JSON) row by row, record its
    good rows and match them. A structural problem (unreadable file, required column missing) raises
    ``IngestError`` and writes nothing. Returns file, rows, recorded, duplicates, matched, unmatched, rejected,
    rejects (row, column, reason)."""
    require(session, user, "notifications")
    path = Path(path)
    raw = read_table(path)
    good, rejects = check_notifications(raw, path.name)
    batch = store.file_batch(path.name, file_sha256(path), "notifications", user, n_rows=len(raw),
                             n_rejected=len(set(rejects["row"])))
    res = record_notifications(session, good, user, batch)
    res.pop("ids")
    return {"file": path.name, "rows": len(raw), **res, "rejected": int(len(set(rejects["row"]))), "rejects": rejects}


def add_notification(session: Session, fields: dict, user: str = "system") -> dict:
    """One notice entered by a person (the Leak page, the API): checked like a file row (a problem raises
    ``ValueError`` naming the field), recorded and matched. ``fields`` has the contract's columns as text or
    values; a ``leak_id`` in it is a person's match (manual). Returns the record_notifications summary."""
    raw = pd.DataFrame([{c: "" if fields.get(c) is None else str(fields.get(c)) for c in NOTIFICATION_COLUMNS}])
    good, rejects = check_notifications(raw, "notification")
    if len(rejects):
        r = rejects.iloc[0]
        raise BadInput(f"notification: field '{r['column']}': {r['reason']}")
    good = good.drop(columns=["source_row"]).assign(source_row=None)
    res = record_notifications(session, good, user)
    leak = fields.get("leak_id")
    if leak and res["recorded"]:
        set_match(session, good["notification_id"].iloc[0], str(leak), user, "entered with the notice")
        res.update(matched=1, unmatched=0)
    return res


def set_match(session: Session, notification_id: str, leak_id: str | None, user: str = "system",
              reason: str = "") -> dict:
    """A person's match of a notice to a leak (or ``None``: it concerns no leak of ours). Kept by later fuses;
    audited with the previous match. Raises KeyError for an unknown notice or leak."""
    from ..store.models import Leak, Notification

    require(session, user, "notifications")
    note = session.query(Notification).filter(Notification.notification_id == notification_id).one_or_none()
    if note is None:
        raise NotFound(f"no notification '{notification_id}'")
    if leak_id is not None and session.get(Leak, leak_id) is None:
        raise NotFound(f"no leak '{leak_id}'")
    before = {"leak_id": note.leak_id, "match_method": note.match_method}
    try:
        store.set_notification_matches(session, [{"notification_id": notification_id, "leak_id": leak_id,
                                                  "match_method": "manual", "match_distance_m": None}])
        store.audit(session, user, "notification_match", leak_id or before["leak_id"],
                    {"notification_id": notification_id, "from": before, "to": leak_id, "reason": reason})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {"notification_id": notification_id, "leak_id": leak_id, "match_method": "manual", "before": before}
