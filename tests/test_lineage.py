"""A leak's story reaches back to the file rows that created it and forward to the field visit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import Session, select

from mlpe_core.ingest import ingest_file
from mlpe_core.lineage import leak_story
from mlpe_core.outcomes import record_validations
from mlpe_core.pipeline import run_fuse, run_score
from mlpe_core.store import audit_events
from mlpe_core.store.db import get_engine
from mlpe_core.store.models import Leak


def test_story_from_file_row_to_visit(tmp_path: Path) -> None:
    f = tmp_path / "feed.csv"
    pd.DataFrame({
        "detection_id": ["a", "b", "c"], "source_type": ["aerial", "aerial", "satellite"],
        "source_name": ["Air", "Air", "Sat"],
        "observed_at": ["2026-06-01T10:00:00Z", "2026-06-02T10:00:00Z", "2026-06-03T10:00:00Z"],
        "latitude": [32.0, 32.00001, 32.00002], "longitude": [-102.0, -102.0, -102.0],
        "location_uncertainty_m": [5, 5, 30], "rate_kg_h": [50, 60, ""],
    }).to_csv(f, index=False)
    with Session(get_engine("sqlite://")) as s:
        ingest_file(s, f, user="ana")
        run_fuse(s, user="ana")
        run_score(s, user="ana")
        leak_id = s.exec(select(Leak.leak_id)).first()
        record_validations(s, pd.DataFrame([{"leak_id": leak_id, "visited_at": pd.Timestamp("2026-06-05", tz="UTC"),
                                             "outcome": "confirmed", "measured_rate_kg_h": 55.0, "component": "valve",
                                             "repaired_at": pd.NaT, "crew": "c1", "notes": None}]), user="fran")
        story = leak_story(s, leak_id)
        dets = story[story["kind"] == "detection"]
        assert len(dets) == 3
        assert set(dets["source"].str.extract(r"row (\d+)")[0].astype(int)) == {2, 3, 4}
        assert dets["source"].str.contains("feed.csv").all()
        assert (dets["who"] == "ana").all()
        assert "rate not quantified" in dets["what"].iloc[2]
        visit = story[story["kind"] == "field visit"]
        assert len(visit) == 1 and "Confirmed leaking, measured 55.0 kg/h" in visit["what"].iloc[0]
        assert story["at"].is_monotonic_increasing
        assert (audit_events(s, actor="fran")["action"] == "validation").any()
        with pytest.raises(KeyError):
            leak_story(s, "L999999")
