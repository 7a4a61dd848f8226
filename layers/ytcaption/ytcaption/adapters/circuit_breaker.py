"""A download circuit breaker per source site, shared by every Lambda (state in DynamoDB).

Sites such as YouTube block or throttle cloud addresses for a while. Without a
breaker, every job for that site spends its retries (and its users' time)
against a wall. After ``threshold`` consecutive retryable download failures
for a site the circuit opens for ``cooldown_s``: jobs for that site then fail
fast with ``SOURCE_UNAVAILABLE`` (mode ``fail``), or fail with a retryable
error the state machine backs off on (mode ``wait``). When the cool-down ends
the circuit is half-open: one job at a time is let through as a probe; its
success closes the circuit, its failure opens it again.

Only failures the site itself causes count (it answered 429/5xx, or could not be
reached), attributed to the host that failed (after redirects), port included: a
URL a user makes up (``host:1``) pauses nothing but itself. A tenant (an API key)
alone cannot pause a site for everyone: its failures open a circuit of its own at
once, and the shared one only with failures from ``min_tenants`` different tenants.

Items ``CIRCUIT#<site>`` (shared; ``tenants`` who failed) and
``CIRCUIT#<site>#tenant#<tenant>``: ``failures``, ``open_until`` (epoch s), ``probe_until``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from ytcaption.adapters.table import Table
from ytcaption.domain.errors import SourceCoolingDown, SourceUnavailable
from ytcaption.settings import BreakerSettings

_SITE_ALIASES = {"youtu.be": "youtube.com", "m.youtube.com": "youtube.com", "music.youtube.com": "youtube.com",
                 "youtube-nocookie.com": "youtube.com"}


_DEFAULT_PORTS = {"http": 80, "https": 443}


def site_of(url: str) -> str:
    """``host`` (aliases grouped) or ``host:port`` when the URL names another port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    host = host.removeprefix("www.")
    host = _SITE_ALIASES.get(host, host)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        return f"{host}:{port}"
    return host


class CircuitBreaker:
    def __init__(self, table: Table, settings: BreakerSettings) -> None:
        self.table, self.settings = table, settings

    @staticmethod
    def _pk(scope: str) -> str:
        return f"CIRCUIT#{scope}"

    @staticmethod
    def _tenant_scope(site: str, tenant: str) -> str:
        return f"{site}#tenant#{tenant}"

    def _scopes(self, site: str, tenant: str | None) -> list[str]:
        return [site, *([self._tenant_scope(site, tenant)] if tenant else [])]

    def _update(self, scope: str, **kwargs: Any) -> dict[str, Any] | None:
        return self.table.update_item(self._pk(scope), **kwargs)

    def state(self, scope: str) -> dict[str, float]:
        item = self.table.get_item(self._pk(scope)) or {}
        return {k: float(item[k]["N"]) for k in ("failures", "open_until", "probe_until") if k in item}

    def before_download(self, site: str, tenant: str | None = None) -> None:
        """Raise if the site's circuit (shared, or this tenant's) is open; in half-open,
        claim the probe or raise."""
        for scope in self._scopes(site, tenant):
            self._check(scope, site)

    def _check(self, scope: str, site: str) -> None:
        now = time.time()
        state = self.state(scope)
        open_until = state.get("open_until", 0.0)
        if not open_until:
            return  # closed
        if now < open_until:
            self._refuse(site, open_until - now)
        # half-open: one probe at a time
        claimed = self._update(
            scope,
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

    def record_success(self, site: str, tenant: str | None = None) -> None:
        for scope in self._scopes(site, tenant):
            self.table.delete_item(self._pk(scope))

    def record_failure(self, site: str, tenant: str | None = None) -> bool:
        """Count a failure the site caused; True if it opened a circuit (shared or the tenant's)."""
        opened = False
        if tenant:
            opened = self._fail(self._tenant_scope(site, tenant), None, 1)
        return self._fail(site, tenant, self.settings.min_tenants if tenant else 1) or opened

    def _fail(self, scope: str, tenant: str | None, min_tenants: int) -> bool:
        now = time.time()
        values: dict[str, Any] = {":one": {"N": "1"}}
        expression = "ADD failures :one REMOVE probe_until"
        if tenant:
            expression = "ADD failures :one, tenants :tenant REMOVE probe_until"
            values[":tenant"] = {"SS": [tenant]}
        item = self._update(scope, UpdateExpression=expression, ExpressionAttributeValues=values) or {}
        failures = int(item.get("failures", {}).get("N", "0"))
        tenants = len(item.get("tenants", {}).get("SS", [])) if tenant else min_tenants
        # a failure after the circuit has opened once (the half-open probe) reopens it at once
        if (failures >= self.settings.threshold and tenants >= min_tenants) or "open_until" in item:
            self._update(
                scope,
                UpdateExpression="SET open_until = :until, failures = :zero REMOVE tenants",
                ExpressionAttributeValues={":until": {"N": str(now + self.settings.cooldown_s)},
                                           ":zero": {"N": "0"}},
            )
            return True
        return False
