"""Routing: assign the day's leaks to crews and order each crew's visits as a route."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .settings import load_settings

ROUTE_COLUMNS = ("crew", "day", "stop", "leg_km", "route_km", "route_hours")


EARTH_KM = 6371.0088


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
