"""Ingest: every file shape analysts get, every row check, and nothing written on a structural error."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import HEADER
from sqlmodel import select

from mlpe_core.ingest import IngestError, ingest_file, to_canonical, validate_detections
from mlpe_core.store import detections_frame
from mlpe_core.store.models import Detection, IngestBatch

FULL_HEADER = (HEADER + ",location_uncertainty_m,rate_kg_h,rate_uncertainty_kg_h,confidence,wind_speed_m_s,"
               "asset_id,event_type")
GOOD1 = "g1,aerial,AirLidar,2025-01-01T00:00:00Z,32.0,-102.0"
GOOD2 = "g2,aerial,AirLidar,2025-01-02T00:00:00Z,32.1,-102.1"


def _by_id(session) -> dict[str, Detection]:
    return {d.detection_id: d for d in session.exec(select(Detection)).all()}


# --------------------------------------------------------------------------------------------- happy path


def test_canonical_file_loads_every_column_exactly(session, write):
    p = write("feed.csv", FULL_HEADER + "\n"
              "A-1,satellite,PointSat,2025-05-21T18:08:50Z,32.118306,-102.478059,25,517.5,181.1,0.48,3.9,,\n"
              "A-2,SCADA,SCADA,2025-05-22T01:00:00Z,32.117996,-102.477458,200,,,0.43,,A000680,compressor_vent\n")
    rep = ingest_file(session, p)
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected, rep.n_duplicate) == (2, 2, 0, 0)
    assert rep.format == "canonical" and not rep.already_ingested
    assert rep.rejects.empty
    d = _by_id(session)
    a, b = d["A-1"], d["A-2"]
    assert (a.source_type, a.source_name) == ("satellite", "PointSat")
    assert (a.latitude, a.longitude) == (32.118306, -102.478059)
    assert (a.location_uncertainty_m, a.rate_kg_h, a.rate_uncertainty_kg_h) == (25.0, 517.5, 181.1)
    assert (a.confidence, a.wind_speed_m_s, a.asset_id, a.event_type) == (0.48, 3.9, None, None)
    assert (b.source_type, b.asset_id, b.event_type, b.rate_kg_h) == ("scada", "A000680", "compressor_vent", None)
    assert (a.source_row, b.source_row) == (2, 3)
    assert a.batch_id == b.batch_id == rep.batch_id
    frame = detections_frame(session).set_index("detection_id")
    assert frame.loc["A-1", "observed_at"] == pd.Timestamp("2025-05-21T18:08:50Z")
    batch = session.get(IngestBatch, rep.batch_id)
    assert (batch.file_name, batch.n_rows, batch.n_accepted, batch.kind) == ("feed.csv", 2, 2, "detections")
    assert len(batch.sha256) == 64


def test_header_names_and_source_type_are_case_insensitive(session, write):
    p = write("upper.csv", HEADER.upper() + "\nu1,Aerial,AirLidar,2025-01-01T00:00:00Z,32,-102\n")
    rep = ingest_file(session, p)
    assert rep.n_accepted == 1
    assert _by_id(session)["u1"].source_type == "aerial"


def test_source_name_override_applies_to_every_row(session, write):
    p = write("o.csv", HEADER + "\n" + GOOD1 + "\n" + GOOD2 + "\n")
    ingest_file(session, p, source_name="Campaign-7")
    assert {d.source_name for d in _by_id(session).values()} == {"Campaign-7"}


@pytest.mark.parametrize(
    ("column", "value", "expected_kg_h"),
    [
        ("rate_kg_h", "12.5", 12.5),
        ("rate_g_s", "10", 10 * 3.6),
        ("rate_t_h", "1.5", 1.5 * 1000),
        ("rate_lb_h", "100", 100 * 0.45359237),
        ("rate_scfh", "1000", 1000 * 0.01920),
        ("rate_mcf_d", "24", 24 * 1000 * 0.01920 / 24),
    ],
)
def test_rate_units_are_converted_to_kg_per_hour(session, write, column, value, expected_kg_h):
    p = write("units.csv", f"{HEADER},{column}\nr1,aerial,AirLidar,2025-01-01T00:00:00Z,32,-102,{value}\n")
    rep = ingest_file(session, p)
    assert rep.n_accepted == 1
    assert _by_id(session)["r1"].rate_kg_h == pytest.approx(expected_kg_h, rel=1e-12)


def test_rate_uncertainty_in_the_same_unit_is_converted_too(session, write):
    p = write("gs.csv", f"{HEADER},rate_g_s,rate_uncertainty_g_s\n"
                        "r1,aerial,AirLidar,2025-01-01T00:00:00Z,32,-102,10,2\n")
    ingest_file(session, p)
    d = _by_id(session)["r1"]
    assert (d.rate_kg_h, d.rate_uncertainty_kg_h) == (pytest.approx(36.0), pytest.approx(7.2))


def test_rate_in_two_units_is_a_structural_error(session, write, table_counts):
    p = write("two.csv", f"{HEADER},rate_kg_h,rate_g_s\nr1,aerial,AirLidar,2025-01-01T00:00:00Z,32,-102,1,1\n")
    before = table_counts()
    with pytest.raises(IngestError, match="rate_g_s"):
        ingest_file(session, p)
    assert table_counts() == before


def test_utf8_bom_is_not_part_of_the_first_column(session, write):
    p = write("bom.csv", (HEADER + "\n" + GOOD1 + "\n").encode("utf-8-sig"))
    rep = ingest_file(session, p)
    assert rep.n_accepted == 1
    assert set(_by_id(session)) == {"g1"}


def test_semicolon_delimited_file(session, write):
    p = write("semi.csv", HEADER.replace(",", ";") + ";rate_kg_h\n" + GOOD1.replace(",", ";") + ";4.5\n")
    rep = ingest_file(session, p)
    assert rep.n_accepted == 1
    d = _by_id(session)["g1"]
    assert (d.latitude, d.longitude, d.rate_kg_h) == (32.0, -102.0, 4.5)


def test_quoted_fields_keep_their_commas(session, write):
    p = write("quoted.csv", HEADER + ',event_type,note\n'
              'q1,ogi,"OGI, crew 2",2025-01-01T00:00:00Z,32,-102,"valve, north side","a ""quoted"" word, here"\n')
    rep = ingest_file(session, p)
    assert rep.n_accepted == 1
    d = _by_id(session)["q1"]
    assert d.source_name == "OGI, crew 2"
    assert d.event_type == "valve, north side"
    assert json.loads(d.attributes) == {"note": 'a "quoted" word, here'}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-05-21T18:08:50+00", "2025-05-21T18:08:50Z"),
        ("2025-05-21T18:08:50", "2025-05-21T18:08:50Z"),
        ("2025-05-21 18:08:50", "2025-05-21T18:08:50Z"),
        ("2025-05-21T18:08:50.123456", "2025-05-21T18:08:50.123456Z"),
        ("2025-05-21T18:08:50Z", "2025-05-21T18:08:50Z"),
        ("2025-05-21T20:08:50+02:00", "2025-05-21T18:08:50Z"),
        ("2025-05-21T13:08:50-05", "2025-05-21T18:08:50Z"),
        ("2025-05-21", "2025-05-21T00:00:00Z"),
    ],
    ids=["plus00", "no-zone", "space", "microseconds", "Z", "offset", "minus05", "date-only"],
)
def test_timestamp_shapes_are_read_as_utc(session, write, text, expected):
    p = write("t.csv", f"{HEADER}\nt1,aerial,AirLidar,{text},32,-102\n")
    rep = ingest_file(session, p)
    assert rep.rejects.empty, rep.rejects.to_dict("records")
    got = detections_frame(session)["observed_at"].iloc[0]
    assert got == pd.Timestamp(expected)


# --------------------------------------------------------------------------------------------- row rejects


@pytest.mark.parametrize(
    ("bad_row", "column", "reason"),
    [
        ("b1,aerial,AirLidar,2025-01-03T00:00:00Z,95,-102", "latitude", "outside -90..90"),
        ("b1,aerial,AirLidar,2025-01-03T00:00:00Z,32,abc", "longitude", "not a number"),
        ("b1,aerial,AirLidar,yesterday at noon,32,-102", "observed_at", "ISO 8601"),
        ("b1,aerial,AirLidar,2025-01-03T00:00:00Z,32,-102,-4", "rate_kg_h", "negative"),
        ("b1,aerial,AirLidar,2025-01-03T00:00:00Z,32,-102,,1.5", "confidence", "outside 0..1"),
        ("b1,drone,AirLidar,2025-01-03T00:00:00Z,32,-102", "source_type", "unknown source_type 'drone'"),
        ("g1,aerial,AirLidar,2025-01-03T00:00:00Z,32,-102", "detection_id", "duplicate detection_id 'g1'"),
        (",aerial,AirLidar,2025-01-03T00:00:00Z,32,-102", "detection_id", "blank"),
    ],
    ids=["lat-95", "lon-abc", "bad-time", "negative-rate", "confidence-1.5", "unknown-type", "duplicate-id",
         "blank-id"],
)
def test_bad_row_is_rejected_with_row_column_reason_and_good_rows_load(session, write, bad_row, column, reason):
    def pad(row: str) -> str:
        return row + "," * (7 - row.count(","))

    text = f"{HEADER},rate_kg_h,confidence\n{pad(GOOD1)}\n{pad(bad_row)}\n{pad(GOOD2)}\n"
    rep = ingest_file(session, write("rows.csv", text))
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected) == (3, 2, 1)
    assert rep.rejects[["row", "column"]].values.tolist() == [[3, column]]  # header is row 1
    assert reason in rep.rejects["reason"].iloc[0]
    assert set(_by_id(session)) == {"g1", "g2"}
    assert {d.detection_id: d.source_row for d in _by_id(session).values()} == {"g1": 2, "g2": 4}


def test_duplicate_reason_points_at_the_first_row(session, write):
    text = f"{HEADER}\n{GOOD1}\n{GOOD2}\n{GOOD1}\n"
    rep = ingest_file(session, write("dup.csv", text))
    assert rep.rejects[["row", "column"]].values.tolist() == [[4, "detection_id"]]
    assert "first on row 2" in rep.rejects["reason"].iloc[0]


def test_several_bad_rows_are_each_reported(session, write):
    text = (f"{HEADER}\n{GOOD1}\n"
            "x1,aerial,AirLidar,2025-01-01T00:00:00Z,-91,-102\n"
            "x2,aerial,AirLidar,2025-01-01T00:00:00Z,32,181\n"
            f"{GOOD2}\n"
            "x3,satellite,,2025-01-01T00:00:00Z,32,-102\n")
    rep = ingest_file(session, write("many.csv", text))
    assert rep.rejects[["row", "column"]].values.tolist() == [[3, "latitude"], [4, "longitude"], [6, "source_name"]]
    assert (rep.n_accepted, rep.n_rejected) == (2, 3)


def test_reject_of_a_converted_rate_names_the_files_own_column(session, write):
    p = write("gs.csv", f"{HEADER},rate_g_s\n{GOOD1},1\nb1,aerial,AirLidar,2025-01-01T00:00:00Z,32,-102,-2\n")
    rep = ingest_file(session, p)
    assert rep.rejects[["row", "column"]].values.tolist() == [[3, "rate_g_s"]]


def test_detection_without_rate_is_kept_with_null_rate(session, write):
    p = write("norate.csv", f"{HEADER},rate_kg_h,rate_uncertainty_kg_h\n{GOOD1},,\n{GOOD2},3.5,1\n")
    rep = ingest_file(session, p)
    assert rep.n_accepted == 2
    d = _by_id(session)
    assert d["g1"].rate_kg_h is None and d["g1"].rate_uncertainty_kg_h is None
    assert d["g2"].rate_kg_h == 3.5


def test_validate_detections_does_not_modify_its_input(write):
    raw = pd.DataFrame({
        "detection_id": ["a", "b", "a"], "source_type": ["Aerial", "ogi", "aerial"],
        "source_name": ["GAO", "OGI", "GAO"], "observed_at": ["2025-01-01T00:00:00+00", "nope", "2025-01-01T00:00:00"],
        "latitude": ["32", "32", "32"], "longitude": ["-102", "-102", "-102"], "rate_g_s": ["1", "", "2"],
    })
    canon = to_canonical(raw, "canonical", None, "mem.csv")
    before, attrs = canon.copy(deep=True), dict(canon.attrs)
    good, rejects = validate_detections(canon)
    pd.testing.assert_frame_equal(canon, before)
    assert canon.attrs == attrs
    assert good["detection_id"].tolist() == ["a"]
    assert good["rate_kg_h"].tolist() == [pytest.approx(3.6)]
    assert rejects[["row", "column"]].values.tolist() == [[3, "observed_at"], [4, "detection_id"]]


# --------------------------------------------------------------------------------------------- structural errors


@pytest.fixture
def loaded(session, write):
    """A store that already holds one good file, so 'wrote nothing' also means 'removed nothing'."""
    ingest_file(session, write("base.csv", f"{HEADER}\n{GOOD1}\n"))
    return session


@pytest.mark.parametrize(
    ("name", "content", "fmt", "column"),
    [
        ("missing.csv", None, "auto", None),
        ("empty.csv", "", "auto", None),
        ("blank.csv", "\n\n  \n", "auto", None),
        ("header_only.csv", HEADER + "\n", "auto", None),
        ("nolat.csv", "detection_id,source_type,source_name,observed_at,longitude\n"
                      "n1,aerial,AirLidar,2025-01-01T00:00:00Z,-102\n", "auto", "latitude"),
        ("nolat_canonical.csv", "detection_id,source_type,source_name,observed_at,longitude\n"
                                "n1,aerial,AirLidar,2025-01-01T00:00:00Z,-102\n", "canonical", "latitude"),
        ("unknown.csv", "foo,bar,baz\n1,2,3\n", "auto", None),
        ("wrongfmt.csv", f"{HEADER}\n{GOOD2}\n", "mars", "id_plume"),
        ("badfmt.csv", f"{HEADER}\n{GOOD2}\n", "xml", None),
    ],
    ids=["missing", "empty", "whitespace", "header-only", "no-latitude", "no-latitude-canonical", "unknown-format",
         "wrong-format", "unknown-format-option"],
)
def test_structural_error_raises_names_the_file_and_writes_nothing(loaded, tmp_path, table_counts, name, content,
                                                                   fmt, column):
    p = tmp_path / name
    if content is not None:
        p.write_text(content, encoding="utf-8")
    before = table_counts()
    with pytest.raises(IngestError) as err:
        ingest_file(loaded, p, fmt=fmt)
    assert name in str(err.value)
    assert err.value.file == name
    if column is not None:
        assert err.value.column == column
        assert column in str(err.value)
    assert table_counts() == before


def test_binary_file_is_a_structural_error(loaded, write, table_counts):
    p = write("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    before = table_counts()
    with pytest.raises(IngestError, match="image.csv"):
        ingest_file(loaded, p)
    assert table_counts() == before


# --------------------------------------------------------------------------------------------- idempotence


def test_reingesting_the_same_file_changes_nothing(session, write, table_counts):
    p = write("same.csv", f"{HEADER}\n{GOOD1}\n{GOOD2}\n")
    first = ingest_file(session, p)
    after_first = table_counts()
    again = ingest_file(session, p)
    assert again.already_ingested and again.batch_id == first.batch_id
    assert again.n_accepted == 0
    assert table_counts() == after_first


def test_same_detection_in_another_file_is_a_duplicate_not_a_new_row(session, write):
    ingest_file(session, write("one.csv", f"{HEADER}\n{GOOD1}\n"))
    rep = ingest_file(session, write("two.csv", f"{HEADER},rate_kg_h\n{GOOD1},7\n{GOOD2},8\n"))
    assert (rep.n_accepted, rep.n_duplicate, rep.n_rejected) == (1, 1, 0)
    rows = session.exec(select(Detection)).all()
    assert sorted(d.detection_id for d in rows) == ["g1", "g2"]
    assert _by_id(session)["g1"].rate_kg_h is None  # the first copy is kept, not overwritten


def test_same_detection_id_from_another_source_is_a_new_detection(session, write):
    ingest_file(session, write("one.csv", f"{HEADER}\n{GOOD1}\n"))
    rep = ingest_file(session, write("two.csv", f"{HEADER}\ng1,ogi,OGI,2025-01-01T00:00:00Z,32,-102\n"))
    assert (rep.n_accepted, rep.n_duplicate) == (1, 0)
    assert sorted(d.source_name for d in session.exec(select(Detection)).all()) == ["AirLidar", "OGI"]


# --------------------------------------------------------------------------------------------- attributes, defaults


def test_extra_columns_are_kept_as_attributes(session, write):
    p = write("extra.csv", f"{HEADER},pad_name,Operator Note\n{GOOD1},P-7,\"x, y\"\n{GOOD2},,\n")
    ingest_file(session, p)
    d = _by_id(session)
    assert json.loads(d["g1"].attributes) == {"pad_name": "P-7", "Operator Note": "x, y"}
    assert json.loads(d["g2"].attributes) == {}


@pytest.mark.parametrize(
    ("source_type", "source_name", "sigma"),
    [
        ("satellite", "Sentinel-5P/TROPOMI - ESA", 2500.0),
        ("satellite", "EMIT - NASA", 60.0),
        ("satellite", "GOES - NOAA", 1000.0),
        ("satellite", "Sentinel-2 - ESA", 30.0),
        ("satellite", "Landsat - NASA/USGS", 40.0),
        ("aerial", "Global Airborne Observatory", 5.0),
        ("satellite", "UnknownSat", 100.0),
        ("aerial", "AirLidar", 10.0),
        ("continuous_monitor", "FenceCMS", 150.0),
        ("scada", "SCADA", 200.0),
        ("ogi", "OGI", 5.0),
    ],
)
def test_blank_location_uncertainty_defaults_by_instrument_then_type(session, write, source_type, source_name,
                                                                     sigma):
    p = write("sig.csv", f"{HEADER},location_uncertainty_m\ns1,{source_type},{source_name},2025-01-01T00:00:00Z,"
                         "32,-102,\n")
    ingest_file(session, p)
    assert _by_id(session)["s1"].location_uncertainty_m == sigma


def test_given_location_uncertainty_is_kept(session, write):
    p = write("sig.csv", f"{HEADER},location_uncertainty_m\ns1,satellite,Sentinel-5P/TROPOMI,2025-01-01T00:00:00Z,"
                         "32,-102,7000\n")
    ingest_file(session, p)
    assert _by_id(session)["s1"].location_uncertainty_m == 7000.0


# --------------------------------------------------------------------------------------------- other containers

TABLE = pd.DataFrame({
    "detection_id": ["x1", "x2"],
    "source_type": ["aerial", "ogi"],
    "source_name": ["GAO", "OGI"],
    "observed_at": ["2025-01-01T00:00:00Z", "2025-01-02T06:30:00Z"],
    "latitude": [32.0, 32.001],
    "longitude": [-102.0, -102.001],
    "rate_kg_h": [10.5, None],
    "note": ["a", "b"],
})


def _xlsx(path):
    TABLE.to_excel(path, index=False, engine="openpyxl")


def _parquet(path):
    TABLE.to_parquet(path, engine="pyarrow")


def _geojson(path):
    feats = []
    for rec in TABLE.to_dict(orient="records"):
        props = {k: (None if pd.isna(v) else v) for k, v in rec.items() if k not in ("latitude", "longitude")}
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [rec["longitude"],
                                                                                         rec["latitude"]]},
                      "properties": props})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}, allow_nan=False))


@pytest.mark.parametrize(("suffix", "writer"), [(".xlsx", _xlsx), (".parquet", _parquet), (".geojson", _geojson)])
def test_excel_parquet_and_geojson_inputs(session, tmp_path, suffix, writer):
    p = tmp_path / f"table{suffix}"
    writer(p)
    rep = ingest_file(session, p)
    assert (rep.n_accepted, rep.n_rejected) == (2, 0), rep.rejects.to_dict("records")
    d = _by_id(session)
    assert (d["x1"].latitude, d["x1"].longitude, d["x1"].rate_kg_h) == (32.0, -102.0, 10.5)
    assert (d["x2"].latitude, d["x2"].longitude, d["x2"].rate_kg_h) == (32.001, -102.001, None)
    assert json.loads(d["x1"].attributes) == {"note": "a"}
    times = detections_frame(session).set_index("detection_id")["observed_at"]
    assert times["x2"] == pd.Timestamp("2025-01-02T06:30:00Z")
