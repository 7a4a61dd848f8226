"""Screening of a request before routing: what a client can send that would
otherwise crash deep inside (a 5xx) is refused here with a 4xx in the error shape.

- the body's media type: ``application/json`` in any letter case, or any
  ``application/*+json``; anything else with a body is ``415``;
- JSON nested deeper than :data:`MAX_DEPTH` (Python's parser recurses, so ~1,000
  levels in 2 KB would be a ``RecursionError``);
- lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but cannot be encoded
  as UTF-8, which DynamoDB, S3 and every log line need), in the body, the
  query string, the path or a header.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ytcaption.domain.errors import InvalidRequest, YTCaptionError

MAX_DEPTH = 32
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class UnsupportedMediaType(YTCaptionError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


def is_json_type(content_type: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json":
        return True
    kind, _, subtype = ctype.partition("/")
    return kind == "application" and subtype.endswith("+json") and len(subtype) > len("+json")


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def screen(event: dict[str, Any]) -> None:
    """Raise the 4xx error ``event`` deserves, or normalize its body's media type for routing."""
    headers = event.get("headers") or {}
    if not _encodable([headers, event.get("queryStringParameters"), event.get("path")]):
        raise InvalidRequest("the request contains an unpaired UTF-16 surrogate")
    body = event.get("body")
    if not body:
        return
    ctype_key = next((k for k in headers if k.lower() == "content-type"), None)
    ctype = headers.get(ctype_key, "application/json") if ctype_key else "application/json"
    if not is_json_type(str(ctype)):
        raise UnsupportedMediaType("send the request body as application/json")
    if event.get("isBase64Encoded"):
        try:
            text = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("request body is not UTF-8 JSON") from exc
    else:
        text = str(body)
    if json_depth(text) > MAX_DEPTH:
        raise InvalidRequest(f"the JSON body nests deeper than {MAX_DEPTH} levels")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None  # not JSON: the resolver's validation says so in its own words
    if not _encodable(parsed):
        raise InvalidRequest("the JSON body contains an unpaired UTF-16 surrogate")
    # the resolver's validation only knows the exact lower-case name
    if ctype_key is not None:
        headers.pop(ctype_key)
        (event.get("multiValueHeaders") or {}).pop(ctype_key, None)
    headers["Content-Type"] = "application/json"
    event["headers"] = headers
    if event.get("multiValueHeaders") is not None:
        event["multiValueHeaders"]["Content-Type"] = ["application/json"]


def public_message(exc: YTCaptionError) -> str:
    """What a client reads for a 5xx: what to do, never which internal call failed."""
    if exc.retryable:
        return "the service is busy or a dependency is unavailable; retry later"
    return "internal error; the request id is in X-Correlation-ID"
