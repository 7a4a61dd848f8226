"""Request and response bodies of the HTTPS API (they generate its OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ytcaption.domain.jobs import JobEvent, JobOptions, JobStatus, require_http_url


class SubmitTranscription(JobOptions):
    """`POST /v1/transcriptions`: transcribe what a URL points at."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., description="http(s) URL of a page yt-dlp understands or of a media file")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return require_http_url(v.strip(), "url")


MEDIA_CONTENT_TYPE = r"^(audio|video)/[A-Za-z0-9.+-]+$|^application/(octet-stream|ogg|mp4)$"


class CreateUpload(JobOptions):
    """`POST /v1/uploads`: reserve a job and get a presigned URL to PUT the file to."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(..., min_length=1, max_length=255)
    content_type: str = Field(..., pattern=MEDIA_CONTENT_TYPE, max_length=100)
    size_bytes: int = Field(..., gt=0, description="exact size of the file that will be PUT")


class CreateSpeakerClip(BaseModel):
    """`POST /v1/speakers`: a presigned URL to PUT a known speaker's reference clip to."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(..., min_length=1, max_length=255)
    content_type: str = Field(..., pattern=MEDIA_CONTENT_TYPE, max_length=100)
    size_bytes: int = Field(..., gt=0, description="exact size of the clip that will be PUT (20 MiB at most)")


class SpeakerClipResponse(BaseModel):
    key: str = Field(description="the clip's S3 key: use it as a value of `known_speakers` in a job")
    upload_url: str
    upload_method: str = "PUT"
    upload_headers: dict[str, str]
    upload_expires_at: str


class SubmitResponse(BaseModel):
    job_id: str
    status: JobStatus
    status_url: str
    result_url: str
    created_at: str


class UploadResponse(SubmitResponse):
    upload_url: str
    upload_method: str = "PUT"
    upload_headers: dict[str, str]
    upload_expires_at: str


class JobList(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class JobHistory(BaseModel):
    job_id: str
    events: list[JobEvent]


class ModelObject(BaseModel):
    """One model this deployment runs, in OpenAI's model shape plus what it can do."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    multilingual: bool
    languages: list[str] = Field(description="language codes it transcribes (`en` only for English-only models)")
    tasks: list[Literal["transcribe", "translate"]]
    source: Literal["image", "package"] = Field(
        description="`image`: baked into the GPU worker image; `package`: an offline model package on this machine")
    default: bool = Field(description="used when a request names no model")
    parameters_millions: int
    packages: list[str] | None = None


class ModelList(BaseModel):
    """`GET /v1/models`: the shape OpenAI clients read (`client.models.list()`)."""

    object: Literal["list"] = "list"
    data: list[ModelObject]


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
