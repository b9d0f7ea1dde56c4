"""Export: spreadsheet-safe CSV, strict GeoJSON and well-formed KML."""

from __future__ import annotations

import json
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
