"""Pull connector: read a remote plume catalogue over HTTP, page by page, from a ``since`` watermark.

Two shapes are understood:

* ``stac``: a STAC API item search (``POST {url}/search`` with ``datetime: since/..``, ``limit`` and any
  ``params`` such as ``collections`` or ``bbox``), following ``links`` with ``rel: next`` (GET, or POST with
  the link's ``body``, merged when ``merge`` is set). Each item becomes a canonical detection: its id, its
  time (``datetime`` or ``start_datetime``), the centre of its geometry, and a rate from the usual property
  names (``emission_auto`` as Carbon Mapper names it, ``ch4_fluxrate`` as IMEO does, ``emission_rate``,
  ``rate_kg_h``); other scalar properties are kept as attributes.
* ``plumes_json``: a JSON plume list as Carbon Mapper and UNEP IMEO publish theirs (a list, or an object
  holding ``items``/``features``/``data``/``results``), paged by a ``next`` URL, ``links``, or
  ``limit``/``offset`` until a short page or ``total_count``. Records keep their own field names, so the
  ingest's format detection reads them exactly as it reads the same catalogue's CSV export.

Failures: a 5xx, a 429 or a network error is retried ``retries`` times, waiting ``backoff_s`` × 2^k seconds
(or ``Retry-After``); a 4xx other than 429 or a body that is not JSON fails at once (``PullError``). Only the
standard library speaks HTTP here; tests run a stub catalogue on loopback, never the network.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from .config import PullConnector

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
LIST_KEYS = ("items", "features", "data", "results", "plumes")
TIME_KEYS = ("datetime", "observed_at", "tile_date", "scene_timestamp", "acquisition_time", "start_datetime", "date")
RATE_KEYS = ("emission_auto", "ch4_fluxrate", "emission_rate", "emission_rate_kg_h", "rate_kg_h", "flux_kg_h")
RATE_SD_KEYS = ("emission_uncertainty_auto", "ch4_fluxrate_std", "emission_rate_uncertainty", "rate_uncertainty_kg_h")


class PullError(RuntimeError):
    """A catalogue could not be read (after the retries, or a refusal that retrying cannot fix)."""


@dataclass
class PullResult:
    """What one pull found: records (dicts ready to be ingested), the new watermark and how it went."""

    records: list[dict] = field(default_factory=list)
    watermark: datetime | None = None
    pages: int = 0
    requests: int = 0
    retries: int = 0
    truncated: bool = False  # stopped at max_pages: the rest comes next time


def _headers(conn: PullConnector, env: dict | None = None) -> dict:
    import os

    h = {"Accept": "application/json", "User-Agent": "mlpe-pull/1", **conn.headers}
    if conn.token_env:
        token = (env or os.environ).get(conn.token_env)
        if not token:
            raise PullError(f"{conn.name}: environment variable {conn.token_env} (token_env) is not set")
        h["Authorization"] = f"Bearer {token}"
    return h


def request_json(url: str, conn: PullConnector, *, body: dict | None = None,
                 sleep: Callable[[float], None] = time.sleep, env: dict | None = None) -> tuple[object, int]:
    """GET (or POST ``body``) ``url``; the parsed JSON and how many retries it took."""
    headers = _headers(conn, env)
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    last = ""
    for attempt in range(conn.retries + 1):
        wait = conn.backoff_s * 2**attempt
        try:
            req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
            with urllib.request.urlopen(req, timeout=conn.timeout_s) as resp:  # noqa: S310 - http(s) checked in config
                raw = resp.read()
            try:
                return json.loads(raw.decode("utf-8-sig")), attempt
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise PullError(f"{conn.name}: {url} did not answer JSON ({exc})") from None
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in RETRY_STATUS:
                raise PullError(f"{conn.name}: {url} answered {last}") from None
            ra = exc.headers.get("Retry-After") if exc.headers else None
            if ra and ra.strip().isdigit():
                wait = float(ra)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < conn.retries:
            sleep(min(wait, 600.0))
    raise PullError(f"{conn.name}: {url} failed after {conn.retries + 1} tries ({last})")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(rec: dict) -> pd.Timestamp | None:
    for k in TIME_KEYS:
        v = rec.get(k)
        if v not in (None, ""):
            t = pd.to_datetime(str(v), utc=True, errors="coerce", format="ISO8601")
            if pd.notna(t):
                return t
    return None


def _centre(geom: object) -> tuple[float, float] | None:
    """(lon, lat) of a GeoJSON geometry: a point's own, else the mean of its coordinates."""
    if not isinstance(geom, dict):
        return None
    coords = geom.get("coordinates")
    pts: list = []

    def walk(c) -> None:
        if isinstance(c, list | tuple) and len(c) >= 2 and all(isinstance(x, int | float) for x in c[:2]):
            pts.append((float(c[0]), float(c[1])))
        elif isinstance(c, list | tuple):
            for x in c:
                walk(x)

    walk(coords)
    if not pts:
        return None
    lon = sum(p[0] for p in pts) / len(pts)
    lat = sum(p[1] for p in pts) / len(pts)
    return (lon, lat) if math.isfinite(lon) and math.isfinite(lat) else None


