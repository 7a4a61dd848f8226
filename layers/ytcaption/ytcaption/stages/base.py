"""What every pipeline stage shares: its settings, the job table, the media bucket, and
how a stage enters the job's next status.

Each stage moves the job's status first, so a cancelled job stops at the next stage
boundary (the move raises ``JobCancelled``), and a retried stage re-entering its own
status is a no-op. Stages are idempotent: a retry redoes or skips work, never
duplicates it. The legal moves themselves are decided in :mod:`ytcaption.domain.jobs`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ytcaption.adapters import storage as keys
from ytcaption.adapters.storage import Storage
from ytcaption.adapters.table import Table
from ytcaption.domain.captions import Transcript, render
from ytcaption.domain.jobs import ErrorInfo, Job, JobStatus
from ytcaption.observability import bind_job
from ytcaption.settings import PipelineSettings


class WorkerError(ErrorInfo):
    """A Batch worker's failure, as it recorded it for the state machine's failure path
    (written by :mod:`ytcaption.stages.transcribe`, read by :mod:`ytcaption.stages.mark_failed`)."""

    shard: int
    retryable: bool
    at: str


class Stage:
    """One state of the state machine (a Lambda, or the Batch worker for ``transcribe``)."""

    def __init__(self, settings: PipelineSettings, repo: Table | None = None,
                 storage: Storage | None = None) -> None:
        self.settings = settings
        self.repo = repo or Table(settings.jobs_table)
        self.storage = storage or Storage(settings.bucket_name)

    def workdir(self, job_id: str, stage: str) -> Path:
        return Path(self.settings.work_dir) / job_id / stage

    def enter(self, job_id: str, status: JobStatus, message: str) -> Job:
        """Move the job to ``status`` (the stage's own), binding its id to every log line."""
        bind_job(job_id)
        job = self.repo.transition(job_id, status, message=message)
        if job.correlation_id:
            bind_job(job_id, job.correlation_id)
        return job

    def write_results(self, job_id: str, transcript: Transcript, formats: Sequence[str]) -> dict[str, str]:
        """Write the canonical JSON and every asked-for format; returns format -> key."""
        written: dict[str, str] = {}
        for fmt in dict.fromkeys(["json", *formats]):
            key = keys.result_key(job_id, fmt)
            self.storage.put_bytes(key, render(transcript, fmt).encode("utf-8"), keys.content_type(fmt))
            written[fmt] = key
        return written


def trace_header() -> str:
    """This invocation's X-Ray trace header (the execution's trace): the Batch workers log it."""
    return os.environ.get("_X_AMZN_TRACE_ID", "")
