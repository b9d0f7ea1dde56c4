"""Dispatch: the list of leaks crews should visit next, grouped per crew and ordered as routes.

Only open leaks that no crew has validated yet are listed: a leak already visited waits for its
outcome's own workflow (repair clocks), not for another visit.

:func:`dispatch_list` keeps the contract (§4): the top K by rank with the dispatch columns.
:func:`route_dispatch` then assigns those leaks to crews (``config/dispatch.yaml``: crews, visits per
crew per day, home bases) and orders each crew's visits as a route: cheapest insertion in rank
order, then relocate / swap moves between crews and 2-opt within each route, on straight-line
kilometres times a road factor. It never changes which leaks go out, only who visits them and in
what order; with more leaks than one day's capacity the best-ranked go out on day 1.

A planned list is a draft (:func:`plan_list`) until a supervisor approves it (:func:`approve_list`),
which moves its leaks to ``dispatched`` through the lifecycle; work orders for maintenance systems
(:func:`work_orders`, schema ``docs/workorder.schema.json``) and their status updates
(:func:`set_work_order_status`) hang off the approved list's items. ``docs/dispatch.md`` has the
method, the approval rules and the API.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sqlmodel import select

from . import auth, store
from .lifecycle import TransitionError, apply_event, lock_states, save_states, transition, validated_since_open
from .models import DispatchItem, DispatchList, Leak
from .schema import DISPATCH_EXPORT_COLUMNS

SETTINGS = Path(__file__).resolve().parent.parent / "config" / "dispatch.yaml"
DISPATCHABLE = ("open",)
ROUTE_COLUMNS = ("crew", "day", "stop", "leg_km", "route_km", "route_hours")
EARTH_KM = 6371.0088
WO_STATUSES = ("dispatched", "in_progress", "repair_attempted", "repaired", "delayed", "closed", "cancelled")
WORKORDER_SCHEMA = "https://mlpe.local/schemas/workorder-1.0.json"  # also in export.py


class DispatchConfigError(ValueError):
    """``config/dispatch.yaml`` cannot be used: names the field."""


# --------------------------------------------------------------------------------------------- settings


def load_settings(path: str | Path | None = None) -> dict:
    """Crews (name, home base or auto, visits a day), speeds and limits, checked field by field."""
    p = Path(path or SETTINGS)
    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DispatchConfigError(f"{p}: cannot read dispatch settings ({exc})") from exc

    def num(key: str, default: float, lo: float = 0.0) -> float:
        v = cfg.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > lo:
            raise DispatchConfigError(f"{p}: field '{key}' must be a number > {lo:g}")
        return float(v)

    visits = cfg.get("visits_per_crew_per_day", 4)
    if isinstance(visits, bool) or not isinstance(visits, int) or visits < 1:
        raise DispatchConfigError(f"{p}: field 'visits_per_crew_per_day' must be a whole number ≥ 1")
    crews = cfg.get("crews", 3)
    if isinstance(crews, int) and not isinstance(crews, bool):
        if crews < 1:
            raise DispatchConfigError(f"{p}: field 'crews' must be ≥ 1")
        crews = [{"name": f"crew-{i + 1}"} for i in range(crews)]
    if not isinstance(crews, list) or not crews:
        raise DispatchConfigError(f"{p}: field 'crews' must be a number or a list of crews")
    out_crews, names = [], set()
    for i, c in enumerate(crews):
        if not isinstance(c, dict) or not isinstance(c.get("name", f"crew-{i + 1}"), str):
            raise DispatchConfigError(f"{p}: field 'crews[{i}]' must be a mapping with a name")
        name = c.get("name", f"crew-{i + 1}")
        if name in names:
            raise DispatchConfigError(f"{p}: field 'crews[{i}].name' repeats '{name}'")
        names.add(name)
        home = c.get("home")
        if home is not None and not (isinstance(home, list) and len(home) == 2
                                     and all(isinstance(x, int | float) and not isinstance(x, bool) for x in home)
                                     and abs(home[0]) <= 90 and abs(home[1]) <= 180):
            raise DispatchConfigError(f"{p}: field 'crews[{i}].home' must be [latitude, longitude]")
        v = c.get("visits_per_day", visits)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise DispatchConfigError(f"{p}: field 'crews[{i}].visits_per_day' must be a whole number ≥ 1")
        out_crews.append({"name": name, "home": tuple(map(float, home)) if home else None, "visits": v})
    appr = cfg.get("approval", {}) or {}
    if not isinstance(appr, dict) or not isinstance(appr.get("separate_approver", True), bool):
        raise DispatchConfigError(f"{p}: field 'approval.separate_approver' must be true or false")
    return {"crews": out_crews, "visits_per_crew_per_day": visits, "speed_km_h": num("speed_km_h", 50.0),
            "road_factor": num("road_factor", 1.3), "visit_hours": num("visit_hours", 1.0),
            "day_hours": num("day_hours", 8.0), "separate_approver": appr.get("separate_approver", True)}


def crew_capacity(path: str | Path | None = None) -> int:
    """Visits per day for all crews together (``config/dispatch.yaml``)."""
    return int(sum(c["visits"] for c in load_settings(path)["crews"]))


# --------------------------------------------------------------------------------------------- the list


def dispatch_list(leaks: pd.DataFrame, validated: set[str] | None = None, k: int | None = None) -> pd.DataFrame:
    """Top ``k`` open, unvalidated leaks by rank, with the contract's dispatch columns."""
    k = crew_capacity() if k is None else int(k)
    if k < 0:
        raise ValueError("--top must be ≥ 0")
    validated = validated or set()
    d = leaks[leaks["status"].isin(DISPATCHABLE) & ~leaks["leak_id"].isin(validated) & leaks["rank"].notna()]
    d = d.sort_values("rank").head(k).copy()
    d["rank"] = range(1, len(d) + 1)
    return d.reindex(columns=list(DISPATCH_EXPORT_COLUMNS))


