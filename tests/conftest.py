"""Shared fixtures: an in-memory store per test, tiny files in ``tmp_path``, and synthetic detections.

The store is always an engine created here and handed to the code under test through a
``sqlmodel.Session`` (never a swapped global), so every test starts from an empty database.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod
from sqlalchemy import func, select
from sqlmodel import Session

from mlpe_core.store.db import get_engine
from mlpe_core.store.models import Asset, Detection, IngestBatch, Leak, Validation

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_DATA = SHARED / "data" / "real"
CHECK_BASIN = SHARED / "checks" / "basin"

HEADER = "detection_id,source_type,source_name,observed_at,latitude,longitude"
LAT0, LON0 = 32.0, -102.0
T0 = pd.Timestamp("2025-03-03T10:00:00Z")  # a Monday

_GEOD = Geod(ellps="WGS84")


def offset(dx_m: float, dy_m: float, lat0: float = LAT0, lon0: float = LON0) -> tuple[float, float]:
    """(lat, lon) of the point ``dx_m`` east and ``dy_m`` north of (lat0, lon0), on the WGS84 ellipsoid."""
    dist = math.hypot(dx_m, dy_m)
    if dist == 0:
        return lat0, lon0
    lon, lat, _ = _GEOD.fwd(lon0, lat0, math.degrees(math.atan2(dx_m, dy_m)), dist)
    return float(lat), float(lon)


def distance_m(lat1, lon1, lat2, lon2) -> float:
    """Geodesic distance in metres."""
    _, _, d = _GEOD.inv(lon1, lat1, lon2, lat2)
    return float(d)


def partition(labels) -> list[int]:
    """Labels renumbered by first appearance, so two labelings of the same grouping compare equal."""
    seen: dict = {}
    return [seen.setdefault(v, len(seen)) for v in labels]


PG_URL = os.environ.get("MLPE_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    """Each store test runs on in-memory SQLite, and on PostgreSQL when one is reachable."""
    if request.param == "sqlite":
        eng = get_engine("sqlite://")
    else:
        if not PG_URL:
            pytest.skip("no PostgreSQL: set MLPE_TEST_POSTGRES_URL (.ci/run does when it can start a server)")
        from sqlalchemy import create_engine, text

        raw = create_engine(PG_URL)
        try:
            with raw.begin() as conn:  # a clean schema per test
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        except Exception as exc:  # noqa: BLE001 - unreachable server: skip, with the reason
            pytest.skip(f"PostgreSQL at MLPE_TEST_POSTGRES_URL not reachable: {exc}")
        finally:
            raw.dispose()
        eng = get_engine(PG_URL)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine):
    with Session(engine) as s:
        yield s


@pytest.fixture
def table_counts(session) -> Callable[[], dict[str, int]]:
    """Row counts of every table a load can touch, to prove that a failure wrote nothing."""

    def _counts() -> dict[str, int]:
        return {m.__name__: int(session.execute(select(func.count()).select_from(m)).scalar_one())
                for m in (Detection, IngestBatch, Asset, Validation, Leak)}

    return _counts


@pytest.fixture
def write(tmp_path) -> Callable[..., Path]:
    """Write ``text`` to ``tmp_path / name`` (bytes are written as they are) and return the path."""

    def _write(name: str, text: str | bytes, encoding: str = "utf-8") -> Path:
        p = tmp_path / name
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text, encoding=encoding)
        return p

    return _write


def make_detections(rows: list[dict]) -> pd.DataFrame:
    """Typed canonical detections from short specs.

    Each spec has ``dx``/``dy`` (metres from LAT0, LON0), ``sigma`` (m), ``day`` (days after T0) and
    ``type``; optional ``name``, ``asset``, ``rate``, ``unc``, ``conf``, ``leak``.
    """
    out = []
    for i, r in enumerate(rows):
        lat, lon = offset(r.get("dx", 0.0), r.get("dy", 0.0))
        st = r.get("type", "aerial")
        out.append({
            "id": i + 1,
            "detection_id": r.get("id", f"d{i}"),
            "source_type": st,
            "source_name": r.get("name", st.upper()),
            "observed_at": T0 + pd.Timedelta(days=r.get("day", 0.0)),
            "latitude": lat,
            "longitude": lon,
            "location_uncertainty_m": float(r.get("sigma", 5.0)),
            "rate_kg_h": r.get("rate", np.nan),
            "rate_uncertainty_kg_h": r.get("unc", np.nan),
            "confidence": r.get("conf", np.nan),
            "wind_speed_m_s": np.nan,
            "asset_id": r.get("asset"),
            "event_type": None,
            "leak_id": r.get("leak"),
            "ambiguous": False,
        })
    df = pd.DataFrame(out)
    df["observed_at"] = pd.to_datetime(df["observed_at"], utc=True)
    for c in ("rate_kg_h", "rate_uncertainty_kg_h", "confidence", "wind_speed_m_s"):
        df[c] = df[c].astype(float)
    return df


@pytest.fixture
def dets() -> Callable[[list[dict]], pd.DataFrame]:
    return make_detections


@pytest.fixture(scope="session")
def quarter_store(tmp_path_factory):
    """A simulated operator-quarter (``tests/report_scenario.py``), built once: (store path, ids of its cases)."""
    import report_scenario

    db = tmp_path_factory.mktemp("quarter") / "mlpe.db"
    return db, report_scenario.build(db)


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory) -> Path:
    """The simulated demo basin in a store of its own, filled once per test module; a test that writes works on a
    copy (``conftest_app.copy_store``)."""
    from conftest_app import fill_store

    db = tmp_path_factory.mktemp("filled") / "filled.db"
    fill_store(db)
    return db
