"""Answers computed once per store version: a small, bounded, thread-safe cache the desk keeps.

Why it exists: systems poll the API (and pages rerun) far more often than anything is written, and an answer at
basin scale (the effective ranking of every leak, the day's plan, one leak's detail) costs seconds to assemble.
Each answer is keyed by the store it came from, the store's version stamp (``desk.version``: it changes on every
write) and what was asked; a new stamp simply misses, and storing an answer drops that store's answers of other
stamps, so the cache never serves an answer older than the stamp the caller just read and holds only the
current version's answers. At most ``max_entries`` answers are kept (least recently used go first). Concurrent
callers asking for the same missing answer wait for one computation instead of each running it.

Answers are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class AnswerCache:
    """A bounded least-recently-used map from ``(store, version, question)`` to an answer."""

    def __init__(self, max_entries: int = 256) -> None:
        if max_entries < 1:
            raise ValueError("an answer cache holds at least one answer (max_entries ≥ 1)")
        self.max_entries = max_entries
        self._data: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[tuple, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: tuple) -> bool:
        return key in self._data

    def questions(self) -> list[tuple]:
        """The keys held, ``(store, version, question)``, least recently used first."""
        with self._lock:
            return list(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def peek(self, store: str, version: Hashable, question: Hashable, default: Any = None) -> Any:
        """The cached answer, or ``default`` when there is none (nothing is computed): for a fast path that falls
        back to the full one on a miss."""
        key = (store, version, question)
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]

    def get(self, store: str, version: Hashable, question: Hashable, compute: Callable[[], Any]) -> Any:
        """The answer to ``question`` at ``version`` of ``store``: cached, else ``compute()`` (once, however many
        callers ask at the same time). A failing computation caches nothing and raises to every caller."""
        key = (store, version, question)
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            with self._lock:
                if key in self._data:  # another caller computed it while this one waited
                    self._data.move_to_end(key)
                    self.hits += 1
                    return self._data[key]
            try:
                value = compute()
            except BaseException:
                with self._lock:
                    self._pending.pop(key, None)
                raise
            with self._lock:
                self.misses += 1
                for old in [k for k in self._data if k[0] == store and k[1] != version]:
                    del self._data[old]  # another version of this store: never asked for again once written over
                self._data[key] = value
                while len(self._data) > self.max_entries:
                    self._data.popitem(last=False)
                self._pending.pop(key, None)
        return value
