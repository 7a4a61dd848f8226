"""The download circuit breaker, shared through DynamoDB (moto)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from tests.servers import loopback_server
from ytcaption.circuit import BreakerSettings, CircuitBreaker, site_of
from ytcaption.errors import DownloadFailed, SourceCoolingDown, SourceUnavailable
from ytcaption.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.pipeline import Pipeline
from ytcaption.settings import PipelineSettings

pytestmark = pytest.mark.integration


def test_sites_are_grouped() -> None:
    assert site_of("https://youtu.be/abc") == site_of("https://www.youtube.com/watch?v=abc") == "youtube.com"
    assert site_of("http://127.0.0.1:8080/a.mp3") == "127.0.0.1"


def test_opens_after_threshold_half_opens_one_probe_and_closes_on_success(moto_stack: dict[str, Any]) -> None:
    b = CircuitBreaker(TABLE, BreakerSettings(threshold=3, cooldown_s=0.5), moto_stack["dynamodb"])
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
    b = CircuitBreaker(TABLE, BreakerSettings(threshold=2), moto_stack["dynamodb"])
    b.record_failure("s")
    b.record_success("s")
    assert not b.record_failure("s")
    b.before_download("s")


def test_wait_mode_raises_a_retryable_error(moto_stack: dict[str, Any]) -> None:
    b = CircuitBreaker(TABLE, BreakerSettings(threshold=1, mode="wait"), moto_stack["dynamodb"])
    b.record_failure("s")
    with pytest.raises(SourceCoolingDown) as exc:
        b.before_download("s")
    assert exc.value.retryable and exc.value.code == "SOURCE_UNAVAILABLE"


def test_jobs_for_a_failing_site_fail_fast_without_touching_it(moto_stack: dict[str, Any], tmp_path: Path) -> None:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path),
                                allow_loopback_urls=True, breaker=BreakerSettings(threshold=3, cooldown_s=60))
    pipeline = Pipeline(settings)
    with loopback_server() as srv:
        srv.serve("/busy.mp3", b"", fail_first=10**6)
        jobs = []
        for _ in range(4):
            job = Job.new(source=Source(kind="url", url=srv.url("/busy.mp3")), options=JobOptions(),
                          status=JobStatus.QUEUED, ttl_days=1)
            pipeline.repo.create(job)
            jobs.append(job)
        for job in jobs[:3]:
            with pytest.raises(DownloadFailed):
                pipeline.download(job.job_id)
        hits = len(srv.hits)
        with pytest.raises(SourceUnavailable):
            pipeline.download(jobs[3].job_id)
        assert len(srv.hits) == hits  # failed fast: no request to the site
