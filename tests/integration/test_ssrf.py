"""Outbound URL safety: nothing the service fetches may point into its own network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, ApiClient
from tests.servers import LoopbackServer, Route, loopback_server
from tests.stages import Stages
from ytcaption.adapters.netsafety import UrlPolicy, address_problem, check_url, guarded
from ytcaption.domain.errors import UnsafeUrl
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.settings import PipelineSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def target() -> Iterator[LoopbackServer]:
    """The server an attacker wants the service to reach; it must see no request at all."""
    with loopback_server() as srv:
        srv.serve("/latest/meta-data/iam", b"secret", "text/plain")
        yield srv


def unsafe_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/latest/meta-data/iam",
        f"http://localhost:{port}/",
        f"http://127.1:{port}/",
        f"http://2130706433:{port}/",              # decimal 127.0.0.1
        f"http://0x7f000001:{port}/",              # hex
        f"http://017700000001:{port}/",            # octal
        f"http://0x7f.0.0.1:{port}/",              # mixed
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",      # IPv4-mapped IPv6
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",       # NAT64 of 127.0.0.1
        f"http://0.0.0.0:{port}/",
        "http://169.254.169.254/latest/meta-data/",  # instance metadata
        "http://[fd00:ec2::254]/latest/meta-data/",  # IPv6 instance metadata
        "http://metadata.google.internal/",
        "http://10.0.0.1/admin",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",                      # carrier-grade NAT
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",                       # reserved
        "http://user:pass@example.com/",           # credentials
        f"http://user@127.0.0.1:{port}/",
        "ftp://example.com/file.mp3",
        "file:///etc/passwd",
        "gopher://example.com/",
    ]


def test_url_table_is_refused_by_the_policy(target: LoopbackServer) -> None:
    policy = UrlPolicy()
    urls = unsafe_urls(target.port)
    assert len(urls) >= 20
    for url in urls:
        with pytest.raises(UnsafeUrl):
            check_url(url, policy)
    assert target.hits == []


def test_api_refuses_unsafe_sources_and_webhooks_before_any_connection(
    api: ApiClient, target: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOW_LOOPBACK_URLS", "false")  # the deployed default
    from ytcaption import services

    services.reset()
    for url in unsafe_urls(target.port):
        status, _, body = api("POST", "/v1/transcriptions", {"url": url})
        assert status == 400, url
        assert body["error"]["code"] in ("UNSAFE_URL", "INVALID_REQUEST"), (url, body)
        status, _, body = api("POST", "/v1/transcriptions",
                              {"url": "https://media.example.test/a.mp3", "webhook_url": url})
        assert status == 400 and body["error"]["code"] in ("UNSAFE_URL", "INVALID_REQUEST"), (url, body)
    status, _, body = api("POST", "/v1/transcriptions", {"url": f"http://127.0.0.1:{target.port}/x"})
    assert body["error"]["code"] == "UNSAFE_URL"
    assert target.hits == []


def test_redirect_into_private_space_is_refused_at_connect(
    moto_stack: dict[str, Any], tmp_path: Path
) -> None:
    with loopback_server("127.0.0.2") as inner, loopback_server() as outer:
        inner.serve("/secret.mp3", b"ID3 secret", "audio/mpeg")
        outer.routes["/go.mp3"] = Route(status=302, headers={"Location": inner.url("/secret.mp3")})
        # the first host is trusted by name; where it redirects to is not
        settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path),
                                    allowed_url_hosts="127.0.0.1", allow_loopback_urls=False)
        stages = Stages(settings)
        job = Job.new(source=Source(kind="url", url=outer.url("/go.mp3")), options=JobOptions(),
                      status=JobStatus.QUEUED, ttl_days=1)
        stages.repo.create(job)
        with pytest.raises(UnsafeUrl):
            stages.download.run(job.job_id)
        assert outer.hits and outer.hits[0][1] == "/go.mp3"
        assert inner.hits == []
        assert not (tmp_path / job.job_id).exists() or not any((tmp_path / job.job_id).rglob("*.mp3"))
        out = stages.mark_failed.run(job.job_id, {"Error": "UnsafeUrl", "Cause": '{"errorMessage": "refused"}'})
        assert out["code"] == "UNSAFE_URL"


def test_guard_blocks_rebinding_at_connection_time(target: LoopbackServer) -> None:
    import urllib.request

    with guarded(UrlPolicy()), pytest.raises(Exception) as exc:
        urllib.request.urlopen(target.url("/latest/meta-data/iam"), timeout=3)
    assert isinstance(exc.value, UnsafeUrl) or isinstance(getattr(exc.value, "reason", None), UnsafeUrl)
    assert target.hits == []


@pytest.mark.parametrize(("address", "ok"), [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("::1", False),
    ("::ffff:10.0.0.1", False), ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ("169.254.169.254", False), ("fd00:ec2::254", False),
])
def test_addresses(address: str, ok: bool) -> None:
    assert (address_problem(address, UrlPolicy()) is None) is ok


def test_policy_lists_and_local_allowance() -> None:
    check_url("http://127.0.0.1:9/", UrlPolicy(allow_loopback=True))
    check_url("http://intranet.corp/", UrlPolicy(allowed_hosts=(".corp",)))
    with pytest.raises(UnsafeUrl):
        check_url("https://www.youtube.com/watch?v=x", UrlPolicy(denied_hosts=(".youtube.com",)))


# --- issue 11, low findings -------------------------------------------------------------------

def test_an_allow_list_never_switches_off_the_ip_rules() -> None:
    # "*" names no host: every IP rule still applies
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://127.0.0.1/",
                "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(UnsafeUrl):
            check_url(url, UrlPolicy(allowed_hosts=("*",)))
    # a host named in the list may reach private space (an intranet media server), never metadata
    check_url("http://10.0.0.1/", UrlPolicy(allowed_hosts=("10.0.0.1",)))
    with pytest.raises(UnsafeUrl):
        check_url("http://169.254.169.254/", UrlPolicy(allowed_hosts=("169.254.169.254",)))
    assert address_problem("169.254.169.254", UrlPolicy(), trusted=True) is not None


def test_the_guard_holds_for_threads_started_inside_it(target: LoopbackServer) -> None:
    import threading
    import urllib.request

    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            urllib.request.urlopen(target.url("/latest/meta-data/iam"), timeout=3).read()
        except BaseException as exc:
            errors.append(exc)

    with guarded(UrlPolicy()):
        worker = threading.Thread(target=fetch)
        worker.start()
        worker.join(10)
    assert target.hits == []
    assert errors and (isinstance(errors[0], UnsafeUrl) or isinstance(getattr(errors[0], "reason", None), UnsafeUrl))


def test_proxy_variables_do_not_blind_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    # Given a "proxy" the policy allows (loopback here) that would fetch private targets for us
    with loopback_server() as proxy:
        proxy.serve("/", b"proxied", "text/plain")
        monkeypatch.setenv("HTTP_PROXY", proxy.url("/"))
        monkeypatch.setenv("http_proxy", proxy.url("/"))
        with pytest.raises(UnsafeUrl, match="proxy"), guarded(UrlPolicy(allow_loopback=True)):
            urllib.request.urlopen("http://10.0.0.1/admin", timeout=3).read()
        assert proxy.hits == []
        # proxies switched off for every host: fine
        monkeypatch.setenv("NO_PROXY", "*")
        monkeypatch.setenv("no_proxy", "*")
        with guarded(UrlPolicy()):
            pass
