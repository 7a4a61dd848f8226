"""The API's REQUEST authorizer: the API key from ``X-Api-Key`` or ``Authorization: Bearer``.

API Gateway reads API keys only from ``X-Api-Key`` unless the API's key source is
``AUTHORIZER``; OpenAI clients send ``Authorization: Bearer KEY``. So the API's
key source is ``AUTHORIZER`` and this authorizer hands the key it finds back as
``usageIdentifierKey``: API Gateway then checks it against the usage plan and
meters and throttles exactly as before, whichever header carried it.

On the OpenAI routes (``/v1/audio/...``) a missing or unknown key is refused
here with ``Unauthorized`` (HTTP 401, what OpenAI answers and what its clients
turn into ``AuthenticationError``); elsewhere API Gateway's own usage-plan
check answers ``403 INVALID_API_KEY`` as it always has. Only stdlib and boto3:
this runs in front of every request, so its cold start is kept small.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any

#: Routes whose callers expect OpenAI's 401 for a bad key.
STRICT_PREFIXES = ("/v1/audio/",)
#: The message API Gateway turns into its UNAUTHORIZED (401) gateway response.
UNAUTHORIZED = "Unauthorized"


class Unauthorized(Exception):
    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


def presented_key(headers: Mapping[str, str] | None) -> str | None:
    """``X-Api-Key`` if sent, else the token of ``Authorization: Bearer``."""
    lower = {k.lower(): v for k, v in (headers or {}).items() if isinstance(v, str)}
    key = (lower.get("x-api-key") or "").strip()
    if key:
        return key
    scheme, _, token = (lower.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The enabled API keys of the account (their SHA-256 only), refreshed from API Gateway.

    A key not in the ring triggers a refresh at most every ``min_refresh_s`` seconds,
    so a key created a moment ago works without waiting for the ``ttl_s`` refresh.
    """

    def __init__(self, client: Any = None, *, ttl_s: float = 60.0, min_refresh_s: float = 5.0) -> None:
        self._client = client
        self.ttl_s, self.min_refresh_s = ttl_s, min_refresh_s
        self._digests: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")
        self._loaded_from: Any = None
        self._lock = threading.Lock()

    def _current_client(self) -> Any:
        if self._client is not None:
            return self._client
        from ytcaption.adapters.aws import client

        return client("apigateway")

    def _refresh(self, client: Any) -> None:
        digests: set[str] = set()
        for page in client.get_paginator("get_api_keys").paginate(includeValues=True):
            digests.update(_digest(k["value"]) for k in page.get("items", []) if k.get("enabled") and k.get("value"))
        self._digests = frozenset(digests)
        self._loaded_at = time.monotonic()
        self._loaded_from = client

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        digest = _digest(key)
        client = self._current_client()
        with self._lock:
            age = time.monotonic() - self._loaded_at
            stale = age > self.ttl_s or client is not self._loaded_from  # (a new endpoint: tests, local runs)
            if stale or (digest not in self._digests and age > self.min_refresh_s):
                self._refresh(client)
            return digest in self._digests


def _policy(effect: str, resource: str) -> dict[str, Any]:
    return {"Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]}


def authorize(event: Mapping[str, Any], keys: KeyRing) -> dict[str, Any]:
    """The authorizer's answer for one REQUEST event (raises :class:`Unauthorized`)."""
    key = presented_key(event.get("headers"))
    # the resource template first: behind a custom domain, ``path`` carries its base path too
    strict = any(str(event.get(k) or "").startswith(STRICT_PREFIXES) for k in ("resource", "path"))
    if strict and (key is None or key not in keys):
        raise Unauthorized
    result: dict[str, Any] = {
        "principalId": f"key:{_digest(key)[:12]}" if key else "anonymous",
        "policyDocument": _policy("Allow", str(event.get("methodArn") or "*")),
    }
    if key:
        result["usageIdentifierKey"] = key
    return result
