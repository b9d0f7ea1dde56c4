"""The regulator's report on a simulated operator-quarter (issue 19): it matches the store exactly (every clock,
every date, the records each row cites), is produced in under 10 s, and opens as PDF (rendered to images, its pages
and tables read back) and XLSX; the CLI and the API give the same report."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest
import report_scenario as rs
from sqlmodel import Session

from mlpe_core import comply, desk, store
from mlpe_core.report import people
from mlpe_core.report.model import ACTION_COLUMNS, LDAR_COLUMNS, NOTICE_COLUMNS, TOTAL_COLUMNS
from mlpe_core.report.pdf import fmt
from mlpe_core.store.models import AuditEvent, LeakEvent, Validation


@pytest.fixture(scope="module")
def scenario(quarter_store):
    return quarter_store


@pytest.fixture(scope="module")
def built(scenario):
    db, _ = scenario
    eng = desk.engine(str(db))
    t = time.perf_counter()
    with desk.open_session(eng) as s:
        rep = desk.report(s, rs.OPERATOR, *rs.QUARTER, user="tester")
        files = {f: desk.render_report(rep, f) for f in ("json", "xlsx", "pdf")}
    took = time.perf_counter() - t
    eng.dispose()
    return rep, files, took


def _session(db):
    return Session(desk.engine(str(db)))


def _expected_clocks(db) -> pd.DataFrame:
    """The operator's clocks that started in the quarter, straight from the compliance stage."""
    with _session(db) as s:
        as_of = desk.as_of(s)
        ob, _ = comply.obligation_queue(s, as_of, include_met=True)
        lk = store.leaks_frame(s)
        assets = store.assets_frame(s)
    mine = set(assets.loc[assets["operator"] == rs.OPERATOR, "asset_id"])
    site = ob["leak_id"].map(lk.set_index("leak_id")["asset_id"]).where(ob["leak_id"].notna(), ob["site"])
    q0, q1 = pd.Timestamp(rs.QUARTER[0], tz="UTC"), pd.Timestamp(rs.QUARTER[1], tz="UTC") + pd.Timedelta(days=1)
    return ob[site.isin(mine) & (ob["started_at"] >= q0) & (ob["started_at"] < q1)].assign(site_id=site)


def test_report_is_fast_and_has_every_kind_of_row(built):
    rep, files, took = built
    print(f"\nreport built and written as JSON, XLSX and PDF in {took:.2f} s")
    assert took < 10.0
    assert set(rep.notifications["status"]) >= {"late", "on_time"}
    assert rep.ldar["delay_of_repair"].any() and (rep.ldar["delay_reason"] == "needs a compressor shutdown").any()
    assert (rep.action_levels["status"] == "overdue").any()
    assert rep.meta["period_start"] == pd.Timestamp(rs.QUARTER[0], tz="UTC")


