"""The real app in headless Chromium on the demo basin, as a new user would meet it (issue 17).

* Every page in the sidebar navigation and every tab on it (whatever pages exist: the walk reads the navigation)
  is read for raw values (None, nan, NaT, JSON, rule ids, +00:00, floats with more than 4 decimals, snake_case
  headers) and for text cut off by its container (tests/browser_checks.py), and must load from the sidebar in
  under 2 s once cached.
* Interactions are timed over at least 10 repeats each (p50 and p95 printed with the load average): a click on
  the map until the panel shows the leak, *Open leak detail* until the leak page shows, recording an outcome on
  the phone form until it is confirmed. Each p95 must be under 1 s; a map of 50,000 leaks must be interactive in
  under 2 s.
* The dispatch downloads are the very files `mlpe dispatch show` writes; tooltips stay inside the map.

Screenshots go to ``$MLPE_SHOTS`` (``make screenshots`` sets it to docs/screenshots), else a temporary folder, so
a test run never changes the tree.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser_checks import CLIPPED_JS, TEXTS_JS, raw_values
from conftest_app import ROOT, fill_demo
from sqlmodel import Session

from mlpe_core import auth, store
from mlpe_core.schema import DISPATCH_EXPORT_COLUMNS
from mlpe_core.store.db import get_engine

if str(ROOT) not in sys.path:  # app.common.view_for: where the map puts a leak
    sys.path.insert(0, str(ROOT))
pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
LOAD_LIMIT_S = 2.0
INTERACTION_P95_S = 1.0
BIG_MAP_S = 2.0
# The targets above are checked only when MLPE_UI_TIMING=1 (`make ui-timing`, on a quiet machine): a shared CI
# machine makes wall times flaky, so `make test` prints every timing and fails only on what the page shows.
STRICT_TIMING = os.environ.get("MLPE_UI_TIMING") == "1"


def _on_time(ok: bool, what: str) -> None:
    """Fail on a missed timing target under MLPE_UI_TIMING=1; otherwise say it (the timings are printed)."""
    if STRICT_TIMING:
        assert ok, what
    elif not ok:
        print(f"\nover target (not checked without MLPE_UI_TIMING=1): {what}")
REPEATS = 10
# pages whose screenshot is taken after their main action below, not during the walk
SHOT_LATER = {"map", "leak", "rankings", "dispatch", "validation"}
TIMES: dict[str, list[float]] = {}


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: $MLPE_SHOTS (make screenshots: docs/screenshots), else a temporary folder."""
    out = Path(os.environ["MLPE_SHOTS"]) if os.environ.get("MLPE_SHOTS") else tmp_path_factory.mktemp("shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _serve(db: Path):
    """Start the app on a free port over ``db``; yields the URL (a generator for the fixtures)."""
    port = _free_port()
    log = open(db.parent / "streamlit.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env={**os.environ, "MLPE_DB": str(db)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start: {(db.parent / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port, on a store holding the demo basin: (url, store path)."""
    if not CHROMIUM:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    db = tmp_path_factory.mktemp("browser") / "mlpe.db"
    fill_demo(db)
    for url in _serve(db):
        yield url, db


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    pg = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg.set_default_timeout(30_000)
    pg.goto(server[0])
    pg.get_by_role("heading", name="Leak map").wait_for()
    yield pg
    pg.close()


def _settle(pg, extra_ms: int = 800) -> None:
    """Wait until Streamlit stops running the script and charts have drawn."""
    pg.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    pg.wait_for_timeout(extra_ms)


def _nav(pg) -> list[str]:
    """The page titles in the sidebar navigation, in order (pages added by others are walked too)."""
    links = pg.get_by_test_id("stSidebarNav").get_by_role("link")
    return [links.nth(i).inner_text().strip().split("\n")[-1] for i in range(links.count())]


HEADING = "(() => { const h = document.querySelector('[data-testid=stMain] h1'); " \
          "return h ? h.textContent.trim() : ''; })()"
ARRIVED = """(old) => { const h = document.querySelector('[data-testid=stMain] h1');
  return h && h.textContent.trim() && h.textContent.trim() !== old
    && !document.querySelector('[data-testid=stMain] [data-stale=true]')
    && !document.querySelector('[data-testid=stStatusWidget]'); }"""


# the script has finished too (the status widget shows only after a while: Site and Operator were checked and shot
# with their title and metrics drawn, not yet their charts)
BODY_DRAWN = """() => document.querySelectorAll('[data-testid=stMain] [data-testid=stElementContainer]').length > 2
  && !document.querySelector('[data-testid=stStatusWidget]')
  && document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state') === 'notRunning'"""


def _goto(pg, label: str) -> float:
    """Click the page in the sidebar; seconds until its heading (a new one) shows and the script has finished."""
    link = pg.get_by_test_id("stSidebarNav").get_by_role("link", name=label, exact=True)
    old = pg.evaluate(HEADING) if link.get_attribute("aria-current") != "page" else "\u0000"
    t0 = time.perf_counter()
    link.click()
    pg.wait_for_function(ARRIVED, arg=old, timeout=60_000)
    took = time.perf_counter() - t0
    # the heading can draw before the script's first delta arrives: wait until the page shows more than it
    pg.wait_for_function(BODY_DRAWN, timeout=60_000)
    _settle(pg, 600)
    return took


TOP = "for (const e of [document.scrollingElement, document.querySelector('[data-testid=stMain]')]) " \
      "if (e) e.scrollTo(0, 0)"
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stPlotlyChart]')]
  .every((c) => c.querySelector('.js-plotly-plot .main-svg'))"""


def _shot(pg, shots: Path, name: str) -> None:
    pg.wait_for_function(CHARTS_DRAWN, timeout=30_000)  # every chart on the page has drawn its SVG
    pg.mouse.move(5, 890)  # no hover tooltip in the picture
    pg.wait_for_timeout(300)
    pg.screenshot(path=str(shots / f"{name}.png"))


def _slug(label: str) -> str:
    return {"Leak detail": "leak", "Field validation": "validation", "Audit trail": "audit"}.get(
        label, re.sub(r"\W+", "_", label.lower()).strip("_"))


def _problems(pg, where: str) -> list[str]:
    """Raw values, clipped text and exceptions on the page as rendered now."""
    out = [f"{where}: {r}" for r in raw_values(pg.evaluate(TEXTS_JS))]
    out += [f"{where}: clipped {c['where']}: {c['text']!r}" + (f" ({c['need']} px in {c['width']})" if "need" in c
                                                               else "") for c in pg.evaluate(CLIPPED_JS)]
    if pg.get_by_test_id("stException").count():
        out.append(f"{where}: exception {pg.get_by_test_id('stException').first.inner_text()[:300]}")
    return out


def _leaks(db):
    engine = get_engine(str(db))
    with Session(engine) as s:
        df = store.leaks_frame(s)
    engine.dispose()
    return df


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def _report(name: str, xs: list[float]) -> str:
    return f"{name}: n={len(xs)}, p50 {_pct(xs, 50):.2f} s, p95 {_pct(xs, 95):.2f} s, max {max(xs):.2f} s"


def test_every_page_and_tab_reads_like_a_finished_product(page, shots):
    """Every page of the navigation twice (first visit fills the caches; the second must load in LOAD_LIMIT_S), and
    every tab on it, with no raw value and no clipped text."""
    labels = _nav(page)
    assert {"Map", "Leak detail", "Rankings", "Obligations", "Site", "Operator", "Dispatch", "Field validation",
            "Upload", "Runs", "Model", "Audit trail"} <= set(labels)  # every page in sight, none behind "View more"
    problems = []
    for label in labels:
        TIMES[label] = [_goto(page, label)]
        if label == "Model":  # train from the demo's validations, then show the hold-out check
            page.get_by_role("button", name="Train now").click()
            # the decision, not the standing "no model ... promoted yet" warning, which matched at once (the picture
            # was taken mid-training)
            decision = re.compile(r"(leaks re-scored with it|kept current|not trained|not promoted|[Nn]ot enough)")
            page.get_by_test_id("stAlert").filter(has_text=decision).first.wait_for(timeout=90_000)
            page.get_by_text("Training and comparing on held-out visits").wait_for(state="detached", timeout=90_000)
            _settle(page)
        tabs = page.get_by_test_id("stMain").get_by_role("tab")
        n = tabs.count()
        for i in range(max(n, 1)):
            if n:
                tabs.nth(i).click()
                _settle(page, 700)
            where = label + (f" / {tabs.nth(i).inner_text().strip()}" if n else "")
            problems += _problems(page, where)
            if n and i == 0 and _slug(label) not in SHOT_LATER:
                page.evaluate(TOP)  # clicking the tab scrolled it into view: the picture starts at the title
                _shot(page, shots, _slug(label))
        if not n and _slug(label) not in SHOT_LATER:
            _shot(page, shots, _slug(label))
    for label in labels:
        TIMES[label].append(_goto(page, label))
    print(f"\npage load (sidebar click → page drawn), first visit / cached ({_load()}):")
    for label, (first, again) in TIMES.items():
        print(f"  {label:17s} {first:5.2f} s / {again:5.2f} s")
    assert not problems, "\n".join(problems[:40])
    slow = {k: round(v[1], 2) for k, v in TIMES.items() if v[1] > LOAD_LIMIT_S}
    _on_time(not slow, f"pages slower than {LOAD_LIMIT_S} s: {slow}")


def _pixel(view: dict, box: dict, lat: float, lon: float) -> tuple[float, float]:
    """Where deck.gl draws (lat, lon) in a chart of this bounding box (Web Mercator, 512-px world at zoom 0)."""
    scale = 512 * 2 ** view["zoom"] / (2 * math.pi)

    def merc(la, lo):
        return scale * math.radians(lo), scale * math.log(math.tan(math.pi / 4 + math.radians(la) / 2))

    x0, y0 = merc(view["latitude"], view["longitude"])
    x, y = merc(lat, lon)
    return box["x"] + box["width"] / 2 + (x - x0), box["y"] + box["height"] / 2 - (y - y0)


def _map_pixels(page, db):
    """Clickable leaks on the Map page: the best-ranked and the next ones clear of every better-ranked circle."""
    from app.common import view_for

    shown = _leaks(db)
    shown = shown[shown["status"].isin(["open", "dispatched"])].sort_values("rank")
    v = view_for(shown, 850, 600)
    view = {"latitude": v.latitude, "longitude": v.longitude, "zoom": v.zoom}
    box = page.get_by_test_id("stDeckGlJsonChart").bounding_box()
    px = [_pixel(view, box, r.latitude, r.longitude) for r in shown.itertuples()]
    clear = [0] + [i for i in range(1, min(len(px), 400)) if all(math.dist(px[i], px[j]) > 40 for j in range(i))]
    return shown, px, clear, box


def test_map_click_and_open_leak_are_fast(page, server, shots):
    """A click on a leak until the panel names it, and *Open leak detail* until the leak page shows: p95 < 1 s."""
    _goto(page, "Map")
    page.locator("[data-testid=stDeckGlJsonChart] canvas").first.wait_for()
    _settle(page, 1500)
    shown, px, clear, box = _map_pixels(page, server[1])
    ids = shown["leak_id"].tolist()
    page.mouse.move(*px[0])
    page.locator(".deck-tooltip").filter(has_text=ids[0]).wait_for(timeout=10_000)
    clicks, opens = [], []
    for k in range(REPEATS):
        i = clear[k % len(clear)]
        t0 = time.perf_counter()
        page.mouse.click(*px[i])
        page.get_by_role("heading", name=ids[i], exact=True).wait_for()
        clicks.append(time.perf_counter() - t0)
        _settle(page, 300)
        t0 = time.perf_counter()
        page.mouse.click(*px[i])  # again: dropped from the selection
        page.get_by_text("Click circles on the map").wait_for()
        clicks.append(time.perf_counter() - t0)
        _settle(page, 300)
    page.mouse.click(*px[clear[0]])
    page.get_by_role("heading", name=ids[clear[0]], exact=True).wait_for()
    _settle(page, 300)
    page.mouse.click(*px[clear[1]])
    page.get_by_role("heading", name="2 leaks selected").wait_for()
    _settle(page, 1200)
    page.mouse.move(box["x"] + 8, box["y"] + box["height"] - 8)
    _shot(page, shots, "map")
    for k in range(REPEATS):
        if k:
            _goto(page, "Map")
            page.locator("[data-testid=stDeckGlJsonChart] canvas").first.wait_for()
            _settle(page, 500)
            i = clear[(k + 2) % len(clear)]
            page.mouse.click(*px[i])
            page.get_by_role("heading", name=ids[i], exact=True).wait_for()
            _settle(page, 300)
        else:
            i = clear[0]
        t0 = time.perf_counter()
        page.get_by_role("link", name="Open leak detail").click()
        page.get_by_role("heading", name=f"Leak {ids[i]}").wait_for(timeout=10_000)
        page.get_by_test_id("stMetric").first.wait_for()
        opens.append(time.perf_counter() - t0)
        assert f"leak={ids[i]}" in page.url
        _settle(page, 300)
    print(f"\n{_report('map click → panel', clicks)}\n{_report('open leak detail', opens)}  ({_load()})")
    _on_time(_pct(clicks, 95) < INTERACTION_P95_S and _pct(opens, 95) < INTERACTION_P95_S,
             f"map click p95 {_pct(clicks, 95):.2f} s, open leak p95 {_pct(opens, 95):.2f} s "
             f"(target {INTERACTION_P95_S} s)")


def test_map_tooltip_stays_inside_the_map(page, server):
    _goto(page, "Map")
    page.locator("[data-testid=stDeckGlJsonChart] canvas").first.wait_for()
    _settle(page, 1000)
    shown, px, clear, box = _map_pixels(page, server[1])
    right = max(clear, key=lambda i: px[i][0])  # the leak nearest the right edge
    page.mouse.move(*px[right])
    tip = page.locator(".deck-tooltip").filter(has_text=shown["leak_id"].iloc[right])
    tip.wait_for(timeout=10_000)
    page.wait_for_timeout(300)
    t = tip.bounding_box()
    assert t["x"] >= box["x"] - 1 and t["x"] + t["width"] <= box["x"] + box["width"] + 1, (t, box)


def test_leak_detail_records_a_note(page, shots):
    _goto(page, "Leak detail")
    page.get_by_label("Add a note").fill("Operator says the thief hatch gasket was replaced on Monday.")
    page.get_by_role("button", name="Add note").click()
    page.get_by_text("Note recorded in the audit trail").wait_for()
    _settle(page)
    page.locator(".js-plotly-plot").nth(1).wait_for()
    page.wait_for_timeout(600)
    _shot(page, shots, "leak")


def test_rankings_review_override_and_one_click_open(page, shots):
    _goto(page, "Rankings")
    page.get_by_role("tab", name="Since last review").click()
    page.get_by_role("button", name="Mark as reviewed").click()
    page.get_by_text("marked as reviewed").first.wait_for()
    _settle(page)
    page.get_by_role("tab", name=re.compile(r"^Overrides")).click()
    page.get_by_test_id("stSelectbox").filter(has_text="Leak").first.click()
    page.get_by_role("option").nth(4).click()  # the fifth-ranked leak goes first
    page.get_by_label("Reason").fill("operator reports a tank blowdown at this site")
    page.get_by_role("button", name="Record override").click()
    page.get_by_text(re.compile(r"moved from #5 to #1")).wait_for()
    _settle(page)
    page.get_by_role("tab", name="Ranking", exact=True).click()
    page.wait_for_timeout(800)
    _shot(page, shots, "rankings")
    grid = page.get_by_test_id("stDataFrame").first
    fits = grid.evaluate("(g) => { const c = g.querySelector('canvas'); const w = getComputedStyle("
                         "g.querySelector('.stDataFrameGlideDataEditor')).getPropertyValue('--wmyidgi-0');"
                         " return [c.clientWidth, w]; }")
    print(f"\nrankings grid: canvas {fits[0]} px, columns {fits[1]}")
    box = grid.bounding_box()
    t0 = time.perf_counter()
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)  # the first row's box: one click opens it
    page.get_by_role("heading", name=re.compile(r"^Leak L\d{6}$")).wait_for()
    print(f"rankings row click → leak page {time.perf_counter() - t0:.2f} s")
    _goto(page, "Rankings")
    page.get_by_role("tab", name="Since last review").click()
    page.wait_for_timeout(800)
    _shot(page, shots, "rankings_review")


def test_dispatch_downloads_are_the_command_lines_files(page, server, shots, tmp_path):
    _goto(page, "Dispatch")
    page.locator("[data-testid=stDeckGlJsonChart] canvas").first.wait_for()
    _settle(page, 1200)
    _shot(page, shots, "dispatch")
    got = {}
    for label, ext in (("CSV", "csv"), ("GeoJSON", "geojson"), ("KML", "kml"), ("Work orders (JSON)", "json")):
        with page.expect_download() as dl:
            page.get_by_test_id("stDownloadButton").get_by_role("button", name=label, exact=True).click()
        got[ext] = Path(dl.value.path()).read_bytes()
    rows = list(csv.reader(io.StringIO(got["csv"].decode("utf-8"))))
    assert rows[0][:len(DISPATCH_EXPORT_COLUMNS)] == list(DISPATCH_EXPORT_COLUMNS)
    assert {"crew", "stop", "leg_km", "home_lat", "home_lon"} <= set(rows[0]) and rows[1][1].startswith("L")
    assert not any(re.search(r"\d\.\d{7,}", c) for r in rows[1:] for c in r)  # rounded, not 15 digits
    env = {**os.environ, "MLPE_DB": str(server[1])}
    for fmt in ("csv", "geojson", "kml"):  # a proposal: the same bytes as `mlpe export dispatch --top K`
        out = tmp_path / f"cli.{fmt}"
        subprocess.run([sys.executable, "-m", "mlpe_core.cli", "export", "dispatch", "-o", str(out), "--format", fmt,
                        "--top", str(len(rows) - 1)], env=env, cwd=ROOT, check=True, capture_output=True)
        assert out.read_bytes() == got[fmt], fmt
    gj = json.loads(got["geojson"])
    assert {f["geometry"]["type"] for f in gj["features"]} == {"Point", "LineString"}
    doc = json.loads(got["json"])
    assert len(doc["work_orders"]) == len(rows) - 1 and all(w["crew"] and w["stop"] for w in doc["work_orders"])


def test_record_outcomes_on_a_phone_is_fast(browser, server, shots):
    """One-handed on 390×844: no sideways scrolling, the empty submit says what to do beside the field, then ten
    visits recorded one after the other, each confirmed in under a second (p95)."""
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                             has_touch=True)
    phone.set_default_timeout(30_000)
    try:
        phone.goto(f"{server[0]}/validation")
        phone.get_by_role("heading", name="Field validation").wait_for()
        _settle(phone)
        overflow = phone.evaluate("document.querySelector('[data-testid=stMain]').scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than the phone"
        for b in ("Record visit",):
            box = phone.get_by_role("button", name=b).bounding_box()
            assert box["height"] >= 40 and box["width"] >= 300, box  # a thumb's target, across the screen
        phone.get_by_role("button", name="Record visit").click()
        phone.get_by_text("Choose what the crew found.").wait_for()
        assert not phone.get_by_text(re.compile(r"is not one of")).count()
        _settle(phone)
        times = []
        for k in range(REPEATS):
            # a fragment's rerun can leave its old form in the page for a moment: act on the newest one
            phone.get_by_test_id("stRadio").get_by_text("Not found", exact=True).last.click()
            phone.get_by_label("Crew").last.fill(f"crew-{k % 3 + 1}")
            if k == 0:
                phone.get_by_label("Photo note (optional)").fill("IMG_0412 hatch")
                phone.get_by_role("heading", name="Record a visit").scroll_into_view_if_needed()
                phone.evaluate("for (const e of [document.scrollingElement, "
                               "document.querySelector('[data-testid=stMain]')]) if (e) e.scrollTo(0, 0)")
                phone.wait_for_timeout(300)
                phone.screenshot(path=str(shots / "validation_phone.png"))
            offered = phone.get_by_role("combobox", name="Leak").last.input_value()  # e.g. "L000140 · #1 medium · …"
            leak = re.search(r"L\d{6}", offered).group()  # its own flash is awaited, not the last one's
            t0 = time.perf_counter()
            phone.get_by_role("button", name="Record visit").last.click()
            try:
                phone.get_by_text(re.compile(rf"^Recorded not found for {leak}\.")).wait_for()
            except Exception as e:  # what the page shows instead, for whoever reads the CI log
                phone.screenshot(path=str(shots / f"validation_phone_failed_{k}.png"), full_page=True)
                raise AssertionError(f"visit {k} ({leak}): no flash; the page reads: "
                                     f"{phone.inner_text('[data-testid=stMain]')[:1500]!r}") from e
            times.append(time.perf_counter() - t0)
            _settle(phone, 300)
        print(f"\n{_report('record outcome (phone)', times)}  ({_load()})")
        vals = store.validations_frame(Session(get_engine(str(server[1]))))
        assert "photo: IMG_0412 hatch" in " ".join(vals["notes"].dropna())
        _on_time(_pct(times, 95) < INTERACTION_P95_S,
                 f"record outcome p95 {_pct(times, 95):.2f} s (target {INTERACTION_P95_S} s)")
    finally:
        phone.close()


def test_sign_in_once_a_user_exists(browser, server, shots):
    """Last on this store: the first user ends open mode."""
    engine = get_engine(str(server[1]))
    with Session(engine) as s:
        auth.add_user(s, "test", "ada", "admin", "admin-pass-1")
        auth.add_user(s, "ada", "sam", "supervisor", "supervisor-pass-1")
    engine.dispose()
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.set_default_timeout(30_000)
    try:
        pg.goto(server[0])
        pg.get_by_role("heading", name="Sign in").wait_for()
        assert not pg.get_by_role("heading", name="Leak map").count()
        pg.get_by_label("User name").fill("sam")
        pg.get_by_role("textbox", name="Password").fill("not-his-password")
        pg.get_by_role("button", name="Sign in").click()
        pg.get_by_text("Wrong user name or password").wait_for()
        _shot(pg, shots, "signin")
        pg.get_by_role("textbox", name="Password").fill("supervisor-pass-1")
        pg.get_by_role("button", name="Sign in").click()
        pg.get_by_role("heading", name="Leak map").wait_for()
        pg.get_by_test_id("stSidebar").get_by_text("supervisor").first.wait_for(state="attached")
        assert not pg.get_by_text("Open mode").count()
    finally:
        pg.close()


# --------------------------------------------------------------------------------------------- 50,000 leaks


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    """The app over a store of 50,000 scored leaks (built with bulk inserts, as tests/test_app.py does)."""
    if not CHROMIUM:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    from test_app import _big_store

    db = tmp_path_factory.mktemp("big") / "big.db"
    _big_store(db, 50_000)
    yield from _serve(db)


def test_a_map_of_50000_leaks_is_interactive_in_two_seconds(browser, big_server, shots):
    """Time from opening the map (caches warm: a second visitor) until the map draws and a hover on it (a hexagon
    or one of the leaks drawn over them) answers with its tooltip; the first visit (cold caches) is printed too."""
    def visit() -> float:
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(120_000)
        try:
            t0 = time.perf_counter()
            pg.goto(big_server)
            pg.locator("[data-testid=stDeckGlJsonChart] canvas").first.wait_for()
            pg.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
            box = pg.get_by_test_id("stDeckGlJsonChart").bounding_box()
            for dx in range(0, 200, 20):  # hover until something answers (a hexagon or a leak): it is interactive
                pg.mouse.move(box["x"] + box["width"] / 2 + dx, box["y"] + box["height"] / 2)
                try:
                    pg.locator(".deck-tooltip").filter(has_text=re.compile(r"leaks? here|L\d{6} #")).wait_for(
                        timeout=400)
                    break
                except Exception:  # noqa: BLE001 - nothing under this pixel: the next one
                    continue
            took = time.perf_counter() - t0
            pg.mouse.move(5, 890)
            pg.wait_for_timeout(500)
            pg.screenshot(path=str(shots / "map_50k.png"))
            return took
        finally:
            pg.close()

    cold = visit()
    warm = [visit() for _ in range(3)]
    print(f"\n50,000 leaks: map interactive in {cold:.2f} s cold, {_report('warm', warm)}  ({_load()})")
    mid = float(np.median(warm))
    _on_time(mid < BIG_MAP_S, f"50,000-leak map {mid:.2f} s (target {BIG_MAP_S} s)")
