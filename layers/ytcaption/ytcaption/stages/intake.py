"""Jobs for executions started by hand from the Step Functions console.

Operators paste ``{"url": "https://..."}`` or ``{"s3_uri": "s3://<media bucket>/<key>"}``
(plus any API option: ``model``, ``language``, ``formats``, ...). The API and the
S3 trigger create the job record before they start an execution; here the
execution exists first, so its first step creates the record, tied to that
execution (the reconciler then watches it like any other job). The job id is
derived from the execution ARN, so a retried step finds the job it made.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ytcaption.adapters.netsafety import UrlPolicy, check_url
from ytcaption.adapters.storage import Storage, source_key
from ytcaption.adapters.table import Table
from ytcaption.api.schemas import SubmitTranscription
from ytcaption.domain.errors import InvalidRequest, MediaTooLarge, UnsupportedMedia
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source, describe_errors
from ytcaption.observability import bind_job, logger
from ytcaption.settings import IntakeSettings


def job_id_for(execution_arn: str) -> str:
    return hashlib.sha256(execution_arn.encode()).hexdigest()[:32]


class Intake:
    def __init__(self, settings: IntakeSettings, repo: Table | None = None,
                 storage: Storage | None = None) -> None:
        self.settings = settings
        self.repo = repo or Table(settings.jobs_table)
        self.storage = storage or Storage(settings.bucket_name)

    def create(self, raw: Any, execution_arn: str) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise InvalidRequest("the execution input must be a JSON object with url or s3_uri")
        data = {"model": self.settings.default_model, **raw}
        s3_uri = data.pop("s3_uri", None)
        if s3_uri is not None and "url" in data:
            raise InvalidRequest("give either url or s3_uri, not both")
        job_id = job_id_for(execution_arn)
        bind_job(job_id)
        existing = self.repo.find(job_id)
        if existing is not None:  # a retry of this step
            return {"job_id": existing.job_id, "source_kind": existing.source.kind}
        if s3_uri is not None:
            source, options = self._object_source(str(s3_uri), job_id), _options(data)
        else:
            try:
                req = SubmitTranscription.model_validate(data)
            except ValidationError as exc:
                raise InvalidRequest(describe_errors(exc.errors())) from exc
            check_url(req.url, UrlPolicy.from_settings(self.settings))
            source = Source(kind="url", url=req.url)
            options = JobOptions.model_validate(req.model_dump(exclude={"url"}))
        job = Job.new(job_id=job_id, source=source, options=options, status=JobStatus.QUEUED,
                      ttl_days=self.settings.job_ttl_days, correlation_id=f"console-{job_id[:12]}")
        job.execution_arn = execution_arn
        job.events[0].message = "job created by an execution started by hand"
        job, _ = self.repo.create(job)
        logger.info("job created for a hand-started execution", extra={"source": source.kind})
        return {"job_id": job.job_id, "source_kind": job.source.kind}

    def _object_source(self, s3_uri: str, job_id: str) -> Source:
        """The object, copied into the job's work area: the pipeline reads only its own
        prefixes (uploads/, work/), whatever key the operator pasted."""
        parts = urlsplit(s3_uri)
        key = parts.path.lstrip("/")
        if parts.scheme != "s3" or not parts.netloc or not key:
            raise InvalidRequest("s3_uri must look like s3://<bucket>/<key>")
        if parts.netloc != self.storage.bucket:
            raise InvalidRequest(f"s3_uri must be in the media bucket {self.storage.bucket} "
                                 "(copy the file there first)")
        head = self.storage.head(key)
        if head is None:
            raise UnsupportedMedia(f"no object at {s3_uri}")
        size = int(head.get("ContentLength", 0))
        if size > self.settings.media.max_download_bytes:
            raise MediaTooLarge(f"object is {size} bytes; the maximum is {self.settings.media.max_download_bytes}")
        filename = key.rsplit("/", 1)[-1]
        work = source_key(job_id, filename.rsplit(".", 1)[-1] if "." in filename else "bin")
        self.storage.copy(key, work)
        return Source(kind="upload", bucket=self.storage.bucket, key=work, filename=filename,
                      content_type=head.get("ContentType"), size_bytes=size)


def _options(data: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc.errors())) from exc
