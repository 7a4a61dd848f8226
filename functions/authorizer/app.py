"""API Gateway REQUEST authorizer: the API key from X-Api-Key or Authorization: Bearer.

Deliberately without Powertools: it runs in front of every request, so its cold
start stays small. The key ring lives as long as the execution environment.
"""

from __future__ import annotations

from typing import Any

from ytcaption.api.apikeys import KeyRing, authorize

_keys = KeyRing()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize(event, _keys)
