"""Obligations: the queue of what regulation (or the operator's own policy) requires and by when, independent of
the methane ranking, plus the likely-notification watch list beside it.

Every row is one clock of one rule for one leak (or one notice not yet matched to a leak): the rule's label,
the action, the due date, its state, what started it (the notice, detection, field find or exceedance), the
citation and whether the rule was checked against the text in force, and whether it is voluntary. Colorado's
working-day clocks skip Colorado's public holidays (the rule's ``holidays: US-CO``, from the ``holidays``
package). Faces (CLI, API, pages) show this frame through the desk; none rebuilds it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlmodel import Session

from .candidates import WATCH_COLUMNS, watch_list
from .clocks import clock_instances
from .rules import DUE_SOON_DAYS, load_rules

OBLIGATION_COLUMNS = ["leak_id", "site", "rule", "title", "action", "due_by", "state", "days_left", "started_at",
                      "started_by", "started_ref", "started_text", "met_at", "citation", "verified", "voluntary",
                      "due_rule"]

STATES = ("overdue", "due soon", "running", "met")


def obligations(dets: pd.DataFrame, validations: pd.DataFrame | None, rules: list[dict], as_of: pd.Timestamp,
                notifications: pd.DataFrame | None = None, assets: pd.DataFrame | None = None,
                leaks: pd.DataFrame | None = None, coverage: pd.DataFrame | None = None,
                baselines: dict[str, float] | None = None, include_met: bool = True) -> pd.DataFrame:
    """Every obligation, overdue first, then due soon, running and met, each by due date (``OBLIGATION_COLUMNS``).

    ``state``: overdue (due before ``as_of`` and not met), due soon (within ``DUE_SOON_DAYS``), running, or met
    (``met_at`` is the record that met it). ``days_left`` is whole days to the due date (negative when overdue).
    ``title`` is the rule's label, ``started_*`` what started the clock (``comply.clocks.clock_instances``)."""
    inst = clock_instances(dets, validations, rules, assets, leaks, baselines, notifications, coverage)
    if not include_met:
        inst = inst[inst["met_at"].isna()]
    if inst.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in OBLIGATION_COLUMNS})
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    by_id = {r["id"]: r for r in rules}
    out = inst.copy()
    met = out["met_at"].notna()
    overdue = ~met & (out["due_by"] < as_of)
    soon = ~met & ~overdue & (out["due_by"] <= as_of + pd.Timedelta(days=DUE_SOON_DAYS))
    out["state"] = np.select([met, overdue, soon], ["met", "overdue", "due soon"], "running")
    out["days_left"] = np.floor((out["due_by"] - as_of) / pd.Timedelta(days=1)).astype(int)
    out["title"] = out["rule"].map(lambda r: by_id[r].get("label", by_id[r]["name"]))
    out["citation"] = out["rule"].map(lambda r: by_id[r]["citation"])
    out["verified"] = out["rule"].map(lambda r: bool(by_id[r]["verified"]))
    for c in ("leak_id", "site"):  # a notice not yet matched runs on no leak: None, not NaN, in every face
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    out["order"] = out["state"].map({s: i for i, s in enumerate(STATES)})
    out = out.sort_values(["order", "due_by", "leak_id", "rule", "action"], kind="stable", na_position="last")
    return out[OBLIGATION_COLUMNS].reset_index(drop=True)


def obligation_queue(session: Session, as_of: pd.Timestamp | None = None, rules: list[dict] | None = None,
                     coverage: pd.DataFrame | None = None, include_met: bool = True
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store's obligations and watch list (``obligations``, ``candidates.watch_list``) for active leaks and
    every notice, as of ``as_of`` (default: now). What the desk returns to the Obligations page, ``GET
    /obligations`` and the command line."""
    from .. import store

    rules = rules if rules is not None else load_rules()
    as_of = pd.Timestamp.now(tz="UTC") if as_of is None else pd.Timestamp(as_of)
    leaks = store.leaks_frame(session)
    dets = store.detections_frame(session)
    dets = dets[dets["leak_id"].isin(leaks["leak_id"])] if len(leaks) else dets.iloc[0:0]
    notes = store.notifications_frame(session)
    ob = obligations(dets, store.validations_frame(session), rules, as_of, notifications=notes,
                     assets=store.assets_frame(session, ["asset_id", "asset_type"]), leaks=leaks,
                     coverage=coverage, include_met=include_met)
    watch = watch_list(dets, rules, as_of, notes, leaks) if len(dets) else pd.DataFrame(columns=WATCH_COLUMNS)
    return ob, watch
