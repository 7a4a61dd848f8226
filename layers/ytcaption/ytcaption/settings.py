"""Settings, one class per process kind, read from the environment.

Resource names have no defaults: a Lambda missing its table name fails loudly
at its first call instead of writing somewhere unexpected. Each class is read
through a cached ``get_*`` function called inside handlers, never at import.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ytcaption.domain.costs import Prices
from ytcaption.media.ytdlp import YtdlpSettings


class BreakerSettings(BaseModel):
    """``BREAKER__THRESHOLD=5`` etc.: the per-site download breaker (:mod:`ytcaption.adapters.circuit_breaker`)."""

    threshold: int = 5
    cooldown_s: float = 300.0
    mode: Literal["fail", "wait"] = "fail"
    #: How long a half-open probe owns the circuit before another job may probe.
    probe_s: float = 900.0
    #: Different tenants whose failures it takes to pause a site for every tenant.
    min_tenants: int = 2


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")


class AwsResources(_Base):
    jobs_table: str
    bucket_name: str
    job_ttl_days: int = 30
    #: Outbound URL policy (see ytcaption.adapters.netsafety). Loopback and private
    #: addresses are refused unless allowed here; the local runtime allows loopback.
    allow_loopback_urls: bool = False
    allow_private_urls: bool = False
    allowed_url_hosts: str = ""
    denied_url_hosts: str = ""
    #: Loopback ports no source or webhook may reach (the local runtime's own ports).
    denied_loopback_ports: str = ""
    event_bus_name: str = "default"
    webhook_timeout_s: float = 10.0
    webhook_attempts: int = 3
    #: yt-dlp in the cloud: cookies and proxy from Secrets Manager, extractor args, pacing.
    ytdlp: YtdlpSettings = Field(default_factory=YtdlpSettings)
    #: Prices for each job's cost estimate (``COST__GPU_USD_PER_HOUR`` etc.).
    cost: Prices = Field(default_factory=Prices)
    #: Secrets Manager secret holding the webhook signing key (set by the template).
    webhook_secret_arn: str = ""


class ApiSettings(AwsResources):
    state_machine_arn: str
    presign_expiry_s: int = 900
    #: Slowest upload the service waits for (bytes/s): a PUT begun just before its URL
    #: expires may run on for size / rate seconds before the job is failed UPLOAD_MISSING.
    upload_min_rate_bps: int = 256 * 1024
    max_upload_bytes: int = 2 * 1024**3
    #: Results larger than this are served by a redirect to a presigned S3 URL:
    #: Lambda responses are limited to 6 MB.
    inline_result_max_bytes: int = 4 * 1024**2
    default_model: str = "tiny.en"
    #: Models baked into the worker image, comma-separated (the template's BakedModels).
    #: With the offline model packages installed here, they make the model catalogue.
    baked_models: str = ""
    uploads_prefix: str = "uploads/"
    #: sha256 (hex) of the admin key that GET /v1/admin/* requires in X-Admin-Key; empty: admin off.
    admin_key_sha256: str = ""


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
    #: Windows decoded together by one worker (CTranslate2 batch): the streams
    #: of a shard's first pass on a GPU, and the fidelity guard's re-decodes on
    #: either device. The CPU plan is one worker per core; on a GPU one worker
    #: batches the whole shard.
    batch_size: int = 8
    #: Streams of consecutive chunks a shard is decoded in side by side, each
    #: chunk conditioned on the text before it in its own stream (the first
    #: chunk of a stream has none). 0 = auto: ``batch_size`` on a GPU, one on a
    #: CPU, where 8 streams saved 0-27% wall time and cost 0.005-0.051 WER on
    #: the bench cases (README, Performance).
    streams: int = 0
    #: Condition each chunk on the text before it in its stream (the fidelity
    #: guard re-decodes without it where it made Whisper skip speech).
    condition_on_previous_text: bool = True
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
    #: Audio per GPU Batch job (template parameter ShardAudioSeconds): one model load each.
    shard_audio_s: float = 3600.0
    #: The shard count is rounded up to a multiple of this, in shards of equal audio: the
    #: Batch jobs that run at once where that is fixed (the local runtime's slots). 1 on AWS.
    parallel_shards: int = Field(1, ge=1, le=64)
    download_timeout_s: float = 30.0

    def shards_for(self, audio_s: float) -> int:
        """The shards ``audio_s`` is planned in: the fewest of ``shard_audio_s`` that hold it,
        rounded up to a multiple of ``parallel_shards`` (the normalize stage caps it at the chunk count)."""
        n = max(1, math.ceil(audio_s / self.shard_audio_s)) if self.shard_audio_s > 0 else 1
        return -(-n // self.parallel_shards) * self.parallel_shards


class DiarizationSettings(BaseModel):
    """The speaker model and thresholds: ``DIARIZATION__MODEL_PATH=/opt/models/campplus_cn_en_common.onnx``."""

    #: the ONNX export; unset: ``models/`` of the checkout (``make speaker-model``)
    model_path: str | None = None
    #: onnxruntime threads for the embeddings (0: its default)
    threads: int = Field(0, ge=0, le=64)
    #: a known speaker's reference names a cluster at this cosine or above
    known_speaker_cosine: float = Field(0.9, gt=0.0, le=1.0)


class PipelineSettings(AwsResources):
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    diarization: DiarizationSettings = Field(default_factory=DiarizationSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    work_dir: str = "/tmp/ytcaption"  # noqa: S108 - Lambda's only writable dir
    presign_expiry_s: int = 900
    upload_min_rate_bps: int = 256 * 1024
    #: How long a job may sit in a live status with no execution before the reconciler acts.
    reconcile_grace_s: float = 600.0
    #: The GPU job queue (name or ARN): the reconciler reports how many shards wait in it.
    transcriber_job_queue: str = ""


class IntakeSettings(PipelineSettings):
    """The Lambda that creates jobs for executions started by hand: options default like the API's."""

    default_model: str = "tiny.en"


