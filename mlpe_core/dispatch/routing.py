"""Routing: assign the day's leaks to crews and order each crew's visits as a route, on a clock.

A route is judged by kilometres, by hours past the working day and by lateness against deadlines.
Deadlines are why routing keeps a clock: a legal obligation (``due_by``) is a time, and a route that
is short in kilometres but reaches an overdue OOOOb leak as the day's last stop is wrong. Each
crew-day runs from the crew's yard at ``day_start`` (local time in ``time_zone``) and back, driving
straight-line km x ``road_factor`` at ``speed_km_h`` and spending ``visit_hours`` at each stop.

The router does not choose *which* leaks go out (the selection and the ranking do); it chooses who
visits them, in what order, and which of them wait for the next day when a day cannot hold them all.
``docs/dispatch.md`` has the method and the benchmark that chose it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from .settings import load_settings

ROUTE_COLUMNS = ("crew", "day", "stop", "leg_km", "route_km", "route_hours", "arrive_at", "on_time", "route_kg_h",
                 "home_lat", "home_lon")

EARTH_KM = 6371.0088

# Penalties in kilometres per hour, as multiples of the speed (an hour's driving). An hour over the day costs like
# 10 hours of driving; every hour before an overdue stop is reached like 100 (so overdue stops go first, whatever
# the detour); an hour late on a deadline inside the day like 10 000, so no detour or overtime a day can hold is
# worth a late arrival: deadlines are hard wherever the day allows them, and soft (as little late as possible)
# where it does not.
OVERTIME_HOURS = 10.0
OVERDUE_HOURS = 100.0
LATE_HOURS = 10_000.0


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
    """Improve a closed tour from ``home`` by reversing segments while that shortens it (kilometres only)."""
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


@dataclass
class DayProblem:
    """One day's routing problem, in node numbers: the list's stops are 0..n-1 in rank order, the yards follow.

    ``due_h`` is, per node, the hour after the day's start by which the crew should arrive: 0 for a stop already
    overdue (so every hour before it is reached counts as late: it goes first), the deadline for a stop due within
    the day, infinity for a stop with no deadline today. ``must`` stops (marked, overridden or legally due) are
    never dropped to make room for others. ``stops`` is the order in which stops choose their crew: overdue
    first, then by deadline, then must stops, then rank.
    """

    D: np.ndarray
    homes: list[int]
    caps: list[int]
    stops: list[int]
    due_h: np.ndarray
    must: np.ndarray
    speed: float
    visit_h: float
    day_h: float

    def schedule(self, v: int, route: list[int]) -> tuple[list[float], float, float]:
        """(arrival hour at each stop, hours until back at the yard, km) for crew ``v`` driving ``route``."""
        t, km, prev, arrive = 0.0, 0.0, self.homes[v], []
        for j in route:
            km += self.D[prev, j]
            t += self.D[prev, j] / self.speed
            arrive.append(t)
            t += self.visit_h
            prev = j
        if route:
            km += self.D[prev, self.homes[v]]
            t += self.D[prev, self.homes[v]] / self.speed
        return arrive, t, km

    def cost(self, v: int, route: list[int]) -> float:
        """Kilometres, plus overtime, waiting overdue stops and lateness on deadlines priced in kilometres."""
        arrive, hours, km = self.schedule(v, route)
        overdue = late = 0.0
        for a, j in zip(arrive, route, strict=True):
            if self.due_h[j] <= 0:
                overdue += a
            elif a > self.due_h[j]:
                late += a - self.due_h[j]
        return km + self.speed * (OVERTIME_HOURS * max(0.0, hours - self.day_h) + OVERDUE_HOURS * overdue
                                  + LATE_HOURS * late)

    def late_h(self, v: int, route: list[int]) -> float:
        """Hours late, summed over the route's stops with a deadline inside the day (not the overdue ones)."""
        arrive, _, _ = self.schedule(v, route)
        return sum(max(0.0, a - self.due_h[j]) for a, j in zip(arrive, route, strict=True) if self.due_h[j] > 0)


