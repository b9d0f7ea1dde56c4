"""Window reports of real monitors and aircraft (issue 14): the controlled-release CMS template, cleaned
P/N/NA timelines and aircraft pass reports. Small synthetic files shaped like the real ones are written here;
the real files (../shared/data/real) are only read by the last tests, which skip when they are absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REAL_DATA
from sqlmodel import Session

from mlpe_core.cli import main
from mlpe_core.ingest import IngestError, detect_format, ingest_file, read_table, to_canonical
from mlpe_core.ingest.formats.windows import vendor_times
from mlpe_core.pipeline import store_assets
from mlpe_core.store import coverage_frame, detections_frame
from mlpe_core.store.db import get_engine

PAD = pd.DataFrame({"asset_id": ["PAD1"], "latitude": [32.82], "longitude": [-111.78], "asset_type": ["well_pad"],
                    "operator": ["Op"]})


@pytest.fixture
def session():
    eng = get_engine("sqlite://")
    with Session(eng) as s:
        store_assets(s, PAD, "test")
        yield s
    eng.dispose()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text.lstrip("\n"), encoding="utf-8")
    return p


WINDOWS = ",".join(["EmissionStartDateTime", "EmissionEndDateTime", "Reported Release Rate (kg/h)", "EmissionRateUpper",
                    "EmissionRateLower", "ReportLabel", "ReportDate"]) + """
2022-10-10 16:50:00,2022-10-10 17:18:00,4.0,6.0,2.0,P,2022-10-10
2022-10-10 17:18:01,2022-10-10 17:43:59,0.0,0.0,0.0,N,2022-10-10
2022-10-10 17:44:00,2022-10-10 17:53:00,,,,P,2022-10-10
2022-10-10 17:53:01,2022-10-11 16:00:00,,,,NA,2022-10-10
2022-10-11 16:00:01,2022-10-11 16:15:00,0.0,,,P,2022-10-11
2022-10-11 16:15:01,2022-10-11 16:30:00,3.0,,,Q,2022-10-11
2022-10-11 16:30:01,soon,,,,N,2022-10-11
"""


def test_cms_windows_keep_negative_and_offline_windows_as_coverage(session, tmp_path):
    rep = ingest_file(session, _write(tmp_path, "vendorA_event_windows.csv", WINDOWS), asset="PAD1")
    assert rep.format == "cms_windows"
    # detection rows: the two P rows, the unknown label Q (rejected); the zero-rate P block, N and NA are coverage
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected, rep.n_duplicate) == (3, 2, 1, 0)
    assert (rep.n_coverage_rows, rep.n_coverage, rep.n_coverage_rejected) == (4, 5, 1)
    assert rep.coverage_states == {"detected": 2, "watching": 2, "offline": 1}
    assert [(r.row, r.column, r.reason) for r in rep.rejects.itertuples()] == [
        (7, "ReportLabel", "ReportLabel 'Q' is not P, N or NA (emitting, watched and saw nothing, no data)"),
        (8, "EmissionEndDateTime", "cannot read 'soon' as a time"),
    ]
    d = detections_frame(session).sort_values("observed_at")
    assert d["source_name"].tolist() == ["vendorA_event_windows"] * 2  # the file's name: no vendor column
    assert d["source_type"].tolist() == ["continuous_monitor"] * 2
    assert d["asset_id"].tolist() == ["PAD1"] * 2
    assert d["rate_kg_h"].tolist()[0] == 4.0 and np.isnan(d["rate_kg_h"].tolist()[1])
    assert d["rate_uncertainty_kg_h"].tolist()[0] == 2.0  # bounds of no stated kind: half-width as 1-sigma
    assert d["latitude"].tolist() == [32.82, 32.82]  # the registry's position of the site
    c = coverage_frame(session).sort_values("start_at").reset_index(drop=True)
    assert c["state"].tolist() == ["detected", "watching", "detected", "offline", "watching"]
    assert c["start_at"].dt.strftime("%m-%d %H:%M:%S").tolist() == [
        "10-10 16:50:00", "10-10 17:18:01", "10-10 17:44:00", "10-10 17:53:01", "10-11 16:00:01"]
    assert c["end_at"].dt.strftime("%m-%d %H:%M:%S").tolist() == [
        "10-10 17:18:00", "10-10 17:43:59", "10-10 17:53:00", "10-11 16:00:00", "10-11 16:15:00"]
    assert c.loc[c["state"] == "detected", "detection_id"].tolist() == sorted(d["detection_id"])
    assert c.loc[c["state"] != "detected", "detection_id"].isna().all()
    assert c["source_row"].tolist() == [2, 3, 4, 5, 6]
    assert "5 coverage windows kept (2 detected, 1 offline, 2 watching)" in rep.summary()


def test_the_same_window_file_twice_changes_nothing(session, tmp_path):
    path = _write(tmp_path, "w.csv", WINDOWS)
    ingest_file(session, path, asset="PAD1")
    before = (len(detections_frame(session)), len(coverage_frame(session)))
    rep = ingest_file(session, path, asset="PAD1")
    assert rep.already_ingested and (len(detections_frame(session)), len(coverage_frame(session))) == before


@pytest.mark.parametrize("fmt", ["auto", "cms_windows"])
def test_a_window_file_without_a_site_is_refused_whole(session, tmp_path, fmt):
    path = _write(tmp_path, "w.csv", WINDOWS)
    with pytest.raises(IngestError) as e:
        ingest_file(session, path, fmt=fmt)
    assert e.value.file == "w.csv" and "--asset" in str(e.value)
    assert detections_frame(session).empty and coverage_frame(session).empty


def test_an_unknown_site_rejects_detections_and_windows_alike(session, tmp_path):
    rep = ingest_file(session, _write(tmp_path, "w.csv", WINDOWS), asset="NOPE")
    assert rep.n_accepted == 0 and rep.n_coverage == 0
    reasons = set(rep.rejects["reason"])
    assert "unknown asset_id 'NOPE': import assets first" in reasons


REPORT = ",".join(["vendor", "PerformerExperimentID", "EmissionStartDateTime", "EmissionEndDateTime", "DetectingUnitID",
                   "EmissionLatitude", "EmissionLongitude", "Alarm (Y/N)", "EmissionRate", "EmissionRateUpper",
                   "EmissionRateLower", "UncertaintyType", "WindSpeed"]) + """