@lru_cache(maxsize=1)
def get_intake_settings() -> IntakeSettings:
    return IntakeSettings()


class EstimateSettings(BaseModel):
    """Inputs of GET /v1/media's processing estimate. Defaults are assumptions to calibrate
    against your own runs (GPU speed and price depend on the model and instance type)."""

    #: Audio seconds transcribed per GPU second with the default model.
    gpu_speed_x: float = 30.0
    #: GPU instance price (g4dn.xlarge On-Demand list price, us-east-1; Spot is usually lower).
    gpu_usd_per_hour: float = 0.526
    #: Batch queueing, instance start from zero and image pull before the first shard runs.
    startup_s: float = 120.0
    #: Download, normalize and chunk: audio seconds handled per wall second.
    prepare_speed_x: float = 60.0
    #: Parallel shards (the state machine's Map MaxConcurrency).
    max_parallel_shards: int = 16


class DiscoverySettings(AwsResources):
    """Search and media info (GET /v1/search, GET /v1/media): the media API function."""

    default_model: str = "tiny.en"
    search_cache_ttl_s: int = 600
    media: MediaSettings = Field(default_factory=MediaSettings)
    estimate: EstimateSettings = Field(default_factory=EstimateSettings)
    work_dir: str = "/tmp/ytcaption"  # noqa: S108 - Lambda's only writable dir


@lru_cache(maxsize=1)
def get_discovery_settings() -> DiscoverySettings:
    return DiscoverySettings()


class SyncLimits(BaseModel):
    """The synchronous OpenAI-compatible routes: ``SYNC__MAX_DURATION_S`` etc.

    The defaults keep a request inside API Gateway's 29 s integration timeout with
    headroom (README: "OpenAI-compatible API"); the body limit keeps the base64
    event under Lambda's 6 MB request payload.
    """

    #: What ``whisper-1`` means here; empty: ``DEFAULT_MODEL``.
    model: str = ""
    max_bytes: int = 4 * 1024**2
    max_duration_s: float = 60.0


class SyncSettings(_Base):
    default_model: str = "tiny.en"
    #: The models baked into the image (the catalogue's; offline packages are added).
    baked_models: str = ""
    sync: SyncLimits = Field(default_factory=SyncLimits)
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    diarization: DiarizationSettings = Field(default_factory=DiarizationSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    work_dir: str = "/tmp/ytcaption"  # noqa: S108 - Lambda's only writable dir


@lru_cache(maxsize=1)
def get_sync_settings() -> SyncSettings:
    return SyncSettings()


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()


@lru_cache(maxsize=1)
def get_pipeline_settings() -> PipelineSettings:
    return PipelineSettings()


def clear_settings_cache() -> None:
    get_api_settings.cache_clear()
    get_pipeline_settings.cache_clear()
    get_discovery_settings.cache_clear()
    get_intake_settings.cache_clear()
    get_sync_settings.cache_clear()
