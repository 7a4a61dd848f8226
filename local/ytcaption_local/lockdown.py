"""Only the runtime reaches its embedded AWS endpoint.

moto answers anyone on its port: no credentials checked, CORS echoing any
Origin, and an admin API (``/moto-api/reset`` wipes every table and bucket). A
web page open in the user's browser, or a webhook the runtime itself was asked
to send, could reach it. So:

- every request the runtime's own AWS clients send carries a random secret
  header (added in botocore's send path, for this endpoint only, after signing);
- requests without it are refused, except presigned S3 URLs (what upload
  clients such as the CLI and curl PUT to), which never reach the admin API;
- any request with an ``Origin`` or ``Sec-Fetch-*`` header (a browser) is
  refused, preflights included, and no CORS header is ever sent back;
- the runtime's own ports are on the outbound deny list (``DENIED_LOOPBACK_PORTS``),
  so no source or webhook URL can point at them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

HEADER = "X-Ytcaption-Local-Secret"
_ENVIRON_KEY = "HTTP_" + HEADER.upper().replace("-", "_")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Lockdown:
    """WSGI middleware in front of moto: refuses whatever is not the runtime."""

    def __init__(self, app: WsgiApp, secret: str) -> None:
        self.app, self.secret = app, secret
        self.refused = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        problem = self._problem(environ)
        if problem is not None:
            self.refused += 1
            body = json.dumps({"error": {"code": "FORBIDDEN", "message": problem}}).encode()
            start_response("403 Forbidden", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(body)))])
            return [body]

        def no_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, exc_info)

        return self.app(environ, no_cors)

    def _problem(self, environ: dict[str, Any]) -> str | None:
        import hmac

        if environ.get("HTTP_ORIGIN") is not None or any(k.startswith("HTTP_SEC_FETCH_") for k in environ):
            return "the embedded AWS endpoint does not serve browsers"
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            return "no CORS here"
        if hmac.compare_digest(str(environ.get(_ENVIRON_KEY, "")).encode(), self.secret.encode()):
            return None
        path = str(environ.get("PATH_INFO", ""))
        query = str(environ.get("QUERY_STRING", ""))
        presigned = "X-Amz-Signature=" in query and "X-Amz-Credential=" in query
        if presigned and not path.startswith(("/moto-api", "/latest/")) and environ.get("REQUEST_METHOD") in (
                "GET", "PUT", "HEAD"):
            return None
        return "only the local runtime may call its AWS endpoint"


_lock = threading.Lock()
_installed: dict[str, str] = {}  # endpoint -> secret
_original_send: Any = None


def install(endpoint: str, secret: str) -> None:
    """Make this process's botocore requests to ``endpoint`` carry the secret."""
    global _original_send
    from botocore.endpoint import Endpoint

    with _lock:
        _installed[endpoint.rstrip("/")] = secret
        if _original_send is None:
            _original_send = Endpoint._send

            def _send(self: Any, request: Any) -> Any:
                for prefix, value in list(_installed.items()):
                    if str(request.url).startswith(prefix + "/") or str(request.url) == prefix:
                        request.headers[HEADER] = value
                        break
                return _original_send(self, request)

            Endpoint._send = _send


def uninstall(endpoint: str) -> None:
    global _original_send
    from botocore.endpoint import Endpoint

    with _lock:
        _installed.pop(endpoint.rstrip("/"), None)
        if not _installed and _original_send is not None:
            Endpoint._send = _original_send
            _original_send = None