def test_every_clock_and_date_matches_the_store(built, scenario):
    rep, _, _ = built
    db, ids = scenario
    exp = _expected_clocks(db)
    # notifications: one row per notice received in the quarter on the operator's leaks, its two clocks exact
    with _session(db) as s:
        notes = store.notifications_frame(s, with_ids=True)
        vals = store.validations_frame(s).set_index("id")
    q0, q1 = pd.Timestamp(rs.QUARTER[0], tz="UTC"), pd.Timestamp(rs.QUARTER[1], tz="UTC") + pd.Timedelta(days=1)
    mine = notes[notes["leak_id"].isin(set(exp["leak_id"].dropna()) | set(rep.notifications["leak_id"]))
                 & (notes["received_at"] >= q0) & (notes["received_at"] < q1)]
    assert sorted(rep.notifications["notification_id"]) == sorted(mine["notification_id"])
    assert rs.LATE_NOTICE in set(rep.notifications["notification_id"])
    for r in rep.notifications.itertuples():
        n = notes.set_index("notification_id").loc[r.notification_id]
        assert r.received_at == n["received_at"] and r.leak_id == n["leak_id"] and r.notification_row == n["id"]
        for action, due, met in (("investigate", "investigate_due", "investigated_at"),
                                 ("report", "report_due", "reported_at")):
            c = exp[(exp["started_ref"] == r.notification_id) & (exp["action"] == action)].iloc[0]
            assert getattr(r, due) == c["due_by"]
            assert (pd.isna(getattr(r, met)) and pd.isna(c["met_at"])) or getattr(r, met) == c["met_at"]
            want = "on_time" if c["met_at"] <= c["due_by"] else "late"
            assert getattr(r, f"{action}_status") == want
        v = vals.loc[[int(x) for x in r.validation_ids.split(", ")]]
        assert (v["leak_id"] == r.leak_id).all() and r.investigated_at in set(v["visited_at"])
    late = rep.notifications.set_index("notification_id").loc[rs.LATE_NOTICE]
    assert late["investigate_status"] == "late" and late["status"] == "late"
    assert late["investigated_at"] == pd.Timestamp("2026-08-20T10:00Z")
    assert late["late_days"] == pytest.approx(5.04, 0.01)
    assert late["repaired_at"] == pd.Timestamp("2026-08-21T12:00Z") and late["finding"] == "confirmed"
    # LDAR and action levels: every clock of those rules that started in the quarter is a row, its dates exact
    kinds = {"ldar": ("ooooB_fugitive", "co_reg7"), "action_levels": ("ooooB_cms",)}
    for sec, prefixes in kinds.items():
        e = exp[exp["rule"].str.startswith(prefixes)]
        got = getattr(rep, sec)
        key = "found_at" if sec == "ldar" else "exceeded_on"
        assert len(got) == len(e.drop_duplicates(["rule", "started_ref"] if sec == "action_levels" else
                                                 ["rule", "leak_id", "started_at"]))
        for c in e.itertuples():
            row = got[(got["rule"] == c.rule) & (got[key] == c.started_at)]
            row = row[row["leak_id"] == c.leak_id] if sec == "ldar" else row
            assert len(row) == 1, (sec, c.rule, c.started_at)
            row = row.iloc[0]
            if sec == "ldar":
                due, met = {"repair_attempt": ("attempt_due", "attempted_at"),
                            "repair": ("repair_due", "repaired_at")}[c.action]
            else:
                due, met = "investigate_due", "responded_at"
            assert row[due] == c.due_by
            assert (pd.isna(row[met]) and pd.isna(c.met_at)) or row[met] == c.met_at
    d = rep.ldar[rep.ldar["leak_id"] == ids["ldar_leak"]].iloc[0]
    assert d["found_at"] == pd.Timestamp("2026-08-05T10:00Z") and d["attempted_at"] == pd.Timestamp("2026-08-12T11:00Z")
    assert d["repair_due"] == pd.Timestamp("2028-08-04T10:00Z")  # 730 days after the find: the delay of repair
    a = rep.action_levels[rep.action_levels["site"] == ids["cms_site"]].iloc[0]
    assert a["exceeded_on"] == pd.Timestamp("2026-09-01T00:00Z") and a["investigate_due"] == pd.Timestamp(
        "2026-09-06T00:00Z") and a["status"] == "overdue"


def test_every_cited_record_exists_and_concerns_the_row(built, scenario):
    rep, _, _ = built
    db, _ = scenario
    with _session(db) as s:
        for sec in (rep.notifications, rep.ldar, rep.action_levels):
            for r in sec.itertuples():
                for vid in filter(None, r.validation_ids.split(", ")):
                    assert s.get(Validation, int(vid)).leak_id == r.leak_id
                for eid in filter(None, r.leak_event_ids.split(", ")):
                    assert s.get(LeakEvent, int(eid)).leak_id == r.leak_id
                for aid in filter(None, r.audit_event_ids.split(", ")):
                    ev = s.get(AuditEvent, int(aid))
                    assert ev.target == r.leak_id or json.loads(ev.detail)["notification_id"] == getattr(
                        r, "notification_id", None)
        late = rep.notifications.set_index("notification_id").loc[rs.LATE_NOTICE]
        actions = {s.get(AuditEvent, int(i)).action for i in late["audit_event_ids"].split(", ")}
        assert {"notification", "validation", "lifecycle_visit", "lifecycle_repair"} <= actions
        heads = store.chain_heads(s)
    assert rep.meta["audit_chain_heads"] == heads
    # totals are the sums of the rows
    allrow = rep.totals.set_index("site_type").loc["all"]
    assert allrow["notifications"] == len(rep.notifications) and allrow["ldar_findings"] == len(rep.ldar)
    assert allrow["notifications_late"] == int(rep.notifications["status"].isin(["late", "overdue"]).sum())
    assert rep.totals[rep.totals["site_type"] != "all"]["exceedances"].sum() == len(rep.action_levels)


def test_json_is_the_model(built):
    rep, files, _ = built
    doc = json.loads(files["json"])
    assert doc == rep.to_dict()
    late = next(r for r in doc["notifications"] if r["notification_id"] == rs.LATE_NOTICE)
    assert late["investigate_due"] == "2026-08-15T09:00:00Z" and late["investigated_at"] == "2026-08-20T10:00:00Z"
    assert late["validation_ids"] and late["audit_event_ids"]


