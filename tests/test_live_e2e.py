"""Issue 18's end-to-end check: `mlpe watch` and `mlpe serve` on loopback, files dropped into the folder (good,
bad, duplicate, half-written, still being written) and detections posted, then everything the issue asks to see:
each good detection loaded once, the bad file in rejects/ with its reasons, a run record for every cycle, a webhook
and an e-mail received by local servers for a new HIGH leak and for a burst, the alerts on the SSE stream, and the
app's inbox count in Chromium updating without a reload."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import LAT0, LON0, offset
from conftest_app import ROOT
from live_helpers import SmtpSink, WebhookReceiver, free_port, wait_for
from sqlmodel import Session

from mlpe_core import store
from mlpe_core.store.db import get_engine

pytestmark = [pytest.mark.slow]
BIN = Path(sys.prefix) / "bin"
MLPE = shutil.which("mlpe") or str(BIN / "mlpe")
BASIN = ROOT.parent / "shared" / "checks" / "basin"
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
HEADER = "detection_id,source_type,source_name,observed_at,latitude,longitude,rate_kg_h,asset_id\n"
ASSETS = "asset_id,asset_type,latitude,longitude,operator\nA1,well_pad,{},{},Acme\nA2,tank_battery,{},{},Acme\n"


def _t(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _alerts_yaml(hook: str, path: Path) -> None:
    path.write_text(f"""
rules:
  - {{name: new_high, kind: new_high_leak, lookback_hours: 72}}
  - {{name: burst, kind: burst, count: 3, within_minutes: 30, source_types: [continuous_monitor]}}
  - {{name: deadline, kind: obligation_due, within_days: 2}}
teams:
  - {{name: ops, webhooks: [ops-slack], emails: [ops-leads]}}
routes:
  - {{team: ops, operator: [Acme]}}
  - {{team: ops, rules: [new_high]}}
webhooks:
  - {{name: ops-slack, url: "{hook}/hook", format: slack}}
emails:
  - {{name: ops-leads, to: [leads@example.com]}}
""", encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with two assets, `mlpe serve` and `mlpe watch` on it, a webhook receiver, an SMTP server and an SSE
    listener, all on loopback."""
    if not Path(MLPE).exists():
        pytest.skip("needs the `mlpe` console script (make test installs it)")
    tmp = tmp_path_factory.mktemp("live")
    db, inbox = tmp / "mlpe.db", tmp / "inbox"
    inbox.mkdir()
    (a1, a2) = offset(3000, 0), offset(6000, 0)
    (tmp / "assets.csv").write_text(ASSETS.format(*a1, *a2), encoding="utf-8")
    procs: list[subprocess.Popen] = []
    with WebhookReceiver() as hook, SmtpSink() as smtp:
        _alerts_yaml(hook.url, tmp / "alerts.yaml")
        env = {**os.environ, "MLPE_DB": str(db), "MLPE_ALERTS_CONFIG": str(tmp / "alerts.yaml"),
               "MLPE_SMTP_HOST": "127.0.0.1", "MLPE_SMTP_PORT": str(smtp.port), "MLPE_LIVE_POLL_S": "1",
               "MLPE_APP_URL": "http://127.0.0.1:8501"}
        subprocess.run([MLPE, "assets", "import", str(tmp / "assets.csv")], env=env, check=True, capture_output=True)
        port = free_port()
        logs = {n: open(tmp / f"{n}.log", "w") for n in ("serve", "watch")}  # noqa: SIM115 - closed below
        procs.append(subprocess.Popen([MLPE, "serve", "--port", str(port)], env=env, stdout=logs["serve"],
                                      stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen([MLPE, "watch", str(inbox), "--settle", "1", "--interval", "0.3"], env=env,
                                      stdout=logs["watch"], stderr=subprocess.STDOUT))
        api = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 90, what="mlpe serve to answer /health")
        events: list[dict] = []
        stop = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{api}/alerts/stream", params={"after": 0, "timeout": 600},
                              timeout=httpx.Timeout(5, read=30)) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                    if stop.is_set():
                        break

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        try:
            yield {"tmp": tmp, "db": db, "inbox": inbox, "api": api, "hook": hook, "smtp": smtp, "events": events,
                   "env": env, "a1": a1, "a2": a2}
        finally:
            stop.set()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            for f in logs.values():
                f.close()
            print("\n--- watch log ---\n" + (tmp / "watch.log").read_text()[-4000:])


def _frames(db: Path):
    eng = get_engine(str(db))
    try:
        with Session(eng) as s:
            return store.detections_frame(s), store.batches_frame(s)
    finally:
        eng.dispose()


