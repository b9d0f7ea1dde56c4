"""Fuse: group detections from every sensor into leaks, one leak per real emission source and event.

Why this shape (details and references in ``docs/fusion.md``):

* Positions go to Earth-centred metres (ECEF, via pyproj). Straight-line distance there is the chord,
  which differs from the geodesic by under a millimetre at 10 km, and it works for a basin or a
  worldwide plume list alike with no projection zone to choose.
* Only *precise* detections (1-sigma ≤ ``precise_sigma_m``) build leaks: HDBSCAN (the ``hdbscan``
  package; scikit-learn's is quadratic at basin sizes) finds their dense groups. A 200 m SCADA alarm
  or a 7 km TROPOMI pixel must never bridge two precise leaks, so coarse detections are attached
  afterwards to the leak they are statistically compatible with, or marked ambiguous when several fit.
* Time splits a group where the sightings stop for longer than ``time_gap_days``: a leak that ended
  and a new one at the same spot months later are separate events of one site.
* Site sensors (fence-line monitors, SCADA) report the site, not the component, so two sources on
  one pad are told apart by when and how much, not where: each sensor's stream at an asset is cut
  at silences its own cadence makes improbable and split where its measured log rates are two
  sources (one after the other, one inside the other's life, or both all along), and each segment
  joins the leak seen at that site during it at a compatible rate.

Modules: ``geometry`` (Earth-centred metres, compatible groups), ``estimator`` (:class:`LeakFuser`),
``streams`` (site streams), ``attribution`` (leak to asset), ``ids`` (stable ids), ``incremental``
(re-fuse only the affected area).
"""

from .attribution import attribute_assets
from .estimator import FUSION_VERSION, LeakFuser, summarize
from .geometry import from_ecef, to_ecef
from .ids import carry_ids
from .incremental import IncrementalFuser

__all__ = ["attribute_assets", "carry_ids", "from_ecef", "FUSION_VERSION", "IncrementalFuser", "LeakFuser", "summarize",
           "to_ecef"]
