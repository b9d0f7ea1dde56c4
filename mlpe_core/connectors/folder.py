"""The folder inbox of ``mlpe watch``: which files have finished arriving, and where each goes once handled.

A file is *ready* when its size and modification time have stayed the same for ``settle_s`` seconds (a copy
or an upload still in progress keeps changing them) and its name is not a temporary one (``*.part``,
``*.tmp``, dot-files: writers that rename a finished file into place are picked up at the rename). Handled
files leave the folder: loaded ones (and byte-identical copies of a loaded file) to ``done/``, files that
cannot be loaded to ``rejects/`` with ``NAME.reasons.txt`` beside them. Nothing here touches the store: the
desk decides, this module only watches and moves. Its memory is one small entry per file present, forgotten
when the file leaves, so a watcher running for weeks does not grow.
"""

from __future__ import annotations

import fnmatch
import os
import time
from pathlib import Path

from ..errors import BadInput

DONE, REJECTS = "done", "rejects"


class Inbox:
    """One watched folder."""

    def __init__(self, folder: Path | str, settle_s: float = 2.0, ignore: list[str] | tuple[str, ...] = ()):
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise BadInput(f"{folder}: not a folder (create it first)")
        self.settle_s = float(settle_s)
        self.ignore = tuple(ignore)
        (self.folder / DONE).mkdir(exist_ok=True)
        (self.folder / REJECTS).mkdir(exist_ok=True)
        self._seen: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, since when unchanged)

    def _ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in self.ignore)

    def candidates(self) -> list[Path]:
        """Files directly in the folder that may be read (oldest first), temporary names left out."""
        out = []
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return []
        for e in entries:
            try:
                if e.is_file(follow_symlinks=False) and not self._ignored(e.name):
                    out.append((e.stat().st_mtime_ns, e.name))
            except FileNotFoundError:
                continue
        return [self.folder / n for _, n in sorted(out)]

    def ready(self, now: float | None = None) -> list[Path]:
        """Files whose size and time have not changed for ``settle_s`` (a settle of 0 takes them at once)."""
        now = time.monotonic() if now is None else now
        ready, present = [], set()
        for p in self.candidates():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            present.add(p.name)
            sig = (st.st_size, st.st_mtime_ns)
            prev = self._seen.get(p.name)
            if prev is None or prev[:2] != sig:
                self._seen[p.name] = (*sig, now)
                if self.settle_s > 0:
                    continue
            elif now - prev[2] < self.settle_s:
                continue
            ready.append(p)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    def waiting(self) -> list[str]:
        """Files seen but not yet settled."""
        return sorted(self._seen)

    def move(self, path: Path, where: str, reasons: str | None = None) -> Path:
        """Move a handled file to ``done/`` or ``rejects/`` (never over another file), with its reasons beside it."""
        dest_dir = self.folder / where
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / path.name
        k = 1
        while dest.exists():
            dest = dest_dir / f"{path.stem}.{k}{path.suffix}"
            k += 1
        os.replace(path, dest)
        self._seen.pop(path.name, None)
        if reasons:
            (dest_dir / f"{dest.name}.reasons.txt").write_text(reasons.rstrip() + "\n", encoding="utf-8")
        return dest