def _write_slowly(path: Path, text: str, pieces: int = 8, pause: float = 0.25) -> None:
    step = max(1, len(text) // pieces)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(0, len(text), step):
            fh.write(text[i:i + step])
            fh.flush()
            time.sleep(pause)


def test_files_and_posts_become_leaks_runs_and_delivered_alerts(world):
    inbox, db, api = world["inbox"], world["db"], world["api"]
    big = offset(-8000, 2000)  # a super-emitter seen by an aircraft and a satellite: a new HIGH leak
    (inbox / "good.csv").write_text(
        HEADER + f"g1,aerial,AirLidar,{_t(90)},{big[0]:.6f},{big[1]:.6f},450,\n"
                 f"g2,satellite,PointSat,{_t(60)},{big[0] + 0.0001:.6f},{big[1]:.6f},520,\n", encoding="utf-8")
    wait_for(lambda: (inbox / "done" / "good.csv").exists(), 90, what="good.csv in done/")
    shutil.copy(inbox / "done" / "good.csv", inbox / "good_copy.csv")  # the same bytes again, another name
    (inbox / "bad.csv").write_text("plume,when\nx,yesterday\n", encoding="utf-8")  # no recognisable columns
    burst = "".join(f"b{i},continuous_monitor,FenceX,{_t(50 - 4 * i)},,,1.5,A1\n" for i in range(4))
    (inbox / "burst.csv").write_text(HEADER + burst, encoding="utf-8")
    slow = "".join(f"s{i},aerial,AirLidar,{_t(30)},{offset(20000 + 30 * i, 5000)[0]:.6f},"
                   f"{offset(20000 + 30 * i, 5000)[1]:.6f},5,\n" for i in range(8))
    _write_slowly(inbox / "slow.csv", HEADER + slow)  # still growing for 2 s: the 1-s settle must wait it out
    late = "".join(f"l{i},aerial,AirLidar,{_t(20)},{offset(-20000, 9000 + 40 * i)[0]:.6f},"
                   f"{offset(-20000, 9000 + 40 * i)[1]:.6f},3,\n" for i in range(3))
    (inbox / "late.csv.part").write_text(HEADER + late[: len(late) // 2], encoding="utf-8")  # half-written
    posted = [{"detection_id": f"p{i}", "source_type": "aerial", "source_name": "AirLidar", "observed_at": _t(10),
               "latitude": LAT0 + 0.3 + 0.01 * i, "longitude": LON0 - 0.3, "rate_kg_h": 2.0} for i in range(2)]
    r1 = httpx.post(f"{api}/detections", json=posted, headers={"Idempotency-Key": "e2e-1"}, timeout=60)
    r2 = httpx.post(f"{api}/detections", json=posted, headers={"Idempotency-Key": "e2e-1"}, timeout=60)
    assert r1.status_code == 200 and r1.json()["accepted"] == 2 and not r1.json()["replayed"]
    assert r2.status_code == 200 and r2.json()["replayed"] and r2.headers.get("idempotent-replayed") == "true"
    assert httpx.post(f"{api}/detections", json=posted[:1], headers={"Idempotency-Key": "e2e-1"},
                      timeout=60).status_code == 409
    time.sleep(2.5)
    dets, _ = _frames(db)
    assert not dets["detection_id"].str.startswith("l").any(), "a .part file was read before it was finished"
    with open(inbox / "late.csv.part", "a", encoding="utf-8") as fh:
        fh.write(late[len(late) // 2:])
    os.replace(inbox / "late.csv.part", inbox / "late.csv")

    want = {"g1", "g2", *(f"b{i}" for i in range(4)), *(f"s{i}" for i in range(8)), "l0", "l1", "l2", "p0", "p1"}
    wait_for(lambda: set(_frames(db)[0]["detection_id"]) >= want, 120, what="every good detection in the store")
    wait_for(lambda: not any(p.is_file() for p in inbox.iterdir()), 60, what="the inbox to empty")
    dets, batches = _frames(db)
    assert sorted(dets["detection_id"]) == sorted(want)  # each good detection once, nothing else
    assert dets.groupby(["source_name", "detection_id"]).size().max() == 1
    slow_b = batches[batches["file_name"] == "slow.csv"]
    assert len(slow_b) == 1 and int(slow_b["n_rows"].iloc[0]) == 8  # read once, whole
    assert (inbox / "rejects" / "bad.csv").exists()
    reasons = (inbox / "rejects" / "bad.csv.reasons.txt").read_text()
    assert "unrecognised format" in reasons and "Nothing from this file was loaded" in reasons
    assert (inbox / "done" / "good_copy.csv").exists()
    assert "already loaded" in (inbox / "done" / "good_copy.csv.reasons.txt").read_text()
    assert {"good.csv", "burst.csv", "slow.csv", "late.csv"} <= {p.name for p in (inbox / "done").iterdir()}

    # the alerts, on every channel
    hook, smtp, events = world["hook"], world["smtp"], world["events"]
    wait_for(lambda: {"new_high", "burst"} <= {e["rule"] for e in events}, 90, what="both alerts on the SSE stream")
    wait_for(lambda: len(hook.bodies) >= 2 and len(smtp.messages) >= 2, 90, what="webhook and e-mail deliveries")
    texts = [b["text"] for b in hook.bodies]
    assert any("New HIGH leak" in t for t in texts) and any("Burst at A1: 4 alarms" in t for t in texts), texts
    assert all("blocks" in b for b in hook.bodies)  # the Slack-compatible shape
    subjects = smtp.subjects()
    assert any("New HIGH leak" in s for s in subjects) and any("Burst at A1" in s for s in subjects), subjects
    assert all(m["To"] == "leads@example.com" for m in smtp.messages)
    assert all(e["team"] == "ops" for e in events if e["rule"] in ("new_high", "burst"))
    # the same condition never alerts twice, whatever number of cycles ran
    keys = [e["key"] for e in events]
    assert len(keys) == len(set(keys))
    inbox_api = httpx.get(f"{api}/alerts", timeout=30).json()
    assert inbox_api["open"] >= 2
    delivered = [a["deliveries"] for a in inbox_api["alerts"] if a["rule"] in ("new_high", "burst")]
    assert delivered and all("webhook:ops-slack sent" in d and "email:ops-leads sent" in d for d in delivered)

    # a run record for every cycle
    runs = json.loads(subprocess.run([MLPE, "runs", "--json", "--limit", "500"], env=world["env"], check=True,
                                     capture_output=True, text=True).stdout)
    kinds = {r["kind"] for r in runs}
    assert {"ingest", "fuse", "score", "watch", "alerts"} <= kinds
    ingested = {r["target"] for r in runs if r["kind"] == "ingest"}
    assert {"good.csv", "burst.csv", "slow.csv", "late.csv", "bad.csv", "api-e2e-1.json"} <= ingested
    assert next(r for r in runs if r["target"] == "bad.csv")["outcome"] == "failed"
    for r in runs:
        assert r["stages"] and r["code_version"].startswith("mlpe ") and len(r["config_hash"]) == 64
    fuses = [r for r in runs if r["kind"] == "fuse"]
    assert all({s["stage"] for s in r["stages"]} >= {"read", "cluster", "write"} for r in fuses if r["outcome"] == "ok")
    metrics = httpx.get(f"{api}/metrics", timeout=30).text
    assert re.search(r'mlpe_connector_lag_seconds\{connector="folder:[^"]+",kind="folder"\} \d', metrics), metrics
    assert re.search(r'mlpe_runs_total\{kind="watch",outcome="ok"\} [1-9]', metrics)
    assert 'mlpe_alert_deliveries{state="sent"}' in metrics


def test_app_inbox_count_updates_in_chromium_without_a_reload(world):
    if not CHROMIUM:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = open(world["tmp"] / "streamlit.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none"], cwd=ROOT,
                            env=world["env"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ok(f"{url}/_stcore/health"), 90, what="streamlit to start")
        n = httpx.get(f"{world['api']}/alerts", timeout=30).json()["open"]
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            pg = b.new_page(viewport={"width": 1400, "height": 900})
            pg.set_default_timeout(60_000)
            pg.goto(url)
            side = pg.get_by_test_id("stSidebar")
            side.get_by_text(f"{n} open alert", exact=False).first.wait_for()
            # a new burst at the other asset arrives through the folder while the page stays open
            burst = "".join(f"c{i},continuous_monitor,FenceX,{_t(15 - 3 * i)},,,1.2,A2\n" for i in range(3))
            (world["inbox"] / "burst2.csv").write_text(HEADER + burst, encoding="utf-8")
            side.get_by_text(f"{n + 1} open alert", exact=False).first.wait_for(timeout=120_000)
            side.get_by_text(re.compile(r"new runs? since you opened this page")).first.wait_for()
            assert pg.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
            pg.screenshot(path=str(world["tmp"] / "live.png"))
            b.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _ok(u: str) -> bool:
    try:
        return httpx.get(u, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
