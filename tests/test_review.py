"""A supervisor's rank override is audited with its reason and moves the leak in the dispatch list."""

from __future__ import annotations

import pandas as pd
import pytest

from mlpe_core.auth import PermissionDenied, add_user
from mlpe_core.desk import export_frame
from mlpe_core.ingest import ingest_file
from mlpe_core.pipeline import run_fuse, run_score
from mlpe_core.review import effective_ranking, rank_overrides, record_override


def _basin(tmp_path, session) -> None:
    f = tmp_path / "d.csv"
    n = 6  # six far-apart aircraft detections: six leaks with distinct rates
    pd.DataFrame({"detection_id": [f"d{i}" for i in range(n)], "source_type": "aerial", "source_name": "Air",
                  "observed_at": "2026-06-01T00:00:00Z", "latitude": [32 + 0.05 * i for i in range(n)],
                  "longitude": -102.0, "location_uncertainty_m": 5, "rate_kg_h": [10 * (i + 1) for i in range(n)],
                  "rate_uncertainty_kg_h": 1.0}).to_csv(f, index=False)
    ingest_file(session, f)
    run_fuse(session)
    run_score(session)


@pytest.mark.parametrize("new_rank", [1, 3])
def test_override_moves_leak_in_dispatch(tmp_path, session, new_rank: int) -> None:
    _basin(tmp_path, session)
    before = export_frame(session, "dispatch", top=6)
    last = before.iloc[-1]["leak_id"]
    record_override(session, "sup", last, before=6, model_rank=6, after=new_rank, reason="community complaint")
    ov = rank_overrides(session)
    assert ov.set_index("leak_id").loc[last, "reason"] == "community complaint"
    after = export_frame(session, "dispatch", top=6)
    assert after["leak_id"].tolist().index(last) == new_rank - 1
    assert sorted(after["leak_id"]) == sorted(before["leak_id"])
    assert after["rank"].tolist() == list(range(1, 7))
    record_override(session, "sup", last, before=new_rank, model_rank=6, after=None, reason="resolved")
    assert export_frame(session, "dispatch", top=6)["leak_id"].tolist() == before["leak_id"].tolist()


def test_override_needs_reason_and_role(tmp_path, session) -> None:
    _basin(tmp_path, session)
    with pytest.raises(ValueError, match="reason"):
        record_override(session, "sup", "L000001", 1, 1, 2, "  ")
    add_user(session, "boot", "root", "admin", "password123")
    add_user(session, "root", "ana", "analyst", "password123")
    with pytest.raises(PermissionDenied):
        record_override(session, "ana", "L000001", 1, 1, 2, "I think so")


@pytest.mark.parametrize("moves, expected", [
    ([], "abcdef"),
    ([("f", 1)], "fabcde"),
    ([("e", 1), ("b", 2)], "ebacdf"),  # a leak moved to #2 is #2, also after another was moved to #1
    ([("e", 1), ("f", 2), ("a", 3)], "efabcd"),
    ([("a", 6)], "bcdefa"),
    ([("a", 99)], "bcdefa"),  # past the end: last
    ([("c", 2), ("e", 2)], "aecbdf"),  # two moves to one rank: the later takes it, the earlier follows
    ([("a", 1)], "abcdef"),
])
def test_effective_ranking_puts_each_moved_leak_at_its_rank(moves, expected) -> None:
    leaks = pd.DataFrame({"leak_id": list("abcdef"), "rank": [1, 2, 3, 4, 5, 6]})
    t0 = pd.Timestamp("2026-12-01", tz="UTC")
    ov = pd.DataFrame({"leak_id": [m[0] for m in moves], "override": [m[1] for m in moves],
                       "reason": ["x"] * len(moves), "by": ["s"] * len(moves),
                       "at": [t0 + pd.Timedelta(minutes=i) for i in range(len(moves))]})
    out = effective_ranking(leaks, ov)
    assert "".join(out["leak_id"]) == expected
    assert out["eff_rank"].tolist() == list(range(1, 7))
    assert leaks["rank"].tolist() == [1, 2, 3, 4, 5, 6]  # input not modified


def test_effective_ranking_keeps_model_order_around_override() -> None:
    leaks = pd.DataFrame({"leak_id": list("abcd"), "rank": [1, 2, 3, 4]})
    ov = pd.DataFrame({"leak_id": ["d"], "override": [2], "reason": ["x"], "by": ["s"], "at": [pd.Timestamp.now()]})
    assert effective_ranking(leaks, ov)["leak_id"].tolist() == ["a", "d", "b", "c"]
    assert leaks["rank"].tolist() == [1, 2, 3, 4]  # input not modified