Solver = Callable[[DayProblem], tuple[list[list[int]], list[int]]]


def _urgency_order(route: list[int]) -> float:
    """Smaller when better-ranked stops (lower index = better rank) come earlier."""
    return float(sum(pos / (j + 1) for pos, j in enumerate(route)))


class _Routes:
    """The hand-written heuristic: cheapest insertion in priority order, then relocate, swap and 2-opt moves
    on the full cost (km, overtime, lateness) until none helps, then make every route fit the day."""

    def __init__(self, p: DayProblem):
        self.p = p
        self.routes: list[list[int]] = [[] for _ in p.homes]

    def cost(self, v: int, route: list[int] | None = None) -> float:
        return self.p.cost(v, self.routes[v] if route is None else route)

    def hours(self, v: int, route: list[int] | None = None) -> float:
        return self.p.schedule(v, self.routes[v] if route is None else route)[1]

    def _best_with(self, v: int, route: list[int], j: int) -> tuple[float, list[int]]:
        """The cheapest place for ``j`` in ``route`` by the full cost: (new cost, new route)."""
        best: tuple[float, list[int]] | None = None
        for pos in range(len(route) + 1):
            cand = route[:pos] + [j] + route[pos:]
            c = self.p.cost(v, cand)
            if best is None or c < best[0] - 1e-9:
                best = (c, cand)
        assert best is not None
        return best

    def _two_opt(self, v: int, route: list[int]) -> list[int]:
        """2-opt on the full cost: with deadlines a reversal that saves km may arrive late, so km alone is wrong."""
        if not np.isfinite(self.p.due_h[route]).any():
            return two_opt(route, self.p.D, self.p.homes[v])  # no deadline: the same answer, faster
        best, improved = self.p.cost(v, route), True
        while improved and len(route) > 1:
            improved = False
            for i in range(len(route) - 1):
                for k in range(i + 1, len(route)):
                    cand = route[:i] + route[i:k + 1][::-1] + route[k + 1:]
                    c = self.p.cost(v, cand)
                    if c < best - 1e-9:
                        route, best, improved = cand, c, True
        return route

    def build(self) -> list[int]:
        """Insert stops in priority order where they add least; returns the stops no crew had a visit left for."""
        left = []
        for j in self.p.stops:  # the most urgent and best-ranked leaks choose their crew first
            best = None
            for v in range(len(self.p.homes)):
                if len(self.routes[v]) >= self.p.caps[v]:
                    continue
                c, cand = self._best_with(v, self.routes[v], j)
                delta = c - self.cost(v)
                if best is None or delta < best[0] - 1e-9:
                    best = (delta, v, cand)
            if best is None:
                left.append(j)
            else:
                self.routes[best[1]] = best[2]
        return left

    def improve(self, max_passes: int = 30) -> None:
        for v in range(len(self.routes)):
            self.routes[v] = self._two_opt(v, self.routes[v])
        for _ in range(max_passes):
            moved = self._relocate() | self._swap()
            for v in range(len(self.routes)):
                self.routes[v] = self._two_opt(v, self.routes[v])
            if not moved:
                break
        self.orient()

    def _drop_one(self, v: int) -> int:
        """The stop to take off an over-long route: the worst-ranked that is not a must stop, else the worst."""
        free = [x for x in self.routes[v] if not self.p.must[x]]
        worst = max(free or self.routes[v])  # index order = rank order
        self.routes[v] = self._two_opt(v, [x for x in self.routes[v] if x != worst])
        return worst

    def fit_day(self) -> list[int]:
        """Make every route fit the working day: drop the lowest-ranked stops (must stops last) of a route that
        does not fit, then put each dropped leak (most urgent first) wherever it still fits; a must stop that
        fits nowhere displaces a crew's worst-ranked ordinary stops. Returns the leaks left over."""
        p, dropped = self.p, []
        for v in range(len(self.routes)):
            while self.routes[v] and self.hours(v) > p.day_h + 1e-9:
                dropped.append(self._drop_one(v))
        left: list[int] = []
        queue = [j for j in p.stops if j in dropped]
        while queue:
            j = queue.pop(0)
            best = None
            for v in range(len(self.routes)):
                if len(self.routes[v]) >= p.caps[v]:
                    continue
                _, cand = self._best_with(v, self.routes[v], j)
                cand = self._two_opt(v, cand)
                if self.hours(v, cand) <= p.day_h + 1e-9 and p.late_h(v, cand) <= p.late_h(v, self.routes[v]) + 1e-9:
                    delta = self.cost(v, cand) - self.cost(v)
                    if best is None or delta < best[0] - 1e-9:
                        best = (delta, v, cand, [])
            if best is None and p.must[j]:
                best = self._displace(j)
            if best is None:
                left.append(j)
                continue
            self.routes[best[1]] = best[2]
            queue = sorted(queue + best[3], key=p.stops.index)  # displaced stops try again, in priority order
        self.orient()
        return sorted(left)

    def _displace(self, j: int) -> tuple[float, int, list[int], list[int]] | None:
        """Room for must stop ``j``: the crew whose worst-ranked ordinary stops it can replace, fewest first."""
        best = None
        for v in range(len(self.routes)):
            route, out = list(self.routes[v]), []
            while True:
                _, cand = self._best_with(v, route, j)
                cand = self._two_opt(v, cand)
                if len(cand) <= self.p.caps[v] and self.hours(v, cand) <= self.p.day_h + 1e-9 \
                        and self.p.late_h(v, cand) <= self.p.late_h(v, self.routes[v]) + 1e-9:
                    key = (len(out), self.cost(v, cand) - self.cost(v))
                    if best is None or key < best[0]:
                        best = (key, v, cand, out)
                    break
                free = [x for x in route if not self.p.must[x]]
                if not free:
                    break
                out.append(max(free))
                route = [x for x in route if x != out[-1]]
        return None if best is None else (best[0][1], best[1], best[2], best[3])

    def orient(self) -> None:
        """A loop is as long either way round: run it the way that reaches the best ranks first, unless that
        way is late on a deadline."""
        for v, r in enumerate(self.routes):
            if _urgency_order(r[::-1]) < _urgency_order(r) and self.cost(v, r[::-1]) <= self.cost(v, r) + 1e-9:
                self.routes[v] = r[::-1]

    def _relocate(self) -> bool:
        moved = False
        for u in range(len(self.routes)):
            for j in list(self.routes[u]):
                if j not in self.routes[u]:
                    continue
                rest = [x for x in self.routes[u] if x != j]
                base_u, new_u = self.cost(u), self.cost(u, rest)
                for v in range(len(self.routes)):
                    if v == u or len(self.routes[v]) >= self.p.caps[v]:
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


