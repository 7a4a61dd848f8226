"""Settings, one class per process kind, read from the environment.

Resource names have no defaults: a Lambda missing its table name fails loudly
at its first call instead of writing somewhere unexpected. Each class is read
through a cached ``get_*`` function called inside handlers, never at import.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ytcaption.circuit import BreakerSettings


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")


class AwsResources(_Base):
    jobs_table: str
    bucket_name: str
    job_ttl_days: int = 30
    #: Outbound URL policy (see ytcaption.netsafety). Loopback and private
    #: addresses are refused unless allowed here; the local runtime allows loopback.
    allow_loopback_urls: bool = False
    allow_private_urls: bool = False
    allowed_url_hosts: str = ""
    denied_url_hosts: str = ""
    event_bus_name: str = "default"
    webhook_timeout_s: float = 10.0
    webhook_attempts: int = 3


class ApiSettings(AwsResources):
    state_machine_arn: str
    presign_expiry_s: int = 900
    max_upload_bytes: int = 2 * 1024**3
    #: Results larger than this are served by a redirect to a presigned S3 URL:
    #: Lambda responses are limited to 6 MB.
    inline_result_max_bytes: int = 4 * 1024**2
    default_model: str = "tiny.en"
    #: Models baked into the worker image, comma-separated (the template's BakedModels).
    #: With the offline model packages installed here, they make the model catalogue.
    baked_models: str = ""
    uploads_prefix: str = "uploads/"


class WhisperSettings(BaseModel):
    """How the worker runs faster-whisper: ``WHISPER__DEVICE=cuda`` etc."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: Literal[
        "auto", "default", "int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32"
    ] = "auto"
    cpu_threads: int = 0
    #: Concurrent transcriptions one loaded model serves (CTranslate2 workers):
    #: 1 for a Batch job; the local runtime runs several jobs in one process.
    num_workers: int = 1
    beam_size: int = 5
    vad_filter: bool = True
    #: Directory holding one CTranslate2 model folder per model name
    #: (``<dir>/<name>/model.bin``), as baked into the Batch image.
    model_dir: str | None = None
    #: Where offline models shipped in several parts are assembled (once):
    #: default ``$XDG_CACHE_HOME/ytcaption/models`` (``~/.cache/ytcaption/models``).
    model_cache_dir: str | None = None


class MediaSettings(BaseModel):
    max_duration_s: float = 4 * 3600.0
    max_download_bytes: int = 2 * 1024**3
    chunk_max_s: float = 30.0
    shard_audio_s: float = 600.0
    download_timeout_s: float = 30.0


class PipelineSettings(AwsResources):
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    work_dir: str = "/tmp/ytcaption"  # noqa: S108 - Lambda's only writable dir
    presign_expiry_s: int = 900
    #: How long a job may sit in a live status with no execution before the reconciler acts.
    reconcile_grace_s: float = 600.0


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()


@lru_cache(maxsize=1)
def get_pipeline_settings() -> PipelineSettings:
    return PipelineSettings()


def clear_settings_cache() -> None:
    get_api_settings.cache_clear()
    get_pipeline_settings.cache_clear()
