"""Watched time: a sensor's clock that runs only while it watched, so a silence counts only where it could see.

Fusion cuts a site stream at silences its cadence makes improbable, and scoring counts "not seen again" looks;
both measure silence on this clock (issue 14: real monitors stop at night, go offline and report in bursts).
"""

from __future__ import annotations

import numpy as np

LOOK_DAYS = 1.0 / 1440.0  # a window of no length (one look: an aircraft pass) counts one minute of watching


def watched_axis(starts: np.ndarray, ends: np.ndarray):
    """The watched-time clock of one stream: a function from days to days watched since its first window.

    ``starts``/``ends`` (days) are the windows in which the sensor watched (reported something or reported
    seeing nothing); time outside them (offline, or not covered by any report) does not count, so a silence
    only counts while the sensor watched. Windows of no length (an aircraft pass) count ``LOOK_DAYS``."""
    s = np.asarray(starts, float)
    e = np.maximum(np.asarray(ends, float), s + LOOK_DAYS)
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    run = np.maximum.accumulate(e)  # merge overlapping windows
    new = np.r_[True, s[1:] > run[:-1]]
    ms = s[new]
    me = np.maximum.reduceat(e, np.flatnonzero(new))
    cum = np.r_[0.0, np.cumsum(me - ms)]

    def clock(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        i = np.searchsorted(ms, t, "right") - 1
        inside = np.clip(t - ms[np.maximum(i, 0)], 0.0, (me - ms)[np.maximum(i, 0)])
        return np.where(i >= 0, cum[np.maximum(i, 0)] + inside, 0.0)

    return clock