def solve_heuristic(p: DayProblem) -> tuple[list[list[int]], list[int]]:
    """Route one day with the hand-written heuristic: (each crew's stops in visiting order, stops left over)."""
    r = _Routes(p)
    left = r.build()
    r.improve()
    left = sorted(left + r.fit_day())
    return r.routes, left


# PyVRP prices in whole units: metres, seconds. It tunes its penalties to the data's scale, so prizes stay near
# kilometres (at 10^9 it did not find feasible plans). An ordinary stop is worth 500 km, more than any detour a day
# can hold, so only a day that cannot hold a stop leaves it out; each better rank among the day's stops adds 100 km,
# so when not all fit the better-ranked stay (the best of 24 outweighs any two of the bottom ten; at 5 km a rank
# the solver kept more, cheaper stops and found 2-6 % less methane where the day is the limit). A must stop is
# worth more than all the ordinary stops together: it is left out only when it cannot be served at all.
PRIZE_M = 500_000
RANK_STEP_M = 100_000
MUST_EXTRA_M = 10_000_000
ITERATIONS = 1000  # deterministic, unlike a time limit; 0.3-1.2 s a day for 12-24 stops (benchmark)


def _prize(p: DayProblem, j: int, order: dict[int, int]) -> int:
    """What serving stop ``j`` is worth to PyVRP, in metres (see ``PRIZE_M``); ``order``: rank among the day's."""
    m = len(order)
    ordinary = PRIZE_M + (m - 1 - order[j]) * RANK_STEP_M
    return ordinary + m * PRIZE_M + RANK_STEP_M * m * (m - 1) // 2 + MUST_EXTRA_M if p.must[j] else ordinary


