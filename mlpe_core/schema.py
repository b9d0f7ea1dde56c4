"""Column names and vocabularies shared by every stage.

They mirror ``../shared/CONTRACT.md`` exactly: the contract is what users' scripts rely on, so the
names live in one place and every stage imports them rather than spelling them again.
"""

from __future__ import annotations

SOURCE_TYPES: tuple[str, ...] = ("satellite", "aerial", "continuous_monitor", "scada", "ogi")

REQUIRED_COLUMNS: tuple[str, ...] = (
    "detection_id",
    "source_type",
    "source_name",
    "observed_at",
    "latitude",
    "longitude",
)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "location_uncertainty_m",
    "rate_kg_h",
    "rate_uncertainty_kg_h",
    "confidence",
    "wind_speed_m_s",
    "asset_id",
    "event_type",
)
CANONICAL_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

ASSET_COLUMNS: tuple[str, ...] = ("asset_id", "latitude", "longitude", "asset_type", "operator")
ASSET_REQUIRED: tuple[str, ...] = ("asset_id", "latitude", "longitude")

VALIDATION_COLUMNS: tuple[str, ...] = (
    "leak_id",
    "visited_at",
    "outcome",
    "measured_rate_kg_h",
    "component",
    "repaired_at",
    "crew",
    "notes",
)
VALIDATION_REQUIRED: tuple[str, ...] = ("leak_id", "visited_at", "outcome")
OUTCOMES: tuple[str, ...] = ("confirmed", "not_found", "already_repaired", "not_accessible")

LEAK_EXPORT_COLUMNS: tuple[str, ...] = (
    "leak_id",
    "rank",
    "priority_score",
    "risk_band",
    "p_real",
    "est_rate_kg_h",
    "latitude",
    "longitude",
    "radius_m",
    "n_detections",
    "n_sources",
    "source_types",
    "first_seen",
    "last_seen",
    "asset_id",
    "status",
    "top_reasons",
)
DISPATCH_EXPORT_COLUMNS: tuple[str, ...] = (
    "rank",
    "leak_id",
    "asset_id",
    "latitude",
    "longitude",
    "est_rate_kg_h",
    "p_real",
    "priority_score",
    "risk_band",
    "due_by",
    "top_reasons",
)
RISK_BANDS: tuple[str, ...] = ("HIGH", "MEDIUM", "LOW")

# Notifications (contract §2): a regulator's or program's notice that starts legal clocks.
NOTIFICATION_COLUMNS: tuple[str, ...] = (
    "notification_id",
    "received_at",
    "program",
    "notifier",
    "detection_ref",
    "latitude",
    "longitude",
    "rate_kg_h",
    "notes",
)
NOTIFICATION_REQUIRED: tuple[str, ...] = ("notification_id", "received_at", "program")
NOTIFICATION_PROGRAMS: tuple[str, ...] = ("ooooB_super_emitter", "imeo_mars", "state", "voluntary")
MATCH_METHODS: tuple[str, ...] = ("reference", "position", "manual")


def number_after(ids, prefix: str = "L") -> int:
    """One more than the largest number of the leak ids ``<prefix><digits>`` among ``ids`` (1 when there is none):
    where new leak ids start (``fuse.carry_ids``; ``store.next_leak_number`` asks the database the same)."""
    n = len(prefix)
    return max((int(x[n:]) for x in ids if x.startswith(prefix) and x[n:].isdigit()), default=0) + 1
