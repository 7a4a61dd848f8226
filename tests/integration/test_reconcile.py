"""The reconciler's decisions, against moto's table (executions faked: their states are the input)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from tests.factories import make_job
from ytcaption.domain.jobs import JobStatus
from ytcaption.settings import PipelineSettings
from ytcaption.stages.reconcile import Reconciler

pytestmark = pytest.mark.integration


class FakeExecutions:
    def __init__(self, states: dict[str, str | None]) -> None:
        self.states = states

    def status(self, arn: str) -> str | None:
        return self.states.get(arn)


class CountingNotifier:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def job_finished(self, job: Any, **kw: Any) -> dict[str, Any]:
        self.calls.append((job.job_id, job.status.value))
        return {}


def test_reconciler_fails_what_nothing_runs_and_leaves_the_rest(moto_stack: dict[str, Any]) -> None:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, presign_expiry_s=0)
    notifier = CountingNotifier()
    jobs = {}
    for name, status, execution in [
        ("running", JobStatus.TRANSCRIBING, "RUNNING"),
        ("timed_out", JobStatus.NORMALIZING, "TIMED_OUT"),
        ("aborted", JobStatus.DOWNLOADING, "ABORTED"),
        ("never_started", JobStatus.QUEUED, None),
        ("done", JobStatus.COMPLETED, "SUCCEEDED"),
        ("upload", JobStatus.AWAITING_UPLOAD, None),
    ]:
        job = make_job(JobStatus.QUEUED if status != JobStatus.AWAITING_UPLOAD else status)
        job.execution_arn = f"arn:exec:{name}"
        rec = Reconciler(settings, executions=FakeExecutions({}), notifier=notifier)
        rec.repo.create(job)
        path = {JobStatus.DOWNLOADING: [JobStatus.DOWNLOADING],
                JobStatus.NORMALIZING: [JobStatus.DOWNLOADING, JobStatus.NORMALIZING],
                JobStatus.TRANSCRIBING: [JobStatus.DOWNLOADING, JobStatus.NORMALIZING, JobStatus.TRANSCRIBING],
                JobStatus.COMPLETED: [JobStatus.DOWNLOADING, JobStatus.NORMALIZING, JobStatus.TRANSCRIBING,
                                      JobStatus.MERGING, JobStatus.COMPLETED]}.get(status, [])
        for s in path:
            rec.repo.transition(job.job_id, s)
        jobs[name] = (job.job_id, execution)
    states = {f"arn:exec:{n}": e for n, (_, e) in jobs.items()}
    rec = Reconciler(settings, executions=FakeExecutions(states), notifier=notifier)

    report = rec.run(grace_s=0)

    codes = {f["job_id"]: f["code"] for f in report["failed"]}
    assert codes == {jobs["timed_out"][0]: "TIMEOUT", jobs["aborted"][0]: "ORPHANED",
                     jobs["never_started"][0]: "ORPHANED", jobs["upload"][0]: "UPLOAD_MISSING"}
    assert rec.repo.get(jobs["running"][0]).status == JobStatus.TRANSCRIBING
    assert rec.repo.get(jobs["done"][0]).status == JobStatus.COMPLETED
    assert sorted(notifier.calls) == sorted((j, "FAILED") for j in codes)
    # a second run finds nothing more to do
    assert rec.run(grace_s=0)["failed"] == []


def test_grace_period_protects_jobs_that_are_just_starting(moto_stack: dict[str, Any]) -> None:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET)
    job = make_job()
    job.execution_arn = "arn:exec:starting"
    rec = Reconciler(settings, executions=FakeExecutions({}), notifier=CountingNotifier())
    rec.repo.create(job)
    assert rec.run()["failed"] == []  # default grace: 10 minutes
    assert rec.repo.get(job.job_id).status == JobStatus.QUEUED
