"""Run timing: which stage of a run took how long, without threading a timer through every signature.

Why a context variable: the stages (ingest, fuse, score, train) are called from the desk, the watcher and
the demo; each marks the end of its steps with :func:`lap` (a no-op when nothing is being recorded), and
the desk opens a :class:`Run` around the call and writes it as a run record (``store.runs``). Laps add up
by name, so ingesting three files gives one ``validate`` total. Nested runs (the watcher's cycle around a
fuse) each keep their own laps; the outer one times the inner call as a whole.

Also here: the code version a run record names (the package version, plus the git commit when the code
runs from a checkout) and the current face (``cli``, ``api``, ``app``, ``watch``) recorded as the source.
"""

from __future__ import annotations

import contextvars
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

_CURRENT: contextvars.ContextVar[Run | None] = contextvars.ContextVar("mlpe_run", default=None)
_FACE = {"name": "python"}


@dataclass
class Run:
    """One run being timed: kind, what it worked on, laps in order, counts, and how it ended."""

    kind: str
    target: str | None = None
    actor: str = "system"
    source: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    stages: dict[str, float] = field(default_factory=dict)
    n_in: int = 0
    n_out: int = 0
    n_rejected: int = 0
    detail: dict = field(default_factory=dict)
    outcome: str = "ok"
    error: str | None = None
    ended_at: datetime | None = None
    _t0: float = field(default_factory=time.perf_counter)
    _last: float = 0.0
    _token: object = None

    def __post_init__(self) -> None:
        self._last = self._t0

    def lap(self, stage: str) -> None:
        """The time since the previous lap (or the start) belongs to ``stage``."""
        t = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (t - self._last)
        self._last = t

    def add(self, stage: str, seconds: float) -> None:
        """``seconds`` measured elsewhere belong to ``stage``; the lap clock restarts now."""
        self.stages[stage] = self.stages.get(stage, 0.0) + float(seconds)
        self._last = time.perf_counter()

    @property
    def seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else \
            time.perf_counter() - self._t0

    def __enter__(self) -> Run:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        t = time.perf_counter()
        if t - self._last > 0.0005 and self.stages:  # what no lap named
            self.stages["other"] = self.stages.get("other", 0.0) + (t - self._last)
        elif not self.stages:
            self.stages[self.kind] = t - self._t0
        self.ended_at = self.started_at + _td(t - self._t0)
        if exc is not None:
            self.outcome = "failed"
            self.error = f"{type(exc).__name__}: {exc}"[:2000]
        _CURRENT.reset(self._token)


def _td(seconds: float):
    from datetime import timedelta

    return timedelta(seconds=seconds)


def lap(stage: str) -> None:
    """Mark the end of ``stage`` in the run being recorded, if any."""
    run = _CURRENT.get()
    if run is not None:
        run.lap(stage)


def current() -> Run | None:
    return _CURRENT.get()


def set_face(name: str) -> None:
    """Name the face this process serves (recorded as each run's source unless a run names its own)."""
    _FACE["name"] = name


def face() -> str:
    return _FACE["name"]


@lru_cache(maxsize=1)
def code_version() -> str:
    """``mlpe <version>``, plus ``+g<commit>`` (and ``.dirty``) when running from a git checkout."""
    from . import __version__

    out = f"mlpe {__version__}"
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return out
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return out
    return f"{out}+g{sha}{'.dirty' if dirty else ''}" if sha else out
