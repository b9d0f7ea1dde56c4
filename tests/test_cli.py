"""The installed ``mlpe`` command, run as users and the acceptance checks run it (contract §3 and §4).

Two full flows: the shared check basin (../shared/checks/basin) and a small basin written by
``mlpe_core.simulate``. Each flow runs once per module; the tests below read what it produced.
Independent exports run in parallel to keep the suite fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CHECK_BASIN, HEADER, REPO

from mlpe_core import present
from mlpe_core.dispatch import crew_capacity
from mlpe_core.present import rate
from mlpe_core.schema import DISPATCH_EXPORT_COLUMNS, LEAK_EXPORT_COLUMNS, OUTCOMES, VALIDATION_COLUMNS

MLPE = shutil.which("mlpe") or str(REPO / ".venv" / "bin" / "mlpe")
KML_NS = {"k": "http://www.opengis.net/kml/2.2"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

pytestmark = pytest.mark.skipif(not Path(MLPE).exists(), reason="the `mlpe` console script is not installed")


def _cmd(db: Path, args) -> list[str]:
    return [MLPE, "--db", str(db), "--user", "pytest", *map(str, args)]


def _env(db: Path) -> dict:
    return dict(os.environ, MLPE_DB=str(db))


def mlpe(db: Path, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(db, args), capture_output=True, text=True, cwd=cwd or Path(db).parent, env=_env(db),
                          timeout=600)


def mlpe_parallel(db: Path, commands: list[list]) -> list[subprocess.CompletedProcess]:
    """Run read-only commands (exports) at once; results in the order given."""
    procs = [subprocess.Popen(_cmd(db, c), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(db).parent, env=_env(db)) for c in commands]
    out = []
    for c, p in zip(commands, procs, strict=True):
        so, se = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(_cmd(db, c), p.returncode, so, se))
    return out


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"{' '.join(r.args[3:])} exited {r.returncode}: {r.stderr.strip()[-400:]}"
    return r


def query(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(str(db))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def membership(db: Path) -> dict[tuple[str, str], str]:
    return {(s, d): lk for s, d, lk in query(db, "SELECT source_name, detection_id, leak_id FROM detection")}


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def strict_json(path: Path):
    def refuse(token):
        raise AssertionError(f"{path.name}: non-standard JSON constant {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def placemarks(path: Path) -> list[ET.Element]:
    return ET.parse(path).getroot().findall(".//k:Placemark", KML_NS)


def unsafe_cells(df: pd.DataFrame) -> list[str]:
    """Cells a spreadsheet would run as a formula: text starting with = + - @ tab CR that is not a number."""
    bad = []
    for c in df.columns:
        for v in df[c]:
            if v.startswith(FORMULA_START):
                try:
                    float(v)
                except ValueError:
                    bad.append(f"{c}={v!r}")
    return bad


def stable_ids(before: dict, after: dict) -> tuple[int, list[str]]:
    """Old leaks whose detections all stayed together, alone (new detections may join): their ids must not change.

    Returns how many such leaks there are and the ids that changed anyway.
    """
    old = pd.DataFrame([(k, v) for k, v in before.items()], columns=["key", "old"])
    old["new"] = [after[k] for k in old["key"]]
    changed, n = [], 0
    for lk, g in old.groupby("old"):
        news = set(g["new"])
        if len(news) != 1:
            continue
        new = news.pop()
        if set(old.loc[old["new"] == new, "old"]) != {lk}:
            continue
        n += 1
        if new != lk:
            changed.append(f"{lk}->{new}")
    return n, changed


def _num(leak_id: str) -> int:
    return int(leak_id.lstrip("L"))


# --------------------------------------------------------------------------------------------- errors

GOOD = f"{HEADER}\ng1,aerial,AirLidar,2025-01-01T00:00:00Z,32.0,-102.0\n"
NOLAT = "detection_id,source_type,source_name,observed_at,longitude\nn1,aerial,AirLidar,2025-01-01T00:00:00Z,-102\n"
ERROR_CASES = {
    "nolat": ["ingest", "{w}/nolat.csv"],
    "missing": ["ingest", "{w}/nothere.csv"],
    "format": ["ingest", "{w}/good.csv", "--format", "shapefile"],
    "unrecognised": ["ingest", "{w}/weird.csv"],
    "top-negative": ["export", "dispatch", "-o", "{w}/top-negative.csv", "--top", "-1"],
    "top-text": ["export", "dispatch", "-o", "{w}/top-text.csv", "--top", "abc"],
    "one-bad-of-two": ["ingest", "{w}/good.csv", "{w}/nolat.csv"],
    "top-validations": ["export", "validations", "-o", "{w}/top-validations.csv", "--top", "3"],
    "name-contradicts-format": ["export", "leaks", "-o", "{w}/name-contradicts-format.xlsx", "--format", "csv"],
    "show-name-contradicts-format": ["dispatch", "show", "1", "-o", "{w}/show-name-contradicts-format.xlsx",
                                     "--format", "kml"],
}


@pytest.fixture(scope="module")
def errors(tmp_path_factory) -> dict:
    """Every bad invocation, each on its own empty store, run at once."""
    w = tmp_path_factory.mktemp("errors")
    (w / "good.csv").write_text(GOOD)
    (w / "nolat.csv").write_text(NOLAT)
    (w / "weird.csv").write_text("foo,bar\n1,2\n")
    names = list(ERROR_CASES)
    procs = [subprocess.Popen(_cmd(w / f"{n}.db", [a.format(w=w) for a in ERROR_CASES[n]]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=w, env=_env(w / f"{n}.db")) for n in names]
    out = {"work": w}
    for n, p in zip(names, procs, strict=True):
        so, se = p.communicate(timeout=600)
        out[n] = subprocess.CompletedProcess(p.args, p.returncode, so, se)
    return out


def _one_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_file_without_latitude_exits_2_naming_file_and_column(errors):
    r = errors["nolat"]
    assert r.returncode == 2
    line = _one_line(r)
    assert "nolat.csv" in line and "latitude" in line


def test_missing_file_exits_2_naming_it(errors):
    r = errors["missing"]
    assert r.returncode == 2
    assert "nothere.csv" in _one_line(r)


def test_unknown_format_option_exits_2(errors):
    r = errors["format"]
    assert r.returncode == 2
    assert "--format" in _one_line(r)


def test_unrecognised_file_exits_2(errors):
    r = errors["unrecognised"]
    assert r.returncode == 2
    assert "weird.csv" in _one_line(r)


@pytest.mark.parametrize("case", ["top-negative", "top-text"])
def test_bad_top_exits_2_and_writes_no_file(errors, case):
    r = errors[case]
    assert r.returncode == 2
    assert "--top" in _one_line(r)
    assert not (errors["work"] / f"{case}.csv").exists()


def test_top_for_validations_is_refused_with_the_reason(errors):
    """Before: --top was silently ignored and every field outcome was written."""
    r = errors["top-validations"]
    assert r.returncode == 2
    line = _one_line(r)
    assert "--top" in line and "validations" in line and "no rank" in line
    assert not (errors["work"] / "top-validations.csv").exists()


@pytest.mark.parametrize("case", ["name-contradicts-format", "show-name-contradicts-format"])
def test_a_format_the_file_name_contradicts_exits_2_and_writes_nothing(errors, case):
    """Before: `-o x.xlsx --format csv` wrote CSV text into a file named .xlsx and exited 0."""
    r = errors[case]
    assert r.returncode == 2
    line = _one_line(r)
    assert f"{case}.xlsx is named .xlsx" in line and "--format" in line
    assert not (errors["work"] / f"{case}.xlsx").exists()


def test_one_bad_file_among_several_loads_nothing(errors):
    r = errors["one-bad-of-two"]
    assert r.returncode == 2
    assert "nolat.csv" in _one_line(r) and "latitude" in r.stderr
    db = errors["work"] / "one-bad-of-two.db"
    if db.exists():
        assert query(db, "SELECT count(*) FROM detection") == [(0,)]
        assert query(db, "SELECT count(*) FROM ingestbatch") == [(0,)]


# --------------------------------------------------------------------------------------------- the two flows

EVIL = (f"{HEADER},asset_id,event_type\n"
        "=EVIL-1,aerial,HandHeld,2026-07-01T00:00:00Z,31.0,-104.0,=cmd(),+SUM(A1)\n"
        "EVIL-2,aerial,HandHeld,2026-07-01T01:00:00Z,31.00001,-104.00001,@x,-minus\n")


def basin_flow(work: Path) -> dict:
    """The shared check basin: assets, ingest, fuse twice, more data, fuse, score, exports, outcomes, train."""
    db = work / "mlpe.db"
    feeds = sorted(f for f in CHECK_BASIN.glob("*.csv") if f.name != "assets.csv")
    later = next((f for f in feeds if f.name == "WideSat.csv"), feeds[-1])
    first = [f for f in feeds if f != later]
    (work / "evil.csv").write_text(EVIL)
    run: dict = {"work": work, "db": db, "first": first, "later": later}

    run["assets"] = ok(mlpe(db, "assets", "import", CHECK_BASIN / "assets.csv"))
    run["ingest1"] = ok(mlpe(db, "ingest", *first))
    run["fuse1"] = ok(mlpe(db, "fuse"))
    run["m1"] = membership(db)
    run["fuse2"] = ok(mlpe(db, "fuse"))
    run["m2"] = membership(db)
    run["ingest2"] = ok(mlpe(db, "ingest", later, work / "evil.csv"))
    run["fuse3"] = ok(mlpe(db, "fuse"))
    run["m3"] = membership(db)
    run["fuse_full"] = ok(mlpe(db, "fuse", "--full"))
    run["m4"] = membership(db)
    run["score"] = ok(mlpe(db, "score"))
    for r in mlpe_parallel(db, [
        ["export", "leaks", "-o", work / "leaks.csv"],
        ["export", "leaks", "-o", work / "leaks.geojson", "--format", "geojson"],
        ["export", "leaks", "-o", work / "leaks.kml", "--format", "kml"],
        ["export", "detections", "-o", work / "detections.csv"],
        ["export", "detections", "-o", work / "detections.geojson", "--format", "geojson"],
        ["export", "detections", "-o", work / "detections.kml", "--format", "kml"],
        ["export", "detections", "-o", work / "detections.xlsx"],  # the format from the name (no --format)
        ["export", "leaks", "-o", work / "leaks_by_name.geojson"],
        ["export", "leaks", "-o", work / "leaks_by_name.kml"],
        ["export", "detections", "-o", work / "detections_top.csv", "--top", "5"],
    ]):
        ok(r)
    leaks = read_csv(work / "leaks.csv")
    ranked = leaks[leaks["rank"] != ""].assign(r=lambda d: d["rank"].astype(int)).sort_values("r")
    visited = ranked["leak_id"].iloc[[0, 2]].tolist()  # the first and third leaks are visited
    (work / "validations.csv").write_text(
        ",".join(VALIDATION_COLUMNS) + "\n"
        f"{visited[0]},2026-09-10T09:00:00Z,confirmed,55.5,=valve(),,crew-1,\"found, fixed later\"\n"
        f"{visited[1]},2026-09-10T11:00:00Z,not_found,,,,crew-2,\n"
        "L999999,2026-09-10T12:00:00Z,confirmed,,,,crew-2,\n")
    run["visited"] = visited
    run["validations"] = ok(mlpe(db, "validations", "import", work / "validations.csv"))
    for r in mlpe_parallel(db, [
        ["export", "dispatch", "-o", work / "dispatch.csv", "--top", "5"],
        ["export", "dispatch", "-o", work / "dispatch.geojson", "--top", "5", "--format", "geojson"],
        ["export", "dispatch", "-o", work / "dispatch.kml", "--top", "5", "--format", "kml"],
        ["export", "dispatch", "-o", work / "dispatch_default.csv"],
        ["export", "validations", "-o", work / "validations_export.csv"],
        ["export", "dispatch", "-o", work / "dispatch.xlsx", "--top", "5"],
    ]):
        ok(r)
    run["train"] = ok(mlpe(db, "train"))
    run["leaks"] = leaks
    run["detections"] = read_csv(work / "detections.csv")
    return run


def simulated_flow(work: Path) -> dict:
    """A basin from mlpe_core.simulate with its truth: the same pipeline, then enough outcomes to train."""
    from mlpe_core import simulate as sim

    db = work / "mlpe.db"
    basin = sim.simulate_basin(seed=3, n_assets=300, n_days=60)
    paths = sim.write_basin(basin, work / "basin")
    feeds = [paths[n] for n, f in basin.feeds.items() if len(f)]
    run: dict = {"work": work, "db": db, "basin": basin, "paths": paths, "feeds": feeds}
    run["assets"] = ok(mlpe(db, "assets", "import", paths["assets"]))
    run["ingest"] = ok(mlpe(db, "ingest", *feeds))
    run["fuse"] = ok(mlpe(db, "fuse"))
    run["score"] = ok(mlpe(db, "score"))
    for r in mlpe_parallel(db, [["export", "leaks", "-o", work / "leaks.csv"],
                                ["export", "detections", "-o", work / "detections.csv"]]):
        ok(r)
    dets = read_csv(work / "detections.csv")
    truth = read_csv(paths["truth_detections"])
    real = dets.merge(truth, on=["source_name", "detection_id"], validate="1:1")
    share = real.groupby("leak_id")["source_id"].agg(lambda s: (s != "").mean())
    visit = share.sort_index().iloc[: max(40, int(len(share) * 0.7))]
    v = pd.DataFrame({
        "leak_id": visit.index,
        "visited_at": [(basin.as_of + pd.Timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(len(visit))],
        "outcome": np.where(visit.to_numpy() > 0.5, "confirmed", "not_found"),
    })
    v.to_csv(work / "validations.csv", index=False)
    run["visited"] = v
    run["validations"] = ok(mlpe(db, "validations", "import", work / "validations.csv"))
    run["train"] = ok(mlpe(db, "train"))
    run["rescore"] = ok(mlpe(db, "score"))
    for r in mlpe_parallel(db, [["export", "leaks", "-o", work / "leaks_after.csv"],
                                ["export", "dispatch", "-o", work / "dispatch.csv", "--top", "5"],
                                ["export", "dispatch", "-o", work / "dispatch.kml", "--top", "5", "--format", "kml"]]):
        ok(r)
    run["leaks"] = read_csv(work / "leaks.csv")
    run["detections"] = dets
    run["leaks_after"] = read_csv(work / "leaks_after.csv")
    return run


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> dict:
    """Both flows at once (two threads, each driving its own `mlpe` processes), so two cores stay busy."""
    jobs = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        if CHECK_BASIN.is_dir():
            jobs["basin"] = pool.submit(basin_flow, tmp_path_factory.mktemp("basin"))
        if importlib.util.find_spec("mlpe_core.simulate") is not None:
            jobs["simulated"] = pool.submit(simulated_flow, tmp_path_factory.mktemp("sim"))
        out = {}
        for name, job in jobs.items():
            try:
                out[name] = job.result()
            except BaseException as exc:  # noqa: BLE001 - reported by every test of that flow
                out[name] = exc
    return out


def _flow(flows: dict, name: str, reason: str) -> dict:
    if name not in flows:
        pytest.skip(reason)
    if isinstance(flows[name], BaseException):
        raise flows[name]
    return flows[name]


@pytest.fixture(scope="module")
def basin(flows) -> dict:
    return _flow(flows, "basin", f"shared check basin not found at {CHECK_BASIN} (../shared is absent)")


@pytest.fixture(scope="module")
def simulated(flows) -> dict:
    return _flow(flows, "simulated", "mlpe_core.simulate is not importable")


@pytest.mark.slow
def test_every_step_of_the_basin_flow_exits_0(basin):
    assert "0 rejected" in basin["ingest1"].stdout
    assert basin["score"].stdout.startswith("scored ")
    assert "1 rejected" in basin["validations"].stdout
    assert "row 4" in basin["validations"].stdout and "leak_id" in basin["validations"].stdout
    assert basin["train"].stdout.startswith("not trained")  # two usable validations are too few


@pytest.mark.slow
def test_leaks_export_has_the_contract_columns_in_order(basin):
    leaks = basin["leaks"]
    assert list(leaks.columns[: len(LEAK_EXPORT_COLUMNS)]) == list(LEAK_EXPORT_COLUMNS)
    assert len(leaks) == len(set(basin["m3"].values()))


@pytest.mark.slow
def test_leaks_are_ranked_by_priority_with_valid_scores(basin):
    lk = basin["leaks"]
    assert (lk["status"] == "open").all()
    rank = lk["rank"].astype(int)
    assert sorted(rank) == list(range(1, len(lk) + 1))
    by_rank = lk.assign(rank=rank).sort_values("rank")
    prio = by_rank["priority_score"].astype(float).to_numpy()
    assert (np.diff(prio) <= 1e-9).all()
    p = lk["p_real"].astype(float)
    assert ((p > 0) & (p < 1)).all()
    assert (lk["est_rate_kg_h"].astype(float) > 0).all()
    assert set(lk["risk_band"]) <= {"HIGH", "MEDIUM", "LOW"}
    assert (lk["top_reasons"].str.len() > 0).all()
    assert (lk["n_detections"].astype(int) >= 1).all()


@pytest.mark.slow
def test_every_detection_belongs_to_exactly_one_leak(basin):
    d = basin["detections"]
    assert list(d.columns[:3]) == ["detection_id", "source_name", "leak_id"]
    n_in = sum(len(pd.read_csv(f)) for f in [*basin["first"], basin["later"]]) + 2
    assert len(d) == n_in
    assert not d.duplicated(["source_name", "detection_id"]).any()
    assert (d["leak_id"] != "").all()
    leaks = basin["leaks"].set_index("leak_id")
    assert set(d["leak_id"]) == set(leaks.index)
    per_leak = d.groupby("leak_id").size()
    assert (per_leak == leaks["n_detections"].astype(int).reindex(per_leak.index)).all()


@pytest.mark.slow
def test_refusing_keeps_every_leak_id(basin):
    assert basin["m1"] == basin["m2"]


@pytest.mark.slow
def test_leak_ids_survive_new_data_and_new_leaks_get_new_numbers(basin):
    m2, m3 = basin["m2"], basin["m3"]
    n, changed = stable_ids(m2, m3)
    assert n > 0.8 * len(set(m2.values()))  # most leaks are untouched by one more file
    assert changed == []
    new_ids = set(m3.values()) - set(m2.values())
    assert new_ids, "the new file's far-away detections form a new leak"
    assert min(map(_num, new_ids)) > max(map(_num, set(m2.values())))


def test_fuse_says_whether_it_fused_everything_or_only_what_is_new(basin):
    first, again, more, full = (basin[k].stdout.strip() for k in ("fuse1", "fuse2", "fuse3", "fuse_full"))
    assert first.startswith("fused ") and first.endswith("full re-fuse: no previous fusion")
    assert again.startswith("nothing new to fuse: re-fused 0 of ")
    n_more = sum(1 for _ in open(basin["later"], encoding="utf-8")) - 1 + 2  # the later file and evil.csv
    assert more.startswith(f"fused {n_more:,} new detections incrementally (re-fused ") or (
        more.startswith("fused ") and "full re-fuse: affected area" in more), more
    assert full.endswith("full re-fuse: asked for")


@pytest.mark.slow
def test_incremental_fusion_is_what_a_full_re_fuse_gives(basin):
    assert basin["m4"] == basin["m3"]  # the same leaks under the same ids


@pytest.mark.slow
def test_geojson_exports_match_the_csv(basin):
    w, leaks = basin["work"], basin["leaks"]
    gj = strict_json(w / "leaks.geojson")
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(leaks)
    for f in gj["features"]:
        assert f["geometry"]["type"] == "Point"
        assert set(LEAK_EXPORT_COLUMNS) <= set(f["properties"])
        assert f["geometry"]["coordinates"] == [f["properties"]["longitude"], f["properties"]["latitude"]]
    by_id = leaks.set_index("leak_id")
    for f in gj["features"][:20]:
        row = by_id.loc[f["properties"]["leak_id"]]
        assert f["properties"]["latitude"] == pytest.approx(float(row["latitude"]))
    dets = strict_json(w / "detections.geojson")
    assert len(dets["features"]) == len(basin["detections"])
    disp = strict_json(w / "dispatch.geojson")
    points = [f for f in disp["features"] if f["geometry"]["type"] == "Point"]
    assert [f["properties"]["rank"] for f in points] == [1, 2, 3, 4, 5]
    lines = [f for f in disp["features"] if f["geometry"]["type"] == "LineString"]  # each crew's route (issue 17)
    assert lines and {f["properties"]["crew"] for f in lines} == {f["properties"]["crew"] for f in points}


@pytest.mark.slow
def test_kml_exports_parse(basin):
    w = basin["work"]
    assert len(placemarks(w / "leaks.kml")) == len(basin["leaks"])
    assert len(placemarks(w / "detections.kml")) == len(basin["detections"])
    # each detection is named by itself and its leak, stamped with when it was observed (KML 2.2 TimeStamp) and
    # describes its own rate and sensor (before: every one was named by its leak, said "Rate –" and had no time)
    dets = basin["detections"].set_index(basin["detections"]["detection_id"].str.lstrip("'"))
    n_rated = 0
    for m in placemarks(w / "detections.kml"):
        data = {d.get("name"): d.findtext("k:value", namespaces=KML_NS) for d in m.findall(".//k:Data", KML_NS)}
        row = dets.loc[data["detection_id"]]
        assert m.findtext("k:name", namespaces=KML_NS) == f"{data['detection_id']} · {data['leak_id']}"
        assert data["leak_id"] == row["leak_id"]
        assert m.findtext("k:TimeStamp/k:when", namespaces=KML_NS) == row["observed_at"]
        desc = m.findtext("k:description", namespaces=KML_NS)
        assert row["source_name"].lstrip("'") in desc.replace("&amp;", "&")
        if row["rate_kg_h"]:
            n_rated += 1
            assert f"<th align='left'>Rate</th><td>{rate(float(row['rate_kg_h']))}" in desc, desc
        else:
            assert "<th align='left'>Rate</th><td>not quantified</td>" in desc
    assert n_rated == (dets["rate_kg_h"] != "").sum() > 0
    marks = placemarks(w / "dispatch.kml")  # a folder per crew: its yard, its route line, its stops in visit order
    stops = [m.findtext("k:name", namespaces=KML_NS) for m in marks if m.find("k:Point", KML_NS) is not None
             and m.find("k:ExtendedData", KML_NS) is not None]
    csv = read_csv(w / "dispatch.csv").sort_values(["crew", "stop"], key=lambda s: s.astype(str).str.zfill(4))
    assert stops == [f"{r.stop}. {r.leak_id}" for r in csv.itertuples()]
    assert len([m for m in marks if m.find("k:LineString", KML_NS) is not None]) == csv["crew"].nunique()


def _kml_features(node):
    for f in getattr(node, "features", None) or []:
        yield f
        yield from _kml_features(f)


@pytest.mark.parametrize("name, min_lines", [("leaks.kml", 0), ("detections.kml", 0), ("dispatch.kml", 1)])
def test_kml_reads_back_with_fastkml(basin, name, min_lines):
    """Google Earth-compatible: fastkml (a KML 2.2 object model) reads every file back strictly, with one Placemark
    per row of the matching CSV (dispatch: its stops, plus each crew's yard and route line)."""
    fastkml = pytest.importorskip("fastkml", reason="fastkml (dev dependency) is not installed")
    import warnings

    with warnings.catch_warnings():  # "lxml missing: pretty print disabled" is all it says without lxml
        warnings.simplefilter("ignore")
        doc = fastkml.kml.KML.from_string((basin["work"] / name).read_bytes(), strict=True)
    marks = [f for f in _kml_features(doc) if type(f).__name__ == "Placemark"]
    w = basin["work"]
    if name == "dispatch.kml":
        csv = read_csv(w / "dispatch.csv")
        points = [m for m in marks if type(m.geometry).__name__ == "Point" and m.extended_data is not None]
        lines = [m for m in marks if type(m.geometry).__name__ == "LineString"]
        assert len(points) == len(csv) and len(lines) == csv["crew"].nunique() >= min_lines
    else:
        assert len(marks) == len(basin["leaks" if name == "leaks.kml" else "detections"]) > 0
    assert all(m.name and "nan" not in m.name.lower() and "None" not in m.name for m in marks)


@pytest.mark.parametrize("name", ["leaks.geojson", "detections.geojson", "dispatch.geojson"])
def test_geojson_is_valid_rfc7946(basin, name):
    """RFC 7946: valid objects (the geojson package's checks), positions longitude first and in range, no ``crs``
    member (removed by RFC 7946), and the dispatch file's routes as LineStrings of at least two positions."""
    geojson = pytest.importorskip("geojson", reason="geojson (dev dependency) is not installed")
    text = (basin["work"] / name).read_text(encoding="utf-8")
    obj = geojson.loads(text)
    assert obj.is_valid, obj.errors()
    assert obj["type"] == "FeatureCollection" and "crs" not in obj and obj["features"]
    kinds = set()
    for f in obj["features"]:
        g = f["geometry"]
        kinds.add(g["type"])
        pts = [g["coordinates"]] if g["type"] == "Point" else g["coordinates"]
        for lon, lat, *_ in pts:
            assert -180 <= lon <= 180 and -90 <= lat <= 90
            assert -110 < lon < -90 and 25 < lat < 40, "longitude first (the basin is in West Texas)"
        if g["type"] == "LineString":
            assert len(g["coordinates"]) >= 2
    assert kinds == ({"Point", "LineString"} if name == "dispatch.geojson" else {"Point"})


@pytest.mark.slow
def test_the_format_comes_from_the_file_name(basin):
    """Before: `-o out.geojson` (or .kml, .xlsx) without --format wrote CSV text into the file."""
    w = basin["work"]
    assert (w / "leaks_by_name.geojson").read_bytes() == (w / "leaks.geojson").read_bytes()
    assert (w / "leaks_by_name.kml").read_bytes() == (w / "leaks.kml").read_bytes()
    assert (w / "detections.xlsx").read_bytes()[:2] == b"PK"  # a workbook (a zip), not CSV text


@pytest.mark.slow
def test_detections_workbook_keeps_the_csv_coordinates(basin):
    """Before: the workbook stored latitude and longitude rounded to 0.1° (9,024 rows on ~15 points), confidence as
    0.8457000000000001 and a header "Wind speed m s"."""
    from openpyxl import load_workbook

    ws = load_workbook(basin["work"] / "detections.xlsx", read_only=True)["Detections"]
    rows = ws.iter_rows()
    head = [c.value for c in next(rows)]
    assert not [h for h in head if re.search(r" (m s|kg h|km|m|s|h)$|_", h)], head
    j = {h: head.index(h) for h in ("Detection", "Latitude", "Longitude", "Confidence")}
    got = {}
    for r in rows:
        got[str(r[j["Detection"]].value).lstrip("'")] = r
        assert r[j["Latitude"]].number_format == r[j["Longitude"]].number_format == "0.000000"
        conf = r[j["Confidence"]].value
        assert conf is None or len(repr(conf)) <= 17, conf  # no 0.8457000000000001
    csv = basin["detections"]
    assert len(got) == len(csv)
    for d in csv.itertuples():
        r = got[d.detection_id.lstrip("'")]
        assert r[j["Latitude"]].value == pytest.approx(float(d.latitude), abs=1e-6)
        assert r[j["Longitude"]].value == pytest.approx(float(d.longitude), abs=1e-6)


@pytest.mark.slow
def test_dispatch_workbook_yards_keep_six_decimals(basin):
    from openpyxl import load_workbook

    csv = read_csv(basin["work"] / "dispatch.csv")
    wb = load_workbook(basin["work"] / "dispatch.xlsx")
    seen = 0
    for ws in wb:
        head = [c.value for c in ws[1]]
        for r in ws.iter_rows(min_row=2):
            row = csv.set_index("leak_id").loc[r[head.index("Leak")].value]
            for h, col in (("Latitude", "latitude"), ("Longitude", "longitude"), ("Yard latitude", "home_lat"),
                           ("Yard longitude", "home_lon")):
                if row[col]:
                    seen += 1
                    assert r[head.index(h)].value == pytest.approx(float(row[col]), abs=1e-6)
                    assert r[head.index(h)].number_format == "0.000000"
    assert seen >= 4 * len(csv[csv["crew"] != ""])


@pytest.mark.slow
def test_detections_top_k_are_those_of_the_top_k_leaks(basin):
    """Before: --top was ignored for detections (every detection written)."""
    top = read_csv(basin["work"] / "detections_top.csv")
    lk = basin["leaks"]
    first = lk[lk["rank"] != ""].assign(r=lambda d: d["rank"].astype(int)).sort_values("r")["leak_id"].head(5)
    assert list(top.columns) == list(basin["detections"].columns)
    assert list(dict.fromkeys(top["leak_id"])) == first.tolist()  # leak by leak, in rank order
    every = basin["detections"]
    assert len(top) == every["leak_id"].isin(first).sum() < len(every)


def _day_order(leaks: pd.DataFrame, k: int) -> list[str]:
    """The contract's dispatch order, from an exported leaks table: leaks whose deadline falls before the end of
    the plan day (today) first, soonest first; then the rest by rank."""
    d = leaks[leaks["rank"].astype(str) != ""].assign(r=lambda x: x["rank"].astype(float),
                                                       due=lambda x: pd.to_datetime(x["due_by"], utc=True))
    end = pd.Timestamp.now(tz="UTC").floor("D") + pd.Timedelta(days=1)
    must = d[d["due"].notna() & (d["due"] < end)].sort_values(["due", "r"])
    return pd.concat([must, d.drop(must.index).sort_values("r")])["leak_id"].head(k).tolist()


@pytest.mark.slow
def test_dispatch_lists_the_top_open_unvalidated_leaks(basin):
    w = basin["work"]
    disp = read_csv(w / "dispatch.csv")
    assert list(disp.columns)[:len(DISPATCH_EXPORT_COLUMNS)] == list(DISPATCH_EXPORT_COLUMNS)  # contract first
    assert disp["rank"].astype(int).tolist() == [1, 2, 3, 4, 5]
    assert not set(disp["leak_id"]) & set(basin["visited"])
    lk = basin["leaks"]
    expected = _day_order(lk[~lk["leak_id"].isin(basin["visited"])], 5)
    assert disp["leak_id"].tolist() == expected
    status = dict(query(basin["db"], "SELECT leak_id, status FROM leak"))
    assert {status[i] for i in disp["leak_id"]} == {"open"}
    assert status[basin["visited"][0]] == "confirmed" and status[basin["visited"][1]] == "not_found"
    default = read_csv(w / "dispatch_default.csv")
    assert len(default) == crew_capacity()
    assert default["leak_id"].tolist()[:5] == expected


@pytest.mark.slow
def test_validations_export_has_the_contract_columns(basin):
    v = read_csv(basin["work"] / "validations_export.csv")
    assert list(v.columns) == [*VALIDATION_COLUMNS, "recorded_at", "recorded_by"]
    assert v["leak_id"].tolist() == basin["visited"]
    assert set(v["outcome"]) <= set(OUTCOMES)
    assert v["measured_rate_kg_h"].tolist() == ["55.5", ""]
    assert v["component"].tolist()[0] == "'=valve()"
    assert v["notes"].tolist()[0] == "found, fixed later"
    assert set(v["recorded_by"]) == {"pytest"}


@pytest.mark.slow
def test_csv_exports_are_spreadsheet_safe(basin):
    w = basin["work"]
    d = basin["detections"].set_index("detection_id")
    assert d.loc["'=EVIL-1", "asset_id"] == "'=cmd()"
    assert d.loc["'=EVIL-1", "event_type"] == "'+SUM(A1)"
    assert d.loc["EVIL-2", "asset_id"] == "'@x"
    assert d.loc["EVIL-2", "event_type"] == "'-minus"
    assert d.loc["EVIL-2", "longitude"] == "-104.00001"  # a number stays a number
    for name in ("leaks.csv", "detections.csv", "dispatch.csv", "dispatch_default.csv", "validations_export.csv"):
        assert unsafe_cells(read_csv(w / name)) == [], name


# --------------------------------------------------------------------------------------------- simulated basin


@pytest.mark.slow
def test_simulated_basin_every_detection_in_exactly_one_leak(simulated):
    d = simulated["detections"]
    n_in = sum(len(f) for f in simulated["basin"].feeds.values())
    assert len(d) == n_in
    assert not d.duplicated(["source_name", "detection_id"]).any()
    assert (d["leak_id"] != "").all()
    assert set(d["leak_id"]) == set(simulated["leaks"]["leak_id"])
    assert list(simulated["leaks"].columns[: len(LEAK_EXPORT_COLUMNS)]) == list(LEAK_EXPORT_COLUMNS)


@pytest.mark.slow
def test_simulated_basin_fusion_keeps_one_true_source_together(simulated):
    """Detections of one real source by the precise sensors mostly share a leak (the truth is known here)."""
    d = simulated["detections"]
    truth = read_csv(simulated["paths"]["truth_detections"])
    j = d.merge(truth, on=["source_name", "detection_id"])
    j = j[(j["source_id"] != "") & (j["location_uncertainty_m"].astype(float) <= 50)]
    main_share = j.groupby("source_id")["leak_id"].agg(lambda s: s.value_counts().iloc[0] / len(s))
    assert len(main_share) >= 5
    assert main_share.mean() >= 0.9


@pytest.mark.slow
def test_simulated_basin_training_from_validations(simulated):
    assert f"{len(simulated['visited'])} recorded" in simulated["validations"].stdout
    out = simulated["train"].stdout
    assert out.startswith(("promoted", "kept current")), out
    rows = query(simulated["db"], "SELECT id, kind, active, promoted FROM modelversion ORDER BY id")
    assert rows[0][1] == "cold_start"
    learned = [r for r in rows if r[1] == "learned"]
    assert len(learned) == 1
    active = [r for r in rows if r[2]]
    assert len(active) == 1
    if out.startswith("promoted"):
        assert active[0][0] == learned[0][0]
        versions = set(query(simulated["db"], "SELECT DISTINCT model_version FROM leak WHERE active = 1"))
        assert versions == {(learned[0][0],)}
    after = simulated["leaks_after"]
    visited = set(simulated["visited"]["leak_id"])
    assert set(after.loc[after["rank"] != "", "leak_id"]).isdisjoint(visited)
    assert (after["top_reasons"].str.len() > 0).all()
    assert after.loc[after["leak_id"].isin(visited), "status"].isin(["confirmed", "not_found"]).all()


@pytest.mark.slow
def test_simulated_basin_dispatch_after_outcomes(simulated):
    w = simulated["work"]
    disp = read_csv(w / "dispatch.csv")
    assert list(disp.columns)[:len(DISPATCH_EXPORT_COLUMNS)] == list(DISPATCH_EXPORT_COLUMNS)  # contract first
    after = simulated["leaks_after"]
    open_ranked = after[(after["status"] == "open") & (after["rank"] != "")]
    k = min(5, len(open_ranked))
    assert k > 0
    assert disp["rank"].tolist() == [str(i) for i in range(1, k + 1)]
    expected = _day_order(open_ranked, k)
    assert disp["leak_id"].tolist() == expected
    assert not set(disp["leak_id"]) & set(simulated["visited"]["leak_id"])
    names = [m.findtext("k:name", namespaces=KML_NS) for m in placemarks(w / "dispatch.kml")]
    stops = [n.split(". ", 1)[1] for n in names if ". " in n]  # "1. L000053": stops; yards and routes are named
    assert len(stops) == len(expected) and all(n.endswith((" yard", " km)")) for n in names if ". " not in n)
    assert sorted(stops) == sorted(expected)  # a folder per crew, each in its visiting order


@pytest.mark.slow
def test_leak_rank_is_written_as_a_whole_number_when_some_leaks_are_unranked(simulated):
    after = simulated["leaks_after"]
    assert (after["rank"] == "").any()  # validated leaks leave the ranking
    ranked = after.loc[after["rank"] != "", "rank"]
    assert ranked.str.fullmatch(r"[0-9]+").all(), ranked.head(3).tolist()


# ---------------------------------------------------------------- console output is for people (the demo store)

# what a person must never read on the console: blanks as NaT/NaN/None, +00:00 offsets, seconds of a due time,
# snake_case codes and names, clock ids such as ooooB_super_emitter:investigate
RAW_TEXT = re.compile(r"\bNaT\b|\bNaN\b|\bnan\b|\bNone\b|<NA>|\+00:00|\d{2}:\d{2}:\d{2}|"
                      r"\b[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+\b")


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> dict:
    """``mlpe demo``, a super-emitter notice on the top-ranked leak received six days ago (its investigation is
    overdue) and a planned dispatch list: every console table then has blanks, dates, codes and clocks to show."""
    work = tmp_path_factory.mktemp("demo")
    db = work / "mlpe.db"
    demo = ok(mlpe(db, "demo"))
    top = json.loads(ok(mlpe(db, "ranking", "--json", "--top", "1")).stdout)[0]["leak_id"]
    ok(mlpe(db, "export", "leaks", "-o", work / "leaks.csv"))
    leak = read_csv(work / "leaks.csv").set_index("leak_id").loc[top]
    received = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (work / "n1.csv").write_text("notification_id,received_at,program,notifier,detection_ref,latitude,longitude,"
                                 f"rate_kg_h,notes\nN1,{received},ooooB_super_emitter,EPA,,{leak['latitude']},"
                                 f"{leak['longitude']},400,\n")
    assert "1 matched to a leak" in ok(mlpe(db, "notifications", "import", work / "n1.csv")).stdout
    plan = ok(mlpe(db, "dispatch", "plan"))
    return {"db": db, "notified": top, "plan": plan, "demo": demo, "work": work}


def test_demo_says_as_many_field_outcomes_as_the_store_holds(demo_store):
    """Before: "60 field outcomes" while the store (and `export validations`) held 77: the 17 past compliance visits
    were not counted."""
    said = int(re.search(r"(\d+) field outcomes", demo_store["demo"].stdout).group(1))
    ok(mlpe(demo_store["db"], "export", "validations", "-o", demo_store["work"] / "v.csv"))
    assert said == len(read_csv(demo_store["work"] / "v.csv")) > 0


CONSOLE = {"ranking": ["ranking"], "obligations": ["obligations"], "dispatch list": ["dispatch", "list"],
           "dispatch show": ["dispatch", "show", "1"]}


@pytest.mark.parametrize("name", [*CONSOLE, "dispatch plan"])
def test_console_tables_show_words_dates_and_blanks(demo_store, name):
    r = demo_store["plan"] if name == "dispatch plan" else ok(mlpe(demo_store["db"], *CONSOLE[name]))
    assert r.stderr == ""  # no pandas warning (obj.round on datetimes) on every run
    assert RAW_TEXT.findall(r.stdout) == [], r.stdout[:2000]
    if name in ("ranking", "obligations", "dispatch show"):
        head = r.stdout.splitlines()[0]
        assert "Due by (UTC)" in head and "Leak" in head
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", r.stdout)  # the due dates, as dates


@pytest.mark.parametrize("name", ["sites", "operators"])
def test_rollup_tables_keep_the_contract_names_and_show_blanks(demo_store, name):
    r = ok(mlpe(demo_store["db"], name))  # the contract (§3) names these columns: they stay the headers
    assert r.stderr == "" and r.stdout.split()[:2] == ["asset_id" if name == "sites" else "operator", "n_leaks"]
    assert not re.search(r"\bNaN\b|\bnan\b|\bNone\b|\bNaT\b|<NA>", r.stdout), r.stdout[:2000]
    body = "\n".join(r.stdout.splitlines()[1:])  # the values in words: "Well pad", "no" (were well_pad, False)
    assert not re.search(r"\b[a-z]+_[a-z_]+\b|\bFalse\b|\bTrue\b", body), body[:2000]


def test_leak_show_names_the_clock_and_its_step(demo_store):
    db = demo_store["db"]
    r = ok(mlpe(db, "leak", "show", demo_store["notified"]))
    assert r.stderr == "" and RAW_TEXT.findall(r.stdout) == [], r.stdout
    assert f"OVERDUE: {present.rule_title('ooooB_super_emitter:investigate')} (" in r.stdout  # "OOOOb super-..."
    assert f"{present.rule_title('ooooB_super_emitter:report')} (" in r.stdout
    assert re.search(r"due \d{4}-\d\d-\d\d \d\d:\d\d UTC", r.stdout)
    clocks = json.loads(ok(mlpe(db, "obligations", "--json")).stdout)
    repairs = [r for r in clocks if r["action"] != "investigate"][:2]  # a leak's own clocks (OGI finds' repairs)
    assert repairs
    for row in [*clocks[:1], *repairs]:
        out = ok(mlpe(db, "leak", "show", row["leak_id"])).stdout
        assert RAW_TEXT.findall(out) == [], out
        assert row in clocks[:1] or row["title"] in out, out  # a site's clock is not listed with the leak


def test_console_json_keeps_the_machine_names(demo_store):
    rows = json.loads(ok(mlpe(demo_store["db"], "obligations", "--json")).stdout)
    assert {"due_by", "leak_id", "started_text"} <= set(rows[0]) and rows[0]["due_by"].endswith("Z")
    rank = json.loads(ok(mlpe(demo_store["db"], "ranking", "--json", "--top", "3")).stdout)
    assert {"p_real", "est_rate_kg_h", "risk_band"} <= set(rank[0])
    assert rank[0]["risk_band"] in ("HIGH", "MEDIUM", "LOW")
