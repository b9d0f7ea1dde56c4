"""Pipeline: the stages wired to the store. The CLI, the app and the API all call these.

Each function runs one stage over what is in the store, in one transaction, records an audit
event, and returns a small summary dict for the caller to print or show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from . import store
from .auth import require
from .frames import distinct, isin
from .lifecycle import OPEN_STATUSES
from .runlog import lap
from .schema import CANONICAL_COLUMNS, VALIDATION_COLUMNS
from .store.detections import FUSE_COLUMNS, SCORE_COLUMNS
from .store.models import ModelVersion

# The stages are imported by the functions that run them: `mlpe assets import` does not load the fuser (scipy,
# pyproj), `mlpe fuse` not the scorer, and neither loads scikit-learn unless a learned model is stored.
if TYPE_CHECKING:
    from .fuse import LeakFuser

Progress = Callable[[float, str], None] | None

# What each stage reads from the store (a basin's reads skip the lineage, free-text and score columns it does not use)
FUSE_DETECTION_COLUMNS = FUSE_COLUMNS
SCORE_DETECTION_COLUMNS = SCORE_COLUMNS
# What a re-score with recorded sensor fits reads of every detection (the sensors' clocks and feeds, the sites); the
# other scoring columns only of the detections of the leaks it re-scores and their sites (``run_score_changed``)
SCORE_EVERY_COLUMNS = ("id", "leak_id", "source_name", "source_type", "observed_at", "latitude", "longitude",
                       "confidence", "asset_id")
# what an incremental fusion reads when it hands its frame over to the re-score (run_fuse's hand_over)
FUSE_HAND_OVER_COLUMNS = FUSE_COLUMNS + tuple(c for c in SCORE_EVERY_COLUMNS if c not in FUSE_COLUMNS)
# what a watcher keeps of every detection between cycles (``store.DetectionMemory``): all a fusion and a re-score read
MEMORY_COLUMNS = FUSE_HAND_OVER_COLUMNS + tuple(c for c in SCORE_DETECTION_COLUMNS if c not in FUSE_HAND_OVER_COLUMNS)
SCORE_LEAK_COLUMNS = ("leak_id", "latitude", "longitude", "radius_m", "asset_id", "status", "rank")
# what a re-score reads of every active leak: for the scoring, then for the ranking (run_score_changed)
RESCORE_LEAK_COLUMNS = (*SCORE_LEAK_COLUMNS, "priority_score", "p_real")


def say(progress: Progress, frac: float, text: str) -> None:
    if progress:
        progress(frac, text)


def warm_up() -> float:
    """Import what a fusion and a scoring import on first use (the clusterer alone ~1.3 s) and read the compliance
    rules (checked, and their holiday calendars built), so that a long-running process (``mlpe watch``) pays it at
    start, and fails there on a bad rule file, rather than in its first cycle. Returns seconds."""
    import importlib
    import time

    t0 = time.perf_counter()
    from . import comply, score, settings  # noqa: F401
    from .comply.notifications import rematch_notifications  # noqa: F401
    from .fuse import IncrementalFuser  # noqa: F401
    from .fuse.geometry import import_clusterer

    for part in ("assets", "batches", "coverage", "modelversions", "notifications", "runs", "validations"):
        importlib.import_module(f"{store.__name__}.{part}")  # the store's parts a cycle reads (loaded on first use)
    import_clusterer()
    comply.load_rules()
    return time.perf_counter() - t0


def remember_detections(session: Session, memory: store.DetectionMemory) -> None:
    """Fill a watcher's ``memory`` from the store: the detections, and what an incremental fusion derives from them
    (positions, KD-trees: ``IncrementalFuser.remember``), so its first cycle is as quick as the next ones."""
    from .fuse import IncrementalFuser

    frame = memory.frame(session, store.fusion_generation(session))
    IncrementalFuser(memory=memory.derived).remember(frame)


def run_fuse(
    session: Session,
    fuser: LeakFuser | None = None,
    user: str = "system",
    progress: Progress = None,
    full: bool = False,
    max_share: float = 0.5,
    hand_over: bool = False,
    memory: store.DetectionMemory | None = None,
) -> dict:
    """Group every detection into leaks, keeping the ids of leaks that still exist.

    After a first fusion, only detections not yet in a leak are new: the area they can change is re-fused
    (``fuse.IncrementalFuser``, the same result as fusing everything) and only its detections and leaks are
    rewritten. Everything is fused when ``full`` is set, when nothing was fused before, when the fuser's
    settings or the asset registry changed since the last fusion, or when the affected area is more than
    ``max_share`` of the store. The summary's ``mode`` says which was done, ``refused`` how many detections
    were re-fused and ``reason`` why.

    Concurrent runs (issue 16): the write is a compare-and-swap on the store's fusion generation, so a fusion
    that another fusion overtook writes nothing and starts again from the new state (a full fusion used to
    retire the leaks a concurrent incremental fusion had just made, orphaning their detections).

    ``hand_over`` (an incremental fusion only): the summary's ``detections_frame`` is the detections it read, as
    :data:`SCORE_EVERY_COLUMNS` (every :data:`SCORE_DETECTION_COLUMNS` with a ``memory``), with the leak ids it
    wrote: what :func:`run_score_changed` would read next (``dets=``), so a fuse-then-score cycle reads the million
    rows once (issue 18; not JSON: pop it).

    ``memory`` (a :class:`store.DetectionMemory` of :data:`MEMORY_COLUMNS`, held by ``mlpe watch``
    between cycles): the detections are the rows it holds plus those stored since (read in full when another
    process changed them), and it keeps the rows as this fusion wrote them, so a cycle reads only what is new.
    """
    require(session, user, "fuse")
    for attempt in range(1, FUSION_ATTEMPTS + 1):
        try:
            return _fuse_once(session, fuser, user, progress, full, max_share, hand_over, memory)
        except store.StaleFusion:
            session.rollback()  # another fusion wrote meanwhile: fuse again from what it left
            say(progress, 0.05, f"another fusion wrote meanwhile; fusing again (attempt {attempt + 1})")
    raise RuntimeError(f"other fusions kept writing: gave up after {FUSION_ATTEMPTS} attempts; run `mlpe fuse` again")


FUSION_ATTEMPTS = 5


def _fuse_once(session: Session, fuser: LeakFuser | None, user: str, progress: Progress, full: bool,
               max_share: float, hand_over: bool = False, memory: store.DetectionMemory | None = None) -> dict:
    """One fusion from the store as it is now; raises ``store.StaleFusion`` (nothing written) when another fusion
    wrote between this one's reads and its write."""
    from .comply.notifications import rematch_notifications
    from .fuse import FUSION_VERSION, IncrementalFuser, LeakFuser, attribute_assets, carry_ids

    generation = store.fusion_generation(session)  # before the reads: a fusion committing after it fails the swap
    if memory is not None:
        dets = memory.frame(session, generation)
    else:
        dets = store.detections_frame(session, columns=FUSE_HAND_OVER_COLUMNS if hand_over else FUSE_DETECTION_COLUMNS)
    if dets.empty:
        return {"detections": 0, "leaks": 0, "new": 0, "kept": 0, "retired": 0, "mode": "full", "refused": 0}
    assets = store.assets_frame(session, columns=["asset_id", "latitude", "longitude"])
    fuser = fuser or LeakFuser()
    coverage = store.coverage_frame(session)
    lap("read")
    # new coverage windows (a sensor's silences) change its streams' cuts: a different count re-fuses everything
    settings = {k: v for k, v in vars(fuser).items() if not k.endswith("_")} | {"version": FUSION_VERSION,
                                                                                "coverage_windows": len(coverage)}
    why_full = "asked for" if full else _stale_fusion(session, settings)
    say(
        progress, 0.1, f"clustering {len(dets):,} detections" if why_full else "finding the area new detections affect"
    )
    inc = IncrementalFuser(fuser, max_share=max_share, full=why_full is not None,
                           memory=memory.derived if memory is not None else None).fit(dets, assets, coverage)
    lap("cluster")
    reason = why_full or inc.reason_
    reg = inc.region_
    n_outside = int(dets.loc[~reg, "leak_id"].nunique())  # (a set of a million ids: 0.8 s; nunique 0.07 s)
    region_old = distinct(dets.loc[reg, "leak_id"])
    # the stored ids the region's leaks may keep, and where new ids start (not every stored id: 0.2 s at 100,000)
    existing = store.present_leak_ids(session, region_old)
    leaks = inc.leaks_.copy()
    say(progress, 0.6, f"{len(leaks):,} leaks; keeping ids and attributing assets")
    mapping = carry_ids(dets.loc[reg, "leak_id"], pd.Series(inc.labels_[reg], index=dets.index[reg]), existing,
                        next_number=store.next_leak_number(session))
    leaks["label"] = np.arange(len(leaks))
    leaks["leak_id"] = [mapping[i] for i in leaks["label"]]
    votes = pd.DataFrame({"label": inc.labels_[reg], "asset_id": dets.loc[reg, "asset_id"].to_numpy()}).dropna()
    attr = attribute_assets(leaks, assets, votes)
    leaks["asset_id"] = attr["asset_id"].to_numpy()
    leaks["asset_candidates"] = attr["asset_candidates"].map(json.dumps).to_numpy()
    leaks["active"] = True
    leak_ids = leaks["leak_id"].to_numpy()[inc.labels_[reg]] if reg.any() else np.zeros(0, dtype=object)
    produced = set(leaks["leak_id"])
    retired = region_old - produced
    lap("ids")
    try:
        store.save_fusion(
            session,
            dets.loc[reg, "id"].to_numpy(),
            leak_ids,
            inc.ambiguous_[reg],
            leaks.drop(columns=["label"]),
            retire=None if inc.full_ else retired,
            generation=generation,
            user=user,
            stored_leak_ids=dets.loc[reg, "leak_id"].to_numpy(dtype=object, na_value=None),
            stored_ambiguous=dets.loc[reg, "ambiguous"].fillna(False).to_numpy(bool),
        )
        summary = {
            "detections": len(dets),
            "leaks": n_outside + len(leaks),
            "kept": n_outside + len(produced & existing),
            "new": len(produced - existing),
            "retired": len(retired),
            "ambiguous": int(inc.ambiguous_.sum()),
            "mode": "full" if inc.full_ else "incremental",
            "new_detections": inc.n_new_,
            "refused": int(reg.sum()),
            "reason": reason,
        }
        session.flush()
        summary["notifications"] = rematch_notifications(session)  # a notice may now find its detection's leak
        store.audit(session, user, "fuse", None, {**summary, "settings": settings})
        session.commit()
        lap("write")
    except Exception:
        session.rollback()
        raise
    if memory is not None or (hand_over and not inc.full_):
        # the rows as they now are in the store: the re-fused area's leak ids and flags are those just written
        dets.loc[reg, "leak_id"] = leak_ids
        dets.loc[reg, "ambiguous"] = inc.ambiguous_[reg]
    if memory is not None:
        memory.keep(session, dets, generation + 1)  # the generation this write moved the store to (its swap held)
    if not inc.full_:
        # the leaks an incremental fusion wrote (every leak of the re-fused area): what run_score_changed re-scores
        summary["changed_leaks"] = sorted(produced)
        if hand_over:  # every scoring column when this fusion had them (a watcher's memory), else the ones it read
            every = set(SCORE_DETECTION_COLUMNS) <= set(dets.columns)
            summary["detections_frame"] = dets[list(SCORE_DETECTION_COLUMNS if every else SCORE_EVERY_COLUMNS)].copy()
    say(progress, 1.0, "fused")
    return summary


