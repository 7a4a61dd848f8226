"""boto3 plumbing: client construction and ClientError -> domain error translation.

Translation is by error *code*, never by message text. Clients honour
``AWS_ENDPOINT_URL`` (botocore does this itself), which is how the local runtime
points every handler and worker at its embedded moto server.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

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