# --------------------------------------------------------------------------------------------- routing


def km_matrix(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle kilometres between every pair of points (haversine)."""
    la, lo = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    dla = la[:, None] - la[None, :]
    dlo = lo[:, None] - lo[None, :]
    a = np.sin(dla / 2) ** 2 + np.cos(la[:, None]) * np.cos(la[None, :]) * np.sin(dlo / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def tour_km(route: list[int], D: np.ndarray, home: int) -> float:
    """Length of home → route → home."""
    if not route:
        return 0.0
    path = [home, *route, home]
    return float(sum(D[a, b] for a, b in zip(path[:-1], path[1:], strict=True)))


def two_opt(route: list[int], D: np.ndarray, home: int) -> list[int]:
    """Improve a closed tour from ``home`` by reversing segments while that shortens it."""
    path = [home, *route, home]
    improved = True
    while improved and len(path) > 4:
        improved = False
        for i in range(1, len(path) - 2):
            for j in range(i + 1, len(path) - 1):
                a, b, c, d = path[i - 1], path[i], path[j], path[j + 1]
                if D[a, c] + D[b, d] < D[a, b] + D[c, d] - 1e-9:
                    path[i:j + 1] = path[i:j + 1][::-1]
                    improved = True
    return path[1:-1]


def _insert(route: list[int], j: int, D: np.ndarray, home: int) -> tuple[float, int]:
    """Cheapest place to put ``j`` in ``route``: (added km, position)."""
    path = [home, *route, home]
    best, pos = math.inf, 0
    for i in range(len(path) - 1):
        add = D[path[i], j] + D[j, path[i + 1]] - D[path[i], path[i + 1]]
        if add < best:
            best, pos = add, i
    return best, pos


def _urgency_order(route: list[int]) -> float:
    """Smaller when better-ranked stops (lower index = better rank) come earlier."""
    return float(sum(pos / (j + 1) for pos, j in enumerate(route)))


class _Routes:
    """Vehicles (crew-days) with homes, capacities and routes; objective = km plus overtime penalty."""

    def __init__(self, D: np.ndarray, homes: list[int], caps: list[int], cfg: dict):
        self.D, self.homes, self.caps = D, homes, caps
        self.routes: list[list[int]] = [[] for _ in homes]
        self.speed, self.visit_h, self.day_h = cfg["speed_km_h"], cfg["visit_hours"], cfg["day_hours"]
        self.penalty = 10 * self.speed  # an hour over the day costs like 10 hours of driving

    def cost(self, v: int, route: list[int] | None = None) -> float:
        r = self.routes[v] if route is None else route
        km = tour_km(r, self.D, self.homes[v])
        over = max(0.0, km / self.speed + len(r) * self.visit_h - self.day_h)
        return km + self.penalty * over

    def build(self, order: list[int]) -> None:
        for j in order:  # rank order: the best leaks choose their crew first
            best = None
            for v in range(len(self.homes)):
                if len(self.routes[v]) >= self.caps[v]:
                    continue
                add, pos = _insert(self.routes[v], j, self.D, self.homes[v])
                cand = self.routes[v][:pos] + [j] + self.routes[v][pos:]
                delta = self.cost(v, cand) - self.cost(v)
                if best is None or delta < best[0] - 1e-9:
                    best = (delta, v, cand)
            if best is None:
                raise ValueError("more leaks than crew capacity")
            self.routes[best[1]] = best[2]

    def improve(self, max_passes: int = 30) -> None:
        for v in range(len(self.routes)):
            self.routes[v] = two_opt(self.routes[v], self.D, self.homes[v])
        for _ in range(max_passes):
            moved = self._relocate() | self._swap()
            for v in range(len(self.routes)):
                self.routes[v] = two_opt(self.routes[v], self.D, self.homes[v])
            if not moved:
                break
        self.orient()

    def hours(self, v: int, route: list[int] | None = None) -> float:
        r = self.routes[v] if route is None else route
        return tour_km(r, self.D, self.homes[v]) / self.speed + len(r) * self.visit_h

    def fit_day(self) -> list[int]:
        """Make every route fit the working day: drop the lowest-priority stops of a route that does not
        fit, then put each dropped leak (best first) wherever it still fits. Returns the leaks left over."""
        dropped = []
        for v in range(len(self.routes)):
            while self.routes[v] and self.hours(v) > self.day_h + 1e-9:
                worst = max(self.routes[v])  # index order = rank order
                self.routes[v] = two_opt([x for x in self.routes[v] if x != worst], self.D, self.homes[v])
                dropped.append(worst)
        left = []
        for j in sorted(dropped):
            best = None
            for v in range(len(self.routes)):
                if len(self.routes[v]) >= self.caps[v]:
                    continue
                _, pos = _insert(self.routes[v], j, self.D, self.homes[v])
                cand = two_opt(self.routes[v][:pos] + [j] + self.routes[v][pos:], self.D, self.homes[v])
                if self.hours(v, cand) <= self.day_h + 1e-9:
                    add = tour_km(cand, self.D, self.homes[v]) - tour_km(self.routes[v], self.D, self.homes[v])
                    if best is None or add < best[0]:
                        best = (add, v, cand)
            if best is None:
                left.append(j)
            else:
                self.routes[best[1]] = best[2]
        self.orient()
        return left

    def orient(self) -> None:
        for v, r in enumerate(self.routes):  # a loop is as long either way round: visit the best ranks first
            if _urgency_order(r[::-1]) < _urgency_order(r):
                self.routes[v] = r[::-1]

    def _best_with(self, v: int, route: list[int], j: int) -> tuple[float, list[int]]:
        _, pos = _insert(route, j, self.D, self.homes[v])
        new = route[:pos] + [j] + route[pos:]
        return self.cost(v, new), new

    def _relocate(self) -> bool:
        moved = False
        for u in range(len(self.routes)):
            for j in list(self.routes[u]):
                if j not in self.routes[u]:
                    continue
                rest = [x for x in self.routes[u] if x != j]
                base_u, new_u = self.cost(u), self.cost(u, rest)
                for v in range(len(self.routes)):
                    if v == u or len(self.routes[v]) >= self.caps[v]:
                        continue
                    cv, new_v = self._best_with(v, self.routes[v], j)
                    if new_u + cv < base_u + self.cost(v) - 1e-6:
                        self.routes[u], self.routes[v] = rest, new_v
                        moved = True
                        break
        return moved

    def _swap(self) -> bool:
        if sum(len(r) for r in self.routes) > 200:  # quadratic: only for lists a day's crews can do
            return False
        moved = False
        n = len(self.routes)
        for u in range(n):
            for v in range(u + 1, n):
                for j in list(self.routes[u]):
                    for k in list(self.routes[v]):
                        if j not in self.routes[u] or k not in self.routes[v]:
                            continue
                        ru = [x for x in self.routes[u] if x != j]
                        rv = [x for x in self.routes[v] if x != k]
                        cu, nu = self._best_with(u, ru, k)
                        cv, nv = self._best_with(v, rv, j)
                        if cu + cv < self.cost(u) + self.cost(v) - 1e-6:
                            self.routes[u], self.routes[v] = nu, nv
                            moved = True
        return moved


def _homes(crews: list[dict], lat: np.ndarray, lon: np.ndarray) -> list[tuple[float, float]]:
    """Each crew's home; a crew without one starts from the centre of a k-means group of the leaks."""
    missing = [i for i, c in enumerate(crews) if c["home"] is None]
    homes = [c["home"] for c in crews]
    if missing and len(lat):
        from sklearn.cluster import KMeans

        pts = np.column_stack([lat, lon * math.cos(math.radians(float(np.mean(lat))))])
        k = min(len(missing), len(np.unique(pts, axis=0)))
        km = KMeans(n_clusters=k, n_init=4, random_state=0).fit(pts)
        centres = km.cluster_centers_
        for n, i in enumerate(missing):
            c = centres[n % k]
            homes[i] = (float(c[0]), float(c[1] / math.cos(math.radians(float(np.mean(lat))))))
    return [h if h is not None else (0.0, 0.0) for h in homes]


def _route_frame(disp: pd.DataFrame, plan: list[tuple[str, int, list[int], int]], D: np.ndarray,
                 cfg: dict) -> pd.DataFrame:
    out = disp.copy()
    for c in ROUTE_COLUMNS:
        out[c] = np.nan if c not in ("crew",) else None
    out["crew"] = out["crew"].astype(object)
    for crew, day, route, home in plan:
        km = tour_km(route, D, home)
        hours = km / cfg["speed_km_h"] + len(route) * cfg["visit_hours"]
        prev = home
        for stop, j in enumerate(route, start=1):
            idx = out.index[j]
            out.at[idx, "crew"], out.at[idx, "day"], out.at[idx, "stop"] = crew, day, stop
            out.at[idx, "leg_km"] = round(float(D[prev, j]), 2)
            out.at[idx, "route_km"], out.at[idx, "route_hours"] = round(km, 2), round(hours, 2)
            prev = j
    for c in ("day", "stop"):
        out[c] = out[c].astype("Int64")
    return out.sort_values(["day", "crew", "stop"], na_position="last").reset_index(drop=True)


def _prepare(disp: pd.DataFrame, settings: dict | None) -> tuple[dict, list[dict], np.ndarray, int]:
    cfg = settings or load_settings()
    crews = cfg["crews"]
    lat, lon = disp["latitude"].to_numpy(float), disp["longitude"].to_numpy(float)
    homes = _homes(crews, lat, lon)
    D = km_matrix(np.r_[lat, [h[0] for h in homes]], np.r_[lon, [h[1] for h in homes]]) * cfg["road_factor"]
    return cfg, crews, D, len(disp)


def route_dispatch(disp: pd.DataFrame, settings: dict | None = None) -> pd.DataFrame:
    """``disp`` (rank order, with latitude/longitude) assigned to crews and ordered as routes.

    Adds ``crew, day, stop, leg_km, route_km, route_hours`` after the given columns and sorts rows
    by day, crew and stop. Each day takes the best-ranked leaks left, up to the crews' visits; a
    route that would not fit in ``day_hours`` (driving + visits) drops its lowest-ranked stops, which
    go to another crew with time left or to the next day first.
    """
    if disp.empty:
        return disp.assign(**{c: pd.Series(dtype=object) for c in ROUTE_COLUMNS})
    disp = disp.sort_values("rank").reset_index(drop=True) if "rank" in disp else disp.reset_index(drop=True)
    cfg, crews, D, n = _prepare(disp, settings)
    caps = [c["visits"] for c in crews]
    per_day = sum(caps)
    plan, todo, day = [], list(range(n)), 0
    while todo:
        day += 1
        block, todo = todo[:per_day], todo[per_day:]
        r = _Routes(D, [n + i for i in range(len(crews))], caps, cfg)
        r.build(block)
        r.improve()
        left = r.fit_day()  # stops that do not fit in the day move to the next day, ahead of the rest
        if left and len(left) == len(block):  # not even one stop fits a day: plan it anyway (overtime shows)
            r.routes[0], left = [left[0]], left[1:]
        todo = sorted(left) + todo
        plan += [(crews[v]["name"], day, r.routes[v], n + v) for v in range(len(crews))]
    return _route_frame(disp, plan, D, cfg)


def route_in_rank_order(disp: pd.DataFrame, settings: dict | None = None) -> pd.DataFrame:
    """The baseline routing would beat: leaks dealt to crews in rank order, each crew visiting in rank order."""
    if disp.empty:
        return disp.assign(**{c: pd.Series(dtype=object) for c in ROUTE_COLUMNS})
    disp = disp.sort_values("rank").reset_index(drop=True) if "rank" in disp else disp.reset_index(drop=True)
    cfg, crews, D, n = _prepare(disp, settings)
    per_day = sum(c["visits"] for c in crews)
    plan = []
    for day, lo in enumerate(range(0, n, per_day), start=1):
        routes: list[list[int]] = [[] for _ in crews]
        v = 0
        for j in range(lo, min(lo + per_day, n)):
            while len(routes[v]) >= crews[v]["visits"]:
                v = (v + 1) % len(crews)
            routes[v].append(j)
            v = (v + 1) % len(crews)
        plan += [(crews[i]["name"], day, routes[i], n + i) for i in range(len(crews))]
    return _route_frame(disp, plan, D, cfg)


# --------------------------------------------------------------------------------------------- lists in the store


def current_list(session, top: int | None = None) -> pd.DataFrame:
    """The dispatch list as ``mlpe export dispatch`` writes it (contract columns, rank order)."""
    leaks = store.leaks_frame(session)
    return dispatch_list(leaks, validated_since_open(leaks, store.validations_frame(session)), top)


def plan_list(session, top: int | None = None, plan_date: str | None = None, user: str = "system",
              settings: dict | None = None, note: str | None = None) -> int:
    """Plan one day's routed dispatch list from the current ranking and store it as a draft; returns its id.

    ``top`` defaults to the crews' capacity for a day and may not exceed it (a list is one day's work).
    """
    auth.require(session, user, "plan_dispatch")
    cfg = settings or load_settings()
    cap = sum(c["visits"] for c in cfg["crews"])
    if top is not None and not 0 < int(top) <= cap:
        raise ValueError(f"--top must be 1..{cap}: a dispatch list is one day of the crews' visits "
                         "(config/dispatch.yaml)")
    disp = current_list(session, cap if top is None else int(top))
    if disp.empty:
        raise ValueError("nothing to dispatch: no open, unvisited, ranked leak (run `mlpe score` first)")
    routed = route_dispatch(disp, cfg)
    later = routed.loc[routed["day"] > 1, "leak_id"].tolist()  # did not fit in the crews' day
    routed = routed[routed["day"] == 1]
    due_rule = store.leaks_frame(session).set_index("leak_id")["due_rule"]
    plan_date = plan_date or date.today().isoformat()
    try:
        date.fromisoformat(plan_date)
    except ValueError as exc:
        raise ValueError(f"--date '{plan_date}' is not a YYYY-MM-DD date") from exc
    total = float(routed.drop_duplicates(["day", "crew"])["route_km"].sum())
    dl = DispatchList(created_at=store.now(), created_by=user, plan_date=plan_date, status="draft", note=note,
                      n_items=len(routed), total_km=round(total, 2),
                      settings=json.dumps({k: v for k, v in cfg.items()}, default=list))
    session.add(dl)
    session.flush()
    for r in routed.itertuples(index=False):
        due = None if pd.isna(r.due_by) else pd.Timestamp(r.due_by).to_pydatetime()
        session.add(DispatchItem(
            list_id=dl.id, leak_id=r.leak_id, work_order_id=f"MLPE-{dl.id:05d}-{r.leak_id}", rank=int(r.rank),
            crew=r.crew, stop=int(r.stop), leg_km=float(r.leg_km), latitude=float(r.latitude),
            longitude=float(r.longitude), asset_id=None if pd.isna(r.asset_id) else r.asset_id,
            est_rate_kg_h=_f(r.est_rate_kg_h), p_real=_f(r.p_real), priority_score=_f(r.priority_score),
            risk_band=r.risk_band, due_by=due, due_rule=_s(due_rule.get(r.leak_id)), top_reasons=_s(r.top_reasons)))
    store.audit(session, user, "dispatch_planned", f"dispatch_list:{dl.id}",
                {"items": len(routed), "total_km": round(total, 2), "plan_date": plan_date, "did_not_fit": later})
    session.commit()
    return int(dl.id)


def _f(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _s(v) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def approve_list(session, list_id: int, user: str, note: str | None = None, settings: dict | None = None) -> dict:
    """A supervisor approves a draft list: it becomes final and its leaks move to ``dispatched``.

    Refused (nothing changes) when the user may not approve (``auth``: supervisor or admin), when
    the planner approves their own list (``approval.separate_approver``, outside open mode), when
    the list is not a draft, or when a leak on it is no longer open (visited or on another list
    since it was planned: plan again).
    """
    cfg = settings or load_settings()
    auth.require(session, user, "approve_dispatch")
    dl = session.get(DispatchList, list_id)
    if dl is None:
        raise KeyError(f"no dispatch list {list_id}")
    if dl.status != "draft":
        raise ValueError(f"dispatch list {list_id} is {dl.status}; only a draft can be approved")
    if cfg["separate_approver"] and user == dl.created_by and not auth.open_mode(session):
        raise auth.PermissionDenied(f"'{user}' planned dispatch list {list_id}; another supervisor must approve it")
    items = session.exec(select_items(list_id)).all()
    states = lock_states(session, [i.leak_id for i in items])
    at = store.now()
    try:
        for it in items:
            st = states[it.leak_id]
            if st.status not in ("open", "no_access"):
                raise TransitionError(it.leak_id, st.status, "dispatch",
                                      f"it is no longer open (on list {list_id} since planning); plan a new list")
            states[it.leak_id] = transition(st, "dispatch", at, actor=user, source=f"dispatch_list:{list_id}",
                                            detail={"work_order_id": it.work_order_id, "crew": it.crew})
            it.wo_status, it.wo_status_at = "dispatched", at
            session.add(it)
    except TransitionError:
        session.rollback()
        raise
    save_states(session, states)
    dl.status, dl.approved_by, dl.approved_at = "approved", user, at
    if note:
        dl.note = f"{dl.note}\n{note}" if dl.note else note
    session.add(dl)
    store.audit(session, user, "dispatch_approved", f"dispatch_list:{list_id}", {"items": len(items), "note": note})
    session.commit()
    return {"list_id": list_id, "approved_by": user, "items": len(items)}


def withdraw_list(session, list_id: int, user: str) -> dict:
    """Withdraw a draft, or an approved list whose leaks are still only dispatched (they return to open)."""
    auth.require(session, user, "approve_dispatch")
    dl = session.get(DispatchList, list_id)
    if dl is None:
        raise KeyError(f"no dispatch list {list_id}")
    if dl.status == "withdrawn":
        raise ValueError(f"dispatch list {list_id} is already withdrawn")
    released = 0
    if dl.status == "approved":
        items = session.exec(select_items(list_id)).all()
        states = lock_states(session, [i.leak_id for i in items])
        for it in items:
            if states[it.leak_id].status == "dispatched" and it.wo_status == "dispatched":
                states[it.leak_id] = transition(states[it.leak_id], "release", store.now(), actor=user,
                                                source=f"dispatch_list:{list_id}")
                it.wo_status, it.wo_status_at = "cancelled", store.now()
                session.add(it)
                released += 1
        save_states(session, states)
    dl.status = "withdrawn"
    session.add(dl)
    store.audit(session, user, "dispatch_withdrawn", f"dispatch_list:{list_id}", {"released": released})
    session.commit()
    return {"list_id": list_id, "released": released}


def select_items(list_id: int):
    return select(DispatchItem).where(DispatchItem.list_id == list_id).order_by(DispatchItem.crew, DispatchItem.stop)


def lists_frame(session) -> pd.DataFrame:
    """Every dispatch list, newest first."""
    df = pd.read_sql(select(DispatchList).order_by(DispatchList.id.desc()), session.connection())
    for c in ("created_at", "approved_at"):
        df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df.drop(columns=["settings"])


def list_frame(session, list_id: int) -> pd.DataFrame:
    """A stored list's stops: the contract's dispatch columns, then crew, stop, leg_km, work order."""
    if session.get(DispatchList, list_id) is None:
        raise KeyError(f"no dispatch list {list_id}")
    df = pd.read_sql(select_items(list_id), session.connection())
    df["due_by"] = pd.to_datetime(df["due_by"], utc=True, format="ISO8601")
    df["wo_status_at"] = pd.to_datetime(df["wo_status_at"], utc=True, format="ISO8601")
    df = df.sort_values(["crew", "stop"]).reset_index(drop=True)
    extra = ["crew", "stop", "leg_km", "work_order_id", "due_rule", "wo_status", "wo_status_at"]
    return df[list(DISPATCH_EXPORT_COLUMNS) + extra]


def work_orders(session, list_id: int | None = None, frame: pd.DataFrame | None = None) -> dict:
    """The work-order document for maintenance systems (``docs/workorder.schema.json``).

    From a stored list (``list_id``), or from a routed frame (``frame``, e.g. the current list as a
    draft that has no list id yet).
    """
    from .export import to_workorders

    meta: dict = {"list_id": None, "status": "draft", "plan_date": None, "approved_by": None, "approved_at": None}
    if list_id is not None:
        dl = session.get(DispatchList, list_id)
        if dl is None:
            raise KeyError(f"no dispatch list {list_id}")
        frame = list_frame(session, list_id)
        meta = {"list_id": dl.id, "status": dl.status, "plan_date": dl.plan_date, "approved_by": dl.approved_by,
                "approved_at": dl.approved_at}
    if frame is None:
        raise ValueError("work_orders needs a list id or a frame")
    return to_workorders(frame, meta)


def set_work_order_status(session, status: str, user: str, work_order_id: str | None = None,
                          leak_id: str | None = None, at=None, crew: str | None = None, note: str | None = None,
                          reason: str | None = None) -> dict:
    """A maintenance system reports a work order's progress; the leak moves through its lifecycle.

    ``repair_attempted``, ``repaired`` and ``delayed`` (delay of repair, ``reason`` required) are
    recorded as a field record (a ``confirmed`` visit with the repair times), so the compliance
    clocks see them; ``closed`` closes a repaired leak; ``cancelled`` releases a dispatched leak;
    ``in_progress`` and ``dispatched`` change the work order only. An illegal move raises
    ``lifecycle.TransitionError`` and changes nothing.
    """
    if status not in WO_STATUSES:
        raise ValueError(f"status '{status}' is not one of {', '.join(WO_STATUSES)}")
    auth.require(session, user, "validate")
    item = None
    if work_order_id:
        item = session.exec(select(DispatchItem).where(DispatchItem.work_order_id == work_order_id)).first()
        if item is None:
            raise KeyError(f"no work order '{work_order_id}'")
        leak_id = item.leak_id
    if not leak_id:
        raise ValueError("give a work_order_id or a leak_id")
    if session.get(Leak, leak_id) is None:
        raise KeyError(f"no leak '{leak_id}'")
    at = pd.Timestamp(at or store.now())
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    result: dict = {"leak_id": leak_id, "work_order_id": work_order_id, "status": status}
    text = f"work order {work_order_id or '-'}: {status}" + (f": {note}" if note else "")
    if status in ("repair_attempted", "repaired", "delayed"):
        if status == "delayed" and not reason:
            raise ValueError("a delay of repair needs its reason (e.g. needs a shutdown)")
        now_status = _status(session, leak_id)
        event = {"repair_attempted": "repair_attempt", "repaired": "repair", "delayed": "delay_of_repair"}[status]
        if now_status in ("repaired", "closed", "not_found", "no_access"):
            # a work order reports work on a leak; it is not a new sighting (that is a field visit)
            raise TransitionError(leak_id, now_status, event, {
                "repaired": "it is already repaired (a leak seen leaking again is recorded as a visit or "
                            "re-opens from new detections)",
                "closed": "the leak is closed", "not_found": "a leak that was not found cannot be repaired",
                "no_access": "the crew could not reach it; record a visit that reached it first"}[now_status])
        row = {"leak_id": leak_id, "visited_at": at, "outcome": "confirmed", "measured_rate_kg_h": np.nan,
               "component": None, "repaired_at": at if status == "repaired" else pd.NaT, "crew": crew,
               "notes": text, "found_by": None, "rate_method": None,
               "repair_attempted_at": at if status == "repair_attempted" else pd.NaT,
               "delay_reason": reason if status == "delayed" else None}
        res = store.record_validations(session, pd.DataFrame([row]), user)
        if res["rejected"]:
            reason_txt = res["rejects"]["reason"].iloc[0]
            raise TransitionError(leak_id, _status(session, leak_id), event, reason_txt.split(": ", 2)[-1])
        result["recorded"] = res["recorded"]
    elif status == "closed":
        apply_event(session, leak_id, "close", at, actor=user, source="work_order", detail={"note": note}, commit=False)
    elif status == "cancelled":
        if _status(session, leak_id) == "dispatched":
            apply_event(session, leak_id, "release", at, actor=user, source="work_order", detail={"note": note},
                        commit=False)
    if item is not None:
        item = session.get(DispatchItem, item.id)
        item.wo_status, item.wo_status_at = status, at.to_pydatetime()
        session.add(item)
    store.audit(session, user, "work_order_status", leak_id, {"work_order_id": work_order_id, "status": status,
                                                                "note": note})
    session.commit()
    result["leak_status"] = _status(session, leak_id)
    return result


def _status(session, leak_id: str) -> str:
    session.expire_all()
    return session.get(Leak, leak_id).status
