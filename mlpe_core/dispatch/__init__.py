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
from .routing import ROUTE_COLUMNS, km_matrix, route_dispatch, route_in_rank_order, tour_km, two_opt
from .settings import SETTINGS, DispatchConfigError, crew_capacity, load_settings

__all__ = ["approve_list", "crew_capacity", "DISPATCHABLE", "DispatchConfigError", "km_matrix", "list_frame",
           "lists_frame", "load_settings", "marked_ids", "PLAN_COLUMNS", "ROUTE_COLUMNS", "route_day", "route_dispatch",
           "route_in_rank_order", "select_for_day", "set_work_order_status", "SETTINGS", "store_draft", "tour_km",
           "two_opt", "withdraw_list", "WO_STATUSES", "work_orders"]
