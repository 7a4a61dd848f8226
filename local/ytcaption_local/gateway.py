"""A local stand-in for API Gateway (REST, Lambda proxy): HTTP in, proxy event to the
API handler, proxy response back out. moto's API Gateway ignores AWS_PROXY
integrations, so this is what serves ``http://127.0.0.1:3000`` locally.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit
STAGE = "local"


def build_event(
    method: str,
    raw_path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST proxy event for ``/{proxy+}``, shaped like AWS sends it."""
    parts = urlsplit(raw_path)
    path = unquote(parts.path) or "/"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for k, v in pairs:
        query[k] = v
        multi.setdefault(k, []).append(v)
    hdrs = dict(headers or {})
    is_b64 = False
    text: str | None = None
    if body:
        if isinstance(body, bytes):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text, is_b64 = base64.b64encode(body).decode(), True
        else:
            text = body
    now = time.time()
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": hdrs or None,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()} or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(now * 1000),
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": hdrs.get("Host", "127.0.0.1"),
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": hdrs.get("User-Agent")},
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


class Gateway:
    def __init__(self, handler: Handler, context_factory: Callable[[], Any], *, host: str = "127.0.0.1",
                 port: int = 3000, api_key: str | None = None) -> None:
        self.handler = handler
        self.api_key = api_key
        #: Responses served, by status code (what a fuzzer's run looked like).
        self.status_counts: dict[int, int] = {}
        self._count_lock = threading.Lock()
        self.context_factory = context_factory
        self.host, self.port = host, port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if gateway.api_key is not None and not hmac.compare_digest(
                        (self.headers.get("X-Api-Key") or "").encode(), gateway.api_key.encode()):
                    # what API Gateway answers (GatewayResponses INVALID_API_KEY in template.yaml)
                    self.rfile.read(min(length, MAX_BODY))
                    self._reply(403, {"Content-Type": "application/json"}, json.dumps(
                        {"error": {"code": "INVALID_API_KEY",
                                   "message": "a valid X-Api-Key header is required"}}).encode())
                    return
                if length > MAX_BODY:
                    self._reply(413, {"Content-Type": "application/json"},
                                json.dumps({"error": {"code": "PAYLOAD_TOO_LARGE",
                                                      "message": "request body over 6 MB"}}).encode())
                    return
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()}
                headers.setdefault("X-Forwarded-Proto", "http")
                event = build_event(self.command, self.path, headers=headers, body=body,
                                    source_ip=self.client_address[0])
                try:
                    resp = gateway.handler(event, gateway.context_factory())
                except Exception:
                    self._reply(502, {"Content-Type": "application/json"},
                                b'{"message": "Internal server error"}')
                    return
                out_headers = dict(resp.get("headers") or {})
                for k, vs in (resp.get("multiValueHeaders") or {}).items():
                    if vs:
                        out_headers[k] = vs[-1]
                payload = resp.get("body") or ""
                data = base64.b64decode(payload) if resp.get("isBase64Encoded") else payload.encode("utf-8")
                self._reply(int(resp.get("statusCode", 200)), out_headers, data)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                with gateway._count_lock:
                    gateway.status_counts[status] = gateway.status_counts.get(status, 0) + 1
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "connection"):
                        self.send_header(k, str(v))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

            def __getattr__(self, name: str) -> Any:
                # any other method (TRACE, QUERY, ...) reaches the API, as with API Gateway's ANY
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

        self._server = ThreadingHTTPServer((self.host, self.port), RequestHandler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
