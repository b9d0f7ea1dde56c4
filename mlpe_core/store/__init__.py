"""The store: the only code that writes a table. SQLModel on SQLite by default, any SQLAlchemy URL for a team.

Stages compute on pandas frames; the modules here are the only place that knows the tables, so every
stage works on any database. One module per family of tables: ``assets``, ``detections``, ``leaks``
(fusion results, scores, lifecycle states), ``validations``, ``notifications`` (notices that start legal
clocks, and the leak each is matched to), ``coverage`` (when sensors watched a site), ``batches`` (file
lineage), ``modelversions``
(the model registry), ``audit`` (the append-only trail), ``runs`` (run records and configuration
snapshots), ``connectors`` (watched files, connector heartbeats, idempotency keys), ``alerts`` (the inbox and
deliveries), plus ``models`` (the tables), ``db`` (engine and
migrations) and ``common``. Functions take a ``Session``; writers never commit unless they say so.

The names below are imported from their module on first use (PEP 562), so ``mlpe status`` opens the store
without importing pandas or pyarrow.
"""

from __future__ import annotations

import importlib

_MODULES: dict[str, tuple[str, ...]] = {
    "assets": ("assets_frame", "upsert_assets"),
    "audit": ("add_note", "audit", "audit_by_actions", "audit_events", "audit_frame", "chain_heads", "latest_audit"),
    "batches": ("add_batch", "batches_frame", "file_batch"),
    "common": ("clear_store", "counts", "now", "upsert"),
    "coverage": ("COVERAGE_STATES", "coverage_frame", "insert_coverage"),
    "detections": ("DetectionMemory", "detections_frame", "detections_of_leaks", "insert_detections"),
    "dispatch": ("get_list", "insert_list", "item_by_work_order", "list_items", "list_items_frame", "lists_frame",
                 "set_item_status", "set_list_status"),
    "leaks": ("LeakState", "StaleFusion", "as_time", "fusion_generation", "leak_events_frame", "leak_events_of",
              "leak_ids", "leaks_frame", "lock_states", "next_leak_number", "rank_of", "save_fusion", "save_ranks",
              "save_scores", "present_leak_ids", "save_states"),
    "modelversions": ("activate_model", "active_model", "models_frame", "save_model"),
    "notifications": ("insert_notifications", "notification_ids", "notifications_frame", "set_notification_matches"),
    "users": ("get_user", "insert_token", "insert_user", "revoke_token", "token_by_digest", "tokens", "user_count",
              "users"),
    "validations": ("insert_validations", "validation_keys", "validations_frame"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

# A function named like its module (store.audit, store.users) is bound now: importing the module later would
# otherwise leave the package attribute pointing at the module. Both are light (no pandas).
from .audit import audit  # noqa: E402, F401
from .users import users  # noqa: E402, F401

__all__ = sorted([*_WHERE, "alerts", "connectors", "runs"], key=str.lower)


SUBMODULES = ("alerts", "connectors", "runs")  # always on (issue 18): used as ``store.runs.*`` and so on


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
