"""The download circuit breaker, shared through DynamoDB (moto)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, ApiClient, SpeechClip
from tests.servers import Route, loopback_server
from tests.stages import Stages
from ytcaption.adapters.circuit_breaker import CircuitBreaker, site_of
from ytcaption.adapters.table import Table
from ytcaption.domain.errors import DownloadFailed, SourceCoolingDown, SourceUnavailable, YTCaptionError
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.settings import BreakerSettings, PipelineSettings
from ytcaption_local.runtime import free_port

pytestmark = pytest.mark.integration


def test_sites_are_grouped() -> None:
    assert site_of("https://youtu.be/abc") == site_of("https://www.youtube.com/watch?v=abc") == "youtube.com"
    assert site_of("http://127.0.0.1:8080/a.mp3") == "127.0.0.1:8080"


def test_opens_after_threshold_half_opens_one_probe_and_closes_on_success(moto_stack: dict[str, Any]) -> None:
    b = CircuitBreaker(Table(TABLE, moto_stack["dynamodb"]), BreakerSettings(threshold=3, cooldown_s=0.5))
    b.before_download("example.com")
    assert not b.record_failure("example.com")
    assert not b.record_failure("example.com")
    assert b.record_failure("example.com")  # the third consecutive failure opens it
    with pytest.raises(SourceUnavailable) as exc:
        b.before_download("example.com")
    assert exc.value.code == "SOURCE_UNAVAILABLE" and not exc.value.retryable
    b.before_download("other.example")  # other sites are unaffected
    time.sleep(0.6)
    b.before_download("example.com")  # half-open: this job is the probe
    with pytest.raises(SourceUnavailable):
        b.before_download("example.com")  # ... and only one probe at a time
    assert b.record_failure("example.com")  # the probe failed: open again at once
    with pytest.raises(SourceUnavailable):
        b.before_download("example.com")
    time.sleep(0.6)
    b.before_download("example.com")
    b.record_success("example.com")  # the probe worked: closed
    b.before_download("example.com")
    b.before_download("example.com")


def test_a_success_resets_the_count(moto_stack: dict[str, Any]) -> None:
    b = CircuitBreaker(Table(TABLE, moto_stack["dynamodb"]), BreakerSettings(threshold=2))
    b.record_failure("s")
    b.record_success("s")
    assert not b.record_failure("s")
    b.before_download("s")


def test_wait_mode_raises_a_retryable_error(moto_stack: dict[str, Any]) -> None:
    b = CircuitBreaker(Table(TABLE, moto_stack["dynamodb"]), BreakerSettings(threshold=1, mode="wait"))
    b.record_failure("s")
    with pytest.raises(SourceCoolingDown) as exc:
        b.before_download("s")
    assert exc.value.retryable and exc.value.code == "SOURCE_UNAVAILABLE"


def test_jobs_for_a_failing_site_fail_fast_without_touching_it(moto_stack: dict[str, Any], tmp_path: Path) -> None:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path),
                                allow_loopback_urls=True, breaker=BreakerSettings(threshold=3, cooldown_s=60))
    stages = Stages(settings)
    with loopback_server() as srv:
        srv.serve("/busy.mp3", b"", fail_first=10**6)
        jobs = []
        for _ in range(4):
            job = Job.new(source=Source(kind="url", url=srv.url("/busy.mp3")), options=JobOptions(),
                          status=JobStatus.QUEUED, ttl_days=1)
            stages.repo.create(job)
            jobs.append(job)
        for job in jobs[:3]:
            with pytest.raises(DownloadFailed):
                stages.download.run(job.job_id)
        hits = len(srv.hits)
        with pytest.raises(SourceUnavailable):
            stages.download.run(jobs[3].job_id)
        assert len(srv.hits) == hits  # failed fast: no request to the site


# --- keying: port, the source that failed, and tenants --------------------------------------------


def test_the_port_is_part_of_the_site() -> None:
    assert site_of("http://media.example:1/a.mp3") == "media.example:1"
    assert site_of("http://media.example:1/a.mp3") != site_of("http://media.example/a.mp3")
    assert site_of("https://www.youtube.com:443/watch?v=x") == site_of("http://youtube.com:80/") == "youtube.com"
    assert site_of("https://youtu.be:8443/x") == "youtube.com:8443"


def test_one_tenant_cannot_open_the_shared_circuit(moto_stack: dict[str, Any]) -> None:
    b = CircuitBreaker(Table(TABLE, moto_stack["dynamodb"]), BreakerSettings(threshold=3, cooldown_s=60))
    opened = [b.record_failure("example.com", "key:a") for _ in range(5)]
    assert opened[2]  # ... its own circuit: that tenant's jobs fail fast
    with pytest.raises(SourceUnavailable):
        b.before_download("example.com", "key:a")
    b.before_download("example.com", "key:b")  # everybody else is unaffected
    # a second tenant seeing failures too: the site itself is failing, pause it for all
    assert b.record_failure("example.com", "key:b")
    with pytest.raises(SourceUnavailable):
        b.before_download("example.com", "key:c")


def failing_job(stages: Stages, url: str, tenant: str) -> Job:
    job = Job.new(source=Source(kind="url", url=url), options=JobOptions(), status=JobStatus.QUEUED, ttl_days=1)
    job.tenant = tenant
    stages.repo.create(job)
    return job


def test_jobs_to_a_made_up_port_pause_neither_the_host_nor_other_tenants(
        moto_stack: dict[str, Any], tmp_path: Path, short_clip: SpeechClip) -> None:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path),
                                allow_loopback_urls=True, breaker=BreakerSettings(threshold=2, cooldown_s=60))
    stages = Stages(settings)
    with loopback_server() as srv:
        good = srv.serve("/talk.mp3", short_clip.encode(".mp3").read_bytes(), "audio/mpeg")
        dead = f"http://127.0.0.1:{free_port()}/x.mp3"  # nothing listens there
        # Given one tenant's two jobs to host:<dead port> failed
        for _ in range(2):
            with pytest.raises(DownloadFailed):
                stages.download.run(failing_job(stages, dead, "key:mallory").job_id)
        # Then jobs to the same host on its real port run, for that tenant too
        stages.download.run(failing_job(stages, good, "key:mallory").job_id)
        # and another tenant's job to the dead port is still tried (it fails on its own)
        with pytest.raises(DownloadFailed):
            stages.download.run(failing_job(stages, dead, "key:alice").job_id)
        # while the tenant who failed twice is paused there
        with pytest.raises(SourceUnavailable):
            stages.download.run(failing_job(stages, dead, "key:mallory").job_id)


def test_failures_count_against_the_host_that_failed_not_the_url_given(
        moto_stack: dict[str, Any], tmp_path: Path) -> None:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path),
                                allow_loopback_urls=True, breaker=BreakerSettings(threshold=1, cooldown_s=60))
    stages = Stages(settings)
    breaker = CircuitBreaker(Table(TABLE, moto_stack["dynamodb"]), settings.breaker)
    with loopback_server() as origin, loopback_server() as front:
        origin.serve("/busy.mp3", b"", fail_first=10**6)
        front.routes["/go.mp3"] = Route(status=302, headers={"Location": origin.url("/busy.mp3")})
        with pytest.raises(DownloadFailed):
            stages.download.run(failing_job(stages, front.url("/go.mp3"), "key:a").job_id)
        with pytest.raises(SourceUnavailable):
            breaker.before_download(site_of(origin.base), "key:a")  # the source that answered 503
        breaker.before_download(site_of(front.base), "key:a")  # not the address that only redirected
        assert breaker.state(site_of(front.base)) == {}


def test_a_final_error_does_not_count(moto_stack: dict[str, Any], tmp_path: Path) -> None:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path),
                                allow_loopback_urls=True, breaker=BreakerSettings(threshold=1, cooldown_s=60))
    stages = Stages(settings)
    with loopback_server() as srv:
        srv.serve("/notes.txt", b"not media at all", "audio/mpeg")
        with pytest.raises(YTCaptionError):
            stages.download.run(failing_job(stages, srv.url("/notes.txt"), "key:a").job_id)
    assert CircuitBreaker(Table(TABLE, moto_stack["dynamodb"]), settings.breaker).state(site_of(srv.base)) == {}


def test_the_api_records_the_tenant_and_does_not_show_it(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    api.base["requestContext"]["identity"]["apiKeyId"] = "k1abc"
    _, _, job = api("POST", "/v1/transcriptions", {"url": "https://media.example.test/a.mp3"})
    assert Table(TABLE, moto_stack["dynamodb"]).get(job["job_id"]).tenant == "key:k1abc"
    _, _, doc = api("GET", f"/v1/transcriptions/{job['job_id']}")
    assert "tenant" not in doc
    del api.base["requestContext"]["identity"]["apiKeyId"]
    _, _, job = api("POST", "/v1/transcriptions", {"url": "https://media.example.test/b.mp3"})
    assert Table(TABLE, moto_stack["dynamodb"]).get(job["job_id"]).tenant == "ip:127.0.0.1"
