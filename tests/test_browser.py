"""The real app in headless Chromium on the demo basin: every page through the sidebar with its load time,
each page's main action (select leaks on the map, add a note, review the ranking, download today's dispatch list,
record a validation on a phone), sign-in once a user exists, and the screenshots in docs/screenshots/."""

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

import pytest
from conftest_app import ROOT, fill_demo
from sqlmodel import Session

from mlpe_core import auth, store
from mlpe_core.schema import DISPATCH_EXPORT_COLUMNS
from mlpe_core.store.db import get_engine

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
LOAD_LIMIT_S = 2.0
# sidebar label -> (screenshot name, heading that proves the page rendered, another text that must be visible)
PAGES = {
    "Rankings": ("rankings", "Rankings", "Search leak or asset id"),
    "Obligations": ("obligations", "Obligations", "Independent of the methane ranking"),
    "Site": ("site", "Site", "Estimated emissions through time"),
    "Operator": ("operator", "Operator", "The regulator's report"),
    "Leak detail": ("leak", "Leak L0", "What moved the score"),
    "Dispatch": ("dispatch", "Dispatch", "Stops (K)"),
    "Field validation": ("validation", "Field validation", "Record a visit"),
    "Upload": ("upload", "Upload detections", "Ingest history"),
    "Audit trail": ("audit", "Audit trail", "A leak's full story"),
    "Map": ("map", "Leak map", "Or pick a leak by id"),
    "Model": ("model", "Model", "Model versions"),  # last: it trains, which may re-score every leak
}
TIMES: dict[str, list[float]] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port, on a store holding the demo basin: (url, store path)."""
    if not CHROMIUM:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    db = tmp_path_factory.mktemp("browser") / "mlpe.db"
    fill_demo(db)
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
        yield url, db
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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


def _goto(pg, label: str, heading: str) -> float:
    """Click the page in the sidebar; seconds until its heading shows."""
    t0 = time.perf_counter()
    pg.get_by_test_id("stSidebarNav").get_by_role("link", name=label, exact=True).click()
    pg.get_by_role("heading", name=heading).first.wait_for()
    took = time.perf_counter() - t0
    _settle(pg)
    return took


def _shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.mouse.move(5, 890)  # no hover tooltip in the picture
    pg.wait_for_timeout(300)
    pg.screenshot(path=str(SHOTS / f"{name}.png"))


def _leaks(db):
    engine = get_engine(str(db))
    with Session(engine) as s:
        df = store.leaks_frame(s)
    engine.dispose()
    return df


def _drawn(pg, name: str) -> None:
    """Wait for what a page draws after its heading: the grid, the maps, the charts."""
    if name == "rankings":  # the grid draws on a canvas; its cells are also in the DOM for screen readers
        ids = pg.get_by_test_id("stDataFrame").first.get_by_text(re.compile(r"^L\d{6}$"))
        ids.first.wait_for(state="attached", timeout=15_000)
    if name in ("map", "dispatch"):
        pg.locator("[data-testid=stDeckGlJsonChart] canvas").first.wait_for()
    if name in ("leak", "site"):
        pg.locator(".js-plotly-plot").nth(1).wait_for()


def test_every_page_renders_from_the_sidebar_in_under_two_seconds(page):
    """Each page twice through the sidebar: the first visit fills the caches, the second is what people get all
    day. Both are printed; the second must be under LOAD_LIMIT_S."""
    for label, (name, heading, text) in PAGES.items():
        TIMES[label] = [_goto(page, label, heading)]
        # the heading can draw before the rest of the run on a busy machine: wait for the text, then check it shows
        page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=30_000)
        assert page.get_by_text(text, exact=False).first.is_visible(), f"{label}: '{text}' not visible"
        assert not page.get_by_test_id("stException").count(), f"{label}: exception shown"
        _drawn(page, name)
        if name == "model":  # train from the validations the demo recorded, then show the hold-out check
            page.get_by_role("button", name="Train now").click()
            decision = re.compile(r"(promoted|kept current|not trained|not promoted):")  # run_train's decision
            page.get_by_test_id("stAlert").filter(has_text=decision).first.wait_for(timeout=60_000)
            _settle(page)
        if name not in ("map", "leak", "dispatch", "rankings"):  # those are shot after their main action below
            _shot(page, name)
    for label, (name, heading, _) in PAGES.items():
        TIMES[label].append(_goto(page, label, heading))
        _drawn(page, name)  # as a user would: the next click comes once maps and charts are drawn
    print("\npage load (sidebar click → heading visible), first visit / cached:")
    for label, (first, again) in TIMES.items():
        print(f"  {label:17s} {first:5.2f} s / {again:5.2f} s")
    slow = {k: round(v[1], 2) for k, v in TIMES.items() if v[1] > LOAD_LIMIT_S}
    assert not slow, f"pages slower than {LOAD_LIMIT_S} s: {slow}"


def _pixel(view: dict, box: dict, lat: float, lon: float) -> tuple[float, float]:
    """Where deck.gl draws (lat, lon) in a chart of this bounding box (Web Mercator, 512-px world at zoom 0)."""
    scale = 512 * 2 ** view["zoom"] / (2 * math.pi)

    def merc(la, lo):
        return scale * math.radians(lo), scale * math.log(math.tan(math.pi / 4 + math.radians(la) / 2))

    x0, y0 = merc(view["latitude"], view["longitude"])
    x, y = merc(lat, lon)
    return box["x"] + box["width"] / 2 + (x - x0), box["y"] + box["height"] / 2 - (y - y0)


def test_select_leaks_on_the_map_and_open_one(page, server):
    from app.common import view_for

    _goto(page, "Map", "Leak map")
    shown = _leaks(server[1])
    shown = shown[shown["status"].isin(["open", "dispatched"])].sort_values("rank")
    v = view_for(shown, 850, 600)
    view = {"latitude": v.latitude, "longitude": v.longitude, "zoom": v.zoom}
    box = page.get_by_test_id("stDeckGlJsonChart").bounding_box()
    px = [_pixel(view, box, r.latitude, r.longitude) for r in shown.itertuples()]
    first = 0  # the best-ranked leak is drawn on top; the second pick is clear of every better-ranked circle
    second = next(i for i in range(1, len(px)) if all(math.dist(px[i], px[j]) > 55 for j in range(i)))
    page.mouse.move(*px[first])
    page.locator(".deck-tooltip").filter(has_text=shown["leak_id"].iloc[first]).wait_for(timeout=10_000)
    page.mouse.click(*px[first])
    page.get_by_role("heading", name=shown["leak_id"].iloc[first], exact=True).wait_for()
    _settle(page)
    page.mouse.click(*px[second])
    page.get_by_role("heading", name="2 leaks selected").wait_for()
    _settle(page, 1200)
    page.mouse.move(box["x"] + 8, box["y"] + box["height"] - 8)  # off every leak: no hover highlight left
    _shot(page, "map")
    page.get_by_role("button", name="Open leak detail").click()
    page.get_by_role("heading", name=f"Leak {shown['leak_id'].iloc[first]}").wait_for()
    assert f"leak={shown['leak_id'].iloc[first]}" in page.url


def test_leak_detail_records_a_note(page):
    _goto(page, "Leak detail", "Leak L0")
    page.get_by_label("Add a note").fill("Operator says the thief hatch gasket was replaced on Monday.")
    page.get_by_role("button", name="Add note").click()
    page.get_by_text("Note recorded in the audit trail").wait_for()
    _settle(page)
    page.locator(".js-plotly-plot").nth(1).wait_for()
    page.wait_for_timeout(600)
    _shot(page, "leak")


def test_rankings_review_and_override(page):
    _goto(page, "Rankings", "Rankings")
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
    _shot(page, "rankings")
    page.get_by_role("tab", name="Since last review").click()
    page.wait_for_timeout(800)
    _shot(page, "rankings_review")


def test_dispatch_list_downloads(page):
    _goto(page, "Dispatch", "Dispatch")
    page.locator("[data-testid=stDeckGlJsonChart] canvas").first.wait_for()
    _settle(page, 1200)
    _shot(page, "dispatch")
    with page.expect_download() as dl:
        page.get_by_test_id("stDownloadButton").get_by_role("button", name="CSV", exact=True).click()
    rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8"))))
    assert rows[0][:len(DISPATCH_EXPORT_COLUMNS)] == list(DISPATCH_EXPORT_COLUMNS)
    assert {"crew", "stop", "leg_km"} <= set(rows[0]) and len(rows) > 1 and rows[1][1].startswith("L")
    with page.expect_download() as dl:
        page.get_by_test_id("stDownloadButton").get_by_role("button", name="Work orders (JSON)").click()
    doc = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
    assert len(doc["work_orders"]) == len(rows) - 1 and all(w["crew"] and w["stop"] for w in doc["work_orders"])


def test_record_a_validation_on_a_phone(browser, server):
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                             has_touch=True)
    phone.set_default_timeout(30_000)
    try:
        t0 = time.perf_counter()
        phone.goto(f"{server[0]}/validation")
        phone.get_by_role("heading", name="Field validation").wait_for()
        print(f"\nphone: Field validation opened in {time.perf_counter() - t0:.2f} s")
        _settle(phone)
        overflow = phone.evaluate("document.querySelector('[data-testid=stMain]').scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than the phone"
        phone.get_by_text("not found", exact=True).click()
        phone.get_by_label("Crew").fill("crew-2")
        phone.get_by_label("Photo note (optional)").fill("IMG_0412 hatch")
        phone.get_by_role("heading", name="Record a visit").scroll_into_view_if_needed()
        phone.evaluate("for (const e of [document.scrollingElement, document.querySelector('[data-testid=stMain]')])"
                       " if (e) e.scrollTo(0, 0)")
        phone.wait_for_timeout(300)
        phone.screenshot(path=str(SHOTS / "validation_phone.png"))
        phone.get_by_role("button", name="Record visit").click()
        phone.get_by_text(re.compile(r"^Recorded not found for L\d{6}")).wait_for()
        vals = store.validations_frame(Session(get_engine(str(server[1]))))
        assert vals["crew"].iloc[-1] == "crew-2" and "photo: IMG_0412 hatch" in vals["notes"].iloc[-1]
    finally:
        phone.close()


def test_sign_in_once_a_user_exists(browser, server):
    """Last: the first user ends open mode for this store."""
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
        _shot(pg, "signin")
        pg.get_by_role("textbox", name="Password").fill("supervisor-pass-1")
        pg.get_by_role("button", name="Sign in").click()
        pg.get_by_role("heading", name="Leak map").wait_for()
        pg.get_by_test_id("stSidebar").get_by_text("supervisor").first.wait_for(state="attached")
        assert not pg.get_by_text("Open mode").count()
    finally:
        pg.close()