Qube,16.0,2022/10/10 16:50,2022/10/10 17:18,AX-1,,,Y,4.2388,4238.8,4238.8,,1.6
Qube,17.0,2022/10/10 17:44,2022/10/10 17:53,AX-3,,,Y,28.6934,28948.2,25311.4,,1.4
Sens,1.0,10/11/22 16:28,10/11/22 21:38,cc1,32.8219,-111.7857,Y,13.8,20.7,9.2,+/- 2 sigma,1.9
Sens,2.0,10/12/22 03:27,10/12/22 04:11,cc1,32.8219,-111.7857,N,,,,+/- 2 sigma,0.4
Sens,3.0,10/12/22 05:00,10/12/22 05:15,cc1,32.8219,-111.7857,Y,0,,,+/- 2 sigma,0.4
Sens,4.0,10/12/22 06:00,10/12/22 06:15,cc1,32.8219,-111.7857,maybe,5,,,,0.4
"""


def test_cms_report_alarms_negatives_and_bounds_that_are_not_used(session, tmp_path):
    rep = ingest_file(session, _write(tmp_path, "detection_reports.csv", REPORT), asset="PAD1")
    assert rep.format == "cms_report"
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected) == (4, 3, 1)
    assert rep.coverage_states == {"detected": 3, "watching": 2}  # Alarm N and a zero-rate block
    assert [(r.row, r.column, r.reason) for r in rep.rejects.itertuples()] == [
        (7, "Alarm (Y/N)", "Alarm (Y/N) 'maybe' is not Y or N")]
    # Qube-like bounds 1000x the rate: both rows flagged, loaded without an uncertainty
    assert rep.flags["row"].tolist() == [2, 3]
    assert rep.flags["column"].tolist() == ["EmissionRateUpper"] * 2
    assert rep.flags["reason"].iloc[0] == ("EmissionRateLower/EmissionRateUpper 4238.8/4238.8 do not bracket "
                                           "EmissionRate 4.2388 (about 1000x: g/h against kg/h?); bounds not used")
    d = detections_frame(session).set_index(["source_name", "detection_id"]).sort_index()
    assert d.index.tolist() == [("Qube", "16"), ("Qube", "17"), ("Sens", "1")]
    assert d["rate_uncertainty_kg_h"].isna().tolist() == [True, True, False]
    assert d.loc[("Sens", "1"), "rate_uncertainty_kg_h"] == pytest.approx((20.7 - 9.2) / 4)  # +/- 2 sigma
    assert d.loc[("Sens", "1"), "observed_at"] == pd.Timestamp("2022-10-11T16:28Z")  # month first (US)
    assert d.loc[("Qube", "16"), "observed_at"] == pd.Timestamp("2022-10-10T16:50Z")
    # a vendor that localises keeps its point; one that does not gets the site's
    assert d.loc[("Sens", "1"), "latitude"] == 32.8219 and d.loc[("Qube", "16"), "latitude"] == 32.82
    assert d.loc[("Qube", "16"), "wind_speed_m_s"] == 1.6
    assert "2 rows flagged" in rep.summary()


AIRCRAFT = ",".join(["", "Operator", "Stage", "overpass_id", "DateOfSurvey", "TimestampUTC", "Detected",
                     "QuantifiedPlume", "FacilityEmissionRate", "FacilityEmissionRateUpper",
                     "FacilityEmissionRateLower",
                     "UncertaintyType", "OperatorWindspeed", "QCFlag", "OperatorKeep"]) + """
