"""Local stand-ins for the outside world of issue 18, all on loopback: a webhook receiver, an SMTP server
(aiosmtpd) and a stub plume catalogue; plus waiting helpers. Imported by the tests (not a pytest conftest)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float = 60.0, every: float = 0.2, what: str = "condition"):
    """``check()`` until it is truthy (returned), or fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class WebhookReceiver(_Server):
    """Collects the JSON bodies POSTed to it; answers ``fail_first`` requests with 503 first (to test retries)."""

    def __init__(self, fail_first: int = 0):
        self.bodies: list[dict] = []
        self.fail_first = fail_first
        self.requests = 0
        owner = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                owner.requests += 1
                if owner.requests <= owner.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                owner.bodies.append(json.loads(raw))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a) -> None:
                pass

        super().__init__(H)


class SmtpSink:
    """An aiosmtpd server on loopback keeping every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                from email import message_from_bytes

                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


class StubCatalogue(_Server):
    """A plume catalogue: ``/plumes`` (a JSON plume list, limit/offset paging, ``since``) and ``/stac/search``
    (STAC item search with ``next`` links). ``fail`` answers that many requests with 503 first."""

    def __init__(self, plumes: list[dict], items: list[dict] | None = None, fail: int = 0):
        self.plumes, self.items, self.fail = plumes, items or [], fail
        self.log: list[str] = []
        owner = self

        class H(BaseHTTPRequestHandler):
            def _send(self, code: int, body: object) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if code == 503:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(raw)

            def _maybe_fail(self) -> bool:
                owner.log.append(self.path)
                if owner.fail > 0:
                    owner.fail -= 1
                    self._send(503, {"detail": "busy"})
                    return True
                return False

            def do_GET(self) -> None:  # noqa: N802
                if self._maybe_fail():
                    return
                u = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                if u.path != "/plumes":
                    self._send(404, {"detail": "no such path"})
                    return
                rows = [p for p in owner.plumes if "since" not in q or p["datetime"][:19] >= q["since"][:19]]
                off, lim = int(q.get("offset", 0)), int(q.get("limit", 100))
                self._send(200, {"items": rows[off:off + lim], "total_count": len(rows), "limit": lim,
                                 "offset": off})

            def do_POST(self) -> None:  # noqa: N802
                if self._maybe_fail():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                start = body.get("datetime", "../..").split("/")[0]
                rows = [i for i in owner.items if start in ("", "..") or i["properties"]["datetime"] >= start]
                page = int(body.get("page", 1))
                lim = int(body.get("limit", 10))
                chunk = rows[(page - 1) * lim:page * lim]
                links = []
                if page * lim < len(rows):
                    links.append({"rel": "next", "href": f"{owner.url}/stac/search", "method": "POST",
                                  "body": {"page": page + 1}, "merge": True})
                self._send(200, {"type": "FeatureCollection", "features": chunk, "links": links})

            def log_message(self, *a) -> None:
                pass

        super().__init__(H)
