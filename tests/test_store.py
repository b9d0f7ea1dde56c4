"""Store: the asset registry and field validations, each on an in-memory engine passed in."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

from mlpe_core.ingest import IngestError
from mlpe_core.outcomes import import_validations
from mlpe_core.pipeline import import_assets
from mlpe_core.store import counts, leaks_frame, save_fusion, validations_frame
from mlpe_core.store.models import Asset, AuditEvent, IngestBatch, Leak, Validation

ASSET_HEADER = "asset_id,latitude,longitude,asset_type,operator"
VAL_HEADER = "leak_id,visited_at,outcome,measured_rate_kg_h,component,repaired_at,crew,notes"


def _assets(session) -> dict[str, Asset]:
    return {a.asset_id: a for a in session.exec(select(Asset)).all()}


# --------------------------------------------------------------------------------------------- assets


def test_import_assets_new_then_update(session, write):
    r = import_assets(session, write("a1.csv", f"{ASSET_HEADER}\nA1,32.0,-102.0,well_pad,Op North\n"
                                               "A2,32.1,-102.1,tank_battery,\nA3,32.2,-102.2,,\n"))
    assert (r["rows"], r["new"], r["updated"], r["rejected"]) == (3, 3, 0, 0)
    a = _assets(session)
    assert (a["A1"].latitude, a["A1"].longitude, a["A1"].asset_type, a["A1"].operator) == (32.0, -102.0, "well_pad",
                                                                                          "Op North")
    assert (a["A2"].operator, a["A3"].asset_type) == (None, None)
    r = import_assets(session, write("a2.csv", f"{ASSET_HEADER}\nA1,32.5,-102.5,compressor_station,Op East\n"
                                               "A4,33.0,-103.0,well_pad,Op West\n"))
    assert (r["new"], r["updated"], r["rejected"]) == (1, 1, 0)
    session.expire_all()
    a = _assets(session)
    assert sorted(a) == ["A1", "A2", "A3", "A4"]
    assert (a["A1"].latitude, a["A1"].longitude, a["A1"].asset_type, a["A1"].operator) == (
        32.5, -102.5, "compressor_station", "Op East")
    assert a["A2"].latitude == 32.1  # untouched


def test_import_assets_rejects_bad_rows_and_loads_the_rest(session, write):
    text = (f"{ASSET_HEADER}\nA1,32.0,-102.0,,\nA2,95,-102.0,,\nA3,32.0,xyz,,\n,32.0,-102.0,,\n"
            "A5,32.0,-181,,\nA6,32.3,-102.3,,\n")
    r = import_assets(session, write("bad.csv", text))
    assert r["rejects"][["row", "column"]].values.tolist() == [
        [3, "latitude"], [4, "longitude"], [5, "asset_id"], [6, "longitude"]]
    assert (r["rows"], r["new"], r["rejected"]) == (6, 2, 4)
    assert sorted(_assets(session)) == ["A1", "A6"]


def test_import_assets_columns_in_any_order_and_case(session, write):
    r = import_assets(session, write("o.csv", "Longitude,Asset_ID,Latitude\n-102.0,A9,32.0\n"))
    assert r["new"] == 1
    assert (_assets(session)["A9"].latitude, _assets(session)["A9"].longitude) == (32.0, -102.0)


def test_import_assets_repeated_id_in_one_file_is_a_row_reject(session, write):
    text = f"{ASSET_HEADER}\nA1,32.0,-102.0,well_pad,Op\nA2,32.1,-102.1,,\nA1,33.0,-103.0,tank_battery,Op2\n"
    r = import_assets(session, write("dup.csv", text))
    assert r["rejects"][["row", "column"]].values.tolist() == [[4, "asset_id"]]
    assert (r["new"], r["rejected"]) == (2, 1)
    assert _assets(session)["A1"].latitude == 32.0


def test_import_assets_without_latitude_raises_and_writes_nothing(session, write, table_counts):
    before = table_counts()
    with pytest.raises(IngestError) as err:
        import_assets(session, write("nolat.csv", "asset_id,longitude\nA1,-102\n"))
    assert err.value.column == "latitude" and "nolat.csv" in str(err.value)
    assert table_counts() == before


def test_import_assets_missing_file_raises(session, tmp_path, table_counts):
    before = table_counts()
    with pytest.raises(IngestError, match="nothere.csv"):
        import_assets(session, tmp_path / "nothere.csv")
    assert table_counts() == before


# --------------------------------------------------------------------------------------------- validations

T = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def with_leaks(session):
    for i in range(1, 6):
        session.add(Leak(leak_id=f"L{i:06d}", latitude=32.0, longitude=-102.0, radius_m=5.0, n_detections=1,
                         n_sources=1, source_types="aerial", first_seen=T, last_seen=T))
    session.commit()
    return session


def _status(session) -> dict[str, str]:
    session.expire_all()
    return dict(zip(*[leaks_frame(session)[c] for c in ("leak_id", "status")], strict=True))


def test_validations_import_records_outcomes_and_sets_leak_status(with_leaks, write):
    text = (f"{VAL_HEADER}\n"
            "L000001,2025-02-01T10:00:00Z,confirmed,12.5,valve,,crew-1,found it\n"
            "L000002,2025-02-01T11:00:00Z,not_found,,,,crew-1,\n"
            "L000003,2025-02-01T12:00:00+00,already_repaired,,,,crew-2,\n"
            "L000004,2025-02-01T13:00:00,not_accessible,,,,crew-2,gate locked\n"
            "L000005,2025-02-01T14:00:00Z,Confirmed,3,flange,2025-02-02T09:00:00Z,crew-3,\n")
    r = import_validations(with_leaks, write("v.csv", text), user="tester")
    assert (r["rows"], r["recorded"], r["duplicates"], r["rejected"]) == (5, 5, 0, 0)
    assert _status(with_leaks) == {"L000001": "confirmed", "L000002": "not_found", "L000003": "repaired",
                                   "L000004": "no_access", "L000005": "repaired"}
    v = validations_frame(with_leaks).set_index("leak_id")
    assert v.loc["L000001", "measured_rate_kg_h"] == 12.5
    assert v.loc["L000001", "component"] == "valve"
    assert v.loc["L000001", "visited_at"] == pd.Timestamp("2025-02-01T10:00:00Z")
    assert v.loc["L000005", "outcome"] == "confirmed"
    assert v.loc["L000005", "repaired_at"] == pd.Timestamp("2025-02-02T09:00:00Z")
    assert (v["recorded_by"] == "tester").all()
    batch = with_leaks.exec(select(IngestBatch)).one()
    assert (batch.kind, batch.n_rows, batch.n_accepted) == ("validations", 5, 5)
    assert len(with_leaks.exec(select(AuditEvent).where(AuditEvent.action == "validation")).all()) == 5


def test_validations_import_rejects_bad_rows_with_row_and_column(with_leaks, write):
    text = (f"{VAL_HEADER}\n"
            "L000001,2025-02-01T10:00:00Z,confirmed,,,,,\n"
            "L999999,2025-02-01T10:00:00Z,confirmed,,,,,\n"
            "L000002,2025-02-01T10:00:00Z,found,,,,,\n"
            "L000003,last tuesday,not_found,,,,,\n"
            "L000004,2025-02-01T10:00:00Z,confirmed,-3,,,,\n"
            "L000005,2025-02-01T10:00:00Z,confirmed,lots,,,,\n")
    r = import_validations(with_leaks, write("v.csv", text))
    assert r["rejects"][["row", "column"]].values.tolist() == [
        [3, "leak_id"], [4, "outcome"], [5, "visited_at"], [6, "measured_rate_kg_h"], [7, "measured_rate_kg_h"]]
    assert "L999999" in r["rejects"]["reason"].iloc[0]
    assert (r["recorded"], r["rejected"]) == (1, 5)
    assert [v.leak_id for v in with_leaks.exec(select(Validation)).all()] == ["L000001"]
    assert _status(with_leaks) == {"L000001": "confirmed", "L000002": "open", "L000003": "open",
                                   "L000004": "open", "L000005": "open"}


def test_validations_already_recorded_are_not_added_again(with_leaks, write):
    text = (f"{VAL_HEADER}\nL000001,2025-02-01T10:00:00Z,confirmed,,,,,\n"
            "L000002,2025-02-01T11:00:00Z,not_found,,,,,\n")
    first = import_validations(with_leaks, write("v.csv", text))
    again = import_validations(with_leaks, write("v2.csv", text.replace("T10:00:00Z", "T10:00:00+00:00")))
    assert (first["recorded"], again["recorded"], again["duplicates"]) == (2, 0, 2)
    assert len(with_leaks.exec(select(Validation)).all()) == 2


def test_validations_without_outcome_column_raise_and_write_nothing(with_leaks, write, table_counts):
    before = table_counts()
    with pytest.raises(IngestError) as err:
        import_validations(with_leaks, write("v.csv", "leak_id,visited_at\nL000001,2025-02-01T10:00:00Z\n"))
    assert err.value.column == "outcome"
    assert table_counts() == before


# --------------------------------------------------------------------------------------------- fusion results


def _leak_rows(ids):
    return pd.DataFrame({"leak_id": ids, "latitude": 32.0, "longitude": -102.0, "radius_m": 5.0, "n_detections": 1,
                         "n_sources": 1, "source_types": "aerial", "first_seen": T, "last_seen": T, "active": True})


def test_save_fusion_retires_leaks_that_are_no_longer_produced(session):
    save_fusion(session, np.array([], dtype=int), np.array([], dtype=object), np.array([], dtype=bool),
                _leak_rows(["L000001", "L000002"]))
    session.commit()
    save_fusion(session, np.array([], dtype=int), np.array([], dtype=object), np.array([], dtype=bool),
                _leak_rows(["L000002", "L000003"]))
    session.commit()
    assert sorted(leaks_frame(session)["leak_id"]) == ["L000002", "L000003"]
    all_leaks = leaks_frame(session, active_only=False).set_index("leak_id")["active"]
    assert all_leaks.to_dict() == {"L000001": False, "L000002": True, "L000003": True}
    assert counts(session)["leaks"] == 2


@pytest.mark.parametrize(("ids", "expected"), [
    ([], 1),
    (["L000001", "L000009", "L000010"], 11),
    (["L000123", "X999999", "L12a", "L-5", "L1.5", "Lfoo"], 124),  # other prefixes and non-numbers do not count
    (["L999999", "L1000000"], 1000001),  # past six digits: by number, not by text
])
def test_next_leak_number_is_one_past_the_largest_stored(session, ids, expected):
    from mlpe_core.store.leaks import next_leak_number, present_leak_ids

    if ids:
        save_fusion(session, np.array([], dtype=int), np.array([], dtype=object), np.array([], dtype=bool),
                    _leak_rows(ids))
        session.commit()
    assert next_leak_number(session) == expected
    assert present_leak_ids(session, [*ids[:2], "L777777"]) == set(ids[:2])
