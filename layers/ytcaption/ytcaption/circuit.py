"""A download circuit breaker per source site, shared by every Lambda (state in DynamoDB).

Sites such as YouTube block or throttle cloud addresses for a while. Without a
breaker, every job for that site spends its retries (and its users' time)
against a wall. After ``threshold`` consecutive retryable download failures
for a site the circuit opens for ``cooldown_s``: jobs for that site then fail
fast with ``SOURCE_UNAVAILABLE`` (mode ``fail``), or fail with a retryable
error the state machine backs off on (mode ``wait``). When the cool-down ends
the circuit is half-open: one job at a time is let through as a probe; its
success closes the circuit, its failure opens it again.

Item ``CIRCUIT#<site>``: ``failures``, ``open_until`` (epoch s), ``probe_until``.
"""

from __future__ import annotations

import time
from typing import Any, Literal
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from pydantic import BaseModel

from ytcaption import aws
from ytcaption.errors import SourceCoolingDown, SourceUnavailable

_SITE_ALIASES = {"youtu.be": "youtube.com", "m.youtube.com": "youtube.com", "music.youtube.com": "youtube.com",
                 "youtube-nocookie.com": "youtube.com"}


class BreakerSettings(BaseModel):
    threshold: int = 5
    cooldown_s: float = 300.0
    mode: Literal["fail", "wait"] = "fail"
    #: How long a half-open probe owns the circuit before another job may probe.
    probe_s: float = 900.0


def site_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    host = host.removeprefix("www.")
    return _SITE_ALIASES.get(host, host)


class CircuitBreaker:
    def __init__(self, table: str, settings: BreakerSettings, dynamodb: Any | None = None) -> None:
        self.table, self.settings = table, settings
        self._client = dynamodb

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def _key(self, site: str) -> dict[str, Any]:
        return {"pk": {"S": f"CIRCUIT#{site}"}}

    def _update(self, site: str, **kwargs: Any) -> dict[str, Any] | None:
        try:
            resp = self.client.update_item(TableName=self.table, Key=self._key(site), ReturnValues="ALL_NEW",
                                           **kwargs)
            return dict(resp.get("Attributes") or {})
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise aws.translate(exc, "DynamoDB update_item") from exc

    def state(self, site: str) -> dict[str, float]:
        try:
            item = self.client.get_item(TableName=self.table, Key=self._key(site), ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise aws.translate(exc, "DynamoDB get_item") from exc
        item = item or {}
        return {k: float(item[k]["N"]) for k in ("failures", "open_until", "probe_until") if k in item}

    def before_download(self, site: str) -> None:
        """Raise if the site's circuit is open; in half-open, claim the probe or raise."""
        now = time.time()
        state = self.state(site)
        open_until = state.get("open_until", 0.0)
        if not open_until:
            return  # closed
        if now < open_until:
            self._refuse(site, open_until - now)
        # half-open: one probe at a time
        claimed = self._update(
            site,
            UpdateExpression="SET probe_until = :until",
            ConditionExpression="attribute_not_exists(probe_until) OR probe_until < :now",
            ExpressionAttributeValues={":until": {"N": str(now + self.settings.probe_s)}, ":now": {"N": str(now)}},
        )
        if claimed is None:
            self._refuse(site, self.settings.cooldown_s)

    def _refuse(self, site: str, retry_in: float) -> None:
        message = (f"downloads from {site} are failing; paused for about {int(retry_in) + 1} s "
                   "before trying again")
        raise (SourceCoolingDown if self.settings.mode == "wait" else SourceUnavailable)(message)

    def record_success(self, site: str) -> None:
        try:
            self.client.delete_item(TableName=self.table, Key=self._key(site))
        except ClientError as exc:
            raise aws.translate(exc, "DynamoDB delete_item") from exc

    def record_failure(self, site: str) -> bool:
        """Count a retryable failure; returns True if this one opened the circuit."""
        now = time.time()
        item = self._update(
            site,
            UpdateExpression="ADD failures :one REMOVE probe_until",
            ExpressionAttributeValues={":one": {"N": "1"}},
        ) or {}
        failures = int(item.get("failures", {}).get("N", "0"))
        # a failure after the circuit has opened once (the half-open probe) reopens it at once
        if failures >= self.settings.threshold or "open_until" in item:
            self._update(
                site,
                UpdateExpression="SET open_until = :until, failures = :zero",
                ExpressionAttributeValues={":until": {"N": str(now + self.settings.cooldown_s)},
                                           ":zero": {"N": "0"}},
            )
            return True
        return False
