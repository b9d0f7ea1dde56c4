"""Comply: regulatory clocks per leak, from rules kept as data (``config/compliance.yaml``).

A leak under a rule gets a deadline per clock; ``due_by`` is the earliest one not yet met, and
``due_rule`` names the rule and action that set it. Rules are validated on load so a typo in a rule
file stops with the rule id and field, instead of silently dropping a regulator's deadline.

How a clock runs (``docs/compliance.md`` has each rule, what starts it and its citation):

* It starts at the event its rule's ``trigger.event`` names, and nowhere else: the receipt of a notification of
  the rule's programs (``notifications``: the notice matched to the leak, by reference or position), a
  detection, a leak found in the field (an OGI-survey record, or a confirmed visit that says how it was found),
  or the day a site's continuous-monitor rolling average crosses its action level (``action_levels``). Each
  clock carries what started it.
* A detection that would qualify for a notification without one is a *likely notification* watch item
  (``candidates``): never a deadline, never an overdue, never the band on its own.
* It is met by the first qualifying field record on or after the day it started: ``investigate`` and
  ``report`` by a visit that reached the site (not ``not_accessible``); ``repair_attempt`` by a repair
  attempt, a repair, an ``already_repaired`` visit or a visit that found no leak; ``repair`` by the
  last three.
* A clock with ``after: repair_attempt`` counts its days from the first repair attempt (or, while
  none is recorded, from the attempt's own deadline). A rule with ``delay_of_repair`` moves the final
  repair deadline to ``max_days`` after notice once a delay of repair is recorded for the leak.
* Once met, a clock starts again at the next triggering event after the record that met it (a leak
  seen again after its repair runs a new repair clock).

``obligations`` is the queue of every clock (overdue, due soon, running, met), independent of the ranking.
"""

from .action_levels import action_level_series, exceedances, monitor_readings
from .candidates import LIKELY, WATCH_COLUMNS, watch_list
from .clocks import CLOCK_COLUMNS, add_days, clock_instances, deadlines, leak_clocks
from .obligations import OBLIGATION_COLUMNS, obligation_queue, obligations
from .rules import ACTIONS, DUE_SOON_DAYS, EVENTS, FOUND_BY, RULES_PATH, RuleError, RuleSet, load_rules

__all__ = ["ACTIONS", "action_level_series", "add_days", "CLOCK_COLUMNS", "clock_instances", "deadlines",
           "DUE_SOON_DAYS", "EVENTS", "exceedances", "FOUND_BY", "leak_clocks", "LIKELY", "load_rules",
           "monitor_readings", "OBLIGATION_COLUMNS", "obligation_queue", "obligations", "RuleError", "RULES_PATH",
           "RuleSet", "WATCH_COLUMNS", "watch_list"]
