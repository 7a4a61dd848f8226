"""A local stand-in for API Gateway (REST, Lambda proxy): HTTP in, proxy event to the
API handler, proxy response back out. moto's API Gateway ignores AWS_PROXY
integrations, so this is what serves ``http://127.0.0.1:3000`` locally.

HTTP itself is Werkzeug's (already installed with moto): the standard library's
server had a listen backlog of 5 (connections reset under 20 clients), kept a
refused body to be read as a second request, and answered some bad requests
in HTML or not at all.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from werkzeug.datastructures import EnvironHeaders
from werkzeug.serving import WSGIRequestHandler, make_server

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit
CONSOLE_MAX_BODY = 512 * 1024 * 1024  # the console's upload helper
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


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler (backlog of 128, one request per connection, the unread
    rest of a refused body drained, not parsed as a next request), quiet, and
    answering even unparseable requests in the API's error shape instead of HTML."""

    timeout = 30  # a client that declares more body than it sends does not hold a thread forever

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_error(self, *args: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unparseable line: still answer with a status line
            self.request_version = "HTTP/1.0"
        data = _error_body("INVALID_REQUEST" if code < 500 else "INTERNAL_ERROR",
                           f"the HTTP request could not be parsed ({code})")
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(data)


class Gateway:
    """The WSGI app between HTTP clients and the API handler, served by Werkzeug."""

    def __init__(self, handler: Handler, context_factory: Callable[[], Any], *, host: str = "127.0.0.1",
                 port: int = 3000, api_key: str | None = None) -> None:
        self.handler = handler
        self.api_key = api_key
        #: Responses served, by status code (what a fuzzer's run looked like).
        self.status_counts: dict[int, int] = {}
        self._count_lock = threading.Lock()
        self.context_factory = context_factory
        self.host, self.port = host, port
        self._server: Any = None
        #: The web console (ytcaption_local.console) serves /console paths when set.
        self.console: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            status, headers, data = self._respond(environ)
        except Exception:
            status, headers = 502, {"Content-Type": "application/json"}
            data = _error_body("INTERNAL_ERROR", "the API handler failed; see the runtime's log")
        with self._count_lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
        out = [(k, str(v)) for k, v in headers.items()
               if k.lower() not in ("content-length", "connection", "transfer-encoding")]
        out.append(("Content-Length", str(len(data))))
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(f"{status} {phrase}", out)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    def _respond(self, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json"}
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = bool(environ.get("wsgi.input_terminated"))
        if declared and not (declared.isascii() and declared.isdigit()):
            return 400, json_type, _error_body("INVALID_REQUEST", "Content-Length must be a non-negative integer")
        length = int(declared) if declared else 0
        headers = {k: v for k, v in EnvironHeaders(environ).items()}
        if self.console is not None and (environ.get("PATH_INFO") or "/").split("/")[1:2] == ["console"]:
            if length > CONSOLE_MAX_BODY:
                return 413, {"Content-Type": "text/plain"}, b""
            query = environ.get("QUERY_STRING") or ""
            path = (environ.get("PATH_INFO") or "/") + (f"?{query}" if query else "")
            body = environ["wsgi.input"].read(length) if length else None
            status, out, data = self.console.handle(environ["REQUEST_METHOD"], path, headers, body)
            return status, out, data
        if self.api_key is not None and not hmac.compare_digest(
                (headers.get("X-Api-Key") or "").encode(), self.api_key.encode()):
            # what API Gateway answers (GatewayResponses INVALID_API_KEY in template.yaml)
            return 403, json_type, _error_body("INVALID_API_KEY", "a valid X-Api-Key header is required")
        if length > MAX_BODY:
            return 413, json_type, _error_body("PAYLOAD_TOO_LARGE", "request body over 6 MB")
        stream = environ["wsgi.input"]
        body = stream.read(MAX_BODY + 1) if chunked else (stream.read(length) if length else b"")
        if len(body) > MAX_BODY:
            return 413, json_type, _error_body("PAYLOAD_TOO_LARGE", "request body over 6 MB")
        if length and len(body) < length:
            return 400, json_type, _error_body("INVALID_REQUEST", "the body is shorter than its Content-Length")
        # the gateway's own name, never the client's Host: it ends up in Location headers
        headers["Host"] = f"{self.host}:{self.port}"
        headers["X-Forwarded-Proto"] = "http"
        # werkzeug hands the request target over latin-1 encoded twice; recover its bytes
        raw = environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
        target = raw.encode("latin-1").decode("utf-8", "replace").encode("latin-1", "replace")
        event = build_event(environ["REQUEST_METHOD"], target.decode("utf-8", "replace"), headers=headers,
                            body=body or None, source_ip=str(environ.get("REMOTE_ADDR") or "127.0.0.1"))
        resp = self.handler(event, self.context_factory())
        out_headers = dict(resp.get("headers") or {})
        for k, vs in (resp.get("multiValueHeaders") or {}).items():
            if vs:
                out_headers[k] = vs[-1]
        payload = resp.get("body") or ""
        data = base64.b64decode(payload) if resp.get("isBase64Encoded") else payload.encode("utf-8")
        return int(resp.get("statusCode", 200)), out_headers, data

    def start(self) -> None:
        self._server = make_server(self.host, self.port, self, threaded=True, request_handler=_RequestHandler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
