"""Export: spreadsheet-safe CSV, strict GeoJSON and well-formed KML."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from mlpe_core.export import is_formula_like, spreadsheet_safe, to_csv_text, to_geojson, to_kml, write, write_csv

KML_NS = {"k": "http://www.opengis.net/kml/2.2"}


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "leak_id": ["L000001", "L000002", "L000003"],
        "latitude": [32.0, 32.5, 33.0],
        "longitude": [-102.0, -102.5, -103.0],
        "priority_score": [-1.5, 0.0, 12.25],
        "rank": [1, 2, 3],
        "asset_id": ["=HYPERLINK(\"http://x\")", None, "A&B <pad>"],
        "first_seen": pd.to_datetime(["2025-01-01T00:00:00Z", "2025-01-02T12:30:00Z", None], utc=True),
        "est_rate_kg_h": [np.nan, 3.5, 100.0],
    })


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=cmd()|' /C calc'!A0",
                                  " =1+1", "\x01=1+1", "\n@SUM(1)", " \t -2+3", "\u00a0=1"])
def test_text_that_a_spreadsheet_would_run_gets_an_apostrophe(text):
    out = spreadsheet_safe(pd.DataFrame({"c": [text, "plain"]}))
    assert out["c"].tolist() == ["'" + text, "plain"]


@pytest.mark.parametrize("text", ["abc", "L000001", "1.5", "", "x =not first", "a=b", "'already", "x\r=1+1"])
def test_ordinary_text_is_left_alone(text):
    assert spreadsheet_safe(pd.DataFrame({"c": [text]}))["c"].tolist() == [text]


def test_numeric_columns_stay_numeric(frame):
    out = spreadsheet_safe(frame)
    for c in ("latitude", "priority_score", "rank", "est_rate_kg_h"):
        assert pd.api.types.is_numeric_dtype(out[c]), c
    assert out["priority_score"].tolist() == [-1.5, 0.0, 12.25]
    assert out["asset_id"].tolist()[0] == "'=HYPERLINK(\"http://x\")"
    assert pd.isna(out["asset_id"].tolist()[1])
    assert out["first_seen"].tolist()[:2] == ["2025-01-01T00:00:00Z", "2025-01-02T12:30:00Z"]


def test_spreadsheet_safe_does_not_modify_its_input(frame):
    before = frame.copy(deep=True)
    spreadsheet_safe(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_written_csv_is_safe_and_numbers_stay_numbers(frame, tmp_path):
    p = tmp_path / "out.csv"
    write_csv(frame, p)
    back = pd.read_csv(p, dtype=str, keep_default_na=False)
    assert back.columns.tolist() == frame.columns.tolist()
    assert back["asset_id"].tolist() == ["'=HYPERLINK(\"http://x\")", "", "A&B <pad>"]
    assert back["priority_score"].tolist() == ["-1.5", "0.0", "12.25"]  # a negative number is not text
    assert back["first_seen"].tolist() == ["2025-01-01T00:00:00Z", "2025-01-02T12:30:00Z", ""]


def test_geojson_is_a_strict_feature_collection_of_points(frame, tmp_path):
    p = tmp_path / "out.geojson"
    write(frame, p, "geojson")

    def no_nan(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    data = json.loads(p.read_text(encoding="utf-8"), parse_constant=no_nan)
    assert data["type"] == "FeatureCollection"
    assert len(data["features"]) == 3
    f0, f1, f2 = data["features"]
    assert f0["type"] == "Feature"
    assert f0["geometry"] == {"type": "Point", "coordinates": [-102.0, 32.0]}
    assert set(f0["properties"]) == set(frame.columns)
    assert f0["properties"]["leak_id"] == "L000001"
    assert f0["properties"]["rank"] == 1
    assert f0["properties"]["est_rate_kg_h"] is None
    assert f1["properties"]["asset_id"] is None
    assert f1["properties"]["first_seen"] == "2025-01-02T12:30:00Z"
    assert f2["properties"]["first_seen"] is None
    assert to_geojson(frame) == data


def test_kml_parses_as_xml_with_one_placemark_per_row(frame, tmp_path):
    p = tmp_path / "out.kml"
    write(frame, p, "kml")
    root = ET.parse(p).getroot()
    assert root.tag == "{http://www.opengis.net/kml/2.2}kml"
    marks = root.findall(".//k:Placemark", KML_NS)
    assert [m.findtext("k:name", namespaces=KML_NS) for m in marks] == ["L000001", "L000002", "L000003"]
    coords = [m.findtext("k:Point/k:coordinates", namespaces=KML_NS) for m in marks]
    assert coords == ["-102.0,32.0,0", "-102.5,32.5,0", "-103.0,33.0,0"]
    data = {d.get("name"): d.findtext("k:value", namespaces=KML_NS)
            for d in marks[2].findall(".//k:Data", KML_NS)}
    assert data["asset_id"] == "A&B <pad>"  # escaped on the way out, intact on the way back
    assert "est_rate_kg_h" not in {d.get("name") for d in marks[0].findall(".//k:Data", KML_NS)}


def test_kml_text_is_declared_utf8():
    text = to_kml(pd.DataFrame({"leak_id": ["L1"], "latitude": [1.0], "longitude": [2.0], "why": ["±5 kg/h ≥"]}))
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.find(".//k:Data[@name='why']/k:value", KML_NS).text == "±5 kg/h ≥"


@pytest.mark.parametrize("fmt", ["geojson", "kml"])
def test_map_formats_need_coordinates(tmp_path, fmt):
    with pytest.raises(ValueError, match="latitude and longitude"):
        write(pd.DataFrame({"leak_id": ["L1"]}), tmp_path / "x", fmt)


def test_unknown_export_format_is_refused(frame, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        write(frame, tmp_path / "x.xls", "xls")
    assert not (tmp_path / "x.xls").exists()


HOSTILE = ["x\r=1+1", "a\nb", 'say "hi", then =2', "=HYPERLINK(\"http://h/x\")", "@SUM(1)", " =1+1", "\x01+7",
           "-2+3", "plain", "", None, "tab\tinside", "\r\n=CR first"]


def live_formulas(text: str) -> list[str]:
    """Cells a spreadsheet would run, reading ``text`` the way a CSV consumer does (numbers are fine)."""
    import csv
    import io

    bad = []
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            try:
                float(cell)
                continue
            except ValueError:
                pass
            if is_formula_like(cell):
                bad.append(cell)
    return bad


def test_cr_lf_quotes_and_commas_are_quoted_and_read_back_intact():
    import csv
    import io

    df = pd.DataFrame({"leak_id": [f"L{i}" for i in range(len(HOSTILE))], "event_type": HOSTILE,
                       "rate": np.linspace(-1, 1, len(HOSTILE))})
    text = to_csv_text(df)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == len(HOSTILE) + 1  # no row split by a CR or LF inside a field
    assert rows[0] == ["leak_id", "event_type", "rate"]
    back = [r[1] for r in rows[1:]]
    want = ["" if v is None else ("'" + v if is_formula_like(v) else v) for v in HOSTILE]
    assert back == want
    assert [float(r[2]) for r in rows[1:]] == pytest.approx(df["rate"].tolist())  # numbers stay numbers
    assert live_formulas(text) == []
    assert "\r=1+1\"" in text and text.endswith("\n") and not text.endswith("\r\n")


def test_a_bare_cr_never_ends_a_row_in_a_spreadsheet():
    """Before: pandas' writer left ``x\r=1+1`` unquoted, and LibreOffice opened ``=1+1`` as a live formula."""
    text = to_csv_text(pd.DataFrame({"notes": ["x\r=1+1"]}))
    assert text == 'notes\n"x\r=1+1"\n'
    assert pd.read_csv(__import__("io").StringIO(text))["notes"].tolist() == ["x\r=1+1"]


