"""``mlpe watch DIR``: the face that keeps MLPE fed while nobody is looking.

A loop, woken by the file system (watchdog) or at least every ``interval_s``: settled files are ingested
(``desk.watch_file``), due pull connectors run (their schedules in the watch file), and whenever anything new
waits to be fused (from this folder, a connector, ``POST /detections`` or a person) the desk fuses, scores and
checks the alert rules that new detections set off (a new HIGH leak, a failed repair, a burst), in one recorded
``watch`` run. Between cycles it retries due alert deliveries, checks every rule every ``alerts_every_s`` (deadlines
come due with time alone; they and site trends read the whole store) and beats the folder connector's heart. That
full check runs in a thread of its own (at a million detections it takes minutes, and files landing meanwhile must
not wait for it); the store serialises its writes with the cycles' as it does another process's, and its new
alerts are delivered by the loop, like every other delivery.

It only calls the desk, like the other faces. On start it finishes or redoes the file a killed watcher left
mid-load (``desk.recover_watched``). SIGTERM or Ctrl-C stop it between files; a kill -9 is what the recovery
is for. Each cycle opens a fresh session, so nothing accumulates across days but the columns of every detection a
fusion reads (``desk.detection_memory``: a cycle then reads only the new rows; its size follows the store's, and
it is read again in full whenever another process changed the stored detections).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import desk

HEARTBEAT_S = 30.0


class Watcher:
    """One watched folder on one store."""

    def __init__(self, db: str | None, folder: str | Path, user: str, config: str | Path | None = None, *,
                 once: bool = False, settle_s: float | None = None, interval_s: float | None = None,
                 alerts_every_s: float = 900.0, say: Callable[[str], None] | None = None):
        self.config = desk.watch_options(config)
        self.options = self.config.watch
        if settle_s is not None:
            self.options.settle_s = float(settle_s)
        if interval_s is not None:
            self.options.interval_s = float(interval_s)
        self.engine = desk.engine(db)
        self.inbox = desk.open_inbox(folder, self.options)
        self.user = user
        self.once = once
        self.alerts_every_s = float(alerts_every_s)
        self.say = say or (lambda m: print(m, flush=True))
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._next_pull = {c.name: 0.0 for c in self.config.connectors}
        self._last_beat = 0.0
        self._last_alerts = time.monotonic()
        self._check: threading.Thread | None = None  # the full alert check in progress, if any
        self.cycles = 0
        self.memory = desk.detection_memory()

    def _due_pulls(self, now: float) -> list:
        due = [c for c in self.config.connectors if now >= self._next_pull[c.name]]
        for c in due:
            self._next_pull[c.name] = now + c.every
        return due

    def _observe(self):
        """Wake the loop on any change in the folder (inotify through watchdog; polling remains the fallback)."""
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a runtime dependency
            return None
        wake = self.wake

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:  # noqa: ANN001 - watchdog's signature
                wake.set()

        obs = Observer()
        obs.schedule(Handler(), str(self.inbox.folder), recursive=False)
        obs.daemon = True
        try:
            obs.start()
        except OSError as exc:  # e.g. inotify watches exhausted: the interval still finds files
            self.say(f"watch: no file-system events ({exc}); looking every {self.options.interval_s:g} s")
            return None
        return obs

    def cycle(self) -> dict | None:
        """One pass; returns the cycle's summary when it did something, else None."""
        now = time.monotonic()
        files = self.inbox.ready(now)
        pulls = self._due_pulls(now)
        with desk.open_session(self.engine) as s:
            if files or pulls or desk.has_unfused(s):
                r = desk.watch_cycle(s, self.user, self.inbox, self.options, files, pulls, memory=self.memory)
                # the cycle checked only the alerts new detections set off (desk.CYCLE_ALERT_KINDS): the timer
                # for the rest keeps running, or a steady feed would put deadlines off for ever
                self._last_beat = time.monotonic()
                self._report(r)
                return r
            checking = self._check is not None and self._check.is_alive()
            if now - self._last_alerts >= self.alerts_every_s and not checking:
                self._last_alerts = now
                if self.once:  # a single pass (cron): the check, and the delivery of what it finds, are part of it
                    a = desk.check_alerts(s, self.user)
                    if a["new"]:
                        self.say(f"watch: {a['new']} new alert(s)")
                else:
                    self._check = threading.Thread(target=self._full_check, name="mlpe-alert-check", daemon=True)
                    self._check.start()
            else:
                d = desk.deliver_alerts(s)
                if any(d.values()):
                    self.say(f"watch: deliveries {d['sent']} sent, {d['retrying']} to retry, {d['failed']} failed")
            if now - self._last_beat >= HEARTBEAT_S:
                desk.connector_heartbeat(s, f"folder:{self.inbox.folder}")
                self._last_beat = now
        return None

    def _full_check(self) -> None:
        """Every alert rule on the whole store, in its own session; its new alerts are delivered by the loop."""
        try:
            with desk.open_session(self.engine) as s:
                a = desk.check_alerts(s, self.user, deliver=False)
        except Exception as exc:  # noqa: BLE001 - a failed check is said and tried again at the next timer
            self.say(f"watch: alert check failed: {type(exc).__name__}: {exc}")
            return
        if a["new"]:
            self.say(f"watch: {a['new']} new alert(s)")
            self.wake.set()  # deliver them now, not at the next interval

    def _report(self, r: dict) -> None:
        for f in r["files"]:
            if f["state"] == "loaded":
                self.say(f"watch: {f['file']}: loaded {f.get('accepted', 0)} detections"
                         + (f", {f['rejected']} rows rejected" if f.get("rejected") else ""))
            elif f["state"] == "duplicate":
                self.say(f"watch: {f['file']}: same bytes as a file already loaded; nothing loaded again")
            elif f["state"] == "rejected":
                self.say(f"watch: {f['file']}: rejected ({f.get('reason', 'see rejects/')}); moved to rejects/")
            elif f["state"] == "error":
                self.say(f"watch: {f['file']}: failed ({f.get('reason')}); will try again")
        for p in r["pulled"]:
            self.say(f"watch: pulled {p['connector']}: {p['records']} records, {p['accepted']} new detections")
        for p in r["pull_failed"]:
            self.say(f"watch: pull {p['connector']} failed: {p['error']}")
        if "fuse" in r:
            self.say(f"watch: {desk.fuse_summary(r['fuse'])}; scored {r['score'].get('scored', 0)} leaks; "
                     f"{r['alerts']['new']} new alert(s)")

    def run(self) -> int:
        """Until stopped (or, with ``once``, until the folder is empty and nothing waits). The fusion and scoring
        code is loaded and the detections read first (``desk.warm_up``), so the first cycle's ranking waits for
        neither."""
        with desk.open_session(self.engine) as s:
            desk.warm_up(s, self.memory)
            for line in desk.recover_watched(s, self.inbox):
                self.say(f"watch: recovered {line}")
        obs = None if self.once else self._observe()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: (self.stop.set(), self.wake.set()))
        self.say(f"watch: {self.inbox.folder} (settle {self.options.settle_s:g} s; loaded files go to done/, "
                 f"refused ones to rejects/); {len(self.config.connectors)} pull connector(s)")
        try:
            while not self.stop.is_set():
                try:
                    self.cycle()
                except Exception as exc:  # noqa: BLE001 - one bad cycle never ends the watcher
                    self.say(f"watch: cycle failed: {type(exc).__name__}: {exc}")
                    if self.once:
                        raise
                self.cycles += 1
                if self.once and not self.inbox.candidates():
                    break
                self.wake.wait(self.options.interval_s if not self.once else min(self.options.interval_s, 0.2))
                self.wake.clear()
        finally:
            if obs is not None:
                obs.stop()
                obs.join(5)
            if self._check is not None:
                self._check.join(5)  # a check about to record its alerts may finish; a long one is dropped
                if self._check.is_alive():  # nothing of it is written until it ends
                    self.say("watch: stopping during an alert check; it is dropped and runs again after the next "
                             "start")
            self.engine.dispose()
        self.say("watch: stopped")
        return 0


def watch(db: str | None, folder: str | Path, user: str, config: str | Path | None = None, **kw) -> int:
    """Run a :class:`Watcher` (``mlpe watch``)."""
    try:
        return Watcher(db, folder, user, config, **kw).run()
    except KeyboardInterrupt:
        print("watch: interrupted", file=sys.stderr)
        return 1
