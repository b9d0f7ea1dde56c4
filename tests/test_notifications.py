"""Notifications (issue 21): a notice file is checked row by row, recorded once, matched to the leak it concerns
(by reference, else by position and time, else left for a person), and starts the clocks of its rule from its
receipt, each clock naming the notice."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import HEADER, T0, distance_m, offset
from sqlmodel import Session

from mlpe_core import store
from mlpe_core.cli import main
from mlpe_core.comply import leak_clocks, load_rules
from mlpe_core.comply.notifications import add_notification, match_notifications, rematch_notifications, set_match
from mlpe_core.ingest import IngestError, ingest_file
from mlpe_core.ingest.notifications import check_notifications
from mlpe_core.pipeline import run_fuse, run_score
from mlpe_core.store.db import get_engine

NOTE_HEADER = "notification_id,received_at,program,notifier,detection_ref,latitude,longitude,rate_kg_h,notes"
FAR = offset(20_000, 0)  # 20 km east: no leak near
NEAR_P2 = offset(5_000, 120)  # 120 m north of plume P2


def _iso(days: float) -> str:
    return (T0 + pd.Timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _detections_csv() -> str:
    rows = [("P1", "satellite", "Tanager", _iso(0), *offset(0, 0), 300.0),
            ("P2", "aerial", "AirLidar", _iso(1), *offset(5_000, 0), 150.0),
            ("O1", "ogi", "CrewOGI", _iso(2), *offset(0, 10_000), "")]
    return HEADER + ",rate_kg_h\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"


NOTES_CSV = "\n".join([
    NOTE_HEADER,
    f"N1,{_iso(10)},ooooB_super_emitter,EPA,P1,{offset(0, 30)[0]},{offset(0, 30)[1]},310,",  # reference, 30 m away
    f"N2,{_iso(10)},imeo_mars,UNEP IMEO,,{NEAR_P2[0]},{NEAR_P2[1]},,via the state",  # position: 120 m from P2
    f"N3,{_iso(10)},state,NMED,nope,{FAR[0]},{FAR[1]},,",  # unknown reference, nothing near: unmatched
    f"N4,{_iso(200)},ooooB_super_emitter,EPA,,{offset(0, 0)[0]},{offset(0, 0)[1]},,",  # P1 is 200 days older
    f"N5,{_iso(10)},epa,EPA,P1,,,,",
    f"N1,{_iso(11)},ooooB_super_emitter,EPA,P1,,,,",
]) + "\n"


@pytest.fixture
def db(tmp_path, write):
    """A file store with three leaks (satellite plume P1, aerial plume P2 5 km east, OGI find 10 km north)."""
    path = tmp_path / "mlpe.db"
    eng = get_engine(str(path))
    with Session(eng) as s:
        ingest_file(s, write("dets.csv", _detections_csv()))
        run_fuse(s)
    eng.dispose()
    return path


def _leak_of(s: Session, detection_id: str) -> str:
    d = store.detections_frame(s)
    return d.set_index("detection_id").loc[detection_id, "leak_id"]


# --------------------------------------------------------------------------------------------- the file


@pytest.mark.parametrize(("row", "column", "reason"), [
    ("N1,2025-06-01T10:00:00Z,ooooB_super_emitter,EPA,P1,,,,", None, None),
    (",2025-06-01T10:00:00Z,state,,P1,,,,", "notification_id", "notification_id is blank"),
    ("N1,yesterday,state,,P1,,,,", "received_at", "cannot read 'yesterday' as an ISO 8601 time"),
    ("N1,2025-06-01,EPA,,P1,,,,", "program",
     "program 'EPA' is not one of ooooB_super_emitter, imeo_mars, state, voluntary"),
    ("N1,2025-06-01,state,,,,,,", "detection_ref",
     "needs a detection_ref, or latitude and longitude, to find the leak it concerns"),
    ("N1,2025-06-01,state,,,32.1,,,", "longitude", "longitude is blank while latitude is given"),
    ("N1,2025-06-01,state,,,95,-102,,", "latitude", "latitude '95' invalid"),
    ("N1,2025-06-01,state,,P1,,,lots,", "rate_kg_h", "rate_kg_h 'lots' must be a number ≥ 0"),
    ("N1,2025-06-01,state,,P1,,,-3,", "rate_kg_h", "rate_kg_h '-3' must be a number ≥ 0"),
], ids=["good", "blank-id", "bad-time", "bad-program", "no-ref-no-position", "half-position", "bad-latitude",
        "text-rate", "negative-rate"])
def test_each_row_is_checked_with_its_row_column_and_reason(row, column, reason):
    raw = pd.read_csv(pd.io.common.StringIO(f"{NOTE_HEADER}\n{row}\n"), dtype=str, keep_default_na=False)
    good, rej = check_notifications(raw, "n.csv")
    if column is None:
        assert rej.empty and good.loc[0, "program"] == "ooooB_super_emitter" and good.loc[0, "source_row"] == 2
    else:
        assert good.empty and rej.values.tolist() == [[2, column, reason]]


def test_program_is_read_in_any_case_and_stored_as_the_contract_spells_it():
    raw = pd.DataFrame({"Notification_ID": ["A", "B"], "received_at": ["2025-06-01", "2025-06-01T12:00:00+02:00"],
                        "PROGRAM": ["OOOOB_SUPER_EMITTER", "Imeo_Mars"], "detection_ref": ["x", "y"]})
    good, rej = check_notifications(raw, "n.csv")
    assert rej.empty
    assert good["program"].tolist() == ["ooooB_super_emitter", "imeo_mars"]
    assert good["received_at"].tolist() == [pd.Timestamp("2025-06-01T00:00:00Z"), pd.Timestamp("2025-06-01T10:00Z")]


def test_a_file_without_a_required_column_is_refused_whole():
    with pytest.raises(IngestError, match="n.csv, column 'program': required column missing: program"):
        check_notifications(pd.DataFrame({"notification_id": ["A"], "received_at": ["2025-06-01"]}), "n.csv")


# --------------------------------------------------------------------------------------------- the command


def test_import_prints_the_summary_and_each_reject_and_adds_nothing_twice(db, write, capsys):
    f = write("notes.csv", NOTES_CSV)
    assert main(["--db", str(db), "--user", "ana", "notifications", "import", str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "notes.csv: 6 rows, 4 recorded, 0 already recorded, 2 matched to a leak, 2 unmatched, 2 rejected",
        f"  rejected {f}, row 6, column 'program': program 'epa' is not one of ooooB_super_emitter, imeo_mars, "
        "state, voluntary",
        f"  rejected {f}, row 7, column 'notification_id': notification_id 'N1' repeated (first on row 2)",
    ]
    assert main(["--db", str(db), "notifications", "import", str(f)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "notes.csv: 6 rows, 0 recorded, 4 already recorded, 0 matched to a leak, 0 unmatched, 2 rejected")
    eng = get_engine(str(db))
    with Session(eng) as s:
        n = store.notifications_frame(s).set_index("notification_id")
        assert n.index.tolist() == ["N1", "N2", "N3", "N4"]
        assert (n.loc["N1", "leak_id"], n.loc["N1", "match_method"]) == (_leak_of(s, "P1"), "reference")
        assert (n.loc["N2", "leak_id"], n.loc["N2", "match_method"]) == (_leak_of(s, "P2"), "position")
        assert n.loc["N2", "match_distance_m"] == pytest.approx(120.0, abs=1.0)
        assert n.loc["N1", "match_distance_m"] == pytest.approx(30.0, abs=1.0)
        assert n.loc[["N3", "N4"], "leak_id"].isna().all() and n.loc[["N3", "N4"], "match_method"].isna().all()
        assert (n.loc["N1", "recorded_by"], n.loc["N1", "source_row"]) == ("ana", 2)
        assert n.loc["N2", "notes"] == "via the state"
        assert store.batches_frame(s)["kind"].tolist() == ["notifications", "notifications", "detections"]
        assert store.audit_events(s, action="notification")["target"].notna().sum() == 2
    eng.dispose()


def test_a_file_missing_a_column_exits_2_naming_it_and_writes_nothing(db, write, capsys):
    f = write("notes.csv", "notification_id,received_at,detection_ref\nN1,2025-06-01,P1\n")
    assert main(["--db", str(db), "notifications", "import", str(f)]) == 2
    assert capsys.readouterr().err.strip() == "mlpe: notes.csv, column 'program': required column missing: program"
    eng = get_engine(str(db))
    with Session(eng) as s:
        assert store.notifications_frame(s).empty and store.batches_frame(s)["kind"].tolist() == ["detections"]
    eng.dispose()


def test_a_json_array_of_notices_imports_like_a_csv(db, write, capsys):
    recs = pd.read_csv(pd.io.common.StringIO(NOTES_CSV), dtype=str, keep_default_na=False).head(2)
    f = write("notes.json", json.dumps(recs.to_dict(orient="records")))
    assert main(["--db", str(db), "notifications", "import", str(f)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "notes.json: 2 rows, 2 recorded, 0 already recorded, 2 matched to a leak, 0 unmatched, 0 rejected"]


def test_an_unmatched_notice_leaves_an_audit_trail_that_verifies(db, write, capsys):
    """A notice that matches no leak was audited with a NaN target and ``"match": NaN``: `mlpe audit verify` then
    said the chain was broken at that event."""
    f = write("n2.csv", f"{NOTE_HEADER}\nN1,{_iso(10)},state,NMED,P1,,,,\n"
                        f"N2,{_iso(10)},imeo_mars,UNEP,PS-0000001,,,,\n")
    assert main(["--db", str(db), "notifications", "import", str(f)]) == 0
    assert "1 matched to a leak, 1 unmatched" in capsys.readouterr().out
    assert main(["--db", str(db), "audit", "verify"]) == 0, capsys.readouterr().err
    eng = get_engine(str(db))
    with Session(eng) as s:
        ev = store.audit_events(s, action="notification")  # newest first
        assert ev["target"].isna().tolist() == [True, False] and ev["target"].iloc[1] == _leak_of(s, "P1")
        assert [json.loads(d)["match"] for d in ev["detail"]] == [None, "reference"]
    eng.dispose()


# --------------------------------------------------------------------------------------------- matching


def _dets() -> pd.DataFrame:
    lat1, lon1 = offset(0, 0)
    lat2, lon2 = offset(5_000, 0)
    return pd.DataFrame({"detection_id": ["P1", "P1", "P2"], "source_name": ["Tanager", "EMIT", "AirLidar"],
                         "observed_at": pd.to_datetime([_iso(0), _iso(3), _iso(1)], utc=True),
                         "latitude": [lat1, lat2, lat2], "longitude": [lon1, lon2, lon2],
                         "leak_id": ["LA", "LB", "LB"]})


@pytest.mark.parametrize(("ref", "at", "received", "want"), [
    ("P1", None, 10, ("LB", "reference")),  # two sources call a plume P1: the one seen last before the notice
    ("P1", (0, 50), 10, ("LA", "reference")),  # ... or the one nearest the notice's position
    ("Tanager:P1", None, 10, ("LA", "reference")),  # source_name:detection_id names one of them
    ("P2", None, 10, ("LB", "reference")),
    (None, (5_000, 400), 10, ("LB", "position")),  # 400 m from P2: inside 500 m
    (None, (5_000, 600), 10, (None, None)),  # 600 m: too far
    ("P7", (5_000, 400), 10, ("LB", "position")),  # an unknown reference falls back to the position
    (None, (5_000, 0), 95, (None, None)),  # P2 was seen 94 days before the notice: more than 90
    (None, (5_000, 0), 90, ("LB", "position")),
    (None, (0, 0), -2, (None, None)),  # the plume was seen after the notice was received
], ids=["shared-id-latest", "shared-id-nearest", "source-qualified", "plain-ref", "near", "too-far",
        "unknown-ref-then-position", "too-old", "in-time", "notice-before-plume"])
def test_a_notice_matches_by_reference_else_by_position_and_time(ref, at, received, want):
    pos = offset(*at) if at else (None, None)
    notes = pd.DataFrame({"notification_id": ["N"], "received_at": [T0 + pd.Timedelta(days=received)],
                          "detection_ref": [ref], "latitude": [pos[0]], "longitude": [pos[1]]})
    m = match_notifications(notes, _dets())
    assert (m.loc[0, "leak_id"], m.loc[0, "match_method"]) == want


def test_the_match_distance_is_configurable():
    notes = pd.DataFrame({"notification_id": ["N"], "received_at": [T0 + pd.Timedelta(days=10)],
                          "detection_ref": [None], "latitude": [offset(5_000, 600)[0]],
                          "longitude": [offset(5_000, 600)[1]]})
    m = match_notifications(notes, _dets(), {"notifications": {"match_distance_m": 700, "match_days": 90}})
    assert m.loc[0, "leak_id"] == "LB" and m.loc[0, "match_distance_m"] == pytest.approx(
        distance_m(*offset(5_000, 600), *offset(5_000, 0)), abs=0.5)


def test_a_person_corrects_a_match_which_later_fuses_keep_and_the_audit_records(db, write):
    eng = get_engine(str(db))
    with Session(eng) as s:
        from mlpe_core.comply.notifications import import_notifications

        import_notifications(s, write("notes.csv", NOTES_CSV), user="ana")
        ogi = _leak_of(s, "O1")
        r = set_match(s, "N3", ogi, user="sam", reason="the state's inspector named this pad")
        assert r["before"] == {"leak_id": None, "match_method": None}
        set_match(s, "N1", None, user="sam", reason="EPA withdrew it")  # "concerns no leak of ours"
        run_fuse(s, full=True)  # matches are recomputed after a fuse, a person's are kept
        n = store.notifications_frame(s).set_index("notification_id")
        assert (n.loc["N3", "leak_id"], n.loc["N3", "match_method"]) == (ogi, "manual")
        assert pd.isna(n.loc["N1", "leak_id"]) and n.loc["N1", "match_method"] == "manual"
        ev = store.audit_events(s, action="notification_match")
        assert [json.loads(d)["notification_id"] for d in ev["detail"]] == ["N1", "N3"]
        assert ev["actor"].tolist() == ["sam", "sam"]
        with pytest.raises(KeyError, match="no leak 'L999999'"):
            set_match(s, "N2", "L999999", user="sam")
        with pytest.raises(KeyError, match="no notification 'N9'"):
            set_match(s, "N9", ogi, user="sam")
    eng.dispose()


def test_a_notice_received_before_its_detection_matches_once_the_detection_is_fused(session, write):
    ingest_file(session, write("dets.csv", _detections_csv()))
    run_fuse(session)
    r = add_notification(session, {"notification_id": "EPA-9", "received_at": _iso(20), "program":
                                   "ooooB_super_emitter", "detection_ref": "P9"})
    assert (r["recorded"], r["matched"], r["unmatched"]) == (1, 0, 1)
    late = HEADER + ",rate_kg_h\n" + ",".join(map(str, ("P9", "satellite", "Tanager", _iso(15), *offset(50_000, 0),
                                                         900.0))) + "\n"
    ingest_file(session, write("late.csv", late))
    assert run_fuse(session)["notifications"] == {"matched": 1, "unmatched": 0, "changed": 1}
    n = store.notifications_frame(session).iloc[0]
    assert (n["leak_id"], n["match_method"]) == (_leak_of(session, "P9"), "reference")
    assert rematch_notifications(session)["changed"] == 0


def test_a_notice_entered_by_hand_is_checked_like_a_file_row(session, write):
    ingest_file(session, write("dets.csv", _detections_csv()))
    run_fuse(session)
    with pytest.raises(ValueError, match="notification: field 'program': program 'EPA' is not one of"):
        add_notification(session, {"notification_id": "X", "received_at": _iso(5), "program": "EPA",
                                   "detection_ref": "P1"})
    leak = _leak_of(session, "O1")
    r = add_notification(session, {"notification_id": "X", "received_at": _iso(5), "program": "state",
                                   "latitude": FAR[0], "longitude": FAR[1], "leak_id": leak}, user="ana")
    assert (r["recorded"], r["matched"]) == (1, 1)
    n = store.notifications_frame(session).iloc[0]
    assert (n["leak_id"], n["match_method"], n["source_row"]) == (leak, "manual", None)


# --------------------------------------------------------------------------------------------- clocks


def test_clocks_run_from_receipt_and_name_the_notice(db, write):
    eng = get_engine(str(db))
    with Session(eng) as s:
        from mlpe_core.comply.notifications import import_notifications

        import_notifications(s, write("notes.csv", NOTES_CSV))
        run_score(s, as_of=T0 + pd.Timedelta(days=12))
        lk = store.leaks_frame(s).set_index("leak_id")
        a, b, c = _leak_of(s, "P1"), _leak_of(s, "P2"), _leak_of(s, "O1")
        received = T0 + pd.Timedelta(days=10)
        assert (lk.loc[a, "due_by"], lk.loc[a, "due_rule"]) == (received + pd.Timedelta(days=5),
                                                                "ooooB_super_emitter:investigate")
        assert lk.loc[a, "risk_band"] == "HIGH"
        assert lk.loc[a, "band_reason"].startswith("HIGH because an OOOOb super-emitter investigation is due within "
                                                   "7 days; expected ")
        # the MARS notice runs the operator's voluntary clocks, labelled so; they never set the band
        assert lk.loc[b, "due_rule"] == "program_notification:investigate (voluntary)"
        assert "a voluntary clock is due soon (voluntary: does not set the band)" in lk.loc[b, "band_reason"]
        # the OGI find runs its own repair clock; the unmatched state notice (N3) runs on no leak
        assert (lk.loc[c, "due_by"], lk.loc[c, "due_rule"]) == (T0 + pd.Timedelta(days=32),
                                                                "ooooB_fugitive_ogi:repair_attempt")
        ck = leak_clocks(store.detections_frame(s, a), store.validations_frame(s), load_rules(),
                         T0 + pd.Timedelta(days=12), a, notifications=store.notifications_frame(s))
        assert ck[["action", "due_by", "started_by", "started_ref"]].values.tolist() == [
            ["investigate", received + pd.Timedelta(days=5), "notification", "N1"],
            ["report", received + pd.Timedelta(days=15), "notification", "N1"]]
    eng.dispose()
