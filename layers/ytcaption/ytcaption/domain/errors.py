"""Domain errors, each with a stable machine-readable code.

The class name is what Step Functions sees as the error name (Lambda reports
``errorType`` = class name), so the state machine's ``Retry``/``Catch`` match on
these names; ``code`` is what users see in API responses and job records.
``retryable`` says whether running the same step again can succeed.
"""

from __future__ import annotations

from typing import ClassVar


class YTCaptionError(Exception):
    code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    #: The message is written for the client (what the source said, which setting helps),
    #: so a 5xx still shows it; other 5xx messages may name internal calls: logs only.
    public: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message()
        super().__init__(self.message)

    @classmethod
    def default_message(cls) -> str:
        return cls.code.replace("_", " ").capitalize()

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


# --- request and job-state errors (API) --------------------------------------


class InvalidRequest(YTCaptionError):
    code = "INVALID_REQUEST"
    http_status = 400


class InvalidCursor(InvalidRequest):
    code = "INVALID_CURSOR"


class UnsupportedFormat(InvalidRequest):
    code = "UNSUPPORTED_FORMAT"


class RouteNotFound(YTCaptionError):
    code = "NOT_FOUND"
    http_status = 404


class MethodNotAllowed(YTCaptionError):
    code = "METHOD_NOT_ALLOWED"
    http_status = 405


class AdminKeyRequired(YTCaptionError):
    """Admin routes need the separate admin key (``X-Admin-Key``), not just the API key."""

    code = "ADMIN_KEY_REQUIRED"
    http_status = 403


class JobNotFound(YTCaptionError):
    code = "JOB_NOT_FOUND"
    http_status = 404


class JobNotCompleted(YTCaptionError):
    code = "JOB_NOT_COMPLETED"
    http_status = 409


class JobAlreadyFinished(YTCaptionError):
    code = "JOB_ALREADY_FINISHED"
    http_status = 409


class IllegalTransition(YTCaptionError):
    """A writer tried to move a job somewhere the job model forbids."""

    code = "ILLEGAL_TRANSITION"
    http_status = 409


class JobCancelled(IllegalTransition):
    """The job was cancelled while a stage ran: the stage stops, nothing is retried."""

    code = "JOB_CANCELLED"


class IdempotencyKeyReused(YTCaptionError):
    code = "IDEMPOTENCY_KEY_REUSED"
    http_status = 422


class Conflict(YTCaptionError):
    """Optimistic-lock retries ran out: too many writers at once."""

    code = "CONFLICT"
    http_status = 409
    retryable = True


class Throttled(YTCaptionError):
    code = "THROTTLED"
    http_status = 503
    retryable = True


class ServiceUnavailable(YTCaptionError):
    code = "SERVICE_UNAVAILABLE"
    http_status = 503
    retryable = True


class SettingUnusable(ServiceUnavailable):
    """A deployment setting (a secret it names) cannot be used: the message says which
    setting, for the operator, and never the secret itself. Not retried: it takes an operator."""

    public = True
    retryable = False


class StorageError(YTCaptionError):
    code = "STORAGE_ERROR"
    http_status = 503
    retryable = True


class UploadTooLarge(InvalidRequest):
    code = "UPLOAD_TOO_LARGE"
    http_status = 413


class UploadMissing(YTCaptionError):
    code = "UPLOAD_MISSING"
    http_status = 409


# --- media and transcription errors (pipeline) --------------------------------


class DownloadFailed(YTCaptionError):
    """A transient failure fetching the source (network, 5xx, timeouts)."""

    code = "DOWNLOAD_FAILED"
    http_status = 502
    public = True
    retryable = True

    def __init__(self, message: str | None = None, *, site_fault: bool = False,
                 source_url: str | None = None) -> None:
        super().__init__(message)
        #: The site answered 429/5xx or could not be reached (what the circuit breaker
        #: counts), at ``source_url`` (after redirects) when known.
        self.site_fault, self.source_url = site_fault, source_url


class SourceUnavailable(YTCaptionError):
    """Downloads from this site keep failing; the circuit breaker is open."""

    code = "SOURCE_UNAVAILABLE"
    http_status = 503
    public = True


