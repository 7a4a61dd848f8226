"""The endpoint suite: a deployed stack, reached only over HTTP and boto3.

Point it at a stack with the environment ``make localstack-deploy`` (or a real
deploy) gives::

    YTCAPTION_API_URL   base URL of the API (up to and without /v1)
    YTCAPTION_API_KEY   the API key's value
    YTCAPTION_STACK_NAME  CloudFormation stack (state machine, bucket, table from its outputs)
    AWS_ENDPOINT_URL    LocalStack's URL (unset for real AWS); credentials as usual

Without ``YTCAPTION_API_URL`` the tests skip with that reason; the default test
run leaves them out unless asked for (``-m endpoint`` or ``tests/endpoint``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import ORIGINAL_ENV

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def _configured() -> bool:
    return bool(ORIGINAL_ENV.get("YTCAPTION_API_URL"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the suite out of a default run with no endpoint; asked for, it skips with the reason."""
    asked = "endpoint" in (config.option.markexpr or "") or any("tests/endpoint" in str(a) for a in config.args)
    if _configured() or asked:
        return
    keep = [i for i in items if "tests/endpoint/" not in i.nodeid]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@dataclass
class Endpoint:
    api_url: str
    api_key: str
    stack: str
    aws_env: dict[str, str]

    def request(self, method: str, path: str, body: Any = None, *, key: str | None = "default",
                headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if key == "default":
            key = self.api_key
        if key is not None:
            hdrs["X-Api-Key"] = key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.api_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, raw = self.request(method, path, body, **kw)
        return status, json.loads(raw) if raw else None

    def job(self, job_id: str) -> dict[str, Any]:
        status, doc = self.json("GET", f"/v1/transcriptions/{job_id}")
        assert status == 200, doc
        return dict(doc)

    def wait(self, job_id: str, timeout_s: float = 300, on_poll: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_poll:
                on_poll(job)
            if job["status"] in TERMINAL or time.monotonic() > deadline:
                return job
            time.sleep(0.5)

    def client(self, service: str) -> Any:
        import boto3

        env = self.aws_env
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"), aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=env.get("AWS_SESSION_TOKEN"),
            region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )
        return session.client(service, endpoint_url=env.get("AWS_ENDPOINT_URL") or None)

    @property
    def is_loopback(self) -> bool:
        return urlparse(self.api_url).hostname in ("127.0.0.1", "localhost", "::1")


@pytest.fixture(scope="session")
def endpoint() -> Endpoint:
    url = ORIGINAL_ENV.get("YTCAPTION_API_URL", "").rstrip("/")
    if not url:
        pytest.skip("no endpoint configured: set YTCAPTION_API_URL and YTCAPTION_API_KEY "
                    "(`make localstack-deploy` prints them; `make localstack-test` does it all)")
    ep = Endpoint(url, ORIGINAL_ENV.get("YTCAPTION_API_KEY", ""), ORIGINAL_ENV.get("YTCAPTION_STACK_NAME", ""),
                  {k: v for k, v in ORIGINAL_ENV.items() if k.startswith("AWS_")})
    try:
        ep.request("GET", "/v1/health", timeout=10)
    except OSError as exc:
        pytest.skip(f"endpoint {url} is not reachable: {exc}")
    return ep


@pytest.fixture(scope="session")
def outputs(endpoint: Endpoint) -> dict[str, str]:
    """The stack's outputs (state machine, bucket, table), read through CloudFormation."""
    if not endpoint.stack:
        pytest.skip("YTCAPTION_STACK_NAME is not set: the AWS-side checks need the stack's outputs")
    desc = endpoint.client("cloudformation").describe_stacks(StackName=endpoint.stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


@pytest.fixture(scope="session")
def media_url(endpoint: Endpoint) -> Iterator[str]:
    """The bundled sample (45 s of real speech) where the stack can fetch it: a loopback
    server for a local endpoint, or YTCAPTION_MEDIA_URL for a deployed one."""
    given = ORIGINAL_ENV.get("YTCAPTION_MEDIA_URL")
    if given:
        yield given
        return
    if not endpoint.is_loopback:
        pytest.skip("a deployed stack cannot fetch from this machine: set YTCAPTION_MEDIA_URL to a public copy "
                    "of samples/sample.mp3")
    from tests.servers import loopback_server

    from .media import SAMPLE

    with loopback_server() as srv:
        yield srv.serve("/sample.mp3", SAMPLE.read_bytes(), "audio/mpeg")
