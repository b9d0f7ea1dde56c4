"""Connectors: detections that arrive by themselves. ``folder`` (files landing in a folder, ``mlpe watch``),
``pull`` (a remote plume catalogue over HTTP: a STAC API search or a JSON plume list, with paging, a ``since``
watermark and retries) and ``config`` (the validated watch and connectors file with their schedules).

Nothing here writes a table: the desk records what the connectors found through the store.
"""

from .config import PullConnector, WatchConfig, WatchOptions, load_watch_config, parse_duration
from .folder import Inbox
from .pull import PullError, PullResult, fetch

__all__ = ["fetch", "Inbox", "load_watch_config", "parse_duration", "PullConnector", "PullError", "PullResult",
           "WatchConfig", "WatchOptions"]