def _scalars(d: dict) -> dict:
    """The scalar fields of a record (nested objects and lists as JSON text)."""
    return {str(k): (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in d.items()}


def _items(page: object) -> tuple[list, dict]:
    if isinstance(page, list):
        return page, {}
    if isinstance(page, dict):
        for k in LIST_KEYS:
            if isinstance(page.get(k), list):
                return page[k], page
        return [], page
    raise PullError("the catalogue answered neither a list nor an object")


def _next_link(page: dict) -> dict | None:
    nxt = page.get("next")
    if isinstance(nxt, str) and nxt:
        return {"href": nxt}
    for link in page.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return link
    return None


def stac_record(item: dict, conn: PullConnector) -> dict | None:
    """A STAC item as a canonical detection (None when it has no id, time or position)."""
    if not isinstance(item, dict):
        return None
    props = item.get("properties") or {}
    if not isinstance(props, dict):
        props = {}
    centre = _centre(item.get("geometry"))
    if centre is None and isinstance(item.get("bbox"), list) and len(item["bbox"]) >= 4:
        b = item["bbox"]
        centre = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    t = _time(props)
    if item.get("id") in (None, "") or centre is None or t is None:
        return None
    rec = {k: v for k, v in _scalars(props).items() if k not in ("datetime",)}
    rate = next((props[k] for k in RATE_KEYS if props.get(k) not in (None, "")), None)
    sd = next((props[k] for k in RATE_SD_KEYS if props.get(k) not in (None, "")), None)
    rec.update({"detection_id": str(item["id"]), "source_type": conn.source_type,
                "source_name": conn.source_name or props.get("platform") or props.get("constellation") or conn.name,
                "observed_at": _iso(t.to_pydatetime()), "longitude": centre[0], "latitude": centre[1],
                "rate_kg_h": rate, "rate_uncertainty_kg_h": sd, "collection": item.get("collection")})
    return rec


def plume_record(item: dict) -> dict | None:
    """A plume list entry as it is (its own field names), a GeoJSON feature's properties with its position."""
    if not isinstance(item, dict):
        return None
    if item.get("type") == "Feature":
        rec = _scalars(item.get("properties") or {})
        c = _centre(item.get("geometry"))
        if c is not None:
            rec.setdefault("longitude", c[0])
            rec.setdefault("latitude", c[1])
        if item.get("id") is not None:
            rec.setdefault("id", item["id"])
        return rec
    rec = _scalars(item)
    if "geometry_json" in item and isinstance(item["geometry_json"], dict):  # Carbon Mapper's catalogue API
        c = _centre(item["geometry_json"])
        if c is not None:
            rec.setdefault("plume_longitude", c[0])
            rec.setdefault("plume_latitude", c[1])
    return rec


def fetch(conn: PullConnector, since: datetime | None, *, sleep: Callable[[float], None] = time.sleep,
          env: dict | None = None) -> PullResult:
    """Every record newer than ``since`` (inclusive: the ingest drops ones already loaded), page by page.

    The watermark moves to the newest record time seen; records without a readable time are kept but do not
    move it."""
    res = PullResult(watermark=since)
    first = since.astimezone(UTC) if since is not None else None
    if conn.kind == "stac":
        url = conn.url.rstrip("/")
        url = url if url.endswith("/search") else f"{url}/search"
        body: dict | None = {"limit": conn.page_size, **conn.params}
        if first is not None:
            body["datetime"] = f"{_iso(first)}/.."
        link: dict | None = {"href": url, "body": body}
    else:
        q = {conn.limit_param: conn.page_size, conn.offset_param: 0, **conn.params}
        if first is not None:
            q[conn.since_param] = _iso(first)
        link = {"href": f"{conn.url}{'&' if '?' in conn.url else '?'}{urllib.parse.urlencode(q, doseq=True)}"}
    offset = 0
    while link is not None:
        if res.pages >= conn.max_pages:
            res.truncated = True
            break
        post = link.get("body") if conn.kind == "stac" and (link.get("method", "POST") == "POST") else None
        page, tries = request_json(link["href"], conn, body=post, sleep=sleep, env=env)
        res.pages += 1
        res.requests += tries + 1
        res.retries += tries
        items, meta = _items(page)
        for it in items:
            rec = stac_record(it, conn) if conn.kind == "stac" else plume_record(it)
            if rec is None:
                continue
            t = _time(rec)
            if t is not None and first is not None and t < first:
                continue  # a server that ignored `since`
            res.records.append(rec)
            if t is not None and (res.watermark is None or t.to_pydatetime() > res.watermark):
                res.watermark = t.to_pydatetime()
        nxt = _next_link(meta) if meta else None
        if nxt is not None:
            if conn.kind == "stac" and nxt.get("method", "GET") == "POST":
                nb = dict(nxt.get("body") or {})
                if nxt.get("merge"):
                    nb = {**(post or {}), **nb}
                link = {"href": nxt["href"], "body": nb, "method": "POST"}
            else:
                link = {"href": nxt["href"], "method": "GET"}
        elif conn.kind == "plumes_json" and len(items) >= conn.page_size and not (meta and "next" in meta):
            offset += len(items)
            total = meta.get("total_count", meta.get("total")) if meta else None
            if isinstance(total, int) and offset >= total:
                link = None
            else:
                q = {conn.limit_param: conn.page_size, conn.offset_param: offset, **conn.params}
                if first is not None:
                    q[conn.since_param] = _iso(first)
                link = {"href": f"{conn.url}{'&' if '?' in conn.url else '?'}{urllib.parse.urlencode(q, doseq=True)}"}
        else:
            link = None
    return res
