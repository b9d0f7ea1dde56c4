"""Modules imported on first use, so a command pays only for the libraries it needs.

Why: every ``mlpe`` command is a fresh process. Importing pandas, scikit-learn and every stage up front cost
over a second before ``mlpe --help`` or ``mlpe status`` did anything. The service layer (``desk``) names the
modules it calls through :func:`lazy`; the import happens when a function first uses one of them.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


class LazyModule:
    """Stands for module ``name``; the first attribute read imports it (once), every read is forwarded."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = sys.modules.get(name)

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy(name: str) -> LazyModule:
    """Module ``name`` (absolute), imported on first attribute access."""
    return LazyModule(name)
