"""A loopback HTTP server for media, webhooks and failure cases; it records every hit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    fail_first: int = 0  # answer 503 this many times first
    delay_first: float = 0.0  # sleep this long before the first answer (a timeout)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LoopbackServer:
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[tuple[str, str]] = field(default_factory=list)
    #: the headers of each hit, in the same order
    hit_headers: list[dict[str, str]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    host: str = "127.0.0.1"

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream", **kw: Any) -> str:
        self.routes[path] = Route(body=body, content_type=content_type, **kw)
        return self.url(path)


@contextmanager
def loopback_server(host: str = "127.0.0.1") -> Iterator[LoopbackServer]:
    state = LoopbackServer(host=host)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _route(self) -> Route | None:
            with lock:
                state.hits.append((self.command, self.path))
                state.hit_headers.append({k.lower(): v for k, v in self.headers.items()})
                route = state.routes.get(self.path.split("?")[0])
                if route and route.fail_first > 0:
                    route.fail_first -= 1
                    return Route(status=503, body=b"try later", content_type="text/plain")
                delay = route.delay_first if route else 0.0
                if route:
                    route.delay_first = 0.0
            if delay:
                import time

                time.sleep(delay)
            return route

        def _send(self, head_only: bool) -> None:
            route = self._route()
            if route is None:
                route = Route(status=404, body=b"not found", content_type="text/plain")
            body = route.body
            rng = self.headers.get("Range")
            status = route.status
            if rng and status == 200 and rng.startswith("bytes="):
                start_s, _, end_s = rng[6:].partition("-")
                start = int(start_s or 0)
                end = int(end_s) if end_s else len(body) - 1
                if start >= len(body) and body:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                status = 206
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
                body = body[start : end + 1]
            else:
                self.send_response(status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(head_only=False)

        def do_HEAD(self) -> None:
            self._send(head_only=True)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            route = self._route()
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = {"raw": raw.decode(errors="replace")}
            with lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                state.posts.append({"path": self.path, "headers": headers, "body": doc, "raw": raw,
                                    "status": (route.status if route else 404)})
            status = route.status if route else 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer((host, 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
