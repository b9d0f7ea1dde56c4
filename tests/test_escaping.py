"""Finding 7 of issue 16: values from files and people are text, never Markdown or HTML.

A hostile asset id, note, actor and file name reach the Leak page through the store exactly as an ingest
would leave them; the page must show them escaped (the browser fetched the image before).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest_app import MAIN
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from mlpe_core import store
from mlpe_core.store.db import get_engine
from mlpe_core.store.models import Detection, Leak, LeakRank
from mlpe_core.text import html, md

EVIL_ASSET = "![x](http://host/x.png)"
EVIL_NOTE = "<img src=http://host/y.png> :red[alarm] $x^2$ [click](javascript:alert(1))"
T = pd.Timestamp("2025-03-03T10:00:00Z").to_pydatetime()


@pytest.mark.parametrize("value", [EVIL_ASSET, EVIL_NOTE, "**bold** _it_ `code`", "# heading\n- item", "a\\b"])
def test_md_leaves_no_markdown_syntax(value):
    out = md(value)
    assert "\n" not in out and "<" not in out
    for sym in "[]*_`#:$":
        assert all(out[i - 1] == "\\" for i, ch in enumerate(out) if ch == sym), (value, out)


def test_html_escapes_markup():
    assert html('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"


def test_leak_page_shows_a_hostile_asset_id_as_text(tmp_path, monkeypatch):
    db = tmp_path / "evil.db"
    eng = get_engine(str(db))
    with Session(eng) as s:
        s.add(Leak(leak_id="L000001", latitude=32, longitude=-102, radius_m=5, n_detections=1, n_sources=1,
                   source_types="ogi", first_seen=T, last_seen=T, asset_id=EVIL_ASSET, risk_band="HIGH",
                   p_real=0.5, est_rate_kg_h=3.0, priority_score=1.5, top_reasons=f"near {EVIL_ASSET}",
                   asset_candidates=json.dumps([{"asset_id": EVIL_ASSET, "p": 1.0, "distance_m": 3.0}])))
        s.add(LeakRank(leak_id="L000001", rank=1))
        s.add(Detection(detection_id="d1", source_type="ogi", source_name="OGI", observed_at=T, latitude=32,
                        longitude=-102, location_uncertainty_m=3, asset_id=EVIL_ASSET, leak_id="L000001"))
        s.commit()
        store.add_note(s, "mallory_x", "L000001", EVIL_NOTE)
    eng.dispose()
    monkeypatch.setenv("MLPE_DB", str(db))
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.query_params.update(leak="L000001")
    at.run()
    at.switch_page("../pages/leak.py").run()
    assert not at.exception, [e.message for e in at.exception]
    shown = [str(e.value) for kind in ("markdown", "caption", "info") for e in getattr(at, kind)]
    everything = " ".join(shown)
    assert md(EVIL_ASSET) in everything  # the asset id and the reasons, escaped
    assert md(EVIL_NOTE) in everything  # the note, escaped
    assert EVIL_ASSET not in everything and "<img" not in everything and ":red[" not in everything
