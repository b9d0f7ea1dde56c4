"""Issue 18: a watcher keeps every detection's fusion and scoring columns between cycles (``store.DetectionMemory``)
and what fusion derives from them (``IncrementalFuser(memory=...)``), so a cycle reads and derives only what is new.
Keeping them must never change an answer: the memory is the store's rows or it is read again, and a fusion or a
cycle with it gives exactly what one without it gives."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlmodel import Session

from mlpe_core import desk, pipeline, store
from mlpe_core.frames import distinct, isin
from mlpe_core.fuse import IncrementalFuser, LeakFuser


def _fresh(session: Session) -> pd.DataFrame:
    return store.detections_frame(session, columns=pipeline.MEMORY_COLUMNS)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def _new_file(session: Session, path, n: int, seed: int) -> None:
    """``n`` new sightings near stored detections (same sensors and sites) and one far new source."""
    d = store.detections_frame(session)
    pick = d.sample(n, random_state=seed)
    t = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    rows = pd.DataFrame({
        "detection_id": [f"MEM{seed}-{i}" for i in range(n)], "source_type": pick["source_type"].to_numpy(),
        "source_name": pick["source_name"].to_numpy(), "observed_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "latitude": pick["latitude"].to_numpy() + 1e-5, "longitude": pick["longitude"].to_numpy(),
        "location_uncertainty_m": pick["location_uncertainty_m"].to_numpy(),
        "rate_kg_h": pick["rate_kg_h"].fillna(3.0).to_numpy(), "asset_id": pick["asset_id"].to_numpy()})
    far = rows.iloc[[0]].assign(detection_id=f"MEM{seed}-far", source_type="aerial", source_name="AirLidar",
                                latitude=rows["latitude"].iloc[0] + 0.4, location_uncertainty_m=5.0, asset_id=None)
    pd.concat([rows, far]).to_csv(path, index=False)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "demo.db"
    eng = desk.engine(str(path))
    with Session(eng) as s:
        desk.demo(s, "demo", seed=2, n_assets=500)
    eng.dispose()
    return path


def test_the_memory_reads_only_new_rows_and_stays_the_stores(demo_db, tmp_path):
    db = tmp_path / "m.db"
    shutil.copy(demo_db, db)
    eng = desk.engine(str(db))
    mem = desk.detection_memory()
    with Session(eng) as s:
        desk.warm_up(s, mem)
        assert (mem.full_reads, mem.tail_reads) == (1, 0) and mem.rows == len(_fresh(s))
        assert mem.derived.get("store_geometry", {}).get("n") == mem.rows  # fusion's geometry is ready too
        for k in range(2):  # watcher cycles: only the new rows are read
            _new_file(s, tmp_path / f"n{k}.csv", 3, k)
            desk.ingest(s, "system", [tmp_path / f"n{k}.csv"])
            tails = mem.tail_reads
            out = desk.process_new(s, "system", memory=mem)
            assert out["fuse"]["mode"] == "incremental", out["fuse"].get("reason")
            assert out["score"]["mode"] == "incremental"
            assert (mem.full_reads, mem.tail_reads) == (1, tails + 1)
            _same(mem.frame(s, store.fusion_generation(s)), _fresh(s))
        # another process fused meanwhile (the generation moved): the next frame is read in full, and right
        _new_file(s, tmp_path / "other.csv", 4, 9)
        desk.ingest(s, "system", [tmp_path / "other.csv"])
        desk.fuse(s, "system")
        before = mem.full_reads
        _same(mem.frame(s, store.fusion_generation(s)), _fresh(s))
        assert mem.full_reads == before + 1
        # a row gone (the count no longer adds up): read in full
        s.execute(text("DELETE FROM detection WHERE id = (SELECT min(id) FROM detection)"))
        s.commit()
        got = mem.frame(s, store.fusion_generation(s))
        assert mem.full_reads == before + 2
        _same(got, _fresh(s))
        # a cleared store moves the generation: nothing stale survives
        mem.keep(s, got, store.fusion_generation(s))
        store.clear_store(s)
        assert mem.frame(s, store.fusion_generation(s)).empty
    eng.dispose()


def test_a_cycle_with_the_memory_gives_what_one_without_gives(demo_db, tmp_path):
    """The same new file processed by a watcher holding the memory and by one that reads everything."""
    answers = {}
    for how in ("memory", "read"):
        db = tmp_path / f"{how}.db"
        shutil.copy(demo_db, db)
        eng = desk.engine(str(db))
        with Session(eng) as s:
            mem = desk.detection_memory() if how == "memory" else None
            if mem is not None:
                desk.warm_up(s, mem)
            for k in range(2):
                f = tmp_path / f"{how}{k}.csv"
                _new_file(s, f, 3, 20 + k)
                desk.ingest(s, "system", [f])
                desk.process_new(s, "system", memory=mem, alerts=False)
            leaks = store.leaks_frame(s).set_index("leak_id").sort_index()
            dets = store.detections_frame(s, columns=["detection_id", "leak_id", "ambiguous"])
        eng.dispose()
        answers[how] = (leaks.drop(columns=["scored_at", "updated_at"], errors="ignore"), dets)
    pd.testing.assert_frame_equal(answers["memory"][0], answers["read"][0])
    pd.testing.assert_frame_equal(answers["memory"][1], answers["read"][1])


def _basin_parts(n_parts: int):
    from mlpe_core.simulate import simulate_basin

    b = simulate_basin(seed=3, n_assets=150, n_days=60)
    d = pd.concat(list(b.feeds.values()), ignore_index=True)
    d = d.sort_values("observed_at", kind="stable").reset_index(drop=True)
    d.insert(0, "id", np.arange(1, len(d) + 1))
    cuts = np.linspace(len(d) // 2, len(d), n_parts + 1).astype(int)
    return b, d, cuts


def test_an_incremental_fusion_with_memory_is_the_one_without_over_many_growths():
    """Five growths of the store, each fused incrementally with and without the kept geometry (whose KD-tree bands
    grow and are rebuilt on the way): the same regions, labels and flags every time."""
    b, d, cuts = _basin_parts(5)
    memory: dict = {}
    f0 = LeakFuser().fit(d.iloc[:cuts[0]], b.assets)
    lid = np.full(len(d), None, dtype=object)
    lid[:cuts[0]] = [f"L{k:06d}" for k in f0.labels_]
    amb = np.zeros(len(d), bool)
    amb[:cuts[0]] = f0.ambiguous_
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        X = d.iloc[:hi].assign(leak_id=lid[:hi], ambiguous=amb[:hi])
        before = X.copy()
        kept = IncrementalFuser(max_share=1.0, memory=memory).fit(X, b.assets)
        plain = IncrementalFuser(max_share=1.0).fit(X, b.assets)
        pd.testing.assert_frame_equal(X, before)  # input not modified
        assert not kept.full_ and (kept.region_ == plain.region_).all()
        assert (kept.labels_ == plain.labels_).all() and (kept.ambiguous_ == plain.ambiguous_).all()
        pd.testing.assert_frame_equal(kept.leaks_, plain.leaks_)
        assert memory["store_geometry"]["n"] == hi
        reg = kept.region_
        lid[:hi][reg] = [f"N{lo}-{k}" for k in kept.labels_[reg]]
        amb[:hi][reg] = kept.ambiguous_[reg]
    # rows that are not the kept ones (another order): the memory is not used, the answer is still right
    lid[-5:] = None
    X = d.iloc[::-1].reset_index(drop=True).assign(leak_id=lid[::-1], ambiguous=amb[::-1])
    kept = IncrementalFuser(max_share=1.0, memory=memory).fit(X, b.assets)
    plain = IncrementalFuser(max_share=1.0).fit(X, b.assets)
    assert (kept.labels_ == plain.labels_).all() and (kept.region_ == plain.region_).all()
    assert (memory["store_geometry"]["ids"] == X["id"].to_numpy()).all()  # kept again, for these rows


@pytest.mark.parametrize(("values", "expected"), [
    ({"a", "c"}, [True, False, True, False]),
    (["b", None, 3], [False, True, False, True]),  # (as pandas: a blank is in when the values hold a blank)
    (pd.Series(["c"], dtype="str"), [False, False, True, False]),
    (set(), [False, False, False, False]),
])
@pytest.mark.parametrize("dtype", ["str", object])
def test_isin_is_pandas_isin(values, expected, dtype):
    col = pd.Series(["a", "b", "c", None], dtype=dtype)
    before = col.copy()
    got = isin(col, values)
    assert got.tolist() == expected
    assert got.tolist() == col.isin(list(values)).tolist()
    pd.testing.assert_series_equal(col, before)


def test_distinct_drops_blanks():
    assert distinct(pd.Series(["b", None, "a", "b"], dtype="str")) == {"a", "b"}
    assert distinct(pd.Series([], dtype=object)) == set()
