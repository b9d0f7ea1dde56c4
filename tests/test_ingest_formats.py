"""Continuous-monitor and SCADA formats, positions from the asset registry, progress, and the
fast write path (issue 4). The fixtures are small hand-made files in tests/fixtures/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlmodel import Session

from mlpe_core.cli import build_parser, main
from mlpe_core.ingest import (
    FORMATS,
    IngestError,
    detect_format,
    ingest_file,
    ingest_frame,
    read_table,
    to_canonical,
    validate_detections,
)
from mlpe_core.pipeline import import_assets
from mlpe_core.schema import CANONICAL_COLUMNS
from mlpe_core.store import detections as writer
from mlpe_core.store import detections_frame
from mlpe_core.store.db import get_engine

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def session():
    eng = get_engine("sqlite://")
    with Session(eng) as s:
        yield s
    eng.dispose()


@pytest.fixture
def registry(session):
    import_assets(session, FIX / "assets_small.csv")
    return session


def _rej(rep) -> list[tuple[int, str, str]]:
    return [(int(r.row), r.column, r.reason) for r in rep.rejects.itertuples()]


def _stored(session) -> pd.DataFrame:
    return detections_frame(session).set_index("detection_id")


# --------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(("header", "fmt"), [
    (["alarm_id", "site_id", "alarm_start", "alarm_type", "peak_ppm"], "cms"),
    (["asset_id", "timestamp", "alarm_type"], "cms"),
    (["Site_ID", "Alarm_Time", "ALARM_TYPE", "emission_rate_kg_h"], "cms"),
    (["event_id", "event_time", "tag", "asset_id", "event_type", "value"], "scada"),
    (["TagName", "Site", "Timestamp", "Alarm", "Value"], "scada"),
    (["tag", "site_id", "alarm_time", "alarm_type"], "scada"),  # a tag makes it SCADA
    (["detection_id", "observed_at", "asset_id", "event_type", "alarm_type"], "canonical"),
    (["site_id", "alarm_start", "peak_ppm"], "unknown"),  # no alarm_type: not recognisably a monitor export
])
def test_detect_format_site_feeds(header, fmt):
    assert detect_format(header) == fmt


def test_formats_tuple_and_cli_choices_agree():
    assert {"cms", "scada"} <= set(FORMATS)
    for fmt in FORMATS:
        assert build_parser().parse_args(["ingest", "--format", fmt, "x.csv"]).format == fmt
    with pytest.raises(Exception):  # noqa: B017 - the CLI's parser raises its own usage error
        build_parser().parse_args(["ingest", "--format", "nosuch", "x.csv"])


def test_forced_format_names_the_missing_column():
    raw = read_table(FIX / "canonical_blank_coords.csv")
    with pytest.raises(IngestError) as e:
        to_canonical(raw, "cms", None, "x.csv")
    assert e.value.column == "alarm_start" and "not a cms file" in str(e.value)
    with pytest.raises(IngestError) as e:
        to_canonical(raw, "scada", None, "x.csv")
    assert e.value.column == "tag"


# --------------------------------------------------------------------------------------------- CMS


def test_cms_alarms_resolve_sites_through_the_registry(registry):
    rep = ingest_file(registry, FIX / "cms_alarms.csv")
    assert rep.format == "cms"
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected, rep.n_duplicate) == (5, 3, 2, 0)
    assert rep.n_from_registry == 3
    assert _rej(rep) == [(5, "site_id", "unknown asset_id 'PAD-999': import assets first"),
                         (6, "emission_rate_kg_h", "emission_rate_kg_h -2 is negative")]
    d = _stored(registry)
    assert set(d.index) == {"CMS-1001", "CMS-1002", "CMS-1003"}
    a = d.loc["CMS-1001"]
    assert (a.source_type, a.source_name, a.asset_id, a.event_type) == (
        "continuous_monitor", "FenceCMS", "PAD-001", "concentration_alert")
    assert (a.latitude, a.longitude) == (31.95, -102.1)
    assert a.location_uncertainty_m == 150.0  # the site, not the sensor
    assert a.rate_kg_h == pytest.approx(3.1) and a.rate_uncertainty_kg_h == pytest.approx(1.4)
    assert a.confidence == pytest.approx(0.72) and a.wind_speed_m_s == pytest.approx(2.8)
    assert pd.isna(d.loc["CMS-1002", "rate_kg_h"])  # an alarm without a rate stays a detection
    assert d.loc["CMS-1003", "observed_at"] == pd.Timestamp("2025-06-02T11:47:33Z")
    attrs = json.loads(a.attributes)
    assert attrs["peak_ppm"] == "48.2" and attrs["alarm_end"] == "2025-06-01T04:00:00Z" and attrs["sensor_id"] == "S1"
    assert d.loc["CMS-1001", "source_row"] == 2


def test_cms_without_ids_gets_stable_ids_and_units(registry, tmp_path):
    rep = ingest_file(registry, FIX / "cms_no_ids.csv")
    assert (rep.format, rep.n_accepted) == ("cms", 2)
    d = _stored(registry)
    first = "PAD-001||2025-07-01T10:00:00Z|concentration_alert"  # asset|sensor|time|alarm_type
    assert first in d.index
    assert d.loc[first, "source_name"] == "CMS"
    assert d.loc[first, "rate_kg_h"] == pytest.approx(0.5 * 3.6)  # emission_rate_g_s
    # the same alarms in another file (other bytes, so not the same file) are recognised as already loaded
    again = tmp_path / "again.csv"
    again.write_text((FIX / "cms_no_ids.csv").read_text() + "\n")
    rep2 = ingest_file(registry, again)
    assert (rep2.n_accepted, rep2.n_duplicate) == (0, 2)


def test_cms_source_name_override_and_unknown_assets_without_registry(session, tmp_path):
    rep = ingest_file(session, FIX / "cms_alarms.csv", source_name="Qube-North")
    assert rep.n_accepted == 0 and rep.n_rejected == 5
    assert {r.reason for r in rep.rejects.itertuples() if r.column == "site_id"} >= {
        "unknown asset_id 'PAD-001': import assets first"}
    import_assets(session, FIX / "assets_small.csv")
    again = tmp_path / "again.csv"  # other bytes: the first attempt's batch does not hide this one
    again.write_text((FIX / "cms_alarms.csv").read_text() + "\n")
    rep = ingest_file(session, again, "cms", source_name="Qube-North")
    assert rep.n_accepted == 3
    assert set(_stored(session)["source_name"]) == {"Qube-North"}


# --------------------------------------------------------------------------------------------- SCADA


def test_scada_events(registry):
    rep = ingest_file(registry, FIX / "scada_events.csv")
    assert rep.format == "scada"
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected) == (5, 3, 2)
    assert _rej(rep) == [
        (3, "state", "state 'RTN' is not the onset of an event (only onsets are detections)"),
        (5, "asset_id", "unknown asset_id 'XX-404': import assets first"),
    ]
    d = _stored(registry)
    assert set(d.index) == {"EV-1", "EV-3", "EV-5"}
    assert set(d.source_type) == {"scada"} and set(d.source_name) == {"SCADA"}
    assert (d.loc["EV-3", "latitude"], d.loc["EV-3", "longitude"]) == (32.001, -102.25)
    assert d.loc["EV-3", "event_type"] == "compressor_vent"
    assert d.loc["EV-5", "event_type"] == "TB-020.VRU.ST"  # no event type: the tag says what happened
    assert (d.location_uncertainty_m == 200.0).all()
    assert d.rate_kg_h.isna().all()  # a process value is not an emission rate
    attrs = json.loads(d.loc["EV-3", "attributes"])
    assert (attrs["value"], attrs["units"], attrs["tag"]) == ("1450", "mcf/d", "CS-010.K1.FLARE")


def test_scada_historian_export(registry):
    rep = ingest_file(registry, FIX / "scada_historian.csv")
    assert (rep.format, rep.n_accepted, rep.n_rejected) == ("scada", 2, 1)
    (row, column, reason), = _rej(rep)
    assert (row, column) == (3, "detection_id") and reason.startswith("duplicate detection_id") and "row 2" in reason
    d = _stored(registry)
    key = "PAD-002|PAD-002.WH1.PT|2025-06-05 14:00:00"  # asset|tag|time
    assert d.loc[key, "event_type"] == "LOLO pressure"
    assert d.loc[key, "observed_at"] == pd.Timestamp("2025-06-05T14:00:00Z")  # no zone means UTC


# --------------------------------------------------------------------------------------------- canonical


def test_canonical_blank_coordinates_resolve_through_the_registry(registry):
    rep = ingest_file(registry, FIX / "canonical_blank_coords.csv")
    assert (rep.n_rows, rep.n_accepted, rep.n_rejected) == (6, 3, 3)
    assert _rej(rep) == [
        (4, "latitude", "latitude is blank"),
        (4, "longitude", "longitude is blank"),
        (5, "asset_id", "unknown asset_id 'NOPE-1': import assets first"),
        (7, "longitude", "longitude is blank"),  # one coordinate given: the file meant a position
    ]
    d = _stored(registry)
    assert (d.loc["OGI-1", "latitude"], d.loc["OGI-1", "longitude"]) == (31.95, -102.1)
    assert d.loc["OGI-1", "location_uncertainty_m"] == 150.0  # registry point: the site's extent, not 5 m
    assert (d.loc["OGI-2", "latitude"], d.loc["OGI-2", "location_uncertainty_m"]) == (31.9622, 5.0)
    assert d.loc["OGI-5", "location_uncertainty_m"] == 8.0  # what the file says is kept
    assert rep.n_from_registry == 2


def test_validate_detections_asset_lookup_forms():
    canon = to_canonical(read_table(FIX / "canonical_blank_coords.csv"), "auto", None, "f.csv")
    reg = pd.DataFrame({"asset_id": ["PAD-001", "CS-010"], "latitude": [1.0, 2.0], "longitude": [3.0, 4.0]})
    good_df, rej_df = validate_detections(canon, assets=reg)
    asked = []
    good_fn, rej_fn = validate_detections(canon, assets=lambda ids: asked.append(ids) or reg)
    assert asked == [["CS-010", "NOPE-1", "PAD-001"]]  # only the ids that need a position, once each
    pd.testing.assert_frame_equal(good_df, good_fn)
    pd.testing.assert_frame_equal(rej_df, rej_fn)
    assert list(good_df.detection_id) == ["OGI-1", "OGI-2", "OGI-5"]
    assert list(good_df.latitude) == [1.0, 31.9622, 2.0]
    # without a registry, blank coordinates are simply blank (the earlier behaviour)
    good, rej = validate_detections(canon)
    assert list(good.detection_id) == ["OGI-2"]
    assert set(rej[rej.row == 2].reason) == {"latitude is blank", "longitude is blank"}


# --------------------------------------------------------------------------------------------- progress


def _canonical_csv(path: Path, n: int, start: int = 0, ts: str = "2025-03-01T00:00:00Z") -> Path:
    rng = np.random.default_rng(start)
    df = pd.DataFrame({
        "detection_id": [f"P-{i:06d}" for i in range(start, start + n)],
        "source_type": "satellite",
        "source_name": [("EMIT", "Sentinel-2", "PointSat")[i % 3] for i in range(start, start + n)],
        "observed_at": ts,
        "latitude": rng.uniform(31, 33, n).round(6),
        "longitude": rng.uniform(-104, -101, n).round(6),
        "location_uncertainty_m": "", "rate_kg_h": rng.uniform(1, 900, n).round(3),
    })
    df.to_csv(path, index=False)
    return path


def test_progress_is_reported_while_checking_and_writing(session, tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "CHUNK_ROWS", 40)
    calls: list[tuple[float, str]] = []
    rep = ingest_file(session, _canonical_csv(tmp_path / "p.csv", 200), progress=lambda f, t: calls.append((f, t)))
    assert rep.n_accepted == 200
    fracs = [f for f, _ in calls]
    assert fracs == sorted(fracs) and fracs[0] == 0.0 and fracs[-1] == 1.0
    assert all(0.0 <= f <= 1.0 and isinstance(t, str) and t for f, t in calls)
    texts = [t for _, t in calls]
    assert any("checking" in t for t in texts) and any("repeated ids" in t for t in texts)
    assert sum(t.startswith("written") for t in texts) == 5  # one per chunk of 40 rows
    assert "200 accepted" in texts[-1]
    # ingest_frame takes the same keyword; an already ingested file reports completion at once
    calls.clear()
    canon = to_canonical(read_table(tmp_path / "p.csv"), "auto", None, "p.csv")
    rep2 = ingest_frame(session, canon, "p.csv", progress=lambda f, t: calls.append((f, t)))
    assert rep2.n_duplicate == 200 and calls[-1][0] == 1.0
    calls.clear()
    ingest_file(session, tmp_path / "p.csv", progress=lambda f, t: calls.append((f, t)))
    assert calls[-1] == (1.0, "p.csv: already ingested")


# --------------------------------------------------------------------------------------------- write paths


def _force_generic(monkeypatch):
    monkeypatch.setattr(writer, "_sqlite_plan", lambda *a, **k: None)


@pytest.mark.parametrize("bulk", [False, True])
def test_fast_sqlite_path_matches_the_generic_path(tmp_path, monkeypatch, bulk):
    if bulk:
        monkeypatch.setattr(writer, "BULK_ROWS", 10)
    monkeypatch.setattr(writer, "CHUNK_ROWS", 64)
    f1 = _canonical_csv(tmp_path / "a.csv", 300, 0, "2025-03-01T10:20:30.123456+02:00")
    f2 = _canonical_csv(tmp_path / "b.csv", 300, 150, "2025-03-02 00:00:00")  # half already stored
    results = []
    for generic in (False, True):
        with monkeypatch.context() as m:
            if generic:
                _force_generic(m)
            eng = get_engine(f"sqlite:///{tmp_path}/{int(generic)}.db")
            with eng.begin() as c:  # a team's own index over a written column: dropped and rebuilt by a bulk load
                c.exec_driver_sql("CREATE INDEX ix_team_source_type ON detection (source_type)")
            with Session(eng) as s:
                r1, r2 = ingest_file(s, f1), ingest_file(s, f2)
                d = detections_frame(s).drop(columns=["id"]).sort_values(["source_name", "detection_id"])
                idx = {r[0] for r in s.execute(text("SELECT name FROM sqlite_master WHERE type='index'"))}
            eng.dispose()
        results.append(((r1.n_accepted, r1.n_duplicate), (r2.n_accepted, r2.n_duplicate), d.reset_index(drop=True),
                        idx))
    (a1, a2, da, ia), (b1, b2, db, ib) = results
    assert a1 == b1 == (300, 0)
    assert a2 == b2 == (150, 150)
    pd.testing.assert_frame_equal(da, db)
    assert ia == ib and {"ix_team_source_type", "ix_detection_leak_id"} <= ia  # rebuilt after a bulk load
    first = da[da.detection_id == "P-000000"].iloc[0]
    assert first.observed_at == pd.Timestamp("2025-03-01T08:20:30.123456Z") and first.source_row == 2


@pytest.mark.parametrize("bulk", [False, True])
def test_a_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, bulk):
    if bulk:
        monkeypatch.setattr(writer, "BULK_ROWS", 10)
    monkeypatch.setattr(writer, "CHUNK_ROWS", 50)
    real = writer._column_lists
    seen = []

    def failing(good, start, stop, times, *columns):
        seen.append(start)
        if len(seen) == 3:
            raise OSError("disk went away")
        return real(good, start, stop, times, *columns)

    monkeypatch.setattr(writer, "_column_lists", failing)
    eng = get_engine(f"sqlite:///{tmp_path}/s.db")
    with eng.begin() as c:
        c.exec_driver_sql("CREATE INDEX ix_team_source_type ON detection (source_type)")
    with Session(eng) as s:
        with pytest.raises(OSError):
            ingest_file(s, _canonical_csv(tmp_path / "a.csv", 300))
    with Session(eng) as s:
        assert s.execute(text("SELECT count(*) FROM detection")).scalar_one() == 0
        assert s.execute(text("SELECT count(*) FROM ingestbatch")).scalar_one() == 0
        idx = {r[0] for r in s.execute(text("SELECT name FROM sqlite_master WHERE type='index'"))}
        assert {"ix_team_source_type", "ix_detection_leak_id"} <= idx  # the dropped index is back
        monkeypatch.setattr(writer, "_column_lists", real)
        assert ingest_file(s, tmp_path / "a.csv").n_accepted == 300  # and the file loads afterwards
    eng.dispose()


# --------------------------------------------------------------------------------------------- readers


def test_reader_paths(tmp_path):
    # quoted delimiters and newlines inside values (the fast reader switches to quote-aware chunking)
    p = tmp_path / "q.csv"
    p.write_text('detection_id,source_type,source_name,observed_at,latitude,longitude,note\n'
                 'Q1,ogi,OGI,2025-01-01T00:00:00Z,31.5,-102.1,"two\nlines, one cell"\n'
                 'Q2,ogi,OGI,2025-01-01T00:00:00Z,31.5,-102.1,plain\n')
    df = read_table(p)
    assert list(df.note) == ["two\nlines, one cell", "plain"]
    # a short row is padded with blanks; a long one is a structural error naming the row
    p.write_text("detection_id,source_type,source_name,observed_at,latitude,longitude\nS1,ogi,OGI\n")
    assert read_table(p).iloc[0].tolist() == ["S1", "ogi", "OGI", "", "", ""]
    p.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(IngestError) as e:
        read_table(p)
    assert e.value.row == 3 and "3 fields" in str(e.value)
    p.write_text("a,b\n1,2,\n")  # a trailing empty field loses nothing
    assert read_table(p).iloc[0].tolist() == ["1", "2"]
    # Excel's "Unicode text" (UTF-16, tab-separated) and Latin-1
    p.write_bytes("detection_id\tsource_name\nU1\tSüd\n".encode("utf-16"))
    assert read_table(p).iloc[0].tolist() == ["U1", "Süd"]
    p.write_bytes("detection_id;source_name\nL1;Süd\n".encode("latin-1"))
    assert read_table(p).iloc[0].tolist() == ["L1", "Süd"]
    p.write_text("Latitude,latitude\n1,2\n")
    with pytest.raises(IngestError, match="ignoring case"):
        to_canonical(read_table(p), "auto", None, "p.csv")


def test_canonical_frame_columns_unchanged():
    canon = to_canonical(read_table(FIX / "canonical_blank_coords.csv"), "auto", None, "f.csv")
    assert list(canon.columns) == [*CANONICAL_COLUMNS, "attributes"]


# --------------------------------------------------------------------------------------------- command line


def test_cli_ingests_site_feeds(tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    assert main(["--db", db, "assets", "import", str(FIX / "assets_small.csv")]) == 0
    assert main(["--db", db, "ingest", "--format", "scada", str(FIX / "scada_events.csv"),
                 str(FIX / "cms_alarms.csv")]) == 2  # a CMS file is not a SCADA log: nothing loads
    err = capsys.readouterr().err
    assert "cms_alarms.csv" in err and "not a scada file" in err
    assert main(["--db", db, "ingest", str(FIX / "scada_events.csv"), str(FIX / "cms_alarms.csv")]) == 0
    out = capsys.readouterr().out
    assert "[scada]: 5 rows, 3 accepted, 2 rejected" in out and "[cms]: 5 rows, 3 accepted, 2 rejected" in out
    assert "unknown asset_id 'XX-404': import assets first" in out


@pytest.mark.parametrize("generic", [False, True])
def test_many_sources_already_stored_are_found(session, tmp_path, monkeypatch, generic):
    if generic:
        _force_generic(monkeypatch)
    rows = [f"D{i},ogi,crew-{i % 80},2025-01-01T00:00:00Z,31.5,-102.1" for i in range(200)]
    head = "detection_id,source_type,source_name,observed_at,latitude,longitude\n"
    (tmp_path / "a.csv").write_text(head + "\n".join(rows[:120]) + "\n")
    (tmp_path / "b.csv").write_text(head + "\n".join(rows) + "\n")
    assert ingest_file(session, tmp_path / "a.csv").n_accepted == 120
    rep = ingest_file(session, tmp_path / "b.csv")
    assert (rep.n_accepted, rep.n_duplicate) == (80, 120)
    assert session.execute(text("SELECT count(*) FROM detection")).scalar_one() == 200
