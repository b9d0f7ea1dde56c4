"""Dispatch: crews, capacities and home bases honoured; routes shorter than visiting in rank order;
supervisor approval recorded and enforced; work orders valid against their documented schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlmodel import select

from mlpe_core import auth, desk
from mlpe_core import dispatch as dsp
from mlpe_core.lifecycle import TransitionError
from mlpe_core.schema import DISPATCH_EXPORT_COLUMNS
from mlpe_core.store.models import DispatchItem, DispatchList, Leak, LeakEvent, LeakRank

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "docs" / "workorder.schema.json"
T = pd.Timestamp("2025-03-03T10:00:00Z")


def settings(crews, **over) -> dict:
    cfg = {"crews": [{"name": n, "home": h, "visits": v} for n, h, v in crews], "visits_per_crew_per_day": 4,
           "speed_km_h": 50.0, "road_factor": 1.0, "visit_hours": 1.0, "day_hours": 8.0, "separate_approver": True}
    cfg.update(over)
    return cfg


def frame(points) -> pd.DataFrame:
    return pd.DataFrame({"rank": range(1, len(points) + 1), "leak_id": [f"L{i + 1:06d}" for i in range(len(points))],
                         "latitude": [p[0] for p in points], "longitude": [p[1] for p in points]})


def total_km(routed: pd.DataFrame) -> float:
    return float(routed.drop_duplicates(["day", "crew"])["route_km"].sum())


# --------------------------------------------------------------------------------------------- settings


def test_shipped_settings_and_capacity():
    cfg = dsp.load_settings()
    assert [c["name"] for c in cfg["crews"]] == ["crew-1", "crew-2", "crew-3"]
    assert dsp.crew_capacity() == 12


def test_crews_with_homes_and_own_capacity(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text(yaml.safe_dump({"crews": [{"name": "north", "home": [33.0, -102.0], "visits_per_day": 6},
                                           {"name": "south", "home": [31.0, -102.0]}],
                                 "visits_per_crew_per_day": 3, "speed_km_h": 60}))
    cfg = dsp.load_settings(p)
    assert [(c["name"], c["home"], c["visits"]) for c in cfg["crews"]] == [("north", (33.0, -102.0), 6),
                                                                          ("south", (31.0, -102.0), 3)]
    assert dsp.crew_capacity(p) == 9 and cfg["speed_km_h"] == 60.0
    p.write_text(yaml.safe_dump({"crews": 2}))
    assert dsp.crew_capacity(p) == 8


@pytest.mark.parametrize(("cfg", "field"), [({"crews": [{"name": "a", "home": [95, 0]}]}, "crews[0].home"),
                                            ({"crews": [{"name": "a"}, {"name": "a"}]}, "crews[1].name"),
                                            ({"crews": 0}, "crews"),
                                            ({"visits_per_crew_per_day": 0}, "visits_per_crew_per_day"),
                                            ({"speed_km_h": -5}, "speed_km_h"),
                                            ({"approval": {"separate_approver": "no"}}, "approval.separate_approver")])
def test_bad_settings_name_the_field(tmp_path, cfg, field):
    p = tmp_path / "d.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(dsp.DispatchConfigError, match=f"field '{field.replace('[', '.').replace(']', '.')}'"):
        dsp.load_settings(p)


# --------------------------------------------------------------------------------------------- routing

WEST, EAST = (32.0, -103.0), (32.0, -101.0)  # ~190 km apart


def _around(c, dx_km):
    return (c[0], c[1] + dx_km / (111.32 * math.cos(math.radians(c[0]))))


def test_routes_group_each_crews_visits_and_beat_rank_order():
    # ranks go west, west, east, east, ... ; each crew's yard is in one of the two areas
    sides = [WEST, WEST, EAST, EAST, WEST, WEST, EAST, EAST]
    pts = [_around(c, 3.0 * sum(1 for x in sides[:i] if x == c)) for i, c in enumerate(sides)]
    cfg = settings([("west", WEST, 4), ("east", EAST, 4)])
    routed = dsp.route_dispatch(frame(pts), cfg)
    naive = dsp.route_in_rank_order(frame(pts), cfg)
    assert sorted(routed["leak_id"]) == sorted(frame(pts)["leak_id"])
    side = {r.leak_id: ("west" if r.longitude < -102 else "east") for r in routed.itertuples()}
    assert all(side[r.leak_id] == r.crew for r in routed.itertuples())  # every crew stays in its own area
    # along a line from the yard the route is the line, out and back: 2 x 9 km per crew
    assert total_km(routed) == pytest.approx(36.0, rel=0.01)
    assert routed.query("crew == 'west'")["rank"].tolist() == [1, 2, 5, 6]
    assert routed.query("crew == 'west'")["leg_km"].tolist() == pytest.approx([0.0, 3.0, 3.0, 3.0], abs=0.05)
    assert total_km(naive) > 10 * total_km(routed)  # dealt in rank order, both crews cross the basin


def test_capacity_and_home_bases_are_honoured_and_best_ranks_go_first():
    rng = np.random.default_rng(4)
    pts = list(zip(32 + rng.uniform(0, 0.4, 30), -102 + rng.uniform(0, 0.4, 30), strict=True))
    cfg = settings([("a", (32.0, -102.0), 5), ("b", (32.4, -101.6), 3)])
    routed = dsp.route_dispatch(frame(pts), cfg)
    sizes = routed.groupby(["day", "crew"]).size().to_dict()
    assert sizes[(1, "a")] == 5 and sizes[(1, "b")] == 3
    assert all(n <= {"a": 5, "b": 3}[c] for (_, c), n in sizes.items())
    assert set(routed.loc[routed["day"] == 1, "rank"]) == set(range(1, 9))  # day 1 = the 8 best
    assert routed["day"].max() == 4 and len(routed) == 30 and routed["leak_id"].is_unique
    first = routed[(routed["day"] == 1) & (routed["crew"] == "a")].sort_values("stop")
    home = np.radians([32.0, -102.0])
    lat, lon = np.radians(first[["latitude", "longitude"]].iloc[0])
    d = 2 * 6371.0088 * math.asin(math.sqrt(math.sin((lat - home[0]) / 2) ** 2
                                            + math.cos(lat) * math.cos(home[0]) * math.sin((lon - home[1]) / 2) ** 2))
    assert first["leg_km"].iloc[0] == pytest.approx(d, abs=0.01)  # the first leg starts at the crew's yard
    hours = first["route_km"].iloc[0] / 50 + 5
    assert first["route_hours"].iloc[0] == pytest.approx(hours, abs=0.01)


def test_two_opt_untangles_a_crossing_route():
    D = dsp.km_matrix(np.array([0, 0, 1, 1, 0.5]), np.array([0, 1, 1, 0, -0.5]))
    home = 4
    crossed = [0, 2, 1, 3]
    better = dsp.two_opt(crossed, D, home)
    assert dsp.tour_km(better, D, home) < dsp.tour_km(crossed, D, home) - 50
    assert sorted(better) == [0, 1, 2, 3]


def test_crews_without_a_yard_start_from_their_share_of_the_leaks():
    pts = [_around(WEST, i) for i in range(4)] + [_around(EAST, i) for i in range(4)]
    routed = dsp.route_dispatch(frame(pts), settings([("a", None, 4), ("b", None, 4)]))
    assert routed.groupby("crew")["longitude"].agg(lambda s: (s < -102).all() or (s > -102).all()).all()


DAY_END = pd.Timestamp("2025-03-05T00:00:00Z")


def _ranking(**cols) -> pd.DataFrame:
    n = len(cols["leak_id"])
    base = {"status": ["open"] * n, "marked": [False] * n, "due_by": [pd.NaT] * n, "due_rule": [None] * n,
            "latitude": 32.0, "longitude": -102.0, "model_rank": cols["rank"]}
    df = pd.DataFrame({**base, **cols})
    df["due_by"] = pd.to_datetime(df["due_by"], utc=True)
    return df


def test_the_day_list_keeps_the_contract_and_leaves_out_visited_and_unopen_leaks():
    leaks = _ranking(leak_id=["L1", "L2", "L3", "L4"], status=["open", "open", "dispatched", "open"], rank=[2, 1, 3, 4])
    before = leaks.copy()
    d = dsp.select_for_day(leaks, {"L4"}, 10, DAY_END)
    assert list(d.columns[: len(DISPATCH_EXPORT_COLUMNS)]) == list(DISPATCH_EXPORT_COLUMNS)
    assert d["leak_id"].tolist() == ["L2", "L1"] and d["rank"].tolist() == [1, 2]
    assert d["why_listed"].tolist() == ["rank 1", "rank 2"] and not d["must"].any()
    pd.testing.assert_frame_equal(leaks, before)  # input not modified


# --------------------------------------------------------------------------------------------- deadlines, yards, totals

DAY = "2025-03-04"  # plan date; the shipped day starts 07:00 UTC
START = pd.Timestamp("2025-03-04T07:00:00Z")
YARD = (32.0, -102.0)


def _east(km: float, c=YARD) -> tuple[float, float]:
    """``km`` great-circle kilometres east of ``c`` (the router's haversine radius, so distances come out exact)."""
    return (c[0], c[1] + km / (6371.0088 * math.pi / 180 * math.cos(math.radians(c[0]))))


def _line(kms, **cols) -> pd.DataFrame:
    """Stops along a line east of the yard, rank 1 first, with optional columns (lists by position)."""
    df = frame([_east(k) for k in kms])
    df["priority_score"] = [10.0 * (len(kms) - i) for i in range(len(kms))]
    for c, v in cols.items():
        df[c] = v
    return df


def _due(*hours_or_none) -> pd.Series:
    return pd.Series([pd.NaT if h is None else START + pd.Timedelta(hours=h) for h in hours_or_none],
                     dtype="datetime64[ns, UTC]")


@pytest.fixture(params=[None, dsp.solve_heuristic], ids=["pyvrp", "heuristic"])
def solver(request):
    """The router (PyVRP) and the heuristic it falls back on: both must honour deadlines, must stops and yards."""
    return request.param


def route(df: pd.DataFrame, cfg: dict, solver=None) -> pd.DataFrame:
    return dsp.plan_routes(df, cfg, start=DAY, solver=solver).stops


def one_crew(visits=8, **over) -> dict:
    return settings([("solo", YARD, visits)], **{"day_start": (7, 0), "time_zone": "UTC", **over})


def test_tiny_exact_route_and_clock(solver):
    # two stops 10 and 20 km east (road factor 1): out 10, on 10, back 20 km; 50 km/h, 1 h per visit
    routed = route(_line([10.0, 20.0]), one_crew(), solver)
    assert routed["leak_id"].tolist() == ["L000001", "L000002"] and routed["stop"].tolist() == [1, 2]
    assert routed["leg_km"].tolist() == pytest.approx([10.0, 10.0], abs=0.01)
    assert routed["route_km"].tolist() == pytest.approx([40.0, 40.0], abs=0.01)
    assert routed["route_hours"].iloc[0] == pytest.approx(40 / 50 + 2, abs=0.01)
    assert routed["arrive_at"].tolist() == [START + pd.Timedelta(minutes=12), START + pd.Timedelta(minutes=84)]
    assert routed["route_kg_h"].tolist() == [30.0, 30.0]  # 20 + 10: the crew-day's expected methane
    assert routed["on_time"].isna().all() and routed["due_by"].isna().all()
    assert (routed["home_lat"] == YARD[0]).all() and (routed["home_lon"] == YARD[1]).all()


def test_the_day_starts_at_local_time_in_the_configured_zone():
    cfg = one_crew(day_start=(7, 30), time_zone="America/Chicago")
    routed = dsp.route_dispatch(_line([10.0]), cfg, start=DAY)
    # 07:30 in Chicago on 4 March (CST, UTC-6) is 13:30 UTC; 12 minutes' drive
    assert routed["arrive_at"].iloc[0] == pd.Timestamp("2025-03-04T13:42:00Z")
    assert dsp.day_start("2025-07-01", cfg) == pd.Timestamp("2025-07-01T12:30:00Z")  # CDT, UTC-5
    assert dsp.day_start(pd.Timestamp("2025-03-04T05:00:00Z"), cfg, day=2) == pd.Timestamp("2025-03-05T05:00:00Z")
    gap = dict(cfg, day_start=(2, 30))  # 02:30 does not exist on 9 March in Chicago: the clock jumps to 03:00 CDT
    assert dsp.day_start("2025-03-09", gap) == pd.Timestamp("2025-03-09T08:00:00Z")


def test_an_overdue_stop_is_the_first_stop_not_the_last(solver):
    # four stops on a line; the worst-ranked (farthest) one is overdue: by kilometres and rank it would come last
    kms = [5.0, 10.0, 15.0, 30.0]
    plain = route(_line(kms), one_crew(), solver)
    assert plain.set_index("leak_id").loc["L000004", "stop"] == 4  # the test could fail: it is last without a deadline
    df = _line(kms, due_by=_due(None, None, None, -48), must=[False, False, False, True])
    routed = route(df, one_crew(), solver)
    first = routed.sort_values("stop").iloc[0]
    assert first["leak_id"] == "L000004" and first["arrive_at"] == START + pd.Timedelta(minutes=36)
    assert not first["on_time"]  # it was due before the day began: late, but reached first
    assert set(routed["leak_id"]) == set(df["leak_id"]) and (routed["day"] == 1).all()


def test_an_overdue_stop_goes_to_the_crew_that_can_reach_it_first(solver):
    cfg = settings([("west", WEST, 4), ("east", EAST, 4)], day_start=(7, 0), time_zone="UTC")
    pts = [_around(WEST, 3.0 * i) for i in range(1, 4)] + [_around(EAST, 3.0 * i) for i in range(1, 4)]
    df = frame(pts)
    df["due_by"] = _due(None, None, -1, None, None, None)
    routed = route(df, cfg, solver).set_index("leak_id")
    assert routed.loc["L000003", ["crew", "stop"]].tolist() == ["west", 1]


@pytest.mark.parametrize("step_km", [0.03, 0.2, 0.25])
def test_overdue_leaks_on_one_site_go_to_one_crew(step_km):
    # three overdue leaks on one pad 10 km east of yard A (each within 0.3 km of the next; at 0.2 and 0.25 km steps
    # the ends are farther apart than that), yard B 30 km east with work of its own: one crew sees the pad's three,
    # one after the other (the same window for each sent a second crew)
    cfg = settings([("a", YARD, 4), ("b", _east(30.0), 4)], day_start=(7, 0), time_zone="UTC")
    df = frame([_east(10.0), _east(10.0 + step_km), _east(10.0 + 2 * step_km), _east(33.0), _east(36.0)])
    df["due_by"] = _due(-48, -48, -48, None, None)
    routed = route(df, cfg).set_index("leak_id")
    pad = routed.loc[["L000001", "L000002", "L000003"]]
    assert pad["crew"].nunique() == 1 and sorted(pad["stop"]) == [1, 2, 3]
    assert set(routed.loc[["L000004", "L000005"], "crew"]) == {"b"}


def test_a_stop_due_at_ten_is_visited_by_ten(solver):
    # one crew, stops 10, 20, 30 km east and one 25 km north of the yard: the shortest loop reaches the north
    # stop last (after 11:00); due at 10:00 it must come before 10:00
    pts = [_east(10.0), _east(20.0), _east(30.0), (YARD[0] + 25 / 111.2, YARD[1])]
    df = frame(pts)
    df["priority_score"] = 1.0
    plain = route(df, one_crew(), solver).set_index("leak_id")
    assert plain.loc["L000004", "arrive_at"] > START + pd.Timedelta(hours=3)  # without the deadline: late
    df["due_by"] = _due(None, None, None, 3.0)
    df["must"] = [False, False, False, True]
    routed = route(df, one_crew(), solver).set_index("leak_id")
    assert routed.loc["L000004", "arrive_at"] <= pd.Timestamp("2025-03-04T10:00:00Z")
    assert routed.loc["L000004", "on_time"] == True  # noqa: E712  (pandas' boolean NA-aware scalar)
    assert routed["on_time"].drop("L000004").isna().all()
    assert routed["due_by"].loc["L000004"] == pd.Timestamp("2025-03-04T10:00:00Z")


def test_must_stops_are_never_dropped_for_the_day(solver):
    # an 8 h day holds about five of these stops; the worst-ranked, farthest one is a must stop
    kms = [10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 60.0]
    df = _line(kms, must=[False] * 7 + [True])
    plain = dsp.plan_routes(_line(kms), one_crew(), start=DAY, solver=solver)
    assert "L000008" in plain.leftover  # the test could fail: without the flag it is the first to wait
    plan = dsp.plan_routes(df, one_crew(), start=DAY, solver=solver)
    day1 = plan.stops[plan.stops["day"] == 1]
    assert "L000008" in set(day1["leak_id"]) and plan.must_leftover == []
    assert day1["route_hours"].iloc[0] <= 8.0 + 1e-9
    assert plan.leftover and set(plan.leftover) <= {f"L{i:06d}" for i in range(1, 8)}
    assert plan.leftover == plan.stops.loc[plan.stops["day"] > 1, "leak_id"].tolist()


def test_a_deadline_no_route_can_meet_is_visited_late_not_left_out():
    # due 07:05, but 30 km from the yard (36 minutes away): no hard window can hold it, so the day is planned with
    # soft deadlines (the heuristic, or PyVRP without windows, whichever is less late): first stop, 31 minutes late
    df = _line([5.0, 10.0, 30.0], due_by=_due(None, None, 5 / 60), must=[False, False, True])
    routed = dsp.route_dispatch(df, one_crew(), start=DAY).set_index("leak_id")
    assert routed.loc["L000003", ["day", "stop"]].tolist() == [1, 1]
    assert routed.loc["L000003", "arrive_at"] == START + pd.Timedelta(minutes=36)
    assert routed.loc["L000003", "on_time"] == False  # noqa: E712
    assert (routed["day"] == 1).all()


def test_must_stops_that_alone_exceed_the_day_are_named(solver):
    # ten must stops of an hour each cannot fit an 8 h day
    df = _line([5.0 + i for i in range(10)], must=True)
    plan = dsp.plan_routes(df, one_crew(visits=12), start=DAY, solver=solver)
    day1 = plan.stops[plan.stops["day"] == 1]
    assert len(day1) >= 6 and set(plan.must_leftover) == set(plan.leftover)
    assert plan.must_leftover and set(plan.must_leftover).isdisjoint(day1["leak_id"])


def test_routes_start_and_end_at_the_yard_and_the_yards_are_returned():
    cfg = settings([("a", (32.0, -102.0), 4), ("b", None, 4)], day_start=(7, 0), time_zone="UTC")
    pts = [_around((32.0, -102.0), 2.0 + i) for i in range(4)] + [_around(EAST, 2.0 + i) for i in range(4)]
    plan = dsp.plan_routes(frame(pts), cfg, start=DAY)
    yards = plan.yards.set_index("crew")
    assert yards.loc["a", ["home_lat", "home_lon", "configured"]].tolist() == [32.0, -102.0, True]
    centre = (np.mean([p[0] for p in pts]), np.mean([p[1] for p in pts]))  # one crew without a yard: one group
    assert not yards.loc["b", "configured"]
    assert yards.loc["b", ["home_lat", "home_lon"]].tolist() == pytest.approx(centre, abs=1e-6)
    for crew, g in plan.stops.groupby("crew"):
        g = g.sort_values("stop")
        home = (g["home_lat"].iloc[0], g["home_lon"].iloc[0])
        assert home == tuple(yards.loc[crew, ["home_lat", "home_lon"]])
        lat = np.r_[home[0], g["latitude"], home[0]]
        lon = np.r_[home[1], g["longitude"], home[1]]
        legs = [dsp.km_matrix(lat[i:i + 2], lon[i:i + 2])[0, 1] for i in range(len(lat) - 1)]
        assert g["leg_km"].tolist() == pytest.approx(legs[:-1], abs=0.01)  # the first leg is from the yard
        assert g["route_km"].iloc[0] == pytest.approx(sum(legs), abs=0.02)  # and the drive back is counted


def test_methane_per_crew_day_and_the_crew_day_totals():
    rng = np.random.default_rng(7)
    pts = list(zip(32 + rng.uniform(0, 0.3, 12), -102 + rng.uniform(0, 0.3, 12), strict=True))
    df = frame(pts)
    df["priority_score"] = rng.uniform(1, 50, 12).round(2)
    cfg = settings([("a", (32.0, -102.0), 4), ("b", (32.3, -101.7), 4)], day_start=(7, 0), time_zone="UTC")
    plan = dsp.plan_routes(df, cfg, start=DAY)
    sums = plan.stops.groupby(["day", "crew"])["priority_score"].sum()
    got = plan.stops.groupby(["day", "crew"])["route_kg_h"].agg(["min", "max"])
    assert np.allclose(got["min"], sums) and np.allclose(got["max"], sums)
    cd = plan.crew_days.set_index(["day", "crew"])
    assert np.allclose(cd.loc[sums.index, "route_kg_h"], sums) and cd["stops"].sum() == 12
    assert (cd["first_arrival"] >= START).all()
    base = dsp.route_in_rank_order(df, cfg, start=DAY)
    assert set(dsp.ROUTE_COLUMNS) <= set(base.columns) and set(dsp.ROUTE_COLUMNS) <= set(plan.stops.columns)


def test_same_input_same_routes_and_the_input_is_not_modified(solver):
    rng = np.random.default_rng(11)
    pts = list(zip(32 + rng.uniform(0, 0.5, 20), -102 + rng.uniform(0, 0.5, 20), strict=True))
    df = frame(pts).sample(frac=1.0, random_state=3)  # not in rank order
    df["due_by"] = pd.Series([pd.NaT] * 20, index=df.index, dtype="datetime64[ns, UTC]")
    df.iloc[4, df.columns.get_loc("due_by")] = START - pd.Timedelta(days=2)
    df.iloc[9, df.columns.get_loc("due_by")] = START + pd.Timedelta(hours=4)
    df["must"] = df["due_by"].notna()
    before = df.copy()
    cfg = settings([("a", (32.0, -102.0), 8), ("b", (32.5, -101.5), 8)], day_start=(7, 0), time_zone="UTC")
    one = route(df, cfg, solver)
    two = route(df, cfg, solver)
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(df, before)
    assert one["leak_id"].is_unique and len(one) == 20


@pytest.mark.parametrize(("value", "field"), [("7:00", None), (420, "day_start"), ("25:00", "day_start"),
                                              ("seven", "day_start")])
def test_day_start_setting(tmp_path, value, field):
    p = tmp_path / "d.yaml"
    p.write_text(f"day_start: {value if isinstance(value, int) else repr(value)}\ntime_zone: America/Denver\n")
    if field is None:
        cfg = dsp.load_settings(p)
        assert cfg["day_start"] == (7, 0) and cfg["time_zone"] == "America/Denver"
    else:
        with pytest.raises(dsp.DispatchConfigError, match=f"field '{field}'"):
            dsp.load_settings(p)
    p.write_text("time_zone: Mars/Olympus\n")
    with pytest.raises(dsp.DispatchConfigError, match="field 'time_zone'"):
        dsp.load_settings(p)
    p.write_text("day_start: 6\n")
    assert dsp.load_settings(p)["day_start"] == (6, 0)


@pytest.mark.parametrize("k, expected", [(6, ["L5", "L4", "L3", "L1", "L2", "L6"]), (2, ["L5", "L4"])])
def test_deadlines_then_marks_then_the_ranking_choose_the_day(k, expected):
    leaks = _ranking(leak_id=["L1", "L2", "L3", "L4", "L5", "L6"], rank=[1, 2, 3, 4, 5, 6],
                     status=["open", "open", "dispatched", "open", "open", "open"],
                     marked=[False, False, True, False, False, False],
                     due_by=[pd.NaT, pd.Timestamp("2025-03-09", tz="UTC"), pd.NaT,
                             pd.Timestamp("2025-03-04T15:00", tz="UTC"), pd.Timestamp("2025-01-10", tz="UTC"), pd.NaT],
                     due_rule=[None, "r:report", None, "r:investigate", "r:investigate", None])
    d = dsp.select_for_day(leaks, set(), k, DAY_END)
    assert d["leak_id"].tolist() == expected and d["rank"].tolist() == list(range(1, k + 1))
    if k == 6:  # overdue first, then due on the plan day, then marked, then rank order (L2 is due later)
        assert d["must"].tolist() == [True, True, True, False, False, False]
        assert d["why_listed"].tolist()[:3] == ["deadline overdue (r:investigate)", "due on the plan day "
                                                "(r:investigate)", "marked for dispatch"]
        assert d["model_rank"].tolist() == [5, 4, 3, 1, 2, 6]


# --------------------------------------------------------------------------------------------- lists and approval


@pytest.fixture
def ranked(session):
    rng = np.random.default_rng(1)
    for i in range(1, 16):
        session.add(Leak(leak_id=f"L{i:06d}", latitude=32 + rng.uniform(0, .3), longitude=-102 + rng.uniform(0, .3),
                         radius_m=5.0, n_detections=1, n_sources=1, source_types="aerial",
                         first_seen=T.to_pydatetime(), last_seen=T.to_pydatetime(), risk_band="HIGH",
                         priority_score=100.0 - i, p_real=0.8, est_rate_kg_h=10.0 + i, asset_id=f"A{i}",
                         top_reasons="=big leak" if i == 1 else "seen twice",
                         due_by=(T + pd.Timedelta(days=5)).to_pydatetime() if i == 2 else None,
                         due_rule="ooooB_super_emitter:investigate" if i == 2 else None))
        session.add(LeakRank(leak_id=f"L{i:06d}", rank=i))
    session.commit()
    return session


@pytest.fixture
def people(ranked):
    auth.add_user(ranked, "setup", "root", "admin", "password-1")
    auth.add_user(ranked, "root", "sam", "supervisor", "password-2")
    auth.add_user(ranked, "root", "sue", "supervisor", "password-3")
    auth.add_user(ranked, "root", "ann", "analyst", "password-4")
    auth.add_user(ranked, "root", "lee", "field_lead", "password-5")
    return ranked


def _status(session, lid):
    session.expire_all()
    return session.get(Leak, lid).status


def test_a_planned_list_is_a_draft_until_another_supervisor_approves_it(people):
    lid = desk.plan_list(people, "sam", day="2025-03-04")
    dl = people.get(DispatchList, lid)
    assert (dl.status, dl.created_by, dl.n_items) == ("draft", "sam", 12)
    assert _status(people, "L000001") == "open"
    with pytest.raises(auth.PermissionDenied, match="analyst"):
        dsp.approve_list(people, lid, "ann")
    with pytest.raises(auth.PermissionDenied, match="another supervisor"):
        dsp.approve_list(people, lid, "sam")
    r = dsp.approve_list(people, lid, "sue", note="ok for Tuesday")
    assert r == {"list_id": lid, "approved_by": "sue", "items": 12}
    people.expire_all()
    dl = people.get(DispatchList, lid)
    assert (dl.status, dl.approved_by, dl.note) == ("approved", "sue", "ok for Tuesday") and dl.approved_at
    assert {_status(people, f"L{i:06d}") for i in range(1, 13)} == {"dispatched"}
    assert _status(people, "L000013") == "open"
    ev = people.exec(select(LeakEvent).where(LeakEvent.leak_id == "L000001")).one()
    assert (ev.event, ev.actor, ev.source) == ("dispatch", "sue", f"dispatch_list:{lid}")
    with pytest.raises(ValueError, match="only a draft"):
        dsp.approve_list(people, lid, "sue")
    # the next list takes the next leaks: dispatched leaks are not listed again
    assert desk.export_dispatch(people)["leak_id"].tolist() == ["L000013", "L000014", "L000015"]


def test_approval_is_refused_when_a_leak_changed_since_planning(ranked, write):
    from mlpe_core.outcomes import import_validations

    lid = desk.plan_list(ranked, "sam", 4, day="2025-03-04")
    import_validations(ranked, write("v.csv", "leak_id,visited_at,outcome\nL000003,2025-03-04T08:00:00Z,confirmed\n"))
    with pytest.raises(TransitionError, match="L000003.*plan a new list"):
        dsp.approve_list(ranked, lid, "sue")
    assert _status(ranked, "L000001") == "open" and ranked.get(DispatchList, lid).status == "draft"


def test_plan_refuses_more_than_a_day_and_an_empty_ranking(ranked, session):
    with pytest.raises(ValueError, match="--top must be 1..12"):
        desk.plan_list(ranked, "sam", 13)
    ranked.execute(LeakRank.__table__.delete())
    ranked.commit()
    with pytest.raises(ValueError, match="nothing to dispatch"):
        desk.plan_list(ranked, "sam")


def test_work_orders_match_the_documented_schema(ranked):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    lid = desk.plan_list(ranked, "sam", day="2025-03-04")
    draft = dsp.work_orders(ranked, lid)
    jsonschema.validate(draft, schema)
    dsp.approve_list(ranked, lid, "sue")
    doc = dsp.work_orders(ranked, lid)
    jsonschema.validate(doc, schema)
    assert (doc["status"], doc["approved_by"], doc["plan_date"], doc["list_id"]) == ("approved", "sue", "2025-03-04",
                                                                                      lid)
    wo = {w["leak_id"]: w for w in doc["work_orders"]}
    assert wo["L000002"]["due_by"] == "2025-03-08T10:00:00Z"
    assert wo["L000002"]["due_rule"] == "ooooB_super_emitter:investigate"
    assert wo["L000001"]["instructions"] == "=big leak"  # JSON is not a spreadsheet: text stays as it is
    assert wo["L000001"]["work_order_id"] == f"MLPE-{lid:05d}-L000001" and wo["L000001"]["status"] == "dispatched"
    stops = sorted((w["crew"], w["stop"]) for w in doc["work_orders"])
    assert stops == sorted((c, s) for c in ("crew-1", "crew-2", "crew-3") for s in range(1, 5))
    current = desk.work_orders(ranked)
    jsonschema.validate(current, schema)
    assert sorted(w["leak_id"] for w in current["work_orders"]) == ["L000013", "L000014", "L000015"]
    assert {w["work_order_id"] for w in current["work_orders"]} == {f"MLPE-DRAFT-L00001{i}" for i in (3, 4, 5)}


def test_work_order_status_moves_the_leak_and_refuses_illegal_moves(ranked):
    lid = desk.plan_list(ranked, "sam", 3, day="2025-03-04")
    dsp.approve_list(ranked, lid, "sue")
    wo = f"MLPE-{lid:05d}-L000001"
    r = dsp.set_work_order_status(ranked, "in_progress", "lee", work_order_id=wo, at=T)
    assert r["leak_status"] == "dispatched"
    with pytest.raises(ValueError, match="needs its reason"):
        dsp.set_work_order_status(ranked, "delayed", "lee", work_order_id=wo)
    r = dsp.set_work_order_status(ranked, "repair_attempted", "lee", work_order_id=wo, at=T + pd.Timedelta(hours=2))
    assert r["leak_status"] == "repair_attempted"
    dsp.set_work_order_status(ranked, "repaired", "lee", work_order_id=wo, at=T + pd.Timedelta(days=2))
    with pytest.raises(TransitionError, match="already repaired"):
        dsp.set_work_order_status(ranked, "repaired", "lee", work_order_id=wo, at=T + pd.Timedelta(days=3))
    assert dsp.set_work_order_status(ranked, "closed", "lee", work_order_id=wo)["leak_status"] == "closed"
    item = ranked.exec(select(DispatchItem).where(DispatchItem.work_order_id == wo)).one()
    assert item.wo_status == "closed"
    with pytest.raises(KeyError, match="no work order"):
        dsp.set_work_order_status(ranked, "closed", "lee", work_order_id="MLPE-99999-L1")
    with pytest.raises(TransitionError, match="only a repaired or not-found leak can be closed"):
        dsp.set_work_order_status(ranked, "closed", "lee", work_order_id=f"MLPE-{lid:05d}-L000002")
    r = dsp.set_work_order_status(ranked, "cancelled", "lee", work_order_id=f"MLPE-{lid:05d}-L000002")
    assert r["leak_status"] == "open"


def test_withdrawing_an_approved_list_releases_its_unvisited_leaks(ranked):
    lid = desk.plan_list(ranked, "sam", 3, day="2025-03-04")
    dsp.approve_list(ranked, lid, "sue")
    dsp.set_work_order_status(ranked, "repaired", "lee", work_order_id=f"MLPE-{lid:05d}-L000001", at=T)
    assert dsp.withdraw_list(ranked, lid, "sue") == {"list_id": lid, "released": 2}
    assert [_status(ranked, f"L{i:06d}") for i in (1, 2, 3)] == ["repaired", "open", "open"]


def test_stored_list_frame_has_contract_columns_then_route(ranked):
    lid = desk.plan_list(ranked, "sam", 6, day="2025-03-04")
    df = dsp.list_frame(ranked, lid)
    assert list(df.columns[: len(DISPATCH_EXPORT_COLUMNS)]) == list(DISPATCH_EXPORT_COLUMNS)
    assert {"crew", "stop", "leg_km", "work_order_id", "wo_status"} <= set(df.columns)
    assert sorted(df["rank"]) == list(range(1, 7))
    total = dsp.lists_frame(ranked)["total_km"].iloc[0]
    assert df["leg_km"].sum() < total < 3 * df["leg_km"].sum()  # out legs plus the drives back to the yards
