"""Issue 21 measured on the real Carbon Mapper Permian plume list (992 plumes), loaded as a new user would with
the command line: without notifications no leak has a legal deadline and HIGH holds at most a fifth of the
leaks; with EPA notifications for five of its plumes exactly those five leaks carry the 5/15-day clocks, dated
from receipt.

The file lives in ../shared/data/real and is never copied into the repository: the tests skip with a reason
when it is absent.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import REAL_DATA
from sqlmodel import Session

from mlpe_core import store
from mlpe_core.cli import main
from mlpe_core.comply import obligation_queue
from mlpe_core.store.db import backup, get_engine

CM_FILE = REAL_DATA / "carbonmapper_permian_plumes.csv"

pytestmark = pytest.mark.skipif(not CM_FILE.exists(), reason=f"real plume data not found in {REAL_DATA} "
                                                             "(../shared is absent)")


def _run(db, *args) -> None:
    assert main(["--db", str(db), *map(str, args)]) == 0, args


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """ingest --format auto, fuse, score: the store path and the leaks as scored."""
    db = tmp_path_factory.mktemp("cm") / "mlpe.db"
    _run(db, "ingest", CM_FILE, "--format", "auto")
    _run(db, "fuse")
    _run(db, "score")
    return db


def _frames(db):
    eng = get_engine(str(db))
    with Session(eng) as s:
        leaks, dets = store.leaks_frame(s), store.detections_frame(s)
        ob, watch = obligation_queue(s, as_of=dets["observed_at"].max())
    eng.dispose()
    return leaks, dets, ob, watch


def test_without_notifications_no_leak_has_a_legal_deadline_and_high_is_at_most_a_fifth(loaded):
    leaks, dets, ob, watch = _frames(loaded)
    assert (len(dets), len(leaks)) == (992, 700)
    assert leaks["due_by"].isna().all() and leaks["due_rule"].isna().all()
    assert ob.empty  # no obligation of any kind: a plume is not a notice
    high = int((leaks["risk_band"] == "HIGH").sum())
    assert high <= 0.20 * len(leaks), f"{high} of {len(leaks)} leaks HIGH"
    assert not leaks["band_reason"].str.contains("because").any()  # no HIGH is owed to a deadline
    # the plumes of 100 kg/h or more seen in the last 90 days are likely notifications, on their own list
    assert len(watch) > 0 and set(watch["label"]) == {"likely notification"} and (watch["rate_kg_h"] >= 100).all()


def test_notifications_for_five_plumes_put_the_clocks_on_exactly_those_five_leaks(loaded, tmp_path):
    leaks, dets, _, _ = _frames(loaded)
    # five real plumes of at least 100 kg/h in five different leaks, picked from the file as it is today
    cand = dets[dets["rate_kg_h"] >= 100].sort_values("detection_id").drop_duplicates("leak_id").head(5)
    assert len(cand) == 5
    received = cand["observed_at"] + pd.Timedelta(days=3, hours=2)
    notes = pd.DataFrame({"notification_id": [f"EPA-SEP-{i + 1:03d}" for i in range(5)],
                          "received_at": received.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
                          "program": "ooooB_super_emitter", "notifier": "EPA",
                          "detection_ref": cand["detection_id"].to_numpy(), "latitude": "", "longitude": "",
                          "rate_kg_h": cand["rate_kg_h"].round(1).to_numpy(), "notes": ""})
    f = tmp_path / "notifications.csv"
    notes.to_csv(f, index=False)
    db = tmp_path / "copy.db"
    backup(str(loaded), db)  # a consistent copy (the store runs in WAL mode)
    _run(db, "notifications", "import", f)
    _run(db, "score")
    leaks, dets, ob, watch = _frames(db)
    expected = dict(zip(cand["leak_id"], received, strict=True))
    dated = leaks[leaks["due_by"].notna()].set_index("leak_id")
    assert sorted(dated.index) == sorted(expected)
    for lk, t in expected.items():
        assert dated.loc[lk, "due_by"] == t + pd.Timedelta(days=5)
        assert dated.loc[lk, "due_rule"] == "ooooB_super_emitter:investigate"
    got = {(r.leak_id, r.action): (r.due_by, r.started_ref) for r in ob.itertuples()}
    ids = dict(zip(cand["leak_id"], notes["notification_id"], strict=True))
    assert got == {**{(lk, "investigate"): (t + pd.Timedelta(days=5), ids[lk]) for lk, t in expected.items()},
                   **{(lk, "report"): (t + pd.Timedelta(days=15), ids[lk]) for lk, t in expected.items()}}
    assert not set(expected) & set(watch["leak_id"])  # notified: off the watch list
    assert int((leaks["risk_band"] == "HIGH").sum()) <= 0.20 * len(leaks) + 5
