"""Dispatch benchmark: methane found per crew-day, kilometres and deadlines met, by routing method.

A seeded simulated basin (``mlpe_core.simulate``) goes through the pipeline (ingest, fuse, score);
then crews work through the ranking for ``--days`` days. Each morning a seeded share of the day's
best-ranked leaks not yet visited (those that go out that day anyway, so that what is measured is the
routing, not the selection) gets a legal deadline: about 10 % of a day's visits are already overdue
and 20 % are due that day (between 08:30 and 13:00; the day starts 07:00 UTC); a due leak not
visited that day is overdue the next. Every strategy gets the same candidates and the same crews,
yards and travel model: the leaks that are overdue or due that day (``must``: a legal obligation),
then the best-ranked rest up to the crews' visits.

* rank order: leaks dealt to crews in rank order, each crew visiting its leaks in rank order;
* today's router: the heuristic as it was, blind to deadlines (``due_by`` and ``must`` removed);
* PyVRP w/o deadlines: the same blindness with PyVRP (what honouring the deadlines costs);
* heuristic: ``mlpe_core.dispatch.solve_heuristic`` with time windows;
* OR-Tools: its routing library (soft time windows, disjunctions with rank-ordered penalties);
* PyVRP: hard time windows, prizes, required clients.

A crew day is simulated stop by stop: straight-line km x road factor at ``--speed`` km/h, one hour
per visit, and the crew goes home when the next stop plus the drive home would pass the 8-hour day
(unvisited leaks stay in the pool, deadlines and all). Methane found = time-averaged rate (rate x
intermittency) of the real sources, still emitting at the end of the period, at the leaks a crew
visited, each source counted once. A stop due that day is on time when the crew arrives by the
deadline; an overdue stop is judged by the hour it is reached. Two capacities: the configured 4
visits per crew per day, and "fill the day" (up to 8 visits; the day length is the limit). Crews'
yards are k-means centres of the assets.

    python benchmarks/dispatch.py [--quick] [--no-deadlines] [--methods "rank order,PyVRP,..."]

OR-Tools is measured when it is installed (``pip install ortools==9.15.6755``; it is not a dependency).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlpe_core import dispatch as dsp  # noqa: E402
from mlpe_core import store  # noqa: E402
from mlpe_core.ingest import ingest_frame, to_canonical  # noqa: E402
from mlpe_core.pipeline import run_fuse, run_score, store_assets  # noqa: E402
from mlpe_core.simulate import simulate_basin  # noqa: E402
from mlpe_core.store.db import get_engine  # noqa: E402


def ranked_basin(seed: int, n_assets: int, spacing_m: float):
    basin = simulate_basin(seed=seed, n_assets=n_assets, spacing_m=spacing_m)
    eng = get_engine("sqlite://")
    with Session(eng) as s:
        store_assets(s, basin.assets)
        for name, feed in sorted(basin.feeds.items()):
            text = feed.astype(object).where(feed.notna(), "")
            text["observed_at"] = pd.to_datetime(feed["observed_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            ingest_frame(s, to_canonical(text.astype(str), "canonical", None, f"{name}.csv"), f"{name}.csv")
        run_fuse(s)
        run_score(s)
        leaks = store.leaks_frame(s)
        dets = store.detections_frame(s)
    eng.dispose()
    truth = basin.truth.merge(dets[["source_name", "detection_id", "leak_id"]], on=["source_name", "detection_id"])
    src = basin.sources.set_index("source_id")
    live = src[src["emitting_at_end"]]
    found = truth[truth["source_id"].isin(live.index)].groupby("leak_id")["source_id"].agg(lambda s: set(s))
    value = (live["rate_kg_h"] * live["intermittency"]).to_dict()
    ranked = leaks[leaks["rank"].notna()].sort_values("rank")
    return basin, ranked, found, value


DAY0 = pd.Timestamp("2025-06-02T07:00:00Z")
METHODS = ("rank order", "today's router", "PyVRP w/o deadlines", "heuristic", "OR-Tools", "PyVRP")


# ----------------------------------------------------------------------------------- solvers under test

MUST_DROP = 10**10  # metres: a must stop is left out only when it cannot be served at all
DROP = 500_000      # metres: an ordinary stop is worth 500 km, so only a day that cannot hold it leaves it out
RANK_STEP = 5_000   # metres per rank: of two stops that cannot both fit, the better-ranked stays


def _penalties(p: dsp.DayProblem) -> list[int]:
    m, order = len(p.stops), {j: r for r, j in enumerate(sorted(p.stops))}
    return [MUST_DROP if p.must[j] else DROP + (m - order[j]) * RANK_STEP for j in p.stops]


def solve_ortools(p: dsp.DayProblem, seconds: float = 1.0) -> tuple[list[list[int]], list[int]]:
    """OR-Tools routing: km arc costs, a hard day, soft windows (an hour waiting for an overdue stop costs
    like an ordinary stop; a second late on a deadline costs two), disjunctions priced by rank, guided local
    search for ``seconds`` (penalties near the km scale: at 10^9 its search stalled on fewer stops)."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    m, V = len(p.stops), len(p.homes)
    nodes = list(p.stops) + list(p.homes)
    sub = p.D[np.ix_(nodes, nodes)]
    secs = np.rint(sub / p.speed * 3600).astype(np.int64)
    secs[:m, :] += int(round(p.visit_h * 3600))  # the visit, before leaving the stop
    manager = pywrapcp.RoutingIndexManager(m + V, V, list(range(m, m + V)), list(range(m, m + V)))
    routing = pywrapcp.RoutingModel(manager)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(np.rint(sub * 1000).astype(np.int64)
                                                                           .tolist()))
    routing.AddDimension(routing.RegisterTransitMatrix(secs.tolist()), 0, int(round(p.day_h * 3600)), True, "time")
    tdim = routing.GetDimensionOrDie("time")
    for k, j in enumerate(p.stops):
        if np.isfinite(p.due_h[j]):
            tdim.SetCumulVarSoftUpperBound(manager.NodeToIndex(k), int(p.due_h[j] * 3600),
                                           DROP // 3600 if p.due_h[j] <= 0 else 2 * DROP)
    routing.AddDimensionWithVehicleCapacity(routing.RegisterUnaryTransitVector([1] * m + [0] * V), 0, list(p.caps),
                                            True, "visits")
    for k, pen in enumerate(_penalties(p)):
        routing.AddDisjunction([manager.NodeToIndex(k)], pen)
    sp = pywrapcp.DefaultRoutingSearchParameters()
    sp.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    sp.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    sp.time_limit.FromMilliseconds(int(seconds * 1000))
    sol = routing.SolveWithParameters(sp)
    if sol is None:
        return dsp.solve_heuristic(p)
    routes = []
    for v in range(V):
        idx, r = sol.Value(routing.NextVar(routing.Start(v))), []
        while not routing.IsEnd(idx):
            r.append(p.stops[manager.IndexToNode(idx)])
            idx = sol.Value(routing.NextVar(idx))
        routes.append(r)
    served = {j for r in routes for j in r}
    return routes, sorted(j for j in p.stops if j not in served)


# ----------------------------------------------------------------------------------- the simulated days


def crew_day(route: pd.DataFrame, home: tuple[float, float], cfg: dict) -> tuple[list[str], list[float], float]:
    """Stops a crew completes in the day, the hour (after the day's start) it reaches each, and km driven
    (including the drive home)."""
    lat = np.r_[home[0], route["latitude"].to_numpy(float)]
    lon = np.r_[home[1], route["longitude"].to_numpy(float)]
    D = dsp.km_matrix(lat, lon) * cfg["road_factor"]
    t, km, here, done, at = 0.0, 0.0, 0, [], []
    for i in range(1, len(lat)):
        need = (D[here, i] + D[i, 0]) / cfg["speed_km_h"] + cfg["visit_hours"]
        if t + need > cfg["day_hours"]:
            break
        at.append(t + D[here, i] / cfg["speed_km_h"])
        t += D[here, i] / cfg["speed_km_h"] + cfg["visit_hours"]
        km += D[here, i]
        here = i
        done.append(route["leak_id"].iloc[i - 1])
    return done, at, km + D[here, 0]


def plan(strategy: str, cand: pd.DataFrame, cfg: dict, start: pd.Timestamp) -> pd.DataFrame:
    if strategy == "rank order":
        return dsp.route_in_rank_order(cand, cfg, start)
    if strategy in ("today's router", "PyVRP w/o deadlines"):  # blind to deadlines: due_by and must removed
        solver = dsp.solve_heuristic if strategy == "today's router" else dsp.solve_pyvrp
        return dsp.plan_routes(cand.drop(columns=["due_by", "must"]), cfg, start, solver=solver).stops
    solver = {"heuristic": dsp.solve_heuristic, "OR-Tools": solve_ortools, "PyVRP": dsp.solve_pyvrp}[strategy]
    return dsp.plan_routes(cand, cfg, start, solver=solver).stops


def simulate(ranked: pd.DataFrame, found: pd.Series, value: dict, cfg: dict, days: int, strategy: str, seed: int,
             deadlines: bool) -> list[dict]:
    """One row per horizon (1, 3 and ``days`` days): per crew-day figures over the first d days."""
    pool = ranked.copy()
    pool["due_by"] = pd.Series(pd.NaT, index=pool.index, dtype="datetime64[ns, UTC]")
    seen: set[str] = set()
    visits, km, kg_h, plan_s = 0, 0.0, 0.0, 0.0
    due_n = due_ok = over_n = over_done = 0
    over_h: list[float] = []
    homes = {c["name"]: c["home"] for c in cfg["crews"]}
    per_day = sum(c["visits"] for c in cfg["crews"])
    out = []
    for d in range(1, days + 1):
        start = DAY0 + pd.Timedelta(days=d - 1)
        end = start + pd.Timedelta(hours=cfg["day_hours"])
        if deadlines:  # the morning's new obligations, among the best leaks not yet visited
            rng = np.random.default_rng([seed, d])
            free = pool.head(per_day)  # leaks that go out today anyway: what the deadlines cost is the routing
            free = free[free["due_by"].isna()].index.to_numpy()
            n_over, n_due = max(1, round(0.1 * per_day)), max(1, round(0.2 * per_day))
            pick = rng.choice(free, size=min(len(free), n_over + n_due), replace=False)
            hours = rng.uniform(1.5, 6.0, len(pick)).round(2) if len(pick) else []
            for k, i in enumerate(pick):
                pool.at[i, "due_by"] = start - pd.Timedelta(days=1) if k < n_over else \
                    start + pd.Timedelta(hours=float(hours[k]))
        pool["must"] = pool["due_by"].notna() & (pool["due_by"] <= end)
        cand = pd.concat([pool[pool["must"]], pool[~pool["must"]].head(max(0, per_day - int(pool["must"].sum())))])
        cand = cand.sort_values("rank").copy()
        if cand.empty:
            break
        cand["rank"] = range(1, len(cand) + 1)
        t0 = time.perf_counter()
        routed = plan(strategy, cand, cfg, start)
        routed = routed[routed["day"] == 1]  # only what fits in the day goes out; the rest waits
        plan_s += time.perf_counter() - t0
        done_at: dict[str, float] = {}
        for crew, g in routed.groupby("crew"):
            done, at, k = crew_day(g.sort_values("stop"), homes[crew], cfg)
            km += k
            visits += len(done)
            done_at.update(zip(done, at, strict=True))
            for lid in done:
                for sid in found.get(lid, set()) - seen:
                    kg_h += value[sid]
                    seen.add(sid)
        due_today = cand[cand["due_by"].notna() & (cand["due_by"] >= start) & (cand["due_by"] <= end)]
        due_n += len(due_today)
        due_ok += sum(lid in done_at and start + pd.Timedelta(hours=done_at[lid]) <= due
                      for lid, due in zip(due_today["leak_id"], due_today["due_by"], strict=True))
        overdue = cand.loc[cand["due_by"] < start, "leak_id"]
        over_n += len(overdue)
        over_done += sum(lid in done_at for lid in overdue)
        over_h += [done_at[lid] for lid in overdue if lid in done_at]
        pool = pool[~pool["leak_id"].isin(list(done_at))]
        if d in (1, 3, days):
            crew_days = d * len(cfg["crews"])
            out.append({"days": d, "strategy": strategy, "visits/crew-day": visits / crew_days,
                        "kg/h found/crew-day": kg_h / crew_days, "km/crew-day": km / crew_days,
                        "due on time": due_ok / due_n if due_n else np.nan,
                        "overdue visited": over_done / over_n if over_n else np.nan,
                        "overdue reached h": float(np.mean(over_h)) if over_h else np.nan,
                        "plan s/day": plan_s / d})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, a smaller basin")
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--speed", type=float, default=50.0)
    ap.add_argument("--no-deadlines", action="store_true", help="no leak carries a deadline (the old benchmark)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of: {', '.join(METHODS)}")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",")]
    if "OR-Tools" in methods:
        try:
            import ortools  # noqa: F401  (measured, not a dependency: pip install ortools==9.15.6755)
        except ImportError:
            print("OR-Tools is not installed: measuring without it", file=sys.stderr)
            methods.remove("OR-Tools")
    seeds = [0] if args.quick else [0, 1, 2]
    n_assets = 800 if args.quick else 2000
    base = dsp.load_settings()
    rows = []
    for spacing in (500.0, 1500.0):
        for seed in seeds:
            t0 = time.perf_counter()
            basin, ranked, found, value = ranked_basin(seed, n_assets, spacing)
            xy = basin.assets[["latitude", "longitude"]].to_numpy(float)
            yards = KMeans(n_clusters=3, n_init=4, random_state=seed).fit(xy).cluster_centers_
            span = dsp.km_matrix(xy[:, 0], xy[:, 1]).max()
            print(f"basin seed {seed}, spacing {spacing:.0f} m: {len(basin.assets)} assets across {span:.0f} km, "
                  f"{len(ranked)} ranked leaks ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            for visits, label in ((4, "4 visits/crew/day"), (8, "fill the 8 h day")):
                cfg = dict(base, speed_km_h=args.speed, day_start=(7, 0), time_zone="UTC",
                           crews=[{"name": f"crew-{i + 1}", "home": (float(y[0]), float(y[1])), "visits": visits}
                                  for i, y in enumerate(yards)])
                for strategy in methods:
                    for r in simulate(ranked, found, value, cfg, args.days, strategy, seed, not args.no_deadlines):
                        rows.append({"spacing m": spacing, "basin km": round(float(span)), "seed": seed,
                                     "capacity": label, **r})
    df = pd.DataFrame(rows)
    key = ["spacing m", "capacity", "days", "strategy"]
    cols = ["basin km", "visits/crew-day", "kg/h found/crew-day", "km/crew-day", "due on time", "overdue visited",
            "overdue reached h", "plan s/day"]
    mean = df.groupby(key, sort=False)[cols].mean()
    pd.set_option("display.width", 200)
    print(f"\nPer crew-day over the first 1, 3 and {args.days} days, 3 crews, {args.speed:.0f} km/h x road factor "
          f"{base['road_factor']}, 1 h per visit, 8 h day; {'no deadlines' if args.no_deadlines else 'deadlines'}; "
          f"mean of seeds {seeds}:\n")
    print(mean.round(3).to_string())
    ref = "rank order" if "rank order" in methods else methods[0]
    per = mean["kg/h found/crew-day"].unstack("strategy")
    print(f"\nmethane found / {ref}:")
    print(per.div(per[ref], axis=0).round(3).to_string())


if __name__ == "__main__":
    main()
