"""Dispatch: the list of leaks crews should visit next, grouped per crew and ordered as routes.

Only open leaks that no crew has validated yet are listed: a leak already visited waits for its
outcome's own workflow (repair clocks), not for another visit.

:func:`select_for_day` decides which leaks go out (contract §4): legal deadlines due, marked leaks, then the
effective ranking. :func:`route_dispatch` then assigns those leaks to crews (``config/dispatch.yaml``: crews, visits per
crew per day, home bases) and orders each crew's visits as a route from and back to its yard, on a
clock (``day_start``, ``time_zone``): PyVRP with time windows, so stops overdue or due within the day
are visited early enough, and ``must`` stops (marked, overridden, legally due) are never left out for
others; straight-line kilometres times a road factor. It never changes which leaks go out, only who
visits them, in what order and, when a day cannot hold them all, which wait for the next day (the
lowest-ranked first). :func:`plan_routes` adds the yards, the crew-day totals (expected methane
per crew-day) and the leftover lists.

A planned list is a draft (:func:`store_draft`, through ``desk.plan_list``) until a supervisor approves it
(:func:`approve_list`), which moves its leaks to ``dispatched`` through the lifecycle; work orders for
maintenance systems (:func:`work_orders`, schema ``docs/workorder.schema.json``) and their status updates
(:func:`set_work_order_status`) hang off the approved list's items. ``docs/dispatch.md`` has the method, the
approval rules and the API.
"""

from .plan import (
    DISPATCHABLE,
    PLAN_COLUMNS,
    WO_STATUSES,
    approve_list,
    list_frame,
    lists_frame,
    marked_ids,
    route_day,
    select_for_day,
    set_work_order_status,
    store_draft,
    withdraw_list,
    work_orders,
)
from .routing import (
    ROUTE_COLUMNS,
    DayProblem,
    RoutePlan,
    crew_days,
    day_start,
    km_matrix,
    plan_routes,
    route_dispatch,
    route_in_rank_order,
    solve_heuristic,
    solve_pyvrp,
    tour_km,
    two_opt,
)
from .settings import SETTINGS, DispatchConfigError, crew_capacity, load_settings

__all__ = ["approve_list", "crew_capacity", "crew_days", "day_start", "DayProblem", "DISPATCHABLE",
           "DispatchConfigError", "km_matrix", "list_frame", "lists_frame", "load_settings", "marked_ids",
           "PLAN_COLUMNS", "plan_routes", "ROUTE_COLUMNS", "route_day", "route_dispatch", "route_in_rank_order",
           "RoutePlan", "select_for_day", "set_work_order_status", "SETTINGS", "solve_heuristic", "solve_pyvrp",
           "store_draft", "tour_km", "two_opt", "withdraw_list", "WO_STATUSES", "work_orders"]
