"""The job model and its legal status transitions: the one place they are decided.

Every writer (API, S3 trigger, pipeline Lambdas, Batch workers) moves a job only
through :func:`check_transition`; the repository enforces the same rule with a
conditional write so two writers racing cannot move a job backwards or out of a
terminal state.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ytcaption.domain.costs import Cost, Usage
from ytcaption.domain.errors import IllegalTransition, InvalidRequest, JobCancelled
from ytcaption.domain.languages import WHISPER_LANGUAGES

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    QUEUED = "QUEUED"
    DOWNLOADING = "DOWNLOADING"
    NORMALIZING = "NORMALIZING"
    TRANSCRIBING = "TRANSCRIBING"
    MERGING = "MERGING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
)

_S = JobStatus
#: Forward-only. Uploads skip DOWNLOADING (QUEUED -> NORMALIZING). Any live job may
#: fail or be cancelled; nothing leaves a terminal state.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    _S.AWAITING_UPLOAD: frozenset({_S.QUEUED, _S.FAILED, _S.CANCELLED}),
    _S.QUEUED: frozenset({_S.DOWNLOADING, _S.NORMALIZING, _S.FAILED, _S.CANCELLED}),
    # DOWNLOADING -> COMPLETED: the site's own captions made the result (site_captions)
    _S.DOWNLOADING: frozenset({_S.NORMALIZING, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    # NORMALIZING -> COMPLETED: an upload whose bytes match a stored result reuses it
    _S.NORMALIZING: frozenset({_S.TRANSCRIBING, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    _S.TRANSCRIBING: frozenset({_S.MERGING, _S.FAILED, _S.CANCELLED}),
    _S.MERGING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}

#: Progress (0-100) a job has reached when it enters a status.
STATUS_PROGRESS: dict[JobStatus, int] = {
    _S.AWAITING_UPLOAD: 0,
    _S.QUEUED: 0,
    _S.DOWNLOADING: 1,
    _S.NORMALIZING: 10,
    _S.TRANSCRIBING: 20,
    _S.MERGING: 95,
    _S.COMPLETED: 100,
}
#: The span of progress the transcription stage fills as chunks finish.
TRANSCRIBING_SPAN = (20, 95)


def check_transition(current: JobStatus, target: JobStatus) -> bool:
    """Return True if the move changes the job, False if it is already there.

    Re-entering the current live status is a no-op (a retried stage does it);
    everything else not in :data:`TRANSITIONS` raises.
    """
    if current.terminal:
        if current == JobStatus.CANCELLED:
            raise JobCancelled(f"job was cancelled; cannot move to {target}")
        raise IllegalTransition(f"job is {current}; it cannot move to {target}")
    if target == current:
        return False
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"job cannot move from {current} to {target}")
    return True


def now_iso() -> str:
    """UTC timestamp with millisecond precision; sorts lexicographically."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job_id() -> str:
    return uuid.uuid4().hex


OutputFormat = Literal["json", "srt", "vtt", "txt"]
SiteCaptionsMode = Literal["never", "fallback", "prefer"]
#: What produced a job's captions.
TranscriptSource = Literal["transcription", "site_captions", "site_automatic_captions"]
ALL_FORMATS: tuple[OutputFormat, ...] = ("json", "srt", "vtt", "txt")


class JobOptions(BaseModel):
    """What the user asked for. Validated once, at the edge."""

    model_config = ConfigDict(extra="forbid")

    language: str = Field("auto", description="`auto` to detect, or a Whisper language code")
    model: str = Field("tiny.en", description="Whisper model name, one of `GET /v1/models`")
    formats: list[OutputFormat] = Field(default_factory=lambda: list(ALL_FORMATS), min_length=1)
    word_timestamps: bool = False
    task: Literal["transcribe", "translate"] = "transcribe"
    initial_prompt: str | None = Field(None, max_length=1000)
    webhook_url: str | None = Field(None, max_length=2048)
    fresh: bool = Field(False, description="run even if the same source and options have a stored result")
    diarize: bool = Field(False, description="label who speaks when (`speaker` on segments, a speakers list)")
    num_speakers: int | None = Field(None, description="with diarize: the exact number of speakers, if known")
    min_speakers: int | None = Field(None, description="with diarize: at least this many speakers")
    max_speakers: int | None = Field(None, description="with diarize: at most this many speakers (32 at most)")
    known_speakers: dict[str, str] | None = Field(
        None, description="with diarize: name -> S3 key (in the media bucket) of a few seconds of that voice; "
                          "a speaker matching a reference gets its name")
    site_captions: SiteCaptionsMode = Field(
        "never",
        description="`prefer`: the video's own human-made captions in the requested language when the site has "
                    "them (no transcription); `fallback`: the site's captions (human or automatic) only when the "
                    "audio download is refused; `never` (default): always transcribe",
    )

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        v = v.strip().lower()
        if v != "auto" and v not in WHISPER_LANGUAGES:
            raise ValueError(f"unknown language {v!r}: use 'auto' or a Whisper language code")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        # only the shape here: whether this deployment runs it (and can do what is
        # asked of it) is the model catalogue's call, with codes of its own
        if not MODEL_NAME_RE.match(v):
            raise ValueError("model must be a model name such as tiny.en or base (see GET /v1/models)")
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))  # de-duplicate, keep order

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None:
            require_http_url(v, "webhook_url")
        return v


