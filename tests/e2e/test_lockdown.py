"""The local stack is not open to any local page (issue 11, finding 6): its embedded AWS
endpoint answers only the runtime, never serves CORS, and no source or webhook URL may
point at the runtime's own ports."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from ytcaption_local.cli import ApiError, Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = pytest.mark.e2e


def call(url: str, method: str = "POST", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_the_moto_admin_api_is_not_reachable_without_the_runtimes_secret(runtime: LocalRuntime) -> None:
    bucket = runtime.outputs["BucketName"]
    status, _ = call(f"{runtime.endpoint}/moto-api/reset")
    assert status == 403
    status, _ = call(f"http://localhost:{runtime.endpoint.rsplit(':', 1)[1]}/moto-api/reset")
    assert status == 403
    # nothing was wiped: the runtime's own clients still work
    runtime.client("s3").head_bucket(Bucket=bucket)
    # an unsigned S3 listing (what a page's <img> or fetch would send) is refused too
    assert call(f"{runtime.endpoint}/{bucket}", method="GET")[0] == 403


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
])
def test_browsers_get_no_answer_and_no_cors(runtime: LocalRuntime, headers: dict[str, str]) -> None:
    bucket = runtime.outputs["BucketName"]
    for method in ("GET", "POST", "OPTIONS"):
        status, got = call(f"{runtime.endpoint}/{bucket}", method=method,
                           headers={**headers, "Access-Control-Request-Method": "PUT"})
        assert status == 403, method
        assert not [k for k in got if k.lower().startswith("access-control-")], got


def test_sources_and_webhooks_aimed_at_the_runtime_are_refused(runtime: LocalRuntime, client: Client) -> None:
    moto_port = runtime.endpoint.rsplit(":", 1)[1]
    api_port = runtime.api_url.rsplit(":", 1)[1]
    targets = [f"http://127.0.0.1:{moto_port}/moto-api/reset", f"http://localhost:{moto_port}/moto-api/reset",
               f"http://127.0.0.1:{api_port}/v1/transcriptions", f"http://[::ffff:127.0.0.1]:{moto_port}/"]
    for target in targets:
        for body in ({"url": target}, {"url": "https://media.example.test/a.mp3", "webhook_url": target}):
            with pytest.raises(ApiError) as exc:
                client.submit_url(body.pop("url"), body)
            assert exc.value.code == "UNSAFE_URL", target
    runtime.client("s3").head_bucket(Bucket=runtime.outputs["BucketName"])
