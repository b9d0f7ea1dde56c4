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
"""

# always on (issue 18): run records, connectors, alerts. Used as ``store.runs.*``, ``store.connectors.*`` and
# ``store.alerts.*`` (module names keep these families apart from the stage tables above)
from . import alerts, connectors, runs  # noqa: E402,I001
from .assets import assets_frame, upsert_assets
from .audit import add_note, audit, audit_events, audit_frame, latest_audit
from .batches import add_batch, batches_frame, file_batch
from .common import clear_store, counts, now, upsert
from .coverage import COVERAGE_STATES, coverage_frame, insert_coverage
from .detections import detections_frame, insert_detections
from .dispatch import (
    get_list,
    insert_list,
    item_by_work_order,
    list_items,
    list_items_frame,
    lists_frame,
    set_item_status,
    set_list_status,
)
from .leaks import (
    LeakState,
    StaleFusion,
    as_time,
    fusion_generation,
    leak_events_frame,
    leak_ids,
    leaks_frame,
    lock_states,
    save_fusion,
    save_ranks,
    save_scores,
    save_states,
)
from .modelversions import activate_model, active_model, models_frame, save_model
from .notifications import insert_notifications, notification_ids, notifications_frame, set_notification_matches
from .users import get_user, insert_token, insert_user, revoke_token, token_by_digest, tokens, user_count, users
from .validations import insert_validations, validation_keys, validations_frame

__all__ = ["alerts", "connectors", "runs",  # issue 18
           "activate_model", "active_model", "add_batch", "add_note", "as_time", "assets_frame", "audit",
           "audit_events", "audit_frame", "batches_frame", "clear_store", "counts", "coverage_frame", "COVERAGE_STATES",
           "detections_frame", "file_batch", "fusion_generation", "get_list", "get_user", "insert_coverage",
           "insert_detections", "insert_list", "insert_notifications", "insert_token", "insert_user",
           "insert_validations", "item_by_work_order", "latest_audit", "leak_events_frame", "leak_ids", "leaks_frame",
           "LeakState", "list_items", "list_items_frame", "lists_frame", "lock_states", "models_frame",
           "notification_ids", "notifications_frame", "now", "revoke_token", "save_fusion", "save_model", "save_ranks",
           "save_scores", "save_states", "set_item_status", "set_list_status", "set_notification_matches",
           "StaleFusion", "token_by_digest", "tokens", "upsert", "upsert_assets", "user_count", "users",
           "validation_keys", "validations_frame"]
