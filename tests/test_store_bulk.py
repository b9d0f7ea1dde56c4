"""Store bulk writes and raw-column reads (issue 20), on SQLite and, when reachable, PostgreSQL.

The bulk paths replaced one ORM object per row; these tests pin what they must keep doing: an upsert inserts the
new keys with the table's defaults, updates the given columns of the known keys and nothing else, reads give the
same frame the ORM path gave, times stay UTC, and a fusion rewrites only what changed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from mlpe_core import store
from mlpe_core.store.common import _frame, _utc, read_frame, update_frame, upsert, upsert_frame
from mlpe_core.store.models import Asset, Detection, Leak

T = pd.Timestamp("2026-06-01T10:30:00.123456Z")


def _assets(session) -> dict[str, tuple]:
    rows = session.execute(select(Asset.asset_id, Asset.latitude, Asset.longitude, Asset.asset_type,
                                  Asset.operator)).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def _leak_row(i: int, **kw) -> dict:
    return {"leak_id": f"L{i:06d}", "latitude": 32.0 + i / 1000, "longitude": -102.0, "radius_m": 10.0 + i,
            "n_detections": i, "n_sources": 1, "source_types": "aerial", "first_seen": T,
            "last_seen": T + pd.Timedelta(days=i), **kw}


# --------------------------------------------------------------------------------------------- upsert


def test_upsert_updates_known_rows_inserts_new_ones_and_leaves_the_others(session):
    first = pd.DataFrame({"asset_id": ["A1", "A2", "A3"], "latitude": [32.0, 32.1, 32.2],
                          "longitude": [-102.0, -102.1, -102.2], "asset_type": ["well_pad", None, "tank_battery"],
                          "operator": ["Op N", "Op S", None]})
    assert store.upsert_assets(session, first) == (3, 0)
    session.commit()
    second = pd.DataFrame({"asset_id": ["A2", "A4"], "latitude": [33.5, 34.0], "longitude": [-103.5, -104.0],
                           "asset_type": ["compressor_station", None], "operator": [None, "Op W"]})
    assert store.upsert_assets(session, second) == (1, 1)
    session.commit()
    got = _assets(session)
    assert sorted(got) == ["A1", "A2", "A3", "A4"]
    assert got["A2"] == (33.5, -103.5, "compressor_station", None)  # every given column, blanks included
    assert got["A4"] == (34.0, -104.0, None, "Op W")
    assert got["A1"] == (32.0, -102.0, "well_pad", "Op N") and got["A3"] == (32.2, -102.2, "tank_battery", None)


def test_upsert_of_some_columns_keeps_the_rest_and_new_rows_take_the_defaults(session):
    upsert_frame(session, Leak, "leak_id", pd.DataFrame([_leak_row(1), _leak_row(2)]))
    session.execute(Leak.__table__.update().where(Leak.leak_id == "L000001").values(status="visited", n_ambiguous=7,
                                                                                        p_real=0.5))
    session.commit()
    new, upd = upsert_frame(session, Leak, "leak_id",
                            pd.DataFrame([_leak_row(1, radius_m=99.0), _leak_row(3)]))
    session.commit()
    assert (new, upd) == (1, 1)
    lk = read_frame(session, Leak).set_index("leak_id")
    assert lk.loc["L000001", "radius_m"] == 99.0
    got = lk.loc["L000001"]
    assert (got["status"], got["n_ambiguous"], got["p_real"]) == ("visited", 7, 0.5)
    assert lk.loc["L000002", "radius_m"] == 12.0  # not in this upsert: untouched
    new_row = lk.loc["L000003"]  # the model's defaults, as the ORM gave them
    assert (new_row["status"], bool(new_row["active"]), bool(new_row["rate_quantified"]), new_row["n_ambiguous"],
            bool(new_row["failed_repair"])) == ("open", True, False, 0, False)
    assert lk.loc["L000003", "first_seen"] == T and lk.loc["L000003", "last_seen"] == T + pd.Timedelta(days=3)


def test_upsert_of_many_rows_crosses_chunks(session, monkeypatch):
    from mlpe_core.store import common

    monkeypatch.setattr(common, "CHUNK_ROWS", 7)  # the executemany path in several chunks on other databases
    rows = pd.DataFrame({"asset_id": [f"A{i:03d}" for i in range(50)], "latitude": np.linspace(31, 32, 50),
                         "longitude": np.linspace(-103, -102, 50), "asset_type": None, "operator": None})
    assert store.upsert_assets(session, rows) == (50, 0)
    assert store.upsert_assets(session, rows.assign(latitude=rows["latitude"] + 1)) == (0, 50)
    session.commit()
    got = _assets(session)
    assert len(got) == 50 and got["A049"][0] == pytest.approx(33.0)


def test_list_of_dicts_upsert_keeps_its_return_value(session):
    rows = [{"asset_id": "A1", "latitude": 1.0, "longitude": 2.0}, {"asset_id": "A2", "latitude": 3.0,
                                                                     "longitude": 4.0}]
    new, upd = upsert(session, Asset, "asset_id", rows, existing={"A2"})
    assert [r["asset_id"] for r in new] == ["A1"] and [r["asset_id"] for r in upd] == ["A2"]
    session.commit()
    assert sorted(_assets(session)) == ["A1", "A2"]


# --------------------------------------------------------------------------------------------- update


def test_update_frame_sets_only_the_named_rows_and_columns(session):
    upsert_frame(session, Leak, "leak_id", pd.DataFrame([_leak_row(i) for i in range(1, 5)]))
    session.commit()
    due = pd.Series([T + pd.Timedelta(hours=5), pd.NaT], dtype="datetime64[us, UTC]")
    given = pd.DataFrame({"leak_id": ["L000002", "L000004"], "p_real": [0.25, None], "due_by": due,
                          "model_version": pd.array([3, None], "Int64")})
    n = update_frame(session, Leak, "leak_id", given)
    session.commit()
    assert n == 2
    lk = read_frame(session, Leak).set_index("leak_id")
    assert lk.loc["L000002", "p_real"] == 0.25 and lk.loc["L000002", "model_version"] == 3
    assert lk.loc["L000002", "due_by"] == T + pd.Timedelta(hours=5)  # microseconds and UTC kept
    assert np.isnan(lk.loc["L000004", "p_real"]) and pd.isna(lk.loc["L000004", "due_by"])
    assert lk.loc[["L000001", "L000003"], "p_real"].isna().all()  # rows not named: untouched
    assert lk.sort_index()["radius_m"].tolist() == [11.0, 12.0, 13.0, 14.0]  # columns not named: untouched


def test_scores_without_any_deadline_write_blank_due_dates(session):
    """score_frame sets ``due_by = pd.NaT`` when no clock runs: a column of naive NaT, written as NULL."""
    upsert_frame(session, Leak, "leak_id", pd.DataFrame([_leak_row(1), _leak_row(2)]))
    scored = pd.DataFrame({"leak_id": ["L000001", "L000002"], "p_real": [0.1, 0.2], "rank": [1.0, np.nan]})
    scored["due_by"] = pd.NaT
    scored["scored_at"] = T
    store.save_scores(session, scored)
    session.commit()
    lk = store.leaks_frame(session).set_index("leak_id").sort_index()
    assert lk["due_by"].isna().all() and lk["p_real"].tolist() == [0.1, 0.2]
    assert lk.loc["L000001", "rank"] == 1 and pd.isna(lk.loc["L000002", "rank"])


def test_times_in_other_zones_are_stored_as_utc(session):
    east = pd.Timestamp("2026-06-01T12:30:00+02:00")
    upsert_frame(session, Leak, "leak_id", pd.DataFrame([_leak_row(1, first_seen=east.to_pydatetime())]))
    session.commit()
    assert read_frame(session, Leak).loc[0, "first_seen"] == pd.Timestamp("2026-06-01T10:30:00Z")


def test_a_naive_time_is_refused_as_the_orm_refuses_it(session):
    with pytest.raises(Exception, match="timezone"):
        upsert_frame(session, Leak, "leak_id", pd.DataFrame([_leak_row(1, first_seen=datetime(2026, 6, 1))]))
    session.rollback()


# --------------------------------------------------------------------------------------------- reads


def _orm_frame(session, model, order_by) -> pd.DataFrame:
    """What the stores read before issue 20: pandas over the ORM select (SQLAlchemy converting every value)."""
    return _frame(session, select(model).order_by(order_by))


def test_read_frame_gives_the_frame_the_orm_read_gave(session):
    upsert_frame(session, Leak, "leak_id", pd.DataFrame([_leak_row(i) for i in range(1, 4)]))
    update_frame(session, Leak, "leak_id", pd.DataFrame({"leak_id": ["L000002"], "p_real": [0.7],
                                                         "scored_at": [T], "risk_band": ["HIGH"]}))
    session.add_all([Detection(detection_id=f"d{i}", source_type="aerial", source_name="AirLidar",
                               observed_at=(T + pd.Timedelta(minutes=i)).to_pydatetime(), latitude=32.0 + i,
                               longitude=-102.0, location_uncertainty_m=5.0, rate_kg_h=None if i % 2 else 3.0,
                               leak_id="L000001" if i < 2 else None, ambiguous=i == 1) for i in range(4)])
    session.commit()
    new = read_frame(session, Detection, order_by=Detection.id)
    old = _orm_frame(session, Detection, Detection.id)
    pd.testing.assert_frame_equal(new, old)
    new = read_frame(session, Leak, order_by=Leak.leak_id)
    old = _orm_frame(session, Leak, Leak.leak_id)
    pd.testing.assert_frame_equal(new, old)  # a time column with values is UTC; one of blanks stays blanks, as before
    assert str(new["scored_at"].dtype) == "datetime64[us, UTC]" and new["status_at"].isna().all()
    pd.testing.assert_frame_equal(_utc(new.copy(), ["due_by"]), _utc(old.copy(), ["due_by"]))
    some = store.detections_frame(session, columns=["id", "leak_id", "observed_at"])
    assert list(some.columns) == ["id", "leak_id", "observed_at"] and str(some["observed_at"].dt.tz) == "UTC"
    assert store.detections_frame(session, "L000001")["detection_id"].tolist() == ["d0", "d1"]


# --------------------------------------------------------------------------------------------- fusion writes


def test_save_fusion_writes_only_the_memberships_and_leaks_that_changed(session):
    session.add_all([Detection(detection_id=f"d{i}", source_type="aerial", source_name="AirLidar",
                               observed_at=T.to_pydatetime(), latitude=32.0, longitude=-102.0,
                               location_uncertainty_m=5.0) for i in range(4)])
    session.commit()
    ids = np.array(sorted(session.execute(select(Detection.id)).scalars()))
    leaks = pd.DataFrame([_leak_row(1, n_detections=2, active=True), _leak_row(2, n_detections=2, active=True)])
    labels = np.array(["L000001", "L000001", "L000002", "L000002"], dtype=object)
    first = store.save_fusion(session, ids, labels, np.zeros(4, bool), leaks,
                              stored_leak_ids=np.full(4, None, dtype=object), stored_ambiguous=np.zeros(4, bool))
    session.commit()
    assert first == {"memberships": 4, "leaks": 2, "retired": 0}
    # the same result again: nothing to write
    again = store.save_fusion(session, ids, labels, np.zeros(4, bool), leaks, stored_leak_ids=labels.copy(),
                              stored_ambiguous=np.zeros(4, bool))
    assert again == {"memberships": 0, "leaks": 0, "retired": 0}
    # one detection moves, one leak changes: only they are written; a leak no longer produced is retired
    moved = np.array(["L000001", "L000001", "L000001", "L000002"], dtype=object)
    changed = pd.DataFrame([_leak_row(1, n_detections=3, active=True)])
    third = store.save_fusion(session, ids[:3], moved[:3], np.zeros(3, bool), changed, retire={"L000002"},
                              stored_leak_ids=labels[:3], stored_ambiguous=np.zeros(3, bool))
    session.commit()
    assert third == {"memberships": 1, "leaks": 1, "retired": 1}
    d = store.detections_frame(session)
    assert d["leak_id"].tolist() == ["L000001", "L000001", "L000001", "L000002"]
    lk = read_frame(session, Leak).set_index("leak_id")
    assert lk.loc["L000001", "n_detections"] == 3 and not lk.loc["L000002", "active"]


def test_now_is_aware_utc():
    assert store.now().tzinfo is UTC


@pytest.mark.parametrize("texts", [
    ["2026-06-01 10:30:00.123456", None, "2026-06-02 00:00:00.000000"],  # what SQLite's DateTime stores
    ["2026-06-01T10:30:00+02:00", "2026-06-01 10:30:00"],  # offsets (another writer) go the pandas way
    ["2026-06-01 10:30:00"],
])
def test_time_text_is_read_as_pandas_reads_it(texts):
    from mlpe_core.store.common import _utc_times

    s = pd.Series(texts, dtype="str")
    pd.testing.assert_series_equal(_utc_times(s), pd.to_datetime(s, utc=True, format="ISO8601"))


def test_a_large_write_rebuilds_the_leak_index_once_and_keeps_it(session, monkeypatch):
    """Setting the leak of most detections drops the leak_id index and builds it again (SQLite): it must exist
    after, and queries by leak must still find the rows."""
    from mlpe_core.store import common

    monkeypatch.setattr(common, "BULK_ROWS", 10)
    session.add_all([Detection(detection_id=f"d{i}", source_type="aerial", source_name="AirLidar",
                               observed_at=T.to_pydatetime(), latitude=32.0, longitude=-102.0,
                               location_uncertainty_m=5.0) for i in range(40)])
    session.commit()
    ids = sorted(session.execute(select(Detection.id)).scalars())
    update_frame(session, Detection, "id", pd.DataFrame({"id": ids, "leak_id": [f"L{i % 3}" for i in range(40)],
                                                         "ambiguous": [i % 2 == 0 for i in range(40)]}))
    session.commit()
    from sqlalchemy import inspect

    assert "ix_detection_leak_id" in {ix["name"] for ix in inspect(session.connection()).get_indexes("detection")}
    d = store.detections_frame(session, "L1")
    assert len(d) == 13 and d["ambiguous"].tolist() == [i % 2 == 0 for i in range(1, 40, 3)]