def _stale_fusion(session: Session, settings: dict) -> str | None:
    """Why the stored leaks cannot be fused into incrementally (None when they can).

    The last fusion must have used the same fuser settings and the same ``FUSION_VERSION`` (a fusion that
    recorded neither, made before incremental fusion existed, counts as different), and no asset import may
    have come after it (the registry decides which leaks a site's detections may join).
    """
    from .store.models import AuditEvent

    last = session.execute(
        select(AuditEvent.id, AuditEvent.detail)
        .where(AuditEvent.action == "fuse")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return "no previous fusion"
    before = json.loads(last.detail or "{}").get("settings")
    if before is None:
        return "the last fusion recorded no settings (an older MLPE)"
    if before != json.loads(json.dumps(settings)):
        return "fuser settings or version changed since the last fusion"
    later = session.execute(
        select(AuditEvent.id).where(AuditEvent.action == "assets_import", AuditEvent.id > last.id).limit(1)
    ).first()
    if later is not None:
        return "assets imported since the last fusion"
    return None


def _register_cold_start(session: Session, decision: str, user: str):
    from .score import FEATURES, default_model, dumps

    model = default_model()
    mv = store.save_model(
        session, "cold_start", dumps(model), {}, list(FEATURES), "", decision, promote=True, user=user
    )
    return model, mv.id


def current_model(session: Session, user: str = "system"):
    """The active scoring model and its version id; registers the cold-start model on first use.

    A stored model fitted on another feature list (a store from an older MLPE) cannot score today's
    features: a fresh cold-start version is registered and activated instead, saying why (the old
    version stays in the registry; `mlpe train` fits a new learned model).
    """
    from .score import FEATURES, loads

    mv = store.active_model(session)
    if mv is None:
        return _register_cold_start(session, "cold start: no validations yet", user)
    model = loads(mv.blob)
    if list(getattr(model, "feature_names_in_", FEATURES)) != list(FEATURES):
        return _register_cold_start(
            session,
            f"cold start: model version {mv.id} was fitted on an older feature list; retrain with `mlpe train`",
            user,
        )
    return model, mv.id


def clock(as_of=None) -> pd.Timestamp:
    """The time a score is computed as of: ``as_of`` when given (UTC), else now. Every "days ago", "overdue" and
    "today" counts from the as-of of the scores on show (``desk.as_of``)."""
    t = pd.Timestamp.now(tz="UTC") if as_of is None else pd.Timestamp(as_of)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def score_frame(
    session: Session, as_of: pd.Timestamp | None = None, user: str = "system", model=None,
    leak_ids: set[str] | None = None, dets: pd.DataFrame | None = None, sensor_fits: dict | None = None,
    leaks: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and scores for every active leak (not written). Returns (scored leaks, features).

    The active model (or ``model``) gives p_real, the contributions and, when it has learned one, the rate
    (``score.score_table``); compliance clocks add urgency and, with the obligation state, set the band.
    ``leak_ids`` limits the work to those leaks (their features from their own detections, the sensors' look
    statistics and fits still from every detection; their compliance clocks from the detections of the leaks
    sharing a site with them, all a leak's clocks depend on, :func:`site_scope`); ranks are then left to
    :func:`rank_open`. ``dets``: the store's detections (:data:`SCORE_DETECTION_COLUMNS`) when the caller has
    just read them in this transaction (a million rows take seconds to read: read once). ``sensor_fits``: the
    sensors' look efficiency and detection limit to use instead of fitting them (``score.leak_features``); the
    features carry those used in ``attrs["sensor_fits"]``. ``leaks``: the active leaks (:data:`SCORE_LEAK_COLUMNS`,
    in :func:`store.leaks_frame` order) when the caller has just read them.
    """
    from .comply import deadlines, load_rules
    from .score import leak_features, score_table

    if leaks is None:
        leaks = store.leaks_frame(session, columns=SCORE_LEAK_COLUMNS)
    if dets is None:
        dets = store.detections_frame(session, columns=SCORE_DETECTION_COLUMNS)
    dets = dets[isin(dets["leak_id"], leaks["leak_id"])]
    if leaks.empty or dets.empty:
        return leaks.iloc[0:0], pd.DataFrame()
    as_of = clock(as_of)
    cov = store.coverage_frame(session)
    lap("read")
    X = leak_features(dets, leaks, as_of, cov, only=None if leak_ids is None else set(leak_ids), fits=sensor_fits)
    lap("features")
    fits = X.attrs.get("sensor_fits", {})
    if leak_ids is not None:
        X = X[X.index.isin(leak_ids)]
    X.attrs["sensor_fits"] = fits
    if model is None:
        model, version = current_model(session, user)
    else:
        version = None
    vals = store.validations_frame(session)
    named = None
    if leak_ids is not None:  # a leak's clocks read its own detections and its sites' monitor readings only
        dets = dets[isin(dets["leak_id"], site_scope(leaks, dets, set(X.index)))]
        # and the type of the assets those detections and their leaks name: read those only
        named = distinct(pd.concat([dets["asset_id"], leaks.loc[isin(leaks["leak_id"], dets["leak_id"]), "asset_id"]]
                                   ).dropna())
    sites = store.assets_frame(session, ["asset_id", "asset_type"], ids=named)  # all a clock reads of an asset
    dl = deadlines(dets, vals, load_rules(), as_of, assets=sites, leaks=leaks,
                   notifications=store.notifications_frame(session)).reindex(X.index)
    lap("deadlines")
    s, _ = score_table(X, model, obligations=dl)  # urgency, and the band with its reason (score.rank.band_reasons)
    s["due_by"] = pd.to_datetime(dl["due_by"], utc=True)
    s["due_rule"] = dl["due_rule"]
    s["model_version"] = version
    s["scored_at"] = store.now()
    s = s.reset_index().rename(columns={"index": "leak_id"})
    status = leaks.set_index("leak_id")["status"].reindex(s["leak_id"]).to_numpy()
    order = rank_order(s.assign(status=status))  # the ranking among these leaks, by the rule every ranking uses
    s["rank"] = pd.Series(np.arange(1, len(order) + 1), index=order).reindex(s["leak_id"]).to_numpy()
    lap("score")
    return s, X


def fuse_summary(r: dict) -> str:
    """One line on a :func:`run_fuse` result, for `mlpe fuse` and the Upload page: what was done (full or
    incremental, and why full) and how much was re-fused."""
    tail = (
        f"into {r['leaks']:,} leaks ({r.get('kept', 0):,} kept ids, {r.get('new', 0):,} new, "
        f"{r.get('retired', 0):,} retired, {r.get('ambiguous', 0):,} ambiguous detections)"
    )
    if r.get("mode") == "incremental":
        if r.get("refused", 0) == 0:
            return f"nothing new to fuse: re-fused 0 of {r['detections']:,} detections; {r['leaks']:,} leaks unchanged"
        return (
            f"fused {r.get('new_detections', 0):,} new detections incrementally (re-fused {r['refused']:,} of "
            f"{r['detections']:,} in the affected area) {tail}"
        )
    why = f"; full re-fuse: {r['reason']}" if r.get("reason") else ""
    return f"fused {r['detections']:,} detections {tail}{why}"


def run_score(
    session: Session, as_of: pd.Timestamp | None = None, user: str = "system", progress: Progress = None,
    sensor_fits: dict | None = None,
) -> dict:
    """Score and rank every open leak as of ``as_of`` (default now), with reasons, and store the results.

    The as-of is recorded with the run (audit action ``score``): it is the clock every face counts from; so are
    the sensors' fitted look efficiency and detection limit (``sensor_fits``, which incremental re-scores reuse:
    :func:`run_score_changed`). ``sensor_fits`` given: those sensors are not fitted (a check of a re-score)."""
    require(session, user, "score")
    as_of = clock(as_of)
    for attempt in range(1, FUSION_ATTEMPTS + 1):
        try:
            return _score_once(session, as_of, user, progress, sensor_fits)
        except store.StaleFusion:
            session.rollback()  # a fusion wrote meanwhile: these ranks would name retired leaks and miss new ones
            say(progress, 0.05, f"a fusion wrote meanwhile; scoring again (attempt {attempt + 1})")
    raise RuntimeError(f"fusions kept writing: gave up scoring after {FUSION_ATTEMPTS} attempts; "
                       "run `mlpe score` again")


def _score_once(session: Session, as_of: pd.Timestamp | None, user: str, progress: Progress,
                sensor_fits: dict | None = None) -> dict:
    say(progress, 0.1, "computing features")
    run_lifecycle(session, user=user)  # leaks seen again after a repair or a not-found visit re-open first
    lap("lifecycle")
    generation = store.fusion_generation(session)  # before the leaks are read
    s, X = score_frame(session, as_of, user, sensor_fits=sensor_fits)
    if s.empty:
        return {"scored": 0, "high": 0, "medium": 0, "low": 0, "as_of": as_of}
    say(progress, 0.8, f"writing {len(s):,} scores")
    try:
        store.save_scores(session, s.drop(columns=["rank"]), generation=generation)
        ranked = rank_open(session)  # the whole ranking, as every re-score writes it (one DELETE, one INSERT)
        bands = s["risk_band"].value_counts()
        summary = {
            "scored": len(s),
            "ranked": len(ranked),
            "high": int(bands.get("HIGH", 0)),
            "medium": int(bands.get("MEDIUM", 0)),
            "low": int(bands.get("LOW", 0)),
            "model_version": int(s["model_version"].iloc[0]),
        }
        # the sensors' fitted look efficiency and detection limit: re-scores until the next scoring reuse them
        fits = {k: [float(c), float(L)] for k, (c, L) in X.attrs.get("sensor_fits", {}).items()}
        store.audit(session, user, "score", None, {**summary, "as_of": as_of.isoformat(), "sensor_fits": fits})
        session.commit()
        lap("write")
    except Exception:
        session.rollback()
        raise
    say(progress, 1.0, "scored")
    return {**summary, "as_of": as_of}


def rescore_leaks(session: Session, leak_ids: set[str], user: str = "system") -> dict:
    """Re-score only ``leak_ids`` as of the current scores' clock, then re-rank every open leak.

    Used when a field outcome is recorded: the visited leaks' clocks, bands and statuses change, the other
    leaks' scores do not, so only their ranks move. Returns the ranks before and after (open leaks)."""
    return _rescore(session, leak_ids, user)[0]


def _rescore(session: Session, leak_ids: set[str], user: str, ranks_before: bool = True,
             dets: pd.DataFrame | None = None, sensor_fits: dict | None = None, leaks: pd.DataFrame | None = None,
             generation: int | None = None) -> tuple[dict, pd.DataFrame | None]:
    """:func:`rescore_leaks`, and the new scores (None before the first scoring); ``dets`` and ``sensor_fits`` as
    for :func:`score_frame`. ``leaks``: the active leaks with :data:`RESCORE_LEAK_COLUMNS`, read in this transaction
    after ``generation`` was (so neither the scoring nor the ranking reads them again)."""
    require(session, user, "score")
    before = None
    if ranks_before:
        before = store.leaks_frame(session, columns=["leak_id"])
        before = before.loc[before["rank"].notna()].set_index("leak_id")["rank"].astype(int).to_dict()
    as_of = last_score_as_of(session)
    if as_of is None:
        return {"before": before, "after": before, "as_of": None}, None
    if leaks is None:
        generation = store.fusion_generation(session)  # before the leaks are read (as run_score does)
    s, _ = score_frame(session, as_of, user, leak_ids=set(leak_ids), dets=dets, sensor_fits=sensor_fits,
                       leaks=None if leaks is None else leaks[list(SCORE_LEAK_COLUMNS)])
    try:
        if len(s):
            store.save_scores(session, s.drop(columns=["rank"]), generation=generation)
        if leaks is None:
            after = rank_open(session)
        else:  # the leaks as read, with the scores just written
            new = s.set_index("leak_id") if len(s) else None
            lk = leaks.set_index("leak_id")
            if new is not None:
                for c in ("priority_score", "p_real"):
                    lk.loc[new.index, c] = new[c].to_numpy(float)
            after = rank_open(session, lk.reset_index())
        store.audit(session, user, "rescore", None, {"leaks": sorted(leak_ids), "as_of": as_of.isoformat()})
        session.commit()
        lap("write")
    except Exception:
        session.rollback()
        raise
    return {"before": before, "after": after, "as_of": as_of}, s


def site_scope(leaks: pd.DataFrame, dets: pd.DataFrame, leak_ids: set[str]) -> set[str]:
    """``leak_ids`` and every active leak sharing a site with one of them (its asset, or an asset a detection of
    it names): the leaks whose detections a site's action levels and their clocks read (``comply.action_levels``)."""
    def named(s: pd.Series) -> pd.Series:
        return s.notna() & s.astype(str).str.strip().ne("")

    mine_l = leaks[isin(leaks["leak_id"], leak_ids)]
    mine_d = dets[isin(dets["leak_id"], leak_ids)]
    sites = distinct(mine_l.loc[named(mine_l["asset_id"]), "asset_id"]) | distinct(
        mine_d.loc[named(mine_d["asset_id"]), "asset_id"])
    out = set(leak_ids)
    if sites:
        out |= distinct(leaks.loc[isin(leaks["asset_id"], sites), "leak_id"])
        out |= distinct(dets.loc[isin(dets["asset_id"], sites), "leak_id"])
    return out


def flown_over(leaks: pd.DataFrame, dets: pd.DataFrame, leak_ids: set[str]) -> set[str]:
    """The leaks in the look cells of the campaign sensors' (aircraft) detections of ``leak_ids``: a flight over
    a cell is a look at every leak in it, seen or not (``score.features.look_stats``), so their silence changed."""
    from .score.features import CAMPAIGN_CELL_DEG, LOOK_MODE, _cell_keys

    campaign = [t for t, mode in LOOK_MODE.items() if mode == "campaign"]
    d = dets[isin(dets["leak_id"], leak_ids) & isin(dets["source_type"], campaign)].dropna(subset=["latitude",
                                                                                                "longitude"])
    if d.empty:
        return set()
    cells = np.unique(_cell_keys(d["latitude"].to_numpy(float), d["longitude"].to_numpy(float), CAMPAIGN_CELL_DEG))
    lk = leaks.dropna(subset=["latitude", "longitude"])
    at = _cell_keys(lk["latitude"].to_numpy(float), lk["longitude"].to_numpy(float), CAMPAIGN_CELL_DEG)
    return set(lk.loc[np.isin(at, cells), "leak_id"])


RESCORE_MAX_AGE = pd.Timedelta(hours=24)  # older scores are re-computed in full (their clock moves to now)


def run_score_changed(session: Session, leak_ids: set[str], user: str = "system", progress: Progress = None,
                      max_age: pd.Timedelta = RESCORE_MAX_AGE, dets: pd.DataFrame | None = None) -> dict | None:
    """After an incremental fusion: re-score the leaks it changed, as of the current scores' clock, and re-rank
    every open leak from the stored priorities (:func:`rescore_leaks`, as for field outcomes).

    Re-scored: ``leak_ids`` (the fusion's ``changed_leaks``), the leaks the lifecycle re-opens, the leaks a
    notification is matched to, the leaks in the look cells their aircraft detections fall in (a flight over
    them is a look: :func:`flown_over`), and every leak sharing a site with one of these (a site's monitor
    readings start its leaks' action-level clocks: :func:`site_scope`). The sensors' look efficiency and detection
    limit are those the last full scoring fitted (:func:`last_score_fits`; fitting them reads every leak's rate),
    so their scores are those a full :func:`run_score` at that as-of with those fits gives; the other leaks keep
    theirs. Returns None (nothing done: score in full) before the first scoring, when it stored no fits, or when
    the scores' as-of is more than ``max_age`` old, so the clock every face counts from and the fits move on.
    ``dets``: :data:`SCORE_EVERY_COLUMNS` (or every :data:`SCORE_DETECTION_COLUMNS`) of every detection as the
    store holds them now (the frame an incremental fusion in this session just read and wrote:
    ``run_fuse(hand_over=True)``), instead of reading them again.
    """
    from .score.features import fits_cover

    require(session, user, "score")
    as_of, fits = last_score_as_of(session), last_score_fits(session)
    if as_of is None or fits is None or clock() - as_of > max_age:
        return None
    say(progress, 0.1, "re-scoring the leaks the fusion changed")
    reopened: list[str] = []
    run_lifecycle(session, user=user, reopened=reopened)
    lap("lifecycle")
    ids = set(leak_ids) | set(reopened)
    notes = store.notifications_frame(session)
    ids |= set(notes["leak_id"].dropna()) if len(notes) else set()
    # the leaks are read once, for the scope, the scoring and the ranking (after the generation, as run_score)
    generation = store.fusion_generation(session)
    leaks = store.leaks_frame(session, columns=RESCORE_LEAK_COLUMNS)
    # read once, for the scope and the scoring (nothing is written in between); with every sensor's fit recorded,
    # the columns only the re-scored leaks' rows need are read for those rows alone (4.0 s -> 2.2 s at 1M rows)
    if dets is None:
        dets = store.detections_frame(session, columns=SCORE_EVERY_COLUMNS)
    lap("read")
    local = fits_cover(dets, fits)
    complete = set(SCORE_DETECTION_COLUMNS) <= set(dets.columns)  # (the frame a watcher's fusion handed over)
    if not local and not complete:
        dets = store.detections_frame(session, columns=SCORE_DETECTION_COLUMNS)
    ids = distinct(leaks.loc[isin(leaks["leak_id"], ids), "leak_id"])
    ids = site_scope(leaks, dets, ids | flown_over(leaks, dets, ids))
    if local and not complete:  # score_frame's clocks read the sites of the re-scored leaks: site_scope of ids
        dets = _widened(session, dets, site_scope(leaks, dets, ids))
    lap("scope")
    r, s = _rescore(session, ids, user, ranks_before=False, dets=dets, sensor_fits=fits, leaks=leaks,
                    generation=generation)
    bands = s["risk_band"].value_counts() if s is not None and len(s) else pd.Series(dtype=int)
    say(progress, 1.0, "scored")
    return {"scored": 0 if s is None else len(s), "ranked": len(r["after"] or {}), "high": int(bands.get("HIGH", 0)),
            "medium": int(bands.get("MEDIUM", 0)), "low": int(bands.get("LOW", 0)), "as_of": as_of,
            "mode": "incremental"}


def _widened(session: Session, dets: pd.DataFrame, leak_ids: set[str]) -> pd.DataFrame:
    """``dets`` (:data:`SCORE_EVERY_COLUMNS` of every detection) with the other :data:`SCORE_DETECTION_COLUMNS`:
    their stored values on the detections of ``leak_ids``, blank on the others (which a scoring of ``leak_ids``
    with every sensor's fit given reads only through :data:`SCORE_EVERY_COLUMNS`: ``score.leak_features``)."""
    wide = store.detections_of_leaks(session, leak_ids, SCORE_DETECTION_COLUMNS)
    extra = [c for c in SCORE_DETECTION_COLUMNS if c not in dets.columns]
    w = wide.set_index("id")[extra].reindex(dets["id"].to_numpy())
    out = dets.copy()
    for c in extra:
        col = w[c].fillna(False).astype(bool) if wide[c].dtype == bool else w[c]
        out[c] = col.set_axis(out.index)
    return out[list(SCORE_DETECTION_COLUMNS)]


def rank_order(leaks: pd.DataFrame) -> pd.Series:
    """The ranking rule, the one every scoring and re-scoring uses: the open leaks that have a priority, by priority,
    then P(real), then leak id (so ties are broken the same way whatever the order of the rows). ``leaks``: leak_id,
    status, priority_score, p_real. Returns their leak ids, first to last."""
    open_ = leaks[isin(leaks["status"], OPEN_STATUSES) & leaks["priority_score"].notna()]
    return open_.sort_values(["priority_score", "p_real", "leak_id"], ascending=[False, False, True])["leak_id"]


def rank_open(session: Session, leaks: pd.DataFrame | None = None) -> dict[str, int]:
    """Rank the open leaks by their stored scores (:func:`rank_order`); others lose their rank. No commit. ``leaks``:
    every active leak's leak_id, status, priority_score and p_real, as the store now has them."""
    lk = leaks if leaks is not None else store.leaks_frame(session, columns=["status", "priority_score", "p_real"])
    order = rank_order(lk)
    ranks = dict(zip(order.tolist(), range(1, len(order) + 1), strict=True))
    # the whole ranking, rewritten: 500 new leaks move most of 100,000 ranks (a narrow table: 0.2 s)
    store.save_ranks(session, ranks, complete=True)
    return ranks


def last_score_as_of(session: Session) -> pd.Timestamp | None:
    """The as-of of the latest scoring run (None before the first)."""
    ev = store.latest_audit(session, "score")
    if ev is None:
        return None
    at = json.loads(ev.detail or "{}").get("as_of")
    return clock(at) if at else clock(ev.at)


def last_score_fits(session: Session) -> dict | None:
    """The sensors' look efficiency and detection limit {name: (c, L)} the latest scoring run used (None before
    the first, or from a scoring that did not record them)."""
    ev = store.latest_audit(session, "score")
    fits = None if ev is None else json.loads(ev.detail or "{}").get("sensor_fits")
    return None if fits is None else {k: (float(c), float(L)) for k, (c, L) in fits.items()}


def activate_model(session: Session, version_id: int, user: str) -> None:
    """Make a recorded model version the live one (roll back or forward): an admin's decision, audited."""
    require(session, user, "activate_model")
    store.activate_model(session, version_id, user=user)


def run_train(session: Session, user: str = "system") -> dict:
    """Fit a model from validations; promote it only if it beats the live one on visits neither saw.

    Every fitted candidate is recorded in the model registry with its hold-out metrics, the newest visit it
    was trained on (``trained_through``) and the decision; a promoted one becomes active and the leaks are
    re-scored with it. The learned model carries its rate model when at least ``learn.MIN_RATES`` measured
    rates exist. Training again on the outcomes the last version was fitted on records nothing.
    """
    from .learn import features_at_visits, outcome_labels, train_candidate  # scikit-learn: only when training
    from .score import FEATURES, dumps

    require(session, user, "train")
    vals = store.validations_frame(session)
    if vals.empty:
        return {
            "promoted": False,
            "decision": "not trained: no validations recorded yet (record outcomes with `mlpe validations import`)",
        }
    leaks = store.leaks_frame(session, active_only=False)
    dets = store.detections_frame(session)
    dets = dets[dets["leak_id"].notna()]
    # one label per leak and cycle (its first usable visit), with the features as the ranking saw them
    # then: detections observed before the visit, silence and recency counted at the visit
    labels = outcome_labels(vals, dets)
    X = features_at_visits(dets, leaks, labels, store.coverage_frame(session))
    lap("features")
    current, version = current_model(session, user)
    live = session.get(ModelVersion, version)
    through = json.loads(live.metrics or "{}").get("trained_through") if live is not None else None
    if through is None and live is not None and live.kind != "cold_start":  # an older MLPE recorded no cut-off:
        through = live.created_at  # every visit before it was made may have been seen
    last = store.models_frame(session)
    last_hash = next((h for h in last["data_hash"] if h), None) if len(last) else None
    res = train_candidate(X, labels, current, current_through=through, current_name=f"the live model v{version}",
                          last_hash=last_hash)
    lap("fit")
    if res["model"] is None:
        store.audit(session, user, "train", None, {"decision": res["decision"]})
        session.commit()
        return {"promoted": False, "decision": res["decision"]}
    mv = store.save_model(
        session,
        "learned",
        dumps(res["model"]),
        res["metrics"],
        list(FEATURES),
        res["data_hash"],
        res["decision"],
        res["promote"],
        res["metrics"].get("n_train_final", res["metrics"].get("n_train", 0)),
        res["metrics"].get("n_holdout", 0),
        user=user,
    )
    if res["promote"]:  # a promoted model ranks at once, as of the scores' clock: no stale scores until `mlpe score`
        run_score(session, as_of=last_score_as_of(session), user=user)
    return {
        "promoted": res["promote"],
        "decision": res["decision"],
        "version": mv.id,
        "n_holdout": res["metrics"].get("n_holdout", 0),
    }


def _fmt_time(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


ROUNDING = {
    "priority_score": 3,
    "p_real": 4,
    "est_rate_kg_h": 3,
    "rate_lo_kg_h": 3,
    "rate_hi_kg_h": 3,
    "latitude": 6,
    "longitude": 6,
    "radius_m": 1,
}


def round_export(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers rounded to what the measurement supports (a p_real to 4 places, coordinates to ~0.1 m)."""
    return df.round({k: v for k, v in ROUNDING.items() if k in df})


def export_frame(session: Session, what: str, top: int | None = None) -> pd.DataFrame:
    """The frame behind ``mlpe export detections|validations`` with the contract's columns first (leaks and
    dispatch come from ``desk``, which applies the effective ranking)."""
    if what == "detections":
        d = store.detections_frame(session)
        lead = ["detection_id", "source_name", "leak_id"]
        rest = [c for c in (*CANONICAL_COLUMNS, "ambiguous", "batch_id", "source_row") if c in d and c not in lead]
        return round_export(d[lead + rest])
    if what == "validations":
        v = store.validations_frame(session)
        return v.reindex(columns=list(VALIDATION_COLUMNS) + ["recorded_at", "recorded_by"])
    raise ValueError(f"unknown export '{what}' (leaks, detections, dispatch or validations)")


def run_demo(
    session: Session,
    seed: int = 0,
    n_assets: int = 2000,
    with_validations: bool = True,
    progress: Progress = None,
    user: str = "demo",
    end: str | None = None,
    n_days: int = 120,
) -> dict:
    """Fill the store with a simulated basin and run the pipeline (ingest, fuse, score, and a first
    round of field outcomes so the validation and model pages have something to show).

    The basin's ``n_days`` end at ``end`` (default: today, 00:00 UTC), so a new user sees live clocks; the
    first round of visits falls on the last ten days before it and everything is scored as of now (or
    ``end`` when it is given)."""
    require(session, user, "demo")
    from .ingest import ingest_frame, to_canonical
    from .simulate import simulate_basin

    say(progress, 0.05, "simulating basin")
    stop = clock(end).floor("D") if end is None else clock(end)
    score_at = None if end is None else stop
    basin = simulate_basin(seed=seed, n_assets=n_assets, n_days=n_days,
                           start=(stop - pd.Timedelta(days=n_days)).isoformat())
    tmp_assets = basin.assets
    store_assets(session, tmp_assets, user)
    n = 0
    for i, (name, feed) in enumerate(sorted(basin.feeds.items())):
        say(progress, 0.1 + 0.4 * i / max(len(basin.feeds), 1), f"ingesting {name}")
        text = feed.astype(object).where(feed.notna(), "")
        text["observed_at"] = pd.to_datetime(feed["observed_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        canon = to_canonical(text.astype(str), "canonical", None, f"demo-seed{seed}-{name}.csv")
        rep = ingest_frame(session, canon, f"demo-seed{seed}-{name}.csv", user=user)
        n += rep.n_accepted
    if len(basin.coverage):  # the monitors' watched windows (the ``coverage`` format)
        cov = basin.coverage.astype(object).where(basin.coverage.notna(), "")
        for c in ("start_at", "end_at"):
            cov[c] = pd.to_datetime(basin.coverage[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        name = f"demo-seed{seed}-coverage.csv"
        ingest_frame(session, to_canonical(cov.astype(str), "coverage", None, name), name, user=user)
    say(progress, 0.55, "fusing")
    fz = run_fuse(session, user=user)
    say(progress, 0.75, "scoring")
    sc = run_score(session, as_of=score_at, user=user)
    out = {
        "seed": seed,
        "assets": len(tmp_assets),
        "detections": n,
        **{f"fuse_{k}": v for k, v in fz.items()},
        **{f"score_{k}": v for k, v in sc.items()},
    }
    say(progress, 0.85, "simulating super-emitter notices and the operator's past compliance visits")
    out["notifications"] = simulate_notices(session, basin, seed=seed, user=user)
    out["compliance_visits"] = simulate_compliance(session, basin, seed=seed, user=user)
    if with_validations:
        say(progress, 0.9, "simulating a first round of field visits")
        out["validations"] = simulate_visits(session, basin, seed=seed, user=user, start_day=-10)
    run_score(session, as_of=score_at, user=user)
    say(progress, 1.0, "demo basin ready")
    return out


def simulate_notices(session: Session, basin, n: int = 5, seed: int = 0, user: str = "demo") -> int:
    """Record the simulated EPA super-emitter notices of a basin (``simulate.simulate_notifications``) as a person
    importing them would: checked, matched to their leaks, their legal clocks running from receipt."""
    from .comply.notifications import record_notifications
    from .ingest.notifications import check_notifications
    from .simulate import simulate_notifications

    notes = simulate_notifications(basin, n=n, seed=seed)
    if notes.empty:
        return 0
    good, _ = check_notifications(notes, "simulated notices")
    return record_notifications(session, good, user)["recorded"]


def _truth_outcome(sids: list, src: pd.DataFrame, rng: np.random.Generator) -> dict:
    """What a crew finds at a leak whose detections came from sources ``sids`` (simulated truth)."""
    if len(sids) == 0:
        return {"outcome": "not_found"}
    alive = src.loc[sids]
    alive = alive[alive["emitting_at_end"].astype(bool)]
    if alive.empty:
        return {"outcome": "already_repaired"}
    rate = float(alive["rate_kg_h"].sum()) * float(np.exp(rng.normal(0, 0.3)))
    return {"outcome": "confirmed", "measured_rate_kg_h": round(rate, 2),
            "component": rng.choice(["valve", "connector", "thief hatch", "compressor seal", "tank vent"])}


def simulate_compliance(session: Session, basin, seed: int = 0, user: str = "demo", grace_days: float = 14.0) -> int:
    """The operator's past compliance: every legal obligation that fell due more than ``grace_days`` before the end
    of the period was met on time, by a visit the day before it was due (confirmed leaks repaired on the spot),
    with outcomes from the simulated truth. What is due later is left for the demo's users to act on."""
    from .comply import obligation_queue

    ob, _ = obligation_queue(session, basin.as_of, include_met=False)
    ob = ob[ob["leak_id"].notna() & (ob["due_by"] < basin.as_of - pd.Timedelta(days=grace_days))]
    if ob.empty:
        return 0
    rng = np.random.default_rng(seed + 7)
    dets = store.detections_frame(session)
    truth = basin.truth.merge(dets[["source_name", "detection_id", "leak_id"]], on=["source_name", "detection_id"])
    by_leak = truth[truth["source_id"] != ""].groupby("leak_id")["source_id"].agg(lambda s: sorted(set(s)))
    src = basin.sources.set_index("source_id")
    first = ob.sort_values("due_by").groupby("leak_id").first()
    rows = []
    for lk, r in first.iterrows():
        start = pd.Timestamp(r["started_at"]) if pd.notna(r.get("started_at")) else r["due_by"] - pd.Timedelta(days=5)
        visited = max(r["due_by"] - pd.Timedelta(days=1), start + pd.Timedelta(hours=2))
        row = {"leak_id": lk, "visited_at": visited, "crew": f"crew-{1 + len(rows) % 3}",
               **_truth_outcome(by_leak.get(lk, []), src, rng)}
        if row["outcome"] == "confirmed":
            row["repaired_at"] = visited + pd.Timedelta(hours=2)
        rows.append(row)
    good = pd.DataFrame(rows)
    for c in ("measured_rate_kg_h", "component", "crew", "notes", "repaired_at"):
        if c not in good:
            good[c] = None
    good["repaired_at"] = pd.to_datetime(good["repaired_at"], utc=True)
    from .outcomes import record_validations

    return record_validations(session, good, user)["recorded"]


def store_assets(session: Session, assets: pd.DataFrame, user: str = "system", file_name: str = "simulated",
                 sha256: str = "", n_rows: int | None = None, rejected: int = 0) -> dict:
    """Upsert typed asset rows (``ingest.tables.check_assets``), record the batch and audit; one transaction."""
    try:
        new, upd = store.upsert_assets(session, assets)
        if sha256:
            rows = len(assets) if n_rows is None else n_rows
            store.add_batch(session, store.file_batch(file_name, sha256, "assets", user, n_rows=rows,
                                                      n_accepted=len(assets), n_rejected=rejected))
        store.audit(session, user, "assets_import", file_name, {"new": new, "updated": upd, "rejected": rejected})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {"new": new, "updated": upd}


def import_assets(session: Session, path, user: str = "system") -> dict:
    """``mlpe assets import``: check the asset file row by row, then upsert its good rows in one transaction."""
    from pathlib import Path

    from .ingest import file_sha256, read_table
    from .ingest.tables import check_assets

    require(session, user, "assets_import")
    path = Path(path)
    raw = read_table(path)
    good, rejects = check_assets(raw, path.name)
    r = store_assets(session, good, user, path.name, file_sha256(path), len(raw), len(rejects))
    return {"file": path.name, "rows": len(raw), "new": r["new"], "updated": r["updated"], "rejected": len(rejects),
            "rejects": rejects}


def simulate_visits(
    session: Session,
    basin,
    n_visits: int = 60,
    seed: int = 0,
    user: str = "demo",
    top_share: float = 0.6,
    p_no_access: float = 0.05,
    start_day: int = 1,
) -> int:
    """Crews visit the top of the ranking plus a few random leaks; outcomes come from the simulated truth.

    The top ``top_share`` of ``n_visits`` are the best-ranked open leaks, the rest a random draw from the
    remaining ranked ones. A leak is ``confirmed`` when at least one of the real sources behind its
    detections still emits at the end of the period (measured rate: their summed true rate × a log-normal
    30 % error), ``already_repaired`` when its sources all stopped, ``not_found`` when none of its
    detections came from a real source; a share ``p_no_access`` of visits is ``not_accessible``. Visits
    fall on days ``start_day`` .. ``start_day`` + 9 after the end of the period.
    """
    from .outcomes import record_validations

    rng = np.random.default_rng(seed + 1)
    leaks = store.leaks_frame(session)
    dets = store.detections_frame(session)
    truth = basin.truth.merge(dets[["source_name", "detection_id", "leak_id"]], on=["source_name", "detection_id"])
    real = truth[truth["source_id"] != ""]
    src = basin.sources.set_index("source_id")
    top = leaks[leaks["rank"].notna()].sort_values("rank")
    pick = list(top["leak_id"].head(int(round(n_visits * top_share))))
    others = top["leak_id"].iloc[len(pick) :].to_numpy()
    if len(others) and n_visits > len(pick):
        pick += list(rng.choice(others, size=min(len(others), n_visits - len(pick)), replace=False))
    by_leak = real.groupby("leak_id")["source_id"].agg(lambda s: sorted(set(s)))
    rows = []
    for i, lk in enumerate(pick):
        sids = by_leak.get(lk, [])
        visited = basin.as_of + pd.Timedelta(days=start_day + i % 10, hours=int(rng.integers(7, 16)))
        if rng.random() < p_no_access:
            rows.append({"leak_id": lk, "visited_at": visited, "outcome": "not_accessible"})
            continue
        found = _truth_outcome(sids, src, rng)
        rows.append({"leak_id": lk, "visited_at": visited, **found,
                     **({"crew": f"crew-{1 + i % 3}"} if found["outcome"] == "confirmed" else {})})
    good = pd.DataFrame(rows, columns=["leak_id", "visited_at", "outcome", "measured_rate_kg_h", "component", "crew"])
    for c in ("measured_rate_kg_h", "component", "crew", "notes", "repaired_at"):
        if c not in good:
            good[c] = None
    good["repaired_at"] = pd.NaT
    return record_validations(session, good, user)["recorded"]


# --------------------------------------------------------------------------------------------- lifecycle and dispatch


def run_lifecycle(session: Session, user: str = "system", reopened: list | None = None) -> dict:
    """Re-open leaks seen again after their repair (flagged as possible failed repairs) or after a visit
    that did not find them, so the next ranking includes them. Run it after fusing, before scoring. The ids
    of the leaks re-opened are appended to ``reopened`` when given."""
    from .lifecycle import reopen_seen_again

    summary = reopen_seen_again(session, actor=user, commit=False, reopened=reopened)
    if summary["reopened"]:
        store.audit(session, user, "lifecycle_check", None, summary)
    session.commit()
    return summary