SITE_KM = 0.3  # overdue stops this close (road km) are one site: one crew visits them one after the other


def _queued_on_site(p: DayProblem) -> list[int]:
    """Per stop of ``p.stops``: how many overdue stops before it (in ``p.stops`` order) are on its site. An overdue
    stop's window is widened by as many visits, so that one crew can see a site's overdue leaks one after the
    other: with the same window for each, the second had to be reached as soon as the first, so a second crew was
    sent to the same pad (seen on the demo basin: three overdue leaks within 70 m, two crews). A site is a chain of
    overdue stops each within ``SITE_KM`` of the next (single linkage: the connected components of "within
    ``SITE_KM``"), so leaks strung out along a pad are one."""
    from scipy.sparse.csgraph import connected_components

    overdue = [j for j in p.stops if p.due_h[j] <= 0]
    if not overdue:
        return [0] * len(p.stops)
    _, site = connected_components(p.D[np.ix_(overdue, overdue)] <= SITE_KM, directed=False)
    site_of = dict(zip(overdue, site.tolist(), strict=True))
    seen: dict[int, int] = {}
    out = []
    for j in p.stops:
        if j in site_of:
            out.append(seen.get(site_of[j], 0))
            seen[site_of[j]] = seen.get(site_of[j], 0) + 1
        else:
            out.append(0)
    return out


def _pyvrp_once(p: DayProblem, overdue_slack_h: float | None, windows: bool) -> tuple[bool, list[list[int]]]:
    """One PyVRP solve: (feasible, each crew's stops in order).

    Windows are hard in PyVRP, so an overdue stop (due hour 0) gets the window [0, drive from the nearest yard +
    ``overdue_slack_h``] (None: no window); ``windows=False`` drops every deadline.
    """
    from pyvrp import Model
    from pyvrp.stop import MaxIterations

    V = len(p.homes)
    nodes = list(p.homes) + list(p.stops)  # PyVRP numbers depots first, then clients in the order added
    sub = p.D[np.ix_(nodes, nodes)]
    metres, secs = np.rint(sub * 1000).astype(np.int64), np.rint(sub / p.speed * 3600).astype(np.int64)
    day_s, visit_s = int(round(p.day_h * 3600)), int(round(p.visit_h * 3600))
    mod = Model()
    locs = [mod.add_location(x=0.0, y=0.0) for _ in nodes]  # distances come from the edges, not coordinates
    depots = [mod.add_depot(locs[v]) for v in range(V)]
    for v in range(V):
        mod.add_vehicle_type(1, capacity=[p.caps[v]], start_depot=depots[v], end_depot=depots[v],
                             shift_duration=day_s, tw_late=day_s)
    order = {j: r for r, j in enumerate(sorted(p.stops))}
    queued = _queued_on_site(p)
    for k, j in enumerate(p.stops):
        due = p.due_h[j] if windows else np.inf
        if np.isfinite(due) and due <= 0:
            due = np.inf if overdue_slack_h is None else \
                float(sub[:V, V + k].min()) / p.speed + overdue_slack_h + queued[k] * p.visit_h
        prize = _prize(p, j, order)
        mod.add_client(locs[V + k], delivery=[1], service_duration=visit_s,
                       tw_late=int(due * 3600) if np.isfinite(due) else day_s, prize=prize, required=False)
    for a in range(len(nodes)):
        for b in range(len(nodes)):
            mod.add_edge(locs[a], locs[b], distance=int(metres[a, b]), duration=int(secs[a, b]))
    with warnings.catch_warnings():  # "penalty reached its maximum" while it searches tight windows: judged below
        warnings.simplefilter("ignore")
        sol = mod.solve(MaxIterations(ITERATIONS), seed=0, display=False).best
    routes: list[list[int]] = [[] for _ in range(V)]
    for r in sol.routes():
        routes[r.vehicle_type()] = [p.stops[a.idx] for a in r if a.is_client()]
    return sol.is_feasible(), routes


