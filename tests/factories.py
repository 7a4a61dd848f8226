"""Small builders for domain objects used across tests."""

from __future__ import annotations

from typing import Any

from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source


def make_job(status: JobStatus = JobStatus.QUEUED, **options: Any) -> Job:
    return Job.new(
        source=Source(kind="url", url="https://media.example.test/talk.mp3"),
        options=JobOptions(**options),
        status=status,
        ttl_days=1,
    )
