"""Comply: regulatory clocks per leak, from rules kept as data (``config/compliance.yaml``).

A leak under a rule gets a deadline per clock; ``due_by`` is the earliest one not yet met, and
``due_rule`` names the rule and action that set it. Rules are validated on load so a typo in a rule
file stops with the rule id and field, instead of silently dropping a regulator's deadline.

How a clock runs (``docs/compliance.md`` has each rule with its citation):

* It starts at the first event that triggers the rule (taken as the date of notice): a detection of
  the listed source types (optionally only some ``event_types``, at least ``min_rate_kg_h``, inside
  ``region``, or a rolling average above an action level), or a field visit that confirmed the leak
  and says how it was found (``found_by``, e.g. OGI or AVO).
* It is met by the first qualifying field record on or after the day it started: ``investigate`` and
  ``report`` by a visit that reached the site (not ``not_accessible``); ``repair_attempt`` by a repair
  attempt, a repair, an ``already_repaired`` visit or a visit that found no leak; ``repair`` by the
  last three.
* A clock with ``after: repair_attempt`` counts its days from the first repair attempt (or, while
  none is recorded, from the attempt's own deadline). A rule with ``delay_of_repair`` moves the final
  repair deadline to ``max_days`` after notice once a delay of repair is recorded for the leak.
* Once met, a clock starts again at the next triggering event after the record that met it (a leak
  seen again after its repair runs a new repair clock).
"""

from .clocks import deadlines, leak_clocks
from .rules import ACTIONS, DUE_SOON_DAYS, FOUND_BY, RULES_PATH, RuleError, RuleSet, load_rules

__all__ = ["ACTIONS", "deadlines", "DUE_SOON_DAYS", "FOUND_BY", "leak_clocks", "load_rules", "RuleError", "RULES_PATH",
           "RuleSet"]
