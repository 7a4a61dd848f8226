"""S3 ``ObjectCreated`` events -> jobs.

A failure on one record does not stop the others, but the invocation still
fails at the end so that Lambda's asynchronous retries (and then its
dead-letter destination) see it; handling a record twice is harmless because
:meth:`JobService.on_upload` is idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from ytcaption import services
from ytcaption.observability import bind_job, logger, metrics
from ytcaption.settings import get_api_settings

if TYPE_CHECKING:
    from ytcaption.api.service import JobService


class S3Object(BaseModel):
    key: str
    size: int = 0
    sequencer: str = ""


class S3Bucket(BaseModel):
    name: str


class S3Entity(BaseModel):
    bucket: S3Bucket
    object: S3Object


class S3Record(BaseModel):
    eventName: str
    s3: S3Entity


class S3Event(BaseModel):
    Records: list[S3Record]


class UploadTriggerFailed(Exception):
    """Some records could not be handled; Lambda retries the event."""


def handle_s3_event(event: dict[str, Any], service: JobService | None = None) -> dict[str, Any]:
    settings = get_api_settings()
    svc = service or services.job_service()
    parsed = S3Event.model_validate(event)
    started, failed = [], []
    for rec in parsed.Records:
        if not rec.eventName.startswith("ObjectCreated"):
            continue
        key = unquote_plus(rec.s3.object.key)
        if not key.startswith(settings.uploads_prefix) or key.endswith("/"):
            continue
        try:
            job = svc.on_upload(
                bucket=rec.s3.bucket.name, key=key, size=rec.s3.object.size,
                sequencer=rec.s3.object.sequencer,
            )
        except Exception:
            logger.exception("upload not handled", extra={"key": key})
            failed.append(key)
            continue
        if job is not None:
            bind_job(job.job_id)
            logger.info("upload handled", extra={"key": key, "status": job.status})
            metrics.add_metric(name="UploadsStarted", unit=MetricUnit.Count, value=1)
            started.append(job.job_id)
    if failed:
        raise UploadTriggerFailed(f"{len(failed)} upload(s) not handled: {failed}")
    return {"jobs": started}
