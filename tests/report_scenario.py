"""A simulated operator-quarter for the report and site tests (imported, not a pytest conftest).

The demo basin (``pipeline.run_demo``) ending 2026-10-20, so the third quarter of 2026 lies inside it, plus what a
quarter of an operator's compliance also holds: a super-emitter notice answered late, an OGI find whose repair was
delayed with a reason, and a fence-line monitor whose 7-day average crossed the action level and was not answered.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlpe_core import desk, pipeline, store
from mlpe_core.ingest import ingest_frame, to_canonical

END = "2026-10-20"
OPERATOR = "Op North"
QUARTER = ("2026-07-01", "2026-09-30")
LATE_NOTICE = "EPA-SEP-TEST-LATE"


def build(db: Path) -> dict:
    """Fill ``db``; returns the ids the tests look for."""
    eng = desk.engine(str(db))
    out: dict = {}
    with desk.open_session(eng) as s:
        pipeline.run_demo(s, seed=2, n_assets=300, end=END)
        lk = desk.ranking(s)
        mine = lk[(lk["operator"] == OPERATOR) & lk["status"].eq("open")].sort_values("leak_id")
        vals = store.validations_frame(s)
        notes = store.notifications_frame(s)
        free = mine[~mine["leak_id"].isin(set(vals["leak_id"]) | set(notes["leak_id"].dropna()))]
        late_leak, ldar_leak = free["leak_id"].iloc[0], free["leak_id"].iloc[1]
        det = store.detections_frame(s, late_leak).iloc[0]
        f = db.parent / "notice.csv"
        pd.DataFrame([{"notification_id": LATE_NOTICE, "received_at": "2026-08-10T09:00:00Z",
                       "program": "ooooB_super_emitter", "notifier": "EPA", "detection_ref": det["detection_id"],
                       "latitude": "", "longitude": "", "rate_kg_h": "150", "notes": "test"}]).to_csv(f, index=False)
        desk.import_notifications(s, "tester", f)
        rows = pd.DataFrame([
            {"leak_id": late_leak, "visited_at": "2026-08-20T10:00:00Z", "outcome": "confirmed",
             "repaired_at": "2026-08-21T12:00:00Z", "crew": "crew-1"},
            {"leak_id": ldar_leak, "visited_at": "2026-08-05T10:00:00Z", "outcome": "confirmed", "found_by": "ogi",
             "crew": "crew-2"},
            {"leak_id": ldar_leak, "visited_at": "2026-08-12T10:00:00Z", "outcome": "confirmed",
             "repair_attempted_at": "2026-08-12T11:00:00Z", "delay_reason": "needs a compressor shutdown",
             "crew": "crew-2"}]).fillna("")
        r = desk.record_outcomes(s, "tester", rows.astype(str))
        assert r["recorded"] == 3, r
        site = store.assets_frame(s)
        site = site[(site["operator"] == OPERATOR) & ~site["asset_id"].isin(set(lk["asset_id"].dropna()))]
        site = site.sort_values("asset_id").iloc[0]
        t = pd.date_range("2026-09-01T00:00Z", periods=72, freq="h")
        cms = pd.DataFrame({"detection_id": [f"TCMS-{i:03d}" for i in range(len(t))],
                            "source_type": "continuous_monitor", "source_name": "TestCMS",
                            "observed_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "latitude": str(site["latitude"]),
                            "longitude": str(site["longitude"]), "location_uncertainty_m": "30", "rate_kg_h": "40",
                            "rate_uncertainty_kg_h": "", "confidence": "0.9", "wind_speed_m_s": "",
                            "asset_id": site["asset_id"], "event_type": "alarm"})
        ingest_frame(s, to_canonical(cms, "canonical", None, "testcms.csv"), "testcms.csv", user="tester")
        pipeline.run_fuse(s, user="tester")
        pipeline.run_score(s, as_of=pd.Timestamp(END, tz="UTC"), user="tester")
        out.update(late_leak=late_leak, ldar_leak=ldar_leak, cms_site=site["asset_id"])
    eng.dispose()
    return out