def require_http_url(url: str, field: str = "url") -> str:
    """Cheap syntactic check at the API edge (the network safety check is separate)."""
    from urllib.parse import urlsplit

    if len(url) > 2048:
        raise ValueError(f"{field} is too long")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"{field} is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field} must be an http(s) URL with a host")
    if any(c.isspace() for c in url):
        raise ValueError(f"{field} must not contain whitespace")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in url):
        raise ValueError(f"{field} must not contain control characters or unpaired surrogates")
    return url


class Source(BaseModel):
    kind: Literal["url", "upload"]
    url: str | None = None
    bucket: str | None = None
    key: str | None = None
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    #: When the presigned upload URL stops accepting new PUTs (a PUT started before may run on).
    upload_expires_at: str | None = None


class MediaInfo(BaseModel):
    title: str | None = None
    uploader: str | None = None
    duration_s: float | None = None
    source_url: str | None = None
    extractor: str | None = None
    size_bytes: int | None = None
    container: str | None = None


class ChunkCounts(BaseModel):
    total: int = 0
    done: int = 0
    shards: int = 0
    #: Chunks the fidelity guard decoded again (speech was missing after the first decode).
    redecoded: int = 0


class StageTiming(BaseModel):
    started_at: str
    ended_at: str | None = None
    seconds: float | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str


class JobEvent(BaseModel):
    at: str
    status: JobStatus
    message: str | None = None
    error: ErrorInfo | None = None


class Job(BaseModel):
    job_id: str
    status: JobStatus
    progress: int = Field(0, ge=0, le=100)
    source: Source
    options: JobOptions
    media: MediaInfo | None = None
    chunks: ChunkCounts = Field(default_factory=ChunkCounts)
    timings: dict[str, StageTiming] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    results: dict[str, str] = Field(default_factory=dict)
    language: str | None = None
    created_at: str
    updated_at: str
    completed_at: str | None = None
    expires_at: int
    execution_arn: str | None = None
    correlation_id: str | None = None
    #: Result-cache keys (same source, same options); see ytcaption.adapters.result_cache.
    cache_keys: list[str] = Field(default_factory=list)
    #: The job whose result this one reused, if any.
    reused_from: str | None = None
    #: What produced the captions: our transcription, or the site's own captions.
    transcript_source: TranscriptSource | None = None
    #: What the job used and its estimated cost (see ytcaption.domain.costs), set when it ends.
    usage: Usage | None = None
    cost: Cost | None = None
    #: Who asked (API key id, else client address): a tenant alone cannot pause a site for all.
    tenant: str | None = None
    version: int = 1
    events: list[JobEvent] = Field(default_factory=list)

    @classmethod
    def new(
        cls,
        *,
        source: Source,
        options: JobOptions,
        status: JobStatus,
        ttl_days: int,
        job_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Job:
        at = now_iso()
        created = datetime.now(UTC)
        return cls(
            job_id=job_id or new_job_id(),
            status=status,
            source=source,
            options=options,
            created_at=at,
            updated_at=at,
            expires_at=int(created.timestamp()) + ttl_days * 86400,
            correlation_id=correlation_id,
            events=[JobEvent(at=at, status=status, message="job created")],
        )

    def public(self) -> dict[str, Any]:
        """The document the API returns (internal bookkeeping left out)."""
        return self.model_dump(mode="json", exclude={"version", "tenant"})


def stage_for(status: JobStatus) -> str | None:
    """The timing bucket a status belongs to."""
    return {
        JobStatus.DOWNLOADING: "download",
        JobStatus.NORMALIZING: "normalize",
        JobStatus.TRANSCRIBING: "transcribe",
        JobStatus.MERGING: "merge",
    }.get(status)


def validate_options(data: dict[str, Any]) -> JobOptions:
    """Build options from untrusted input (e.g. S3 object metadata)."""
    from pydantic import ValidationError

    try:
        return JobOptions.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc.errors())) from exc


def describe_errors(errors: Any, limit: int = 3) -> str:
    """Pydantic validation errors as one short message a user can act on."""
    parts = []
    for e in list(errors)[:limit]:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif e.get("type") == "json_invalid":
            msg = "request body is not valid JSON"
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def upload_expiry(job: Job, presign_expiry_s: int) -> datetime:
    """When the job's upload URL expires (older records: created_at + the URL lifetime)."""
    stored = job.source.upload_expires_at
    if stored:
        return datetime.fromisoformat(stored.replace("Z", "+00:00"))
    created = datetime.fromisoformat(job.created_at.replace("Z", "+00:00"))
    return created + timedelta(seconds=presign_expiry_s)


def upload_deadline(job: Job, presign_expiry_s: int, min_rate_bps: int) -> datetime:
    """The latest a started PUT can still land: the URL's expiry plus the declared size at
    the slowest rate the service waits for."""
    transfer_s = (job.source.size_bytes or 0) / max(1, min_rate_bps)
    return upload_expiry(job, presign_expiry_s) + timedelta(seconds=transfer_s)
