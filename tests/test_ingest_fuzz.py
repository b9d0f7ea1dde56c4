"""Hostile and malformed files against ``ingest_file`` (issue 4): never a traceback other than
``IngestError``, never a partial batch.

Every example goes into one in-memory store that keeps growing, so later examples also meet
duplicates of earlier ones. After each call either ``IngestError`` was raised and the store is
unchanged, or the file was already ingested and the store is unchanged, or exactly one batch was
added whose ``accepted + rejected + duplicate == rows`` and exactly ``accepted`` detections appeared.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import Session

from mlpe_core.ingest import IngestError, ingest_file
from mlpe_core.schema import CANONICAL_COLUMNS
from mlpe_core.store.db import get_engine
from mlpe_core.store.models import Asset

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])
_TMP = tempfile.TemporaryDirectory(prefix="mlpe-fuzz-")
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def engine():
    eng = get_engine("sqlite://")
    with Session(eng) as s:  # a small registry, so site-level rows can resolve
        s.add_all([Asset(asset_id=f"A{i}", latitude=31.0 + i / 100, longitude=-102.0 - i / 100) for i in range(5)])
        s.commit()
    yield eng
    eng.dispose()


def _write(data: bytes, suffix: str) -> Path:
    p = Path(_TMP.name) / f"f{next(_COUNTER)}{suffix}"
    p.write_bytes(data)
    return p


def _counts(s: Session) -> tuple[int, int]:
    return (s.execute(text("SELECT count(*) FROM detection")).scalar_one(),
            s.execute(text("SELECT count(*) FROM ingestbatch WHERE kind = 'detections'")).scalar_one())


def check(engine, path: Path, fmt: str = "auto"):
    """The invariant of the module docstring; any exception but IngestError fails the test.

    Returns the report, or None after an IngestError."""
    with Session(engine) as s:
        before = _counts(s)
        try:
            rep = ingest_file(s, path, fmt)
        except IngestError as exc:
            assert str(exc).startswith(path.name)
            assert _counts(s) == before, "IngestError, yet something was written"
            return None
        after = _counts(s)
        if rep.already_ingested:
            assert after == before
            return rep
        assert rep.n_accepted + rep.n_rejected + rep.n_duplicate == rep.n_rows
        assert after == (before[0] + rep.n_accepted, before[1] + 1), (before, after, rep)
        row = s.execute(text("SELECT n_rows, n_accepted, n_rejected, n_duplicate FROM ingestbatch WHERE id = :i"),
                        {"i": rep.batch_id}).one()
        assert tuple(row) == (rep.n_rows, rep.n_accepted, rep.n_rejected, rep.n_duplicate)
        n_stored = s.execute(text("SELECT count(*) FROM detection WHERE batch_id = :i"),
                             {"i": rep.batch_id}).scalar_one()
        assert n_stored == rep.n_accepted
        insane = s.execute(text(
            "SELECT count(*) FROM detection WHERE batch_id = :i AND (abs(latitude) > 90 OR abs(longitude) > 180 "
            "OR NOT location_uncertainty_m > 0 OR abs(location_uncertainty_m) > 1e300 OR rate_kg_h < 0 "
            "OR abs(rate_kg_h) > 1e300 OR abs(rate_uncertainty_kg_h) > 1e300 OR confidence < 0 OR confidence > 1 "
            "OR observed_at IS NULL OR detection_id = '' OR source_name = '')"), {"i": rep.batch_id}).scalar_one()
        assert insane == 0, "a stored detection breaks a validation rule"
        if len(rep.rejects):
            assert rep.rejects["row"].nunique() == rep.n_rejected
            assert rep.rejects["row"].between(2, rep.n_rows + 1).all()
            assert set(rep.rejects.columns) == {"row", "column", "value", "reason"}
    return rep


# --------------------------------------------------------------------------------------------- strategies

SUFFIXES = st.sampled_from([".csv", ".txt", ".tsv", ".xlsx", ".parquet", ".geojson", ".json", ""])

HOSTILE_CELLS = [
    "", " ", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "-1e309", "9" * 400, "1e-400", "0x1F",
    "1_000", "1,5", "+1", "-0", "٣", "１２", "=cmd|'/C calc'!A0", "=1+2", "@SUM(A1)", "-2+3", "\t=x", "\r",
    'he said "hi"', "a,b", "a;b", "line\nbreak", "\u202e\u0000x", "😀", "é", "\ufeff", "NULL", "None", "true",
    "2025-01-01T00:00:00Z", "2025-13-45T99:99:99Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00",
    "2025-05-21T18:08:50+00", "2025-05-21 18:08:50.123456", "31.5", "-102.1", "91", "-181", "0.5", "1.5", "-3",
    "satellite", "aerial", "continuous_monitor", "scada", "ogi", "SATELLITE", "bogus", "A1", "A3", "A404",
    "D1", "D2", "D1 ", "EMIT", "TROPOMI", "x" * 300,
]
cell = st.one_of(st.sampled_from(HOSTILE_CELLS), st.text(max_size=12),
                 st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.integers(min_value=-(10**30), max_value=10**30).map(str))
KNOWN_HEADERS = list(CANONICAL_COLUMNS) + [
    "rate_g_s", "rate_t_h", "rate_scfh", "rate_mcf_d", "rate_uncertainty_g_s", "Latitude", "LATITUDE", "",
    "plume_id", "plume_latitude", "plume_longitude", "datetime", "id_plume", "satellite", "tile_date", "lat", "lon",
    "site_id", "alarm_start", "alarm_type", "alarm_id", "tag", "event_time", "state", "timestamp", "emission_rate_kg_h",
    "extra", "\ufeffdetection_id", "attributes", "source_row", "=HYPERLINK()",
]
header_name = st.one_of(st.sampled_from(KNOWN_HEADERS), st.text(max_size=8))


def _csv_bytes(header: list[str], rows: list[list[str]], sep: str, quote_all: bool, encoding: str) -> bytes:
    def fmt(v: str) -> str:
        if quote_all or any(ch in v for ch in (sep, '"', "\n", "\r")):
            return '"' + v.replace('"', '""') + '"'
        return v

    lines = [sep.join(fmt(h) for h in header)] + [sep.join(fmt(v) for v in r) for r in rows]
    return "\n".join(lines).encode(encoding, errors="replace")


@st.composite
def csv_files(draw, headers=header_name, min_cols=1):
    header = draw(st.lists(headers, min_size=min_cols, max_size=14))
    n_rows = draw(st.integers(0, 25))
    ragged = draw(st.booleans())
    rows = []
    for _ in range(n_rows):
        width = draw(st.integers(0, len(header) + 2)) if ragged else len(header)
        rows.append(draw(st.lists(cell, min_size=width, max_size=width)))
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    enc = draw(st.sampled_from(["utf-8"] * 4 + ["utf-8-sig", "latin-1", "utf-16"]))
    return _csv_bytes(header, rows, sep, draw(st.booleans()), enc)


PLAUSIBLE = {
    "detection_id": st.sampled_from(["D1", "D2", "D3", "X-9", " D1", "id,comma"]) | st.text(max_size=6),
    "source_type": st.sampled_from(["satellite", "aerial", "continuous_monitor", "scada", "ogi", "Satellite"]),
    "source_name": st.sampled_from(["EMIT", "TROPOMI", "GOES-16", "FenceCMS", "SCADA", "OGI crew"]),
    "observed_at": st.datetimes().map(lambda d: d.isoformat()) | st.sampled_from(
        ["2025-05-21T18:08:50+00", "2025-05-21 18:08:50", "2025-05-21T18:08:50.5Z", "2025-05-21"]),
    "latitude": st.floats(-90, 90).map(repr) | st.sampled_from(["", "95", "31.5"]),
    "longitude": st.floats(-180, 180).map(repr) | st.sampled_from(["", "-185", "-102.1"]),
    "location_uncertainty_m": st.floats(-10, 1e7).map(repr) | st.just(""),
    "rate_kg_h": st.floats(-1, 1e6).map(repr) | st.just(""),
    "rate_uncertainty_kg_h": st.floats(-1, 1e6).map(repr) | st.just(""),
    "confidence": st.floats(-0.5, 1.5).map(repr) | st.just(""),
    "wind_speed_m_s": st.floats(0, 250).map(repr) | st.just(""),
    "asset_id": st.sampled_from(["", "A1", "A2", "A404", " A3 "]),
    "event_type": st.sampled_from(["", "plume", "alarm", "=cmd()"]),
}
LAYOUTS = {  # headers of each format and, per header, which canonical strategy fills it
    "canonical": {c: c for c in CANONICAL_COLUMNS},
    "cms": {"alarm_id": "detection_id", "site_id": "asset_id", "alarm_start": "observed_at",
            "alarm_type": "event_type", "peak_ppm": "rate_kg_h", "emission_rate_g_s": "rate_kg_h",
            "confidence": "confidence", "monitor": "source_name"},
    "scada": {"tag": "detection_id", "asset_id": "asset_id", "event_time": "observed_at", "event_type": "event_type",
              "value": "rate_kg_h", "state": "event_type", "event_id": "detection_id"},
}


@st.composite
def formatted_random_cells(draw):
    """A header of a known format and rows whose cells are mostly plausible, sometimes hostile."""
    layout = LAYOUTS[draw(st.sampled_from(sorted(LAYOUTS)))]
    header = list(layout)
    rows = []
    for _ in range(draw(st.integers(1, 20))):
        row = [draw(PLAUSIBLE[layout[h]]) for h in header]
        if draw(st.booleans()):  # at most one hostile cell per row, so that good rows occur as well
            row[draw(st.integers(0, len(row) - 1))] = draw(cell)
        rows.append(row)
    return _csv_bytes(header, rows, draw(st.sampled_from([",", ";", "\t"])), draw(st.booleans()), "utf-8")


@st.composite
def mutated_canonical(draw):
    """A valid small canonical file, then a few cells, headers or rows broken."""
    header = list(CANONICAL_COLUMNS)
    rows = [[f"D{i}", "satellite", "EMIT", f"2025-01-0{1 + i % 9}T00:00:00Z", "31.5", "-102.1", "", "10", "2",
             "0.5", "3", "", "plume"] for i in range(draw(st.integers(1, 12)))]
    for _ in range(draw(st.integers(0, 6))):
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, len(header) - 1))
        rows[r][c] = draw(cell)
    action = draw(st.sampled_from(["none", "drop_col", "dup_col", "rename_col", "short_row", "long_row", "blank_pos"]))
    if action == "drop_col":
        c = draw(st.integers(0, len(header) - 1))
        header.pop(c)
        for r in rows:
            r.pop(c)
    elif action == "dup_col":
        c = draw(st.integers(0, len(header) - 1))
        header.append(header[c])
        for r in rows:
            r.append(r[c])
    elif action == "rename_col":
        header[draw(st.integers(0, len(header) - 1))] = draw(header_name)
    elif action == "short_row":
        rows[0] = rows[0][: draw(st.integers(0, len(header) - 1))]
    elif action == "long_row":
        rows[-1] = rows[-1] + draw(st.lists(cell, min_size=1, max_size=3))
    elif action == "blank_pos":  # resolved through the registry when the asset is known
        for r in rows:
            r[4], r[5], r[11] = "", "", draw(st.sampled_from(["A1", "A2", "A404", ""]))
    return _csv_bytes(header, rows, ",", False, "utf-8")


json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=6), children, max_size=4), max_leaves=25)


@st.composite
def geojson_files(draw):
    feats = []
    for _ in range(draw(st.integers(0, 6))):
        props = {c: draw(PLAUSIBLE[c] | cell | json_values) for c in CANONICAL_COLUMNS if draw(st.booleans())
                 or c in ("detection_id", "source_type", "source_name", "observed_at")}
        props |= draw(st.dictionaries(header_name, cell | json_values, max_size=3))
        geom = draw(st.one_of(st.none(), json_values,
                              st.builds(lambda x, y: {"type": "Point", "coordinates": [x, y]},
                                        st.floats(-200, 200) | st.text(max_size=3), st.floats(-100, 100))))
        feats.append(draw(st.sampled_from([{"type": "Feature", "properties": props, "geometry": geom}] * 8
                                          + [props, None])))
    doc = draw(st.sampled_from([{"type": "FeatureCollection", "features": feats}] * 4 + [feats, {"features": "x"}]))
    return json.dumps(doc, default=str).encode()


# --------------------------------------------------------------------------------------------- tests


@FUZZ
@given(data=st.binary(max_size=3000), suffix=SUFFIXES)
def test_random_bytes(engine, data, suffix):
    check(engine, _write(data, suffix))


@FUZZ
@given(data=csv_files())
def test_random_csv(engine, data):
    check(engine, _write(data, ".csv"))


@FUZZ
@given(data=csv_files(headers=st.sampled_from(KNOWN_HEADERS), min_cols=3),
       fmt=st.sampled_from(["auto", "canonical", "cms", "scada", "mars", "carbonmapper"]))
def test_known_headers_random_cells(engine, data, fmt):
    check(engine, _write(data, ".csv"), fmt)


@FUZZ
@given(data=formatted_random_cells())
def test_known_formats_hostile_cells(engine, data):
    check(engine, _write(data, ".csv"))


@FUZZ
@given(data=mutated_canonical())
def test_mutated_canonical(engine, data):
    check(engine, _write(data, ".csv"))


@FUZZ
@given(data=geojson_files())
def test_random_geojson(engine, data):
    check(engine, _write(data, ".geojson"))


def test_empty_and_whitespace_files(engine):
    for data in (b"", b"   \n\n", b"\xef\xbb\xbf", b"detection_id,observed_at\n", b"\n\n\na,b\n"):
        check(engine, _write(data, ".csv"))
