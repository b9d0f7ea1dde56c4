"""One decision, every face (issue 15): one scenario driven through the CLI, the API and the app, then the same
lists read back from all three.

A supervisor overrides a rank from the command line, an analyst marks a leak for dispatch through the API and a
field lead records an outcome on the phone form; afterwards the ranking, the leaks to visit next and the day's
plan are the same whichever face is asked, the override and the mark are honoured and the visited leak is gone.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest_app import MAIN, ROOT, fill_store

pytest.importorskip("streamlit")
from fastapi.testclient import TestClient  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from mlpe_core import desk  # noqa: E402
from mlpe_core.api import create_app  # noqa: E402

TOP = 20


def mlpe(db, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLPE_DB": str(db), "MLPE_USER": "cli-sup"}
    r = subprocess.run([sys.executable, "-m", "mlpe_core.cli", *args], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=90)
    at.run()
    at.switch_page(f"../pages/{name}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    db = tmp_path_factory.mktemp("faces") / "mlpe.db"
    fill_store(db)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPE_DB", str(db))
        eng = desk.engine(str(db))
        with desk.open_session(eng) as s:
            before = desk.ranking(s, desk.LeakFilter(ranked_only=True))
        ids = before["leak_id"].tolist()
        assert len(ids) > 15
        moved, marked, visited = ids[9], ids[-1], ids[1]
        # 1. the CLI: a supervisor puts the tenth leak first
        mlpe(db, "leak", "override", moved, "--rank", "1", "--reason", "operator reports a blowdown there")
        # 2. the API: an analyst marks the last-ranked leak for dispatch
        api = TestClient(create_app(engine=eng))
        r = api.post(f"/leaks/{marked}/events", json={"event": "dispatch"}, headers={"X-MLPE-User": "api-ana"})
        assert r.status_code == 200 and r.json()["status"] == "dispatched", r.text
        # 3. the app: a field lead records that the second leak was confirmed
        at = page("validation")
        at.selectbox(key="val_leak").set_value(visited)
        at.radio(key="val_outcome").set_value("confirmed")
        at.button(key="FormSubmitter:visit-Record visit").click().run()
        assert not at.exception and "Recorded confirmed" in " ".join(str(e.value) for e in at.success)
        yield {"db": db, "engine": eng, "api": api, "moved": moved, "marked": marked, "visited": visited}
        eng.dispose()


def test_the_ranking_is_the_same_on_every_face(scenario):
    db, api = scenario["db"], scenario["api"]
    cli = [r["leak_id"] for r in json.loads(mlpe(db, "ranking", "--json", "--top", str(TOP)).stdout)]
    rest = [r["leak_id"] for r in api.get("/leaks", params={"top": TOP}).json()["leaks"]]
    at = page("rankings")
    app = at.dataframe(key="rank_table").value["leak_id"].tolist()[:TOP]
    assert cli == rest == app
    assert cli[0] == scenario["moved"]  # the override, on every face
    assert scenario["visited"] not in cli  # the outcome re-scored it out of the ranking at once


def test_the_leaks_to_visit_next_and_the_plan_agree(scenario, tmp_path):
    db, api = scenario["db"], scenario["api"]
    mlpe(db, "export", "dispatch", "-o", str(tmp_path / "d.csv"))
    with open(tmp_path / "d.csv", newline="", encoding="utf-8") as fh:
        cli = [r["leak_id"] for r in csv.DictReader(fh)]
    rest = [r["leak_id"] for r in api.get("/dispatch").json()["items"]]
    routed = api.get("/dispatch", params={"routed": "true"}).json()
    at = page("dispatch")
    on_page = sorted(lid for d in at.dataframe if "leak_id" in d.value.columns for lid in d.value["leak_id"])
    assert cli == rest
    assert sorted(cli) == sorted(r["leak_id"] for r in routed["items"] if r["day"] == 1) == on_page
    assert scenario["marked"] in cli and scenario["moved"] in cli and scenario["visited"] not in cli
    with desk.open_session(scenario["engine"]) as s:
        assert desk.export_dispatch(s)["leak_id"].tolist() == cli
        why = desk.dispatch_candidates(s).set_index("leak_id")["why_listed"]
    assert why[scenario["marked"]] == "marked for dispatch"


def test_one_leak_reads_the_same_everywhere(scenario):
    lid = scenario["moved"]
    out = mlpe(scenario["db"], "leak", "show", lid).stdout
    rest = scenario["api"].get(f"/leaks/{lid}").json()["leak"]
    with desk.open_session(scenario["engine"]) as s:
        d = desk.leak_detail(s, lid)["leak"]
    assert rest["rank"] == d["rank"] == 1 and f"rank {d['rank']}," in out
    assert rest["model_rank"] == d["model_rank"] and rest["override_reason"] == d["override_reason"]
    assert pd.notna(d["model_rank"]) and d["model_rank"] > 1
