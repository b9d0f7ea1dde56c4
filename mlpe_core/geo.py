"""Geo: WGS84 degrees to Earth-centred metres and back, the one projection every stage measures distance in.

Straight-line distance in ECEF is the chord, which differs from the geodesic by under a millimetre at 10 km, and it
works for a basin or a worldwide plume list alike with no projection zone to choose (pyproj does the maths).
"""

from __future__ import annotations

import numpy as np
from pyproj import Transformer

_TO_ECEF = Transformer.from_crs("EPSG:4326", "EPSG:4978", always_xy=True)
_FROM_ECEF = Transformer.from_crs("EPSG:4978", "EPSG:4326", always_xy=True)


def to_ecef(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """WGS84 degrees → Earth-centred metres, shape (n, 3)."""
    x, y, z = _TO_ECEF.transform(np.asarray(lon, float), np.asarray(lat, float), np.zeros(len(lat)))
    return np.column_stack([x, y, z])


def from_ecef(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earth-centred metres → (lat, lon) degrees; points off the surface are projected onto it."""
    lon, lat, _ = _FROM_ECEF.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    return np.asarray(lat), np.asarray(lon)
