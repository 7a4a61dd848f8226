"""Every AWS client the code builds honours AWS_ENDPOINT_URL (LocalStack, moto, a VPC endpoint).

The clients are all made by ``ytcaption.adapters.aws.client``; these tests make sure no
module builds its own, and that each service the code uses, and the presigned
URLs users receive, go to the configured endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import loopback_server

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "layers/ytcaption/ytcaption").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py"))]


def services_used() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        text = path.read_text()
        found |= set(re.findall(r"""\bclient\(\s*["']([a-z0-9-]+)["']\s*\)""", text))
        # an aws.Adapter names its service once: ``service, label = "s3", "S3"``
        found |= set(re.findall(r"""^\s+service(?:, label)? = ["']([a-z0-9-]+)["']""", text, re.MULTILINE))
    return found


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from ytcaption.adapters import aws

    with loopback_server() as srv:
        monkeypatch.setenv("AWS_ENDPOINT_URL", srv.base)
        aws.reset_clients()
        yield srv.base
    aws.reset_clients()


def test_the_code_uses_the_services_the_stack_has() -> None:
    assert services_used() == {"apigateway", "batch", "dynamodb", "events", "s3", "secretsmanager", "stepfunctions"}


def test_no_module_builds_its_own_client() -> None:
    own = [str(p.relative_to(ROOT)) for p in SOURCES
           if p.name != "aws.py" and re.search(r"boto3\.(client|resource|session|Session)\b", p.read_text())]
    assert own == []


@pytest.mark.parametrize("service", sorted(services_used()))
def test_each_client_goes_to_the_endpoint(endpoint: str, service: str) -> None:
    from ytcaption.adapters import aws

    assert aws.client(service).meta.endpoint_url == endpoint


def test_requests_really_reach_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from ytcaption.adapters import aws

    with loopback_server() as srv:
        monkeypatch.setenv("AWS_ENDPOINT_URL", srv.base)
        aws.reset_clients()
        try:
            with pytest.raises(ClientError):  # the server knows no such object: 404
                aws.client("s3").head_object(Bucket="b", Key="k")
        finally:
            aws.reset_clients()
        assert ("HEAD", "/b/k") in srv.hits


def test_presigned_urls_point_at_the_endpoint(endpoint: str) -> None:
    from ytcaption.adapters.storage import Storage

    url = Storage("media-bucket").presign_put("uploads/x.mp3", content_type="audio/mpeg", content_length=10,
                                               expires_s=60)
    assert url.startswith(endpoint + "/media-bucket/uploads/x.mp3?")
