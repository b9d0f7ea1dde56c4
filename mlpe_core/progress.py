"""Progress callbacks: long stages report (fraction, text) so faces can show a bar or a line."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None] | None


def say(progress: Progress, frac: float, text: str) -> None:
    if progress is not None:
        progress(float(min(max(frac, 0.0), 1.0)), text)


def scaled(progress: Progress, lo: float, hi: float) -> Progress:
    if progress is None:
        return None
    return lambda f, text: progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), text)
