"""Fault injection for the local runtime: real AWS error responses, over HTTP.

A WSGI middleware in front of moto answers chosen requests with the error AWS
would send (a DynamoDB throttle, an S3 500/503, ...), so the clients, their
retries and our error handling all run exactly as they would against AWS. It
also records every request, for tests that count calls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class Request:
    service: str
    operation: str
    path: str
    method: str


@dataclass
class Fault:
    service: str
    operation: str
    times: int = 1
    status: int = 500
    code: str = "InternalError"
    message: str = "injected fault"
    path_contains: str = ""
    hits: int = 0

    def matches(self, req: Request) -> bool:
        return (self.times > 0 and req.service == self.service and req.operation == self.operation
                and self.path_contains in req.path)


@dataclass
class FaultInjector:
    app: WsgiApp | None = None
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, service: str, operation: str, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.service == service and r.operation == operation
                       and path_contains in r.path)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = classify(environ)
        fault = None
        with self._lock:
            self.requests.append(req)
            for f in self.faults:
                if f.matches(req):
                    f.times -= 1
                    f.hits += 1
                    fault = f
                    break
        if fault is None:
            if self.app is None:
                raise RuntimeError("the fault injector wraps no application")
            return self.app(environ, start_response)
        return _error_response(fault, start_response)


def classify(environ: dict[str, Any]) -> Request:
    method = str(environ.get("REQUEST_METHOD", "GET"))
    path = str(environ.get("PATH_INFO", ""))
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    if target.startswith("DynamoDB_"):
        return Request("dynamodb", target.split(".", 1)[1], path, method)
    if target.startswith("AWSStepFunctions."):
        return Request("stepfunctions", target.split(".", 1)[1], path, method)
    if target.startswith("AWSEvents."):
        return Request("events", target.split(".", 1)[1], path, method)
    credential = auth + " " + unquote(str(environ.get("QUERY_STRING", "")))
    if "/s3/aws4_request" in credential:
        op = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
            method, method)
        return Request("s3", op, path, method)
    return Request("other", method, path, method)


def _error_response(fault: Fault, start_response: Callable[..., Any]) -> Iterable[bytes]:
    reason = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error",
              503: "Service Unavailable"}.get(fault.status, "Error")
    if fault.service in ("dynamodb", "stepfunctions", "events"):
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}",
                           "message": fault.message}).encode()
        ctype = "application/x-amz-json-1.0"
    else:
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{fault.code}</Code>"
                f"<Message>{fault.message}</Message><RequestId>fault</RequestId></Error>").encode()
        ctype = "application/xml"
    start_response(f"{fault.status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                                 ("x-amzn-RequestId", "fault")])
    return [body]