def test_xlsx_opens_with_frozen_headers_and_the_same_rows(built):
    from openpyxl import load_workbook

    rep, files, _ = built
    wb = load_workbook(io.BytesIO(files["xlsx"]))
    assert wb.sheetnames == ["Summary", "Notifications", "LDAR findings", "Action levels", "Totals by site type",
                             "Emissions"]
    for name, key in (("Notifications", "notifications"), ("LDAR findings", "ldar"), ("Action levels", "action_levels"),
                      ("Totals by site type", "totals")):
        ws, df = wb[name], rep.frames()[key]
        assert ws.freeze_panes == "A2" and ws["A1"].font.bold
        assert [c.value for c in ws[1]] == [people.header(key, c) for c in df.columns]  # the model's order, in words
        assert ws.max_row == len(df) + 1
    ws = wb["Notifications"]
    cols = [c.value for c in ws[1]]
    for i, r in enumerate(rep.notifications.itertuples(), start=2):
        got = ws.cell(i, cols.index("Investigate by (UTC)") + 1)
        assert got.value == r.investigate_due.tz_localize(None).to_pydatetime() and got.number_format.startswith("yyyy")


def test_pdf_renders_and_its_tables_read_back(built):
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (requirements-dev) renders the PDF")
    rep, files, _ = built
    doc = pdfium.PdfDocument(files["pdf"])
    n = len(doc)
    assert n >= 6
    text = []
    for i in range(n):
        page = doc[i]
        img = page.render(scale=0.6).to_pil().convert("L")
        assert img.size[0] > img.size[1]  # landscape
        assert min(img.getextrema()) < 100, f"page {i + 1} rendered blank"
        text.append(page.get_textpage().get_text_range())
    body = "\n".join(text)
    first = text[0]
    assert rep.meta["title"] in first and "Totals by site type" in first
    allrow = rep.totals.set_index("site_type").loc["all"]
    assert fmt(float(allrow['tonnes'])) in first  # the totals table's mass, as printed
    for r in rep.notifications.itertuples():  # each notice's row: id and every date
        page = next(t for t in text if r.notification_id in t)
        for v in (r.received_at, r.investigate_due, r.investigated_at, r.report_due, r.reported_at):
            assert fmt(v) in page, (r.notification_id, fmt(v))
    for r in rep.ldar.itertuples():
        assert r.leak_id in body and fmt(r.found_at) in body and fmt(r.attempt_due) in body
    assert "needs a compressor shutdown" in body.replace("\r\n", " ").replace("\n", " ")
    for r in rep.action_levels.itertuples():
        assert fmt(r.exceeded_on) in body and fmt(r.investigate_due) in body
    assert "Records behind each row" in body and rep.notifications["audit_event_ids"].iloc[0] in body


