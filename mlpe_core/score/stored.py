"""How a scoring model is kept in the store (pickled in ``modelversion.blob``), and the default one.

Why here and not in ``learn``: scoring with the cold-start model must not import scikit-learn. Unpickling a
learned model imports ``mlpe_core.learn`` (and scikit-learn) by itself, only when one is stored.
"""

from __future__ import annotations

import pickle

from .cold import ColdStartScorer


def dumps(model) -> bytes:
    return pickle.dumps(model)


def loads(blob: bytes):
    return pickle.loads(blob)  # noqa: S301 - blobs are written by this program into its own store


def default_model() -> ColdStartScorer:
    return ColdStartScorer().fit()