def _rank_ties(p: DayProblem, v: int, route: list[int]) -> list[int]:
    """Among orders that cost the same (a loop either way round, a line out and back), visit the best ranks first:
    reverse segments or move single stops while that keeps the cost and brings better ranks earlier."""
    cost, urgency, better = p.cost(v, route), _urgency_order(route), True
    while better:
        better = False
        n = len(route)
        cands = [route[:i] + route[i:k + 1][::-1] + route[k + 1:] for i in range(n) for k in range(i + 1, n)]
        cands += [(r := route[:i] + route[i + 1:])[:k] + [route[i]] + r[k:] for i in range(n) for k in range(n)]
        for cand in cands:
            if _urgency_order(cand) < urgency - 1e-12 and p.cost(v, cand) <= cost + 1e-6:
                route, urgency, better = cand, _urgency_order(cand), True
                break
    return route


def _judge(p: DayProblem, routes: list[list[int]]) -> tuple:
    """How good a day's routes are, smaller first: must stops left out, hours late on deadlines, stops left out,
    rank (better ranks served), hours overdue stops wait, km."""
    served = [j for r in routes for j in r]
    return (sum(1 for j in p.stops if p.must[j]) - sum(1 for j in served if p.must[j]),
            round(sum(p.late_h(v, r) for v, r in enumerate(routes)), 6), len(p.stops) - len(served),
            sum(sorted(p.stops).index(j) for j in served),
            round(sum(a for v, r in enumerate(routes) for a, j in zip(p.schedule(v, r)[0], r, strict=True)
                      if p.due_h[j] <= 0), 6),
            round(sum(p.schedule(v, r)[2] for v, r in enumerate(routes)), 6))


def solve_pyvrp(p: DayProblem) -> tuple[list[list[int]], list[int]]:
    """Route one day with PyVRP: (each crew's stops in visiting order, stops left over).

    Deadlines inside the day are hard windows. Overdue stops must be reached soon after the day starts: within
    half a visit of the drive from the nearest yard, then one, two, four visits, then anywhere in the day,
    whichever is the first that serves every must stop. When none does (a deadline no route can meet, or must
    stops that alone exceed the day) the day is planned by whichever serves more must stops, then is less late:
    PyVRP without deadlines, or the hand-written heuristic (:func:`solve_heuristic`), whose deadlines are soft
    (as little late as possible) rather than hard.
    """
    must = sum(1 for j in p.stops if p.must[j])
    routes = None
    for slack in (0.5, 1.0, 2.0, 4.0, None):
        ok, cand = _pyvrp_once(p, None if slack is None else slack * p.visit_h, True)
        if ok and sum(1 for r in cand for j in r if p.must[j]) == must:
            routes = cand
            break
    if routes is None:
        ok, loose = _pyvrp_once(p, None, False)
        routes = min([solve_heuristic(p)[0]] + ([loose] if ok else []), key=lambda r: _judge(p, r))
    routes = [_rank_ties(p, v, r) for v, r in enumerate(routes)]
    served = {j for r in routes for j in r}
    return routes, sorted(j for j in p.stops if j not in served)


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