def test_cli_and_api_write_the_same_report(scenario, tmp_path):
    db, _ = scenario
    env_cmd = [sys.executable, "-m", "mlpe_core.cli", "--db", str(db), "--user", "tester", "report", "--operator",
               rs.OPERATOR, "--from", rs.QUARTER[0], "--to", rs.QUARTER[1], "-o"]
    for ext in ("json", "xlsx", "pdf"):
        out = tmp_path / f"r.{ext}"
        r = subprocess.run([*env_cmd, str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 1000
    cli = json.loads((tmp_path / "r.json").read_text())
    r = subprocess.run([*env_cmd, str(tmp_path / "r.txt")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and ".pdf, .xlsx or .json" in r.stderr and not (tmp_path / "r.txt").exists()
    r = subprocess.run([*env_cmd[:-4], "Nobody", "-o", str(tmp_path / "n.pdf")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "Nobody" in r.stderr
    from fastapi.testclient import TestClient

    from mlpe_core.api import create_app

    c = TestClient(create_app(str(db)))
    api = c.get("/report", params={"operator": rs.OPERATOR, "from": rs.QUARTER[0], "to": rs.QUARTER[1]}).json()
    for k in ("notifications", "ldar", "action_levels", "totals"):
        assert api[k] == cli[k]
    pdf = c.get("/report", params={"operator": rs.OPERATOR, "format": "pdf", "from": rs.QUARTER[0]})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert c.get("/report", params={"operator": "Nobody"}).status_code == 404
    assert c.get("/report", params={"operator": rs.OPERATOR, "from": "2026-09-30", "to": "2026-07-01"}).status_code \
        == 422


# what people must never read in the PDF or the workbook: snake_case names and codes (``on_time``, ``well_pad``,
# ``found_by_ref``, rule ids such as ``ooooB_fugitive_ogi``), blanks written as None/nan/NaT, offsets as +00:00
RAW = re.compile(r"\b[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+\b|\bNone\b|\bnan\b|\bNaN\b|\bNaT\b|\+00:00")
CODES = {"on_time", "late", "overdue", "open", "no clock", "confirmed", "not_found", "already_repaired",
         "not_accessible", "ooooB_super_emitter"}  # the model's codes; a cell that is exactly one is a code shown


def _raw_in(texts) -> list[str]:
    return sorted({m for t in texts for m in RAW.findall(str(t))} | {str(t) for t in texts if str(t) in CODES})


def test_xlsx_and_pdf_show_labels_and_headers_not_codes(built):
    """The report's PDF and workbook are for people (the JSON keeps the codes): statuses, findings, site types,
    programs and rules as the presentation layer says them, headers in words."""
    from openpyxl import load_workbook

    rep, files, _ = built
    doc = json.loads(files["json"])  # the machine's file keeps the codes and names
    assert {r["status"] for r in doc["notifications"]} >= {"late", "on_time"} and "found_by_ref" in doc["ldar"][0]
    wb = load_workbook(io.BytesIO(files["xlsx"]))
    texts = [c for ws in wb for row in ws.iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert _raw_in(texts) == []
    heads = {ws.title: [c.value for c in ws[1]] for ws in wb if ws.title != "Summary"}
    assert "Found by" in heads["LDAR findings"] and "t/yr" in heads["Emissions"]
    notes = wb["Notifications"]
    col = heads["Notifications"].index("Status") + 1
    assert {notes.cell(i, col).value for i in range(2, notes.max_row + 1)} >= {"Late", "On time"}
    rules = {wb["LDAR findings"].cell(i, 4).value for i in range(2, wb["LDAR findings"].max_row + 1)}
    assert rules and all("OOOOb" in r or "Colorado" in r for r in rules), rules
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (requirements-dev) reads the PDF's text")
    pdf = pdfium.PdfDocument(files["pdf"])
    body = "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    assert sorted(set(RAW.findall(body))) == []
    assert "On time" in body and "Confirmed leaking" in body and "OOOOb repair (OGI)" in body


def test_a_notice_not_yet_answered_is_reported(scenario, tmp_path):
    """A super-emitter notice on one of the operator's leaks with no visit and no report yet: the report lists it
    as overdue (regression: an empty ``pd.concat`` of its visits raised "No objects to concatenate" and ``mlpe
    report`` exited 2 in every format)."""
    db, ids = scenario
    copy = tmp_path / "mlpe.db"
    src, dst = sqlite3.connect(db), sqlite3.connect(copy)
    src.backup(dst)
    src.close(), dst.close()
    eng = desk.engine(str(copy))
    with desk.open_session(eng) as s:
        lk = desk.ranking(s)
        busy = set(store.validations_frame(s)["leak_id"]) | set(store.notifications_frame(s)["leak_id"].dropna())
        free = lk[(lk["operator"] == rs.OPERATOR) & lk["status"].eq("open") & ~lk["leak_id"].isin(busy)]
        leak = free.sort_values("leak_id")["leak_id"].iloc[-1]
        det = store.detections_frame(s, leak).iloc[0]
    eng.dispose()
    notice = tmp_path / "n1.csv"
    pd.DataFrame([{"notification_id": "N1", "received_at": "2026-09-20T09:00:00Z", "program": "ooooB_super_emitter",
                   "notifier": "EPA", "detection_ref": "", "latitude": det["latitude"], "longitude": det["longitude"],
                   "rate_kg_h": "400", "notes": ""}]).to_csv(notice, index=False)
    cmd = [sys.executable, "-m", "mlpe_core.cli", "--db", str(copy), "--user", "tester"]
    r = subprocess.run([*cmd, "notifications", "import", str(notice)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "1 matched to a leak" in r.stdout, r.stdout + r.stderr
    for ext in ("json", "xlsx", "pdf"):
        out = tmp_path / f"r.{ext}"
        r = subprocess.run([*cmd, "report", "--operator", rs.OPERATOR, "--from", rs.QUARTER[0], "--to", rs.QUARTER[1],
                            "-o", str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert out.stat().st_size > 1000
    doc = json.loads((tmp_path / "r.json").read_text())
    row = next(x for x in doc["notifications"] if x["notification_id"] == "N1")
    assert row["leak_id"] == leak and row["status"] == "overdue" and row["investigated_at"] is None
    assert row["validation_ids"] == "" and row["audit_event_ids"]  # the notice's own audit record, nothing else


def test_a_period_with_nothing_gives_empty_sections_with_their_columns(scenario):
    db, _ = scenario
    eng = desk.engine(str(db))
    with desk.open_session(eng) as s:
        rep = desk.report(s, rs.OPERATOR, "2025-01-01", "2025-01-31", user="tester")
        files = {f: desk.render_report(rep, f) for f in ("json", "xlsx", "pdf")}
    eng.dispose()
    for df, cols in ((rep.notifications, NOTICE_COLUMNS), (rep.ldar, LDAR_COLUMNS),
                     (rep.action_levels, ACTION_COLUMNS)):
        assert df.empty and list(df.columns) == cols
    assert list(rep.totals.columns) == TOTAL_COLUMNS
    assert json.loads(files["json"])["notifications"] == [] and files["pdf"].startswith(b"%PDF")
