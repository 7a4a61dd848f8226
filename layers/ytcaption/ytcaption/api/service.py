"""What the API and the S3 trigger do: submit, upload, read, cancel, list jobs.

Every step that starts work is idempotent (deterministic ids, conditional
writes, executions named after their job), so a retried request or a
re-delivered S3 event repeats the steps harmlessly and finishes what a crashed
attempt left half done, instead of being dropped by a "seen it" marker.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ytcaption.adapters.executions import Executions, execution_arn
from ytcaption.adapters.netsafety import UrlPolicy, check_url
from ytcaption.adapters.result_cache import ResultCache, cache_key, youtube_id
from ytcaption.adapters.storage import (
    CONTENT_TYPES,
    Storage,
    content_type,
    result_key,
    speaker_clip_key,
    upload_key,
)
from ytcaption.adapters.table import Table
from ytcaption.api.schemas import CreateSpeakerClip, CreateUpload, SubmitTranscription
from ytcaption.domain.catalogue import Catalogue, catalogue_from_settings
from ytcaption.domain.errors import (
    IllegalTransition,
    InvalidRequest,
    JobAlreadyFinished,
    JobNotCompleted,
    JobNotFound,
    MediaTooLarge,
    UnsupportedFormat,
    UploadTooLarge,
    YTCaptionError,
)
from ytcaption.domain.jobs import (
    ErrorInfo,
    Job,
    JobEvent,
    JobOptions,
    JobStatus,
    Source,
    upload_expiry,
    validate_options,
)
from ytcaption.domain.speakers import check_speakers
from ytcaption.settings import ApiSettings

#: a known speaker's reference clip: 30 s of 48 kHz stereo WAV is 11 MiB
MAX_SPEAKER_CLIP_BYTES = 20 * 1024 * 1024

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class ResultFile:
    body: str | None
    content_type: str
    redirect_url: str | None = None
    filename: str = ""


def fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class JobService:
    def __init__(
        self,
        settings: ApiSettings,
        repo: Table | None = None,
        storage: Storage | None = None,
        executions: Executions | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo or Table(settings.jobs_table)
        self.storage = storage or Storage(settings.bucket_name)
        self.executions = executions or Executions(settings.state_machine_arn)
        self._catalogue: Catalogue | None = None

    @property
    def catalogue(self) -> Catalogue:
        """The models this deployment runs (GET /v1/models); every job is checked against it."""
        if self._catalogue is None:
            self._catalogue = catalogue_from_settings(self.settings)
        return self._catalogue

    def check_model(self, options: JobOptions) -> JobOptions:
        self.catalogue.check(options.model, language=options.language, task=options.task)
        check_speakers(options)
        return options

    # --- submit ----------------------------------------------------------------------

    def submit_url(
        self,
        req: SubmitTranscription,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        tenant: str | None = None,
    ) -> tuple[Job, bool]:
        check_url(req.url, UrlPolicy.from_settings(self.settings))
        options = self._options(req)
        job = Job.new(
            source=Source(kind="url", url=req.url),
            options=options,
            status=JobStatus.QUEUED,
            ttl_days=self.settings.job_ttl_days,
            correlation_id=correlation_id,
        )
        job.tenant = tenant
        video = youtube_id(req.url)
        if video:
            job.cache_keys = [cache_key(f"youtube:{video}", options)]
            if not options.fresh:
                self._reuse(job)
        if job.status == JobStatus.QUEUED:
            job.execution_arn = execution_arn(self.settings.state_machine_arn, job.job_id)
        job, created = self.repo.create(
            job,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint(req.model_dump(mode="json")),
        )
        if job.status == JobStatus.QUEUED:
            # also on a retry: finishes a start that a crashed first attempt missed
            self._start(job)
        elif created and job.status == JobStatus.COMPLETED:  # a cache hit ends at once
            from ytcaption.telemetry import emit_job_end

            emit_job_end(job)
        return job, created

    def _reuse(self, job: Job) -> None:
        """Complete ``job`` at once from a stored result of the same source and options."""
        cache = ResultCache(self.repo, self.storage)
        hit = cache.lookup(job.cache_keys[0])
        if hit is None:
            return
        job.results = cache.copy_results(hit, job.job_id)
        job.status, job.progress, job.completed_at = JobStatus.COMPLETED, 100, job.created_at
        job.language, job.media, job.reused_from = hit.language, hit.media, hit.job_id
        job.transcript_source = hit.transcript_source
        job.events = [JobEvent(at=job.created_at, status=JobStatus.COMPLETED,
                               message=f"reused the result of job {hit.job_id} (same source and options)")]
        from ytcaption.telemetry import CACHE_HITS, put

        put(CACHE_HITS, 1, Kind="url")

    def create_upload(
        self,
        req: CreateUpload,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Job, str, datetime]:
        if req.site_captions != "never":
            raise InvalidRequest("site_captions applies to URL submissions: an uploaded file has no site captions")
        if req.size_bytes > self.settings.max_upload_bytes:
            raise UploadTooLarge(
                f"size_bytes {req.size_bytes} exceeds the maximum upload size "
                f"{self.settings.max_upload_bytes}"
            )
        job = Job.new(
            source=Source(
                kind="upload",
                bucket=self.settings.bucket_name,
                filename=req.filename,
                content_type=req.content_type,
                size_bytes=req.size_bytes,
            ),
            options=self._options(req),
            status=JobStatus.AWAITING_UPLOAD,
            ttl_days=self.settings.job_ttl_days,
            correlation_id=correlation_id,
        )
        job.source.key = upload_key(job.job_id, req.filename)
        job.source.upload_expires_at = _iso(datetime.now(UTC) + timedelta(seconds=self.settings.presign_expiry_s))
        job, created = self.repo.create(
            job,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint(req.model_dump(mode="json")),
        )
        # a retried request gets a URL that expires when the first one does: the reconciler's
        # UPLOAD_MISSING deadline is based on the stored expiry
        expires = upload_expiry(job, self.settings.presign_expiry_s)
        remaining = int((expires - datetime.now(UTC)).total_seconds())
        url = self.storage.presign_put(
            job.source.key or upload_key(job.job_id, req.filename),
            content_type=req.content_type,
            content_length=req.size_bytes,
            expires_s=self.settings.presign_expiry_s if created else max(1, remaining),
        )
        return job, url, expires

    def create_speaker_clip(self, req: CreateSpeakerClip) -> tuple[str, str, datetime]:
        """A key under ``speakers/`` and a presigned PUT for it: a known speaker's reference clip, which
        a job names in ``known_speakers``. Only the first 30 s of a clip are used."""
        import uuid

        if req.size_bytes > MAX_SPEAKER_CLIP_BYTES:
            raise UploadTooLarge(f"size_bytes {req.size_bytes} exceeds {MAX_SPEAKER_CLIP_BYTES} for a reference clip "
                                 "(a few seconds of one voice are enough)")
        key = speaker_clip_key(uuid.uuid4().hex, req.filename)
        url = self.storage.presign_put(key, content_type=req.content_type, content_length=req.size_bytes,
                                       expires_s=self.settings.presign_expiry_s)
        return key, url, datetime.now(UTC) + timedelta(seconds=self.settings.presign_expiry_s)

    def _options(self, req: JobOptions) -> JobOptions:
        """The request's options, with the service's default model when none was asked for."""
        data = req.model_dump(include=set(JobOptions.model_fields))
        if "model" not in req.model_fields_set:
            data["model"] = self.settings.default_model
        options = self.check_model(validate_options(data))
        if options.webhook_url:
            check_url(options.webhook_url, UrlPolicy.from_settings(self.settings))
        return options

    # --- S3 upload trigger --------------------------------------------------------------

    def on_upload(
        self, *, bucket: str, key: str, size: int, sequencer: str, correlation_id: str | None = None
    ) -> Job | None:
        """Start the job an uploaded object belongs to (or a new one). Idempotent."""
        parts = key.split("/")
        if len(parts) >= 3 and JOB_ID_RE.match(parts[1]):
            job = self.repo.find(parts[1])
            if job is not None and job.source.kind == "upload":
                return self._start_awaiting_upload(job, key, size)
        # any other object under uploads/: a job with options from its metadata
        job_id = hashlib.sha256(f"{bucket}/{key}/{sequencer}".encode()).hexdigest()[:32]
        existing = self.repo.find(job_id)
        if existing is None:
            existing = self._create_from_object(job_id, bucket, key, size, correlation_id)
        if existing.status == JobStatus.QUEUED:
            self._start(existing)
        return existing

    def _start_awaiting_upload(self, job: Job, key: str, size: int) -> Job | None:
        if job.source.key != key:
            return None  # not the object this job waits for
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            self._discard_late_upload(job, key)
            return None
        if job.status == JobStatus.AWAITING_UPLOAD:
            declared = job.source.size_bytes
            if size > self.settings.max_upload_bytes or (declared is not None and size > declared):
                failed = self._fail(
                    job, MediaTooLarge(f"uploaded object is {size} bytes; declared {declared}")
                )
                self._discard_late_upload(job, key)
                return failed
            try:
                job = self.repo.transition(
                    job.job_id,
                    JobStatus.QUEUED,
                    message="upload received",
                    fields={
                        "execution_arn": execution_arn(self.settings.state_machine_arn, job.job_id),
                        "source": {**job.source.model_dump(mode="json"), "size_bytes": size},
                    },
                )
            except IllegalTransition:
                return None  # cancelled or failed meanwhile
        if job.status == JobStatus.QUEUED:
            self._start(job)
        return None if job.status.terminal else job

    def _discard_late_upload(self, job: Job, key: str) -> None:
        """An object for a job that can no longer use it (failed, cancelled, too large) is
        deleted at once instead of being kept until the bucket's lifecycle rule."""
        from ytcaption.observability import logger

        self.storage.delete(key)
        logger.info("upload discarded: its job has ended", extra={"job_id": job.job_id, "status": job.status})

    def _create_from_object(
        self, job_id: str, bucket: str, key: str, size: int, correlation_id: str | None
    ) -> Job:
        head = self.storage.head(key) or {}
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        status, error, parsed = JobStatus.QUEUED, None, None
        try:
            options = parsed = options_from_metadata(meta, self.settings.default_model)
            self.check_model(options)
            if size > self.settings.max_upload_bytes:
                raise MediaTooLarge(f"object is {size} bytes; the maximum is {self.settings.max_upload_bytes}")
        except YTCaptionError as exc:
            # the record keeps what was asked for when it parsed (a model not offered, say)
            options = parsed or JobOptions(model=self.settings.default_model)
            status, error = JobStatus.FAILED, exc
        job = Job.new(
            job_id=job_id,
            source=Source(
                kind="upload",
                bucket=bucket,
                key=key,
                filename=key.rsplit("/", 1)[-1],
                content_type=head.get("ContentType"),
                size_bytes=size,
            ),
            options=options,
            status=status,
            ttl_days=self.settings.job_ttl_days,
            correlation_id=correlation_id,
        )
        if error is not None:
            job.error = ErrorInfo(code=error.code, message=error.message)
            job.completed_at = job.created_at
            job.events[0].error = job.error
        else:
            job.execution_arn = execution_arn(self.settings.state_machine_arn, job_id)
        job, _ = self.repo.create(job)
        return job

    def _start(self, job: Job) -> None:
        try:
            self.executions.start(
                job.job_id, {"job_id": job.job_id, "source_kind": job.source.kind,
                             "site_captions": job.options.site_captions}
            )
        except YTCaptionError as exc:
            # the caller sees the failure (503 / a retried S3 event); the record
            # says why instead of sitting in QUEUED forever
            self._fail(job, exc)
            raise

    def _fail(self, job: Job, exc: YTCaptionError) -> Job | None:
        try:
            return self.repo.transition(
                job.job_id,
                JobStatus.FAILED,
                message=exc.message,
                error=ErrorInfo(code=exc.code, message=exc.message),
            )
        except IllegalTransition:
            return None

    # --- read ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(f"no job {job_id}")
        return self.repo.get(job_id)

    def list(self, status: JobStatus | None, limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
        return self.repo.list(status=status, limit=limit, cursor=cursor)

    def result(self, job_id: str, fmt: str) -> ResultFile:
        if fmt not in CONTENT_TYPES:
            raise UnsupportedFormat(f"unknown format {fmt!r}; use json, srt, vtt or txt")
        job = self.get(job_id)
        if job.status != JobStatus.COMPLETED:
            raise JobNotCompleted(f"job {job_id} is {job.status}; results exist once it is COMPLETED")
        filename = f"{job_id}.{fmt}"
        ctype = content_type(fmt)
        key = job.results.get(fmt) or result_key(job_id, fmt)
        head = self.storage.head(key)
        if head is None:
            # a format the job did not ask for: render it from the canonical JSON
            from ytcaption.domain.captions import Transcript, render

            doc = self.storage.get_json(job.results.get("json") or result_key(job_id, "json"))
            return ResultFile(body=render(Transcript.model_validate(doc), fmt), content_type=ctype,
                              filename=filename)
        if int(head.get("ContentLength", 0)) > self.settings.inline_result_max_bytes:
            url = self.storage.presign_get(key, expires_s=self.settings.presign_expiry_s, filename=filename)
            return ResultFile(body=None, content_type=ctype, redirect_url=url, filename=filename)
        return ResultFile(body=self.storage.get_bytes(key).decode("utf-8"), content_type=ctype,
                          filename=filename)

    # --- cancel ---------------------------------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status.terminal:
            raise JobAlreadyFinished(f"job {job_id} already ended {job.status}")
        from ytcaption.domain.costs import ending_fields
        from ytcaption.telemetry import emit_job_end

        try:
            job = self.repo.transition(job_id, JobStatus.CANCELLED, message="cancelled by request",
                                       fields=ending_fields(job, self.storage, self.settings.cost))
        except IllegalTransition as exc:
            raise JobAlreadyFinished(f"job {job_id} ended before it could be cancelled") from exc
        if job.execution_arn:
            self.executions.stop(job.execution_arn, error="JobCancelled", cause="cancelled by request")
        from ytcaption.adapters.notifications import IN_REQUEST_TIMEOUT_S, Notifier

        emit_job_end(job)
        # every terminal state is announced: one brief try, inside the request
        Notifier(self.settings, self.repo).job_finished(job, attempts=1, timeout_s=IN_REQUEST_TIMEOUT_S)
        return job


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def options_from_metadata(meta: dict[str, str], default_model: str = "tiny.en") -> JobOptions:
    """Options for a plain S3 upload, from its ``x-amz-meta-*`` headers."""
    data: dict[str, Any] = {"model": default_model}
    for key, value in meta.items():
        field = key.replace("-", "_")
        if field == "formats":
            data[field] = [f.strip() for f in value.split(",") if f.strip()]
        elif field in ("word_timestamps", "diarize"):
            data[field] = value.strip().lower() in ("1", "true", "yes")
        elif field in JobOptions.model_fields:
            data[field] = value
    try:
        return validate_options(data)
    except InvalidRequest as exc:
        raise InvalidRequest(f"object metadata: {exc.message}") from exc
