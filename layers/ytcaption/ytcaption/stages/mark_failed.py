"""Mark-failed stage (``MarkFailedFunction``): every state's ``Catch`` ends here. It turns
what Step Functions caught into the job's stable error code and message, fails the job
(terminal jobs keep what they have), and notifies.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from ytcaption.adapters import storage as keys
from ytcaption.adapters.notifications import Notifier
from ytcaption.adapters.storage import Storage
from ytcaption.adapters.table import Table
from ytcaption.domain.costs import ending_fields
from ytcaption.domain.errors import (
    IllegalTransition,
    JobCancelled,
    StageTimeout,
    TranscriptionFailed,
    YTCaptionError,
    error_from_name,
)
from ytcaption.domain.jobs import ErrorInfo, JobStatus
from ytcaption.observability import bind_job, logger
from ytcaption.settings import PipelineSettings
from ytcaption.stages.base import Stage, WorkerError
from ytcaption.telemetry import emit_job_end


class MarkFailedStage(Stage):
    def __init__(self, settings: PipelineSettings, repo: Table | None = None,
                 storage: Storage | None = None, notifier: Notifier | None = None) -> None:
        super().__init__(settings, repo, storage)
        self.notifier = notifier or Notifier(settings, self.repo)

    def run(self, job_id: str, error: dict[str, Any] | None) -> dict[str, Any]:
        bind_job(job_id)
        error = error or {}
        is_batch = error.get("Error") == "States.TaskFailed"
        recorded = self.worker_error(job_id, _batch_shard(_cause(error))) if is_batch else None
        exc = failure_from_step_functions(error, recorded)
        try:
            current = self.repo.get(job_id)
            fields = {} if current.status.terminal else ending_fields(current, self.storage, self.settings.cost)
            job = self.repo.transition(
                job_id, JobStatus.FAILED, message=exc.message, error=ErrorInfo(code=exc.code, message=exc.message),
                fields=fields,
            )
        except JobCancelled:
            return {"status": JobStatus.CANCELLED.value, "notified": False}
        except IllegalTransition:
            job = self.repo.get(job_id)  # already ended: keep what is there
            return {"status": job.status.value, "notified": False}
        logger.warning("job failed", extra={"code": exc.code, "error": exc.message})
        emit_job_end(job)
        return {"status": job.status.value, "code": exc.code, **self.notifier.job_finished(job)}

    def worker_error(self, job_id: str, shard: int | None) -> WorkerError | None:
        """What the worker of ``shard`` last reported (the shard comes from the Batch job's description)."""
        if shard is None:
            return None
        try:  # missing (the worker died without a word): NoSuchKey, or AccessDenied without ListBucket
            return WorkerError.model_validate(self.storage.get_json(keys.worker_error_key(job_id, shard)))
        except (YTCaptionError, ValueError):
            return None


def failure_from_step_functions(error: dict[str, Any], worker_error: WorkerError | None = None) -> YTCaptionError:
    """Turn a Catch's ``{"Error", "Cause"}`` into a domain error with a clear message.

    Lambda errors arrive as our class name plus a JSON cause with
    ``errorMessage``; a failed Batch job arrives as ``States.TaskFailed`` with the
    job description, and the worker's own error is the one it recorded
    (``worker_error``, see :meth:`ytcaption.stages.transcribe.TranscribeStage.record_worker_error`); timeouts as
    ``States.Timeout``. No stack trace is kept.
    """
    name = str(error.get("Error") or "")
    cause = _cause(error)
    message = ""
    if isinstance(cause, dict):
        message = str(cause.get("errorMessage") or cause.get("StatusReason") or "")
        if not message:
            attempts = cause.get("Attempts") or []
            if attempts:
                last = attempts[-1]
                message = str((last.get("Container") or {}).get("Reason") or last.get("StatusReason") or "")
    elif isinstance(cause, str):
        message = cause
    message = " ".join(message.split())[:500]
    if name in ("States.Timeout", "States.HeartbeatTimeout", "Sandbox.Timedout"):
        # a state's own limit, or a Lambda function's timeout ("Task timed out after ...")
        return StageTimeout(message or "a stage took longer than its time limit")
    if name == "States.TaskFailed":
        if worker_error is not None:
            return error_from_name(worker_error.code, worker_error.message)
        if "exceeded timeout" in message:  # Batch stopped the attempt at attemptDurationSeconds
            return StageTimeout(f"a transcription worker ran past its time limit: {message}")
        if not message and isinstance(cause, dict):
            exit_code = ((cause.get("Container") or {}).get("ExitCode"))
            message = f"it stopped with exit code {exit_code} and reported nothing" if exit_code is not None else ""
        return TranscriptionFailed(
            f"a transcription worker failed: {message or 'it stopped without reporting an error'}")
    known = error_from_name(name, message or name)
    if type(known) is YTCaptionError:
        # not one of ours (States.Runtime, Lambda.Unknown, a bug): keep its text out of
        # the user-facing message, but in the logs
        logger.error("unexpected pipeline error", extra={"error_name": name, "cause": message})
        return YTCaptionError(f"the pipeline failed unexpectedly ({name or 'unknown error'})")
    return known


def _batch_shard(cause: Any) -> int | None:
    """The shard a failed Batch job ran (its SHARD_INDEX), from the job description in the cause."""
    if not isinstance(cause, dict):
        return None
    container = cause.get("Container") or {}
    for env in container.get("Environment") or []:
        if isinstance(env, dict) and env.get("Name") == "SHARD_INDEX":
            with contextlib.suppress(TypeError, ValueError):
                return int(str(env.get("Value")))
    return None


def _cause(error: dict[str, Any]) -> Any:
    """The Catch's ``Cause``: JSON (a Lambda error, a Batch job description) or plain text."""
    raw = error.get("Cause") or ""
    with contextlib.suppress(ValueError):
        return json.loads(raw) if isinstance(raw, str) and raw.startswith("{") else raw
    return raw