def day_start(start: str | date | datetime | pd.Timestamp | None, settings: dict, day: int = 1) -> pd.Timestamp:
    """When crew-day ``day`` of a plan starts, in UTC.

    ``start`` is the plan date (a ``YYYY-MM-DD`` string or a date: the crews leave their yards at
    ``day_start`` local time in ``time_zone``), or an exact timestamp (naive = UTC); None is today in
    ``time_zone``. Day 2 is the next calendar day at the same local time (so across a daylight-saving change
    the UTC hour moves with the clock on the wall).
    """
    tz = settings.get("time_zone", "UTC")
    hh, mm = settings.get("day_start", (7, 0))
    if start is None:
        start = pd.Timestamp.now(tz=tz).date()
    if isinstance(start, str) and len(start) == 10:
        start = date.fromisoformat(start)
    if isinstance(start, date) and not isinstance(start, datetime):
        d = pd.Timestamp(start) + pd.Timedelta(days=day - 1)
        local = d.replace(hour=hh, minute=mm)  # a start inside a daylight-saving gap or overlap: the later instant
        return local.tz_localize(tz, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
    t = pd.Timestamp(start)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t + pd.Timedelta(days=day - 1)


def _due(disp: pd.DataFrame) -> pd.Series:
    if "due_by" not in disp:
        return pd.Series(pd.NaT, index=disp.index, dtype="datetime64[ns, UTC]")
    return pd.to_datetime(disp["due_by"], utc=True, errors="coerce")


def _must(disp: pd.DataFrame) -> np.ndarray:
    if "must" not in disp:
        return np.zeros(len(disp), bool)
    return disp["must"].fillna(False).astype(bool).to_numpy()


@dataclass(frozen=True)
class RoutePlan:
    """A routed list and what the desk reports about it.

    ``stops``: the list with ``ROUTE_COLUMNS`` (see :func:`route_dispatch`). ``yards``: crew, home_lat,
    home_lon and ``configured`` (False: the k-means fallback) so maps and KML draw each route from and back to
    the yard. ``crew_days``: one row per crew-day (stops, route_km, route_hours, route_kg_h, first and last
    arrival, due stops and how many are late). ``leftover``: leaks that do not fit day 1 (planned on later
    days, most urgent first); ``must_leftover``: the must stops among them, i.e. the must stops alone exceed
    the crews' day.
    """

    stops: pd.DataFrame
    yards: pd.DataFrame
    crew_days: pd.DataFrame
    leftover: list[str]
    must_leftover: list[str]


def plan_routes(disp: pd.DataFrame, settings: dict | None = None,
                start: str | date | datetime | pd.Timestamp | None = None, solver: Solver | None = None,
                ) -> RoutePlan:
    """Route ``disp`` (rank order, latitude/longitude; optional ``due_by``, ``must``, ``priority_score``).

    Day 1 takes every stop that is overdue, due before the day ends or ``must``, then the best-ranked rest up
    to the crews' visits; stops that do not fit go to day 2 first, and so on. ``solver`` routes one day (default
    :func:`solve_pyvrp`; the benchmark passes others). ``disp`` is not modified.
    """
    cfg = settings or load_settings()
    crews = cfg["crews"]
    if disp.empty:
        empty = disp.assign(**{c: pd.Series(dtype=object) for c in ROUTE_COLUMNS})
        return RoutePlan(empty, pd.DataFrame(columns=["crew", "home_lat", "home_lon", "configured"]),
                         pd.DataFrame(), [], [])
    disp = disp.sort_values("rank", kind="stable").reset_index(drop=True) if "rank" in disp else \
        disp.reset_index(drop=True)
    n = len(disp)
    lat, lon = disp["latitude"].to_numpy(float), disp["longitude"].to_numpy(float)
    homes = _homes(crews, lat, lon)
    D = km_matrix(np.r_[lat, [h[0] for h in homes]], np.r_[lon, [h[1] for h in homes]]) * cfg["road_factor"]
    due, must = _due(disp), np.r_[_must(disp), np.zeros(len(crews), bool)]
    caps, per_day = [c["visits"] for c in crews], sum(c["visits"] for c in crews)
    solve = solver or solve_pyvrp
    plan, todo, day, starts = [], list(range(n)), 0, {}
    while todo:
        day += 1
        t0 = starts[day] = day_start(start, cfg, day)
        hours = ((due - t0).dt.total_seconds() / 3600).to_numpy(float)
        due_h = np.where(np.isnan(hours) | (hours > cfg["day_hours"]), np.inf, np.maximum(hours, 0.0))
        due_h = np.r_[due_h, np.full(len(crews), np.inf)]
        urgent = sorted((j for j in todo if np.isfinite(due_h[j]) or must[j]), key=lambda j: (due_h[j], j))
        rest = [j for j in todo if j not in set(urgent)]
        block = urgent + rest[:max(0, per_day - len(urgent))]
        todo = [j for j in todo if j not in set(block)]
        p = DayProblem(D, [n + i for i in range(len(crews))], caps, block, due_h, must,
                       cfg["speed_km_h"], cfg["visit_hours"], cfg["day_hours"])
        routes, left = solve(p)
        if left and len(left) == len(block):  # not even one stop fits a day: plan it anyway (overtime shows)
            routes[0], left = [left[0]], left[1:]
        todo = [j for j in block if j in set(left)] + todo  # left over: next day, ahead of the rest
        plan += [(crews[v]["name"], day, routes[v], v, p) for v in range(len(crews))]
    stops = _route_frame(disp, plan, D, starts, due, {c["name"]: h for c, h in zip(crews, homes, strict=True)})
    yards = pd.DataFrame({"crew": [c["name"] for c in crews], "home_lat": [h[0] for h in homes],
                          "home_lon": [h[1] for h in homes], "configured": [c["home"] is not None for c in crews]})
    later = stops[(stops["day"] > 1).fillna(False).astype(bool)]
    return RoutePlan(stops, yards, crew_days(stops), later["leak_id"].tolist(),
                     later.loc[_must(later), "leak_id"].tolist())


def _route_frame(disp: pd.DataFrame, plan: list, D: np.ndarray, starts: dict, due: pd.Series,
                 homes: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """The list with its route columns, sorted by day, crew and stop (unrouted rows last)."""
    out = disp.copy()
    for c in ROUTE_COLUMNS:
        out[c] = np.nan
    out["crew"] = out["crew"].astype(object)
    out["arrive_at"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out["due_by"] = due
    score = out["priority_score"].astype(float) if "priority_score" in out else pd.Series(np.nan, index=out.index)
    for crew, day, route, v, p in plan:
        arrive, hours, km = p.schedule(v, route)
        kg_h = float(score.iloc[route].sum(min_count=1)) if route else np.nan
        prev = p.homes[v]
        for stop, (j, a) in enumerate(zip(route, arrive, strict=True), start=1):
            idx = out.index[j]
            out.at[idx, "crew"], out.at[idx, "day"], out.at[idx, "stop"] = crew, day, stop
            out.at[idx, "leg_km"] = round(float(D[prev, j]), 2)
            out.at[idx, "route_km"], out.at[idx, "route_hours"] = round(km, 2), round(hours, 2)
            out.at[idx, "arrive_at"] = (starts[day] + pd.Timedelta(hours=a)).round("s")
            out.at[idx, "route_kg_h"] = kg_h
            out.at[idx, "home_lat"], out.at[idx, "home_lon"] = homes[crew]
            prev = j
    for c in ("day", "stop"):
        out[c] = out[c].astype("Int64")
    out["on_time"] = on_time(out["arrive_at"], out["due_by"])
    return out.sort_values(["day", "crew", "stop"], na_position="last").reset_index(drop=True)


def on_time(arrive_at: pd.Series, due_by: pd.Series) -> pd.Series:
    """Whether each planned arrival is by its deadline: True or False (an overdue stop is False), NA where either is
    missing. The one rule for a proposal just routed and for a stored list read back (``plan.list_frame``)."""
    arrive = pd.to_datetime(arrive_at, utc=True, errors="coerce")
    due = pd.to_datetime(due_by, utc=True, errors="coerce")
    has = arrive.notna() & due.notna()
    return (arrive <= due).astype("boolean").where(has, pd.NA)


def crew_days(stops: pd.DataFrame) -> pd.DataFrame:
    """One row per crew-day of a routed list: stops, km, hours, expected methane (``route_kg_h``, the sum of
    ``priority_score``: expected kg/h found), first and last arrival, stops with a deadline and how many late."""
    r = stops[stops["day"].notna()]
    if r.empty:
        return pd.DataFrame(columns=["day", "crew", "stops", "route_km", "route_hours", "route_kg_h", "first_arrival",
                                     "last_arrival", "due_stops", "late_stops"])
    g = r.groupby(["day", "crew"], sort=True)
    return pd.DataFrame({"stops": g.size(), "route_km": g["route_km"].first(), "route_hours": g["route_hours"].first(),
                         "route_kg_h": g["route_kg_h"].first(), "first_arrival": g["arrive_at"].min(),
                         "last_arrival": g["arrive_at"].max(), "due_stops": g["on_time"].count(),
                         "late_stops": g["on_time"].agg(lambda s: int((s == False).sum()))}).reset_index()  # noqa: E712


def route_dispatch(disp: pd.DataFrame, settings: dict | None = None,
                   start: str | date | datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """``disp`` (rank order, with latitude/longitude) assigned to crews and ordered as routes.

    Keeps every given column (``due_by`` as UTC timestamps, NaT where none) and adds ``crew, day, stop,
    leg_km`` (from the previous stop or the yard), ``route_km`` and ``route_hours`` (the crew-day's loop, back to
    the yard), ``arrive_at`` (planned arrival, UTC), ``on_time`` (arrival by ``due_by``; NA without a deadline),
    ``route_kg_h`` (the crew-day's expected methane: the sum of its ``priority_score``) and ``home_lat,
    home_lon`` (the crew's yard, configured or the k-means fallback); rows sorted by day, crew and stop.
    ``start`` is the plan date (see :func:`day_start`). :func:`plan_routes` has the same with the yards,
    crew-day totals and the leftover lists.
    """
    return plan_routes(disp, settings, start).stops


def route_in_rank_order(disp: pd.DataFrame, settings: dict | None = None,
                        start: str | date | datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """The baseline routing would beat: leaks dealt to crews in rank order, each crew visiting in rank order.

    Same columns as :func:`route_dispatch`; nothing is moved to a later day for not fitting (overtime shows
    in ``route_hours``), and deadlines are ignored, as they would be by a desk that hands out the ranking.
    """
    cfg = settings or load_settings()
    crews = cfg["crews"]
    if disp.empty:
        return disp.assign(**{c: pd.Series(dtype=object) for c in ROUTE_COLUMNS})
    disp = disp.sort_values("rank", kind="stable").reset_index(drop=True) if "rank" in disp else \
        disp.reset_index(drop=True)
    n = len(disp)
    lat, lon = disp["latitude"].to_numpy(float), disp["longitude"].to_numpy(float)
    homes = _homes(crews, lat, lon)
    D = km_matrix(np.r_[lat, [h[0] for h in homes]], np.r_[lon, [h[1] for h in homes]]) * cfg["road_factor"]
    per_day = sum(c["visits"] for c in crews)
    due, starts, plan = _due(disp), {}, []
    for day, lo in enumerate(range(0, n, per_day), start=1):
        starts[day] = day_start(start, cfg, day)
        p = DayProblem(D, [n + i for i in range(len(crews))], [c["visits"] for c in crews], [],
                       np.full(n + len(crews), np.inf), np.zeros(n + len(crews), bool), cfg["speed_km_h"],
                       cfg["visit_hours"], cfg["day_hours"])
        routes: list[list[int]] = [[] for _ in crews]
        v = 0
        for j in range(lo, min(lo + per_day, n)):
            while len(routes[v]) >= crews[v]["visits"]:
                v = (v + 1) % len(crews)
            routes[v].append(j)
            v = (v + 1) % len(crews)
        plan += [(crews[i]["name"], day, routes[i], i, p) for i in range(len(crews))]
    return _route_frame(disp, plan, D, starts, due, {c["name"]: h for c, h in zip(crews, homes, strict=True)})