def test_header_cells_are_neutralised_too():
    assert to_csv_text(pd.DataFrame({"=1+1": [1]})).splitlines()[0] == "'=1+1"


def test_every_csv_the_product_writes_goes_through_the_one_writer():
    """No page, API or command writes CSV another way (``simulate.write_basin`` writes test inputs, not exports)."""
    import re

    from conftest import REPO

    allowed = {"mlpe_core/export.py", "mlpe_core/simulate.py"}
    offenders = []
    for f in [*REPO.glob("mlpe_core/**/*.py"), *REPO.glob("app/*.py"), *REPO.glob("pages/*.py")]:
        rel = f.relative_to(REPO).as_posix()
        if rel in allowed:
            continue
        src = f.read_text(encoding="utf-8")
        if re.search(r"\.to_csv\(|csv\.writer\(|csv\.DictWriter\(", src):
            offenders.append(rel)
    assert offenders == []


# --------------------------------------------------------------------------------------------- files for people

def _detections() -> pd.DataFrame:
    """Detections as ``export detections`` holds them: one quantified, one detected but not quantified."""
    return pd.DataFrame({
        "detection_id": ["AIR-0000000", "CMS-0000001"], "source_name": ["AirLidar", "FenceCMS"],
        "leak_id": ["L000012", "L000013"], "source_type": ["aerial", "continuous_monitor"],
        "observed_at": pd.to_datetime(["2026-09-05T15:42:11Z", "2026-09-06T01:02:03Z"], utc=True),
        "latitude": [31.894601, 31.9123456], "longitude": [-102.52269, -102.6543219],
        "location_uncertainty_m": [5.0, 30.0], "rate_kg_h": [27.6945, np.nan],
        "rate_uncertainty_kg_h": [8.3084, np.nan],
        "confidence": [0.8457, 0.42], "wind_speed_m_s": [2.34, np.nan], "asset_id": [None, "A000001"],
        "event_type": [None, "alarm"], "ambiguous": [False, False], "batch_id": [1, 2], "source_row": [2, 3]})