0,Kairos - LS23,1,1.0,10/24/22,16:46:16,False,True,0.0,0.0,0.0,nan,,clear,True
1,Kairos - LS23,1,2.0,10/24/22,16:49:22,True,True,120.0,150.0,90.0,1-sigma,3.2,clear,True
2,Kairos - LS23,1,3.0,10/24/22,16:52:00,True,True,80.0,120.0,40.0,confidence_95,3.0,clear,False
3,Kairos - LS23,1,4.0,10/24/22,16:55:00,True,False,,,,nan,3.0,clear,True
"""


def test_aircraft_passes_with_and_without_plumes(session, tmp_path):
    rep = ingest_file(session, _write(tmp_path, "kairos_1_clean.csv", AIRCRAFT), asset="PAD1")
    assert rep.format == "aircraft_report"
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected) == (2, 2, 0)
    assert rep.coverage_states == {"detected": 2, "watching": 1, "offline": 1}  # the operator's discarded pass
    d = detections_frame(session).sort_values("detection_id")
    assert d["detection_id"].tolist() == ["stage1-pass2", "stage1-pass4"]
    assert d["source_name"].tolist() == ["Kairos - LS23"] * 2 and d["source_type"].tolist() == ["aerial"] * 2
    assert d["observed_at"].tolist() == [pd.Timestamp("2022-10-24T16:49:22Z"), pd.Timestamp("2022-10-24T16:55:00Z")]
    assert d["rate_kg_h"].tolist()[0] == 120.0 and np.isnan(d["rate_kg_h"].tolist()[1])  # detected, not quantified
    assert d["rate_uncertainty_kg_h"].tolist()[0] == 30.0
    assert d["location_uncertainty_m"].tolist() == [150.0, 150.0]  # the site's extent: no position in the file


@pytest.mark.parametrize(("header", "fmt"), [
    (["EmissionStartDateTime", "EmissionEndDateTime", "Reported Release Rate (kg/h)", "ReportLabel"], "cms_windows"),
    (["vendor", "EmissionStartDateTime", "EmissionEndDateTime", "Alarm (Y/N)", "EmissionRate"], "cms_report"),
    (["EmissionStartDateTime", "EmissionEndDateTime", "DetectingUnitID"], "cms_report"),
    (["Operator", "overpass_id", "DateOfSurvey", "TimestampUTC", "Detected", "FacilityEmissionRate"],
     "aircraft_report"),
    (["Operator", "overpass_id", "DateOfSurvey", "StartUTC", "EndUTC", "Detected", "FacilityEmissionRate"],
     "aircraft_report"),
    (["overpass_id", "overpass_datetime", "operator_detected", "operator_quantification"], "aircraft_report"),
    (["EmissionStartDateTime", "EmissionEndDateTime"], "unknown"),
    (["vendor", "DetectingUnitID", "DetectingUnitLatitude", "DetectingUnitLongitude"], "unknown"),
])
def test_detect_window_formats(header, fmt):
    assert detect_format(header) == fmt


def test_forced_window_format_names_the_missing_column(tmp_path):
    raw = read_table(_write(tmp_path, "w.csv", WINDOWS))
    with pytest.raises(IngestError) as e:
        to_canonical(raw, "aircraft_report", None, "w.csv", "PAD1")
    assert e.value.column == "detected"


def test_mapping_does_not_modify_its_input(tmp_path):
    raw = read_table(_write(tmp_path, "r.csv", REPORT))
    before = raw.copy()
    to_canonical(raw, "auto", None, "r.csv", "PAD1")
    pd.testing.assert_frame_equal(raw, before)


@pytest.mark.parametrize(("text", "iso"), [
    (["2022-10-10 16:51:00", "2022/10/10 16:51"], ["2022-10-10 16:51:00", "2022/10/10 16:51"]),  # ISO shapes pass
    (["10/24/22 16:46", "11/8/22 21:36:05"], ["2022-10-24T16:46:00", "2022-11-08T21:36:05"]),  # month first
    (["24/10/2022 16:46", "08/11/2022 09:00"], ["2022-10-24T16:46:00", "2022-11-08T09:00:00"]),  # a day > 12
    (["44844.5", "x"], ["2022-10-10T12:00:00", "x"]),  # Excel serial days; unknown text left for the validator
    # a 12-hour clock (Excel's US default), on slashed and ISO dates; 12 AM is midnight, 12 PM noon
    (["10/10/2022 04:50:00 PM", "10/10/2022 12:05 AM", "10/11/2022 12:05 pm", "2022-10-10 4:51 p.m."],
     ["2022-10-10T16:50:00", "2022-10-10T00:05:00", "2022-10-11T12:05:00", "2022-10-10T16:51:00"]),
    (["10/10/2022 13:00 PM", "2022-10-10 0:30 AM"], ["10/10/2022 13:00 PM", "2022-10-10 0:30 AM"]),  # no such hour
    # a month in words; a trailing UTC/GMT is the zone
    (["10-Oct-2022 16:51", "Oct 10, 2022 4:51 PM"], ["2022-10-10T16:51:00", "2022-10-10T16:51:00"]),
    (["2022-10-10 16:51:00 UTC", "10/10/2022 16:51 (GMT)", "2022-10-10 16:51", "2022-10-10 16:51:00+00:00 UTC"],
     ["2022-10-10T16:51:00Z", "2022-10-10T16:51:00Z", "2022-10-10 16:51", "2022-10-10 16:51:00+00:00"]),
])
def test_vendor_times(text, iso):
    assert vendor_times(pd.Series(text)).tolist() == iso


def test_cli_asset_flag(tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    assets = tmp_path / "assets.csv"
    PAD.to_csv(assets, index=False)
    path = _write(tmp_path, "w.csv", WINDOWS)
    assert main(["--db", db, "assets", "import", str(assets)]) == 0
    assert main(["--db", db, "ingest", str(path)]) == 2
    assert "--asset" in capsys.readouterr().err
    assert main(["--db", db, "ingest", "--asset", "PAD1", "--source-name", "VendorA", str(path)]) == 0
    assert "[cms_windows]: 3 rows, 2 accepted, 1 rejected" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- the real files

CMS_DIR = REAL_DATA / "stanford_cms_2022" / "vendor_reports"
AIR_DIR = REAL_DATA / "stanford_aircraft_2022" / "operator_reports_clean"
REAL_FILES = sorted(CMS_DIR.glob("*.csv")) + sorted(AIR_DIR.glob("*.csv")) if CMS_DIR.exists() else []


@pytest.mark.skipif(not REAL_FILES, reason=f"real monitor and aircraft reports not found in {REAL_DATA}")
@pytest.mark.parametrize("path", REAL_FILES, ids=[p.name for p in REAL_FILES])
def test_every_real_report_loads_or_is_refused_whole(session, path):
    try:
        rep = ingest_file(session, path, asset="PAD1")
    except IngestError as e:
        assert e.file == path.name and "unrecognised format" in str(e)  # descriptions of sensors, not reports
        assert ("performer_info" in path.name) or path.name == "deployed_units.csv"
        assert detections_frame(session).empty and coverage_frame(session).empty
        return
    assert rep.n_rejected == 0 and rep.n_coverage_rejected == 0, rep.rejects.head()
    assert rep.n_accepted == rep.n_rows > 0
    assert len(detections_frame(session)) == rep.n_accepted


@pytest.mark.skipif(not CMS_DIR.exists(), reason=f"real monitor reports not found in {REAL_DATA}")
def test_real_timelines_and_report_counts(session):
    """Counts from the files themselves (P rows are detections, N and NA windows coverage)."""
    for vendor in ("Andium", "Canary", "Qube", "Sensirion"):
        raw = pd.read_csv(CMS_DIR / f"{vendor}_event_windows.csv")
        rep = ingest_file(session, CMS_DIR / f"{vendor}_event_windows.csv", asset="PAD1", source_name=vendor)
        labels = raw["ReportLabel"].value_counts().to_dict()
        assert rep.n_accepted == labels.get("P", 0)
        assert rep.coverage_states.get("watching", 0) == labels.get("N", 0)
        assert rep.coverage_states.get("offline", 0) == labels.get("NA", 0)
    raw = pd.read_csv(CMS_DIR / "detection_reports.csv")
    rep = ingest_file(session, CMS_DIR / "detection_reports.csv", asset="PAD1")
    assert rep.n_accepted == int((raw["Alarm (Y/N)"] == "Y").sum())
    qube = raw["vendor"].eq("Qube") & (raw["EmissionRateUpper"] > 10 * raw["EmissionRate"])
    assert set(rep.flags["row"]) == set(np.flatnonzero(qube.to_numpy()) + 2)  # Qube's g/h bounds, and only those


UNSEEN = ",".join(["vendor", "PerformerExperimentID", "EmissionStartDateTime", "EmissionEndDateTime",
                   "DetectingUnitID", "Alarm (Y/N)", "EmissionRate", "EmissionRateUpper", "EmissionRateLower"]) + """
