"""boto3 plumbing: client construction and ClientError -> domain error translation.

Translation is by error *code*, never by message text. Clients honour
``AWS_ENDPOINT_URL`` (botocore does this itself), which is how the local runtime
points every handler and worker at its embedded moto server.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from ytcaption.domain.errors import StorageError, Throttled, YTCaptionError

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "LimitExceededException",
    }
)
TRANSIENT_CODES = frozenset(
    {"InternalServerError", "InternalError", "ServiceUnavailable", "ServiceUnavailableException"}
)


@cache
def client(service: str) -> Any:
    """A cached client per service, built on first use (not at import)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=30,
        signature_version="s3v4" if service == "s3" else None,
    )
    return boto3.client(service, config=config)


def reset_clients() -> None:
    client.cache_clear()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: ClientError, what: str) -> YTCaptionError:
    """Map a boto3 ClientError to the domain error a caller can act on."""
    code = error_code(exc)
    if code in THROTTLING_CODES:
        return Throttled(f"{what}: AWS throttled the request ({code})")
    if code in TRANSIENT_CODES:
        return StorageError(f"{what}: transient AWS error ({code})")
    return YTCaptionError(f"{what}: AWS error {code or 'unknown'}")


class Adapter:
    """What every adapter shares: a boto3 client built on first use (or the one a test
    passes in), and calls whose ``ClientError`` becomes a domain error. Codes a caller
    handles itself (a failed condition, an execution that already exists) are listed in
    ``passthrough`` and reach it as the ``ClientError``."""

    service: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client(self.service)
        return self._client

    def call(self, op: str, *, passthrough: tuple[str, ...] = (), **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, op)(**kwargs)
        except ClientError as exc:
            if error_code(exc) in passthrough:
                raise
            raise translate(exc, f"{self.label} {op}") from exc
