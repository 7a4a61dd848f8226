"""The reconciler: no job is left saying it runs when nothing runs it.

Runs on a schedule. For every job in a live status, it asks Step Functions
about the job's execution; an execution that ended (failed, aborted, timed
out, or succeeded without the job being told) or never started fails the job
with ``ORPHANED`` or ``TIMEOUT``, and the usual notifications go out. Jobs
waiting for an upload that never came fail once their upload URL has expired and
an upload begun just before could have finished (the declared size at the slowest
rate waited for).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ytcaption.adapters.executions import Executions
from ytcaption.adapters.notifications import Notifier
from ytcaption.adapters.table import Table
from ytcaption.domain.errors import IllegalTransition, Orphaned, StageTimeout, UploadMissing, YTCaptionError
from ytcaption.domain.jobs import ErrorInfo, Job, JobStatus, upload_deadline
from ytcaption.observability import logger
from ytcaption.settings import PipelineSettings

LIVE = (JobStatus.QUEUED, JobStatus.DOWNLOADING, JobStatus.NORMALIZING, JobStatus.TRANSCRIBING, JobStatus.MERGING)


def _age_s(ts: str, now: datetime) -> float:
    return (now - datetime.fromisoformat(ts.replace("Z", "+00:00"))).total_seconds()


class Reconciler:
    def __init__(self, settings: PipelineSettings, repo: Table | None = None,
                 executions: Executions | None = None, notifier: Notifier | None = None,
                 batch_client: Any | None = None) -> None:
        self.settings = settings
        self._batch = batch_client
        self.repo = repo or Table(settings.jobs_table)
        self.executions = executions or Executions("")
        self.notifier = notifier or Notifier(settings, self.repo)

    def run(self, *, grace_s: float | None = None) -> dict[str, Any]:
        grace = self.settings.reconcile_grace_s if grace_s is None else grace_s
        now = datetime.now(UTC)
        checked, failed = 0, []
        for status in (*LIVE, JobStatus.AWAITING_UPLOAD):
            cursor = None
            while True:
                jobs, cursor = self.repo.list(status=status, limit=100, cursor=cursor)
                for job in jobs:
                    checked += 1
                    problem = self._problem(job, now, grace)
                    if problem is not None and self._fail(job, problem):
                        failed.append({"job_id": job.job_id, "code": problem.code})
                if not cursor:
                    break
        if failed:
            logger.warning("reconciler failed stuck jobs", extra={"failed": failed})
        return {"checked": checked, "failed": failed, "batch_queue_depth": self.batch_queue_depth()}

    def batch_queue_depth(self) -> int | None:
        """Shards waiting for a GPU (SUBMITTED..STARTING), as a metric; None without a queue."""
        queue = self.settings.transcriber_job_queue
        if not queue:
            return None
        from ytcaption.adapters import aws
        from ytcaption.telemetry import BATCH_QUEUE_DEPTH, put

        batch = self._batch or aws.client("batch")
        depth = 0
        try:
            for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING"):
                kwargs: dict[str, Any] = {"jobQueue": queue, "jobStatus": status}
                while True:
                    resp = batch.list_jobs(**kwargs)
                    depth += len(resp.get("jobSummaryList", []))
                    if not resp.get("nextToken"):
                        break
                    kwargs["nextToken"] = resp["nextToken"]
        except Exception:  # the metric is best effort; the reconciler's real work is done
            logger.exception("could not count the Batch queue")
            return None
        put(BATCH_QUEUE_DEPTH, depth)
        return depth

    def _problem(self, job: Job, now: datetime, grace: float) -> YTCaptionError | None:
        if job.status == JobStatus.AWAITING_UPLOAD:
            deadline = upload_deadline(job, self.settings.presign_expiry_s, self.settings.upload_min_rate_bps)
            if (now - deadline).total_seconds() > grace:
                return UploadMissing("no file was uploaded before the upload URL expired")
            return None
        if not job.execution_arn:
            return Orphaned("the job has no execution") if _age_s(job.updated_at, now) > grace else None
        status = self.executions.status(job.execution_arn)
        if status == "RUNNING":
            return None
        if status is None:
            if _age_s(job.updated_at, now) > grace:
                return Orphaned("the job's execution does not exist "
                                "(it never started, or the local runtime running it stopped)")
            return None
        if status == "TIMED_OUT":
            return StageTimeout("the job took longer than the pipeline's time limit")
        # FAILED / ABORTED / SUCCEEDED while the record still says running
        return Orphaned(f"the job's execution ended ({status}) without finishing the job")

    def _fail(self, job: Job, problem: YTCaptionError) -> bool:
        from ytcaption.adapters.storage import Storage
        from ytcaption.domain.costs import ending_fields
        from ytcaption.telemetry import RECONCILER_FAILED, emit_job_end, put

        try:
            failed = self.repo.transition(job.job_id, JobStatus.FAILED, message=problem.message,
                                          error=ErrorInfo(code=problem.code, message=problem.message),
                                          fields=ending_fields(job, Storage(self.settings.bucket_name),
                                                               self.settings.cost))
        except IllegalTransition:
            return False  # it ended on its own meanwhile
        put(RECONCILER_FAILED, 1)
        emit_job_end(failed)
        self.notifier.job_finished(failed)
        return True