def test_detection_kml_names_each_detection_and_keeps_its_rate_sensor_and_time():
    """Before: every detection was named by its leak, said "Rate –" (the leak's rate column, absent here) and had no
    TimeStamp."""
    root = ET.fromstring(to_kml(_detections(), "MLPE detections", unit="scf/h").encode("utf-8"))
    marks = root.findall(".//k:Placemark", KML_NS)
    assert [m.findtext("k:name", namespaces=KML_NS) for m in marks] == ["AIR-0000000 · L000012",
                                                                         "CMS-0000001 · L000013"]
    assert [m.findtext("k:TimeStamp/k:when", namespaces=KML_NS) for m in marks] == ["2026-09-05T15:42:11Z",
                                                                                     "2026-09-06T01:02:03Z"]
    quantified, alarm = (m.findtext("k:description", namespaces=KML_NS) for m in marks)
    from mlpe_core import present

    assert f"<th align='left'>Rate</th><td>{present.rate(27.6945, 'scf/h')} ±" in quantified  # the unit chosen
    assert "AirLidar (Aircraft)" in quantified and "85%" in quantified and "2026-09-05 15:42 UTC" in quantified
    assert "<th align='left'>Rate</th><td>not quantified</td>" in alarm and "FenceCMS (Continuous monitor)" in alarm
    for text in (quantified, alarm):
        assert not any(w in text for w in ("None", "nan", "NaT", "–</td>", "_"))


def test_detections_workbook_keeps_coordinates_and_reads_like_a_person_wrote_it(tmp_path):
    """Before: latitude and longitude were stored rounded to 0.1° (31.9, -102.5) with a #,##0.0 format, confidence
    0.8457000000000001 and a header "Wind speed m s"."""
    from openpyxl import load_workbook

    df = _detections()
    write(df, tmp_path / "d.xlsx", "xlsx", table="detections", title="Detections")
    ws = load_workbook(tmp_path / "d.xlsx")["Detections"]
    head = [c.value for c in ws[1]]
    cells = {h: [row[j] for row in ws.iter_rows(min_row=2)] for j, h in enumerate(head)}
    for h, col in (("Latitude", "latitude"), ("Longitude", "longitude")):
        assert [c.value for c in cells[h]] == pytest.approx(df[col].tolist(), abs=1e-9)
        assert {c.number_format for c in cells[h]} == {"0.000000"}
    assert [c.value for c in cells["Confidence"]] == [0.8457, 0.42] and cells["Confidence"][0].number_format == "0%"
    assert "Wind speed (m/s)" in head and "Leak" in head
    assert not [h for h in head if re.search(r" (m s|kg h|m|s|h|km)$|_", h)], head


@pytest.mark.parametrize(("table", "frame_cols"), [
    ("dispatch", {"leak_id": ["L1"], "rank": [1], "latitude": [31.1234567], "longitude": [-102.7654321],
                  "home_lat": [32.062675], "home_lon": [-102.487159], "leg_km": [16.26], "p_real": [0.0749]}),
    ("leaks", {"leak_id": ["L1"], "rank": [1], "latitude": [32.0262497], "longitude": [-102.504276],
               "p_real": [0.7918382306521643], "radius_m": [12.34]}),
])
def test_every_workbook_sheet_keeps_full_precision_coordinates(tmp_path, table, frame_cols):
    """Dispatch sheets' yards were 32.1, -102.5; the ranked leaks' coordinates were cut to 4 decimals."""
    from openpyxl import load_workbook

    df = pd.DataFrame(frame_cols)
    write(df, tmp_path / "w.xlsx", "xlsx", table=table, title="Sheet")
    ws = load_workbook(tmp_path / "w.xlsx")["Sheet"]
    got = {c.value: (v.value, v.number_format) for c, v in zip(ws[1], ws[2], strict=True)}
    coords = {h: got[h] for h in got if "atitude" in h or "ongitude" in h}
    assert len(coords) == (4 if table == "dispatch" else 2), got
    want = sorted(v for k, v in frame_cols.items() if k in ("latitude", "longitude", "home_lat", "home_lon"))
    assert sorted(v for v, _ in coords.values()) == pytest.approx([x for [x] in want], abs=1e-9)
    assert {f for _, f in coords.values()} == {"0.000000"}
    assert got["P(real)"] == (pytest.approx(frame_cols["p_real"][0], abs=1e-12), "0%")


@pytest.mark.parametrize(("name", "given", "want"), [
    ("out.csv", None, "csv"), ("out.xlsx", None, "xlsx"), ("OUT.XLSX", None, "xlsx"), ("out.geojson", None, "geojson"),
    ("out.json", None, "geojson"), ("out.kml", None, "kml"), ("out.txt", None, "csv"), ("out", None, "csv"),
    ("out.txt", "kml", "kml"), ("wo.json", "workorder", "workorder"), ("out.xlsx", "xlsx", "xlsx")])
def test_the_format_comes_from_the_file_name_when_not_given(name, given, want):
    from mlpe_core.export import format_for

    assert format_for(name, given) == want


@pytest.mark.parametrize(("name", "given"), [("x.xlsx", "csv"), ("x.csv", "geojson"), ("x.kml", "xlsx"),
                                             ("x.geojson", "workorder"), ("x.json", "kml")])
def test_a_format_the_file_name_contradicts_is_refused(name, given):
    from mlpe_core.export import format_for

    with pytest.raises(ValueError, match=rf"{name} is named .*--format {given}"):
        format_for(name, given)