Cam,1,10/12/2022 09:05:00 AM,10/12/2022 09:45:00 AM,N/A,Y,N/A,N/A,N/A
Cam,2,10/12/2022 01:10:00 PM,10/12/2022 01:30:00 PM,cam-2,Yes,-,,
Cam,3,12-Oct-2022 15:00,12-Oct-2022 15:20,cam-2,No,0,,
Cam,4,2022-10-12 16:00 UTC,2022-10-12 16:30 UTC,cam-2,Y,"1,234.5",,
Cam,5,2022-10-12 17:00,2022-10-12 17:30,cam-2,Y,"2,5",,
"""


def test_a_monitor_we_have_not_seen_loads_by_its_own_conventions(session, tmp_path):
    """A camera vendor's report in the template with a 12-hour clock, months in words, UTC written out and
    N/A where it does not quantify: its alarms load without a rate; numbers written two ways are refused with
    what to write instead."""
    rep = ingest_file(session, _write(tmp_path, "cam.csv", UNSEEN), asset="PAD1")
    assert (rep.format, rep.n_rows, rep.n_accepted, rep.n_rejected) == ("cms_report", 4, 2, 2)
    assert rep.coverage_states == {"detected": 2, "watching": 1}
    assert [(r.row, r.column, r.reason) for r in rep.rejects.itertuples()] == [
        (5, "EmissionRate", "EmissionRate '1,234.5' is not a number: write it without thousands separators (1234.5)"),
        (6, "EmissionRate", "EmissionRate '2,5' is not a number: write it with a decimal point (1.5, not 1,5)")]
    d = detections_frame(session).sort_values("observed_at")
    assert d["observed_at"].tolist() == [pd.Timestamp("2022-10-12T09:05Z"), pd.Timestamp("2022-10-12T13:10Z")]
    assert d["rate_kg_h"].isna().all()  # N/A and "-": alarms without a rate, not refused rows
    assert d["detection_id"].tolist() == ["1", "2"]
    cov = coverage_frame(session).sort_values("start_at")
    assert cov["start_at"].iloc[-1] == pd.Timestamp("2022-10-12T15:00Z")  # the quiet window, month in words


@pytest.mark.parametrize(("label", "state"), [("P", "detected"), ("positive", "detected"), ("Negative", "watching"),
                                              ("not  detected", "watching"), ("N/A", "offline"),
                                              ("no data", "offline")])
def test_timeline_labels_in_words(session, tmp_path, label, state):
    text = f"EmissionStartDateTime,EmissionEndDateTime,ReportLabel\n2022-10-10 16:50,2022-10-10 17:18,{label}\n"
    rep = ingest_file(session, _write(tmp_path, "v_event_windows.csv", text), asset="PAD1")
    assert (rep.n_rejected, rep.n_coverage_rejected) == (0, 0)
    assert rep.coverage_states == {state: 1}


def test_aircraft_pass_times_on_a_12_hour_clock(session, tmp_path):
    text = AIRCRAFT.replace("16:49:22", "4:49:22 PM").replace("16:55:00", "04:55:00 pm")
    ingest_file(session, _write(tmp_path, "kairos_1_clean.csv", text), asset="PAD1")
    assert sorted(detections_frame(session)["observed_at"]) == [pd.Timestamp("2022-10-24T16:49:22Z"),
                                                               pd.Timestamp("2022-10-24T16:55:00Z")]


def test_a_file_of_coverage_windows_alone_is_a_coverage_batch_loaded_once(session):
    """The ingest history said "Detections · 0 rows · 0 accepted" for the demo's coverage file."""
    from mlpe_core import pipeline
    from mlpe_core.ingest import ingest_frame
    from mlpe_core.simulate import simulate_basin
    from mlpe_core.store import batches_frame

    basin = simulate_basin(seed=1, n_assets=150, n_days=30)
    assert len(basin.coverage)
    pipeline.store_assets(session, basin.assets, "ana")
    cov = basin.coverage.astype(object).where(basin.coverage.notna(), "")
    for c in ("start_at", "end_at"):
        cov[c] = pd.to_datetime(basin.coverage[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    canon = to_canonical(cov.astype(str), "coverage", None, "cov.csv")
    rep = ingest_frame(session, canon, "cov.csv", user="ana")
    b = batches_frame(session).set_index("file_name").loc["cov.csv"]
    assert (b["kind"], b["n_rows"], b["n_accepted"]) == ("coverage", len(cov), rep.n_coverage) and rep.n_coverage > 0
    again = ingest_frame(session, to_canonical(cov.astype(str), "coverage", None, "copy.csv"), "copy.csv", user="ana")
    assert again.already_ingested and "copy.csv" not in set(batches_frame(session)["file_name"])