class SourceCoolingDown(SourceUnavailable):
    """As SourceUnavailable, in the breaker's ``wait`` mode: the state machine backs off and retries."""

    retryable = True


class SourceNotFound(YTCaptionError):
    code = "SOURCE_NOT_FOUND"
    http_status = 422


class SourceBlocked(YTCaptionError):
    """The site refused this deployment (bot check, sign-in wall, geo block, HTTP 403).

    Not retried: the same request from the same address gets the same answer. The
    message names the setting that helps (cookies, proxy, player client).
    """

    code = "SOURCE_BLOCKED"
    http_status = 502
    public = True


class UnsupportedSource(YTCaptionError):
    code = "UNSUPPORTED_SOURCE"
    http_status = 422


class MediaTooLong(YTCaptionError):
    code = "MEDIA_TOO_LONG"
    http_status = 422


class MediaTooLarge(YTCaptionError):
    code = "MEDIA_TOO_LARGE"
    http_status = 422


class UnsupportedMedia(YTCaptionError):
    code = "UNSUPPORTED_MEDIA"
    http_status = 422


class ModelUnavailable(YTCaptionError):
    """The model is not in this deployment's catalogue (or its weights are missing or damaged)."""

    code = "MODEL_UNAVAILABLE"
    http_status = 422


class ModelNotFound(YTCaptionError):
    code = "MODEL_NOT_FOUND"
    http_status = 404


class LanguageUnsupported(YTCaptionError):
    """A non-English language asked of an English-only model (``.en``, ``distil-*``)."""

    code = "LANGUAGE_UNSUPPORTED"
    http_status = 422


class TranslationUnsupported(YTCaptionError):
    """``translate`` asked of a model not trained for it (English-only models, turbo)."""

    code = "TRANSLATION_UNSUPPORTED"
    http_status = 422


class InvalidSpeakerCount(InvalidRequest):
    """``num_speakers`` / ``min_speakers`` / ``max_speakers`` that cannot describe a recording
    (0, negative, min above max, more than the clustering separates), or set without ``diarize``."""

    code = "INVALID_SPEAKER_COUNT"
    http_status = 422


class InvalidKnownSpeakers(InvalidRequest):
    """``known_speakers``: a name or reference clip that cannot be used."""

    code = "INVALID_KNOWN_SPEAKERS"
    http_status = 422


class SpeakerModelUnavailable(YTCaptionError):
    """The speaker-embedding model is missing or fails its hash check (found before any
    transcription is spent on the job)."""

    code = "SPEAKER_MODEL_UNAVAILABLE"
    http_status = 503
    public = True


class TranscriptionFailed(YTCaptionError):
    code = "TRANSCRIPTION_FAILED"
    http_status = 500
    retryable = True


class Orphaned(YTCaptionError):
    """The job's record said running, but nothing was running it any more."""

    code = "ORPHANED"
    http_status = 500


class StageTimeout(YTCaptionError):
    code = "TIMEOUT"
    http_status = 504


class UnsafeUrl(InvalidRequest):
    code = "UNSAFE_URL"


# --- the synchronous OpenAI-compatible routes ---------------------------------


class TooLongForSync(YTCaptionError):
    """Longer than the synchronous routes answer in time; the job API takes it."""

    code = "MEDIA_TOO_LONG"
    http_status = 413


class TooLargeForSync(YTCaptionError):
    code = "MEDIA_TOO_LARGE"
    http_status = 413


class ModelNotServed(InvalidRequest):
    """Not a model name, or not one this deployment can run (the catalogue's ``MODEL_UNAVAILABLE``)."""

    code = "MODEL_UNAVAILABLE"


ALL_ERRORS: tuple[type[YTCaptionError], ...] = tuple(
    cls for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, YTCaptionError)
)

RETRYABLE_ERROR_NAMES: tuple[str, ...] = tuple(c.__name__ for c in ALL_ERRORS if c.retryable)


def error_from_name(name: str, message: str) -> YTCaptionError:
    """Rebuild a domain error from a Step Functions ``Error``/``Cause`` pair."""
    for cls in ALL_ERRORS:
        if cls.__name__ == name or cls.code == name:
            return cls(message)
    return YTCaptionError(message)
