"""Stage and job metrics (CloudWatch embedded metric format), and what the GPU worker
records about each shard it ran.

Every metric goes through :func:`put`: on AWS that prints one EMF document
(Powertools ``single_metric``) which CloudWatch Logs turns into a metric for
Lambda; the local runtime swaps the sink to keep them in memory. Dimensions are
low-cardinality only (stage, model, outcome, error code), never a job id.

The Batch worker's stdout goes to the ``awslogs`` driver, which does not extract
EMF, so the worker writes one small *shard record* per attempt to S3 instead;
the Lambda that ends the job (merge or mark-failed) reads them, emits the
shard metrics (queue wait, transcribe seconds, real-time factor, re-decoded
chunks) and sums them into the job's usage and cost.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

NAMESPACE = "YTCaption"

# metric names (the dashboard and alarms in template.yaml use the same strings)
STAGE_SECONDS = "StageSeconds"  # dims: Stage
STAGE_FAILURES = "StageFailures"  # dims: Stage
JOBS_FINISHED = "JobsFinished"  # dims: Outcome
JOBS_FAILED = "JobsFailed"  # dims: Code
AUDIO_SECONDS = "AudioSeconds"  # dims: Model
REAL_TIME_FACTOR = "RealTimeFactor"  # dims: Model (processing seconds per audio second)
CHUNKS_REDECODED = "ChunksRedecoded"  # dims: Model
CACHE_HITS = "CacheHits"  # dims: Kind (url | content)
BREAKER_OPENED = "BreakerOpened"  # no dims (the site would be high-cardinality)
RECONCILER_FAILED = "ReconcilerFailedJobs"  # no dims
BATCH_QUEUE_DEPTH = "BatchQueueDepth"  # no dims: shards submitted to Batch and not yet running
JOB_COST = "JobCostUSD"  # no dims: summed with JobAudioSeconds for cost per audio hour
JOB_AUDIO_SECONDS = "JobAudioSeconds"  # no dims

#: Stage names used in the ``Stage`` dimension and in stats.
STAGES = ("download", "normalize", "queue_wait", "transcribe_shard", "transcribe", "merge", "end_to_end")

Sink = Callable[[str, float, str, dict[str, str]], None]


def _emf_sink(name: str, value: float, unit: str, dims: dict[str, str]) -> None:
    from aws_lambda_powertools.metrics import single_metric

    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as m:  # type: ignore[arg-type]
        for k, v in dims.items():
            m.add_dimension(name=k, value=v)


class MemorySink:
    """Keeps metrics in a list (local runtime, tests): ``(name, value, unit, dims)``."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, value: float, unit: str, dims: dict[str, str]) -> None:
        with self._lock:
            self.records.append((name, value, unit, dict(dims)))

    def values(self, name: str, **dims: str) -> list[float]:
        with self._lock:
            return [v for n, v, _, d in self.records if n == name and all(d.get(k) == x for k, x in dims.items())]


_sink: Sink = _emf_sink


def set_sink(sink: Sink | None) -> None:
    """Route metrics elsewhere (None: back to EMF on stdout)."""
    global _sink
    _sink = sink or _emf_sink


def put(name: str, value: float, unit: str = "Count", **dims: str) -> None:
    """Emit one metric. A metrics failure never fails the work it describes."""
    try:
        _sink(name, float(value), unit, {k: str(v) for k, v in dims.items()})
    except Exception:
        from ytcaption.observability import logger

        logger.exception("metric not emitted", extra={"metric": name})


@contextlib.contextmanager
def stage_timer(stage: str) -> Iterator[None]:
    """``StageSeconds{Stage}`` for a stage's work, and ``StageFailures{Stage}`` if it raises.

    A cancelled job stopping at a stage boundary is not a failure of that stage.
    """
    from ytcaption.domain.errors import JobCancelled

    start = time.monotonic()
    try:
        yield
    except JobCancelled:
        raise
    except Exception:
        put(STAGE_FAILURES, 1, "Count", Stage=stage)
        raise
    put(STAGE_SECONDS, time.monotonic() - start, "Seconds", Stage=stage)


def seconds_between(start_iso: str | None, end_iso: str | None) -> float | None:
    if not start_iso or not end_iso:
        return None
    try:
        a = datetime.fromisoformat(start_iso.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end_iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if a.tzinfo is None:
        a = a.replace(tzinfo=UTC)
    if b.tzinfo is None:
        b = b.replace(tzinfo=UTC)
    return max(0.0, (b - a).total_seconds())


class ShardRecord(BaseModel):
    """What one worker attempt on one shard did (stored at ``work/<job>/shards/``)."""

    shard: int
    model: str
    started_at: str
    ended_at: str
    #: Wall time of the attempt: what the GPU instance was busy (and billed) for it.
    seconds: float
    #: Submitted to Batch -> the worker started (None when the submit time is unknown).
    queue_wait_s: float | None = None
    #: Audio transcribed in this attempt (chunks skipped as already done are not counted).
    audio_s: float = 0.0
    chunks: int = 0
    chunks_skipped: int = 0
    redecoded: int = 0
    #: Speaker windows stored as objects of their own (a GPU worker's; a CPU worker's go in the
    #: chunk's transcript): each a PUT, and a GET at the merge.
    speaker_objects: int = 0
    outcome: str = "ok"

    @property
    def real_time_factor(self) -> float | None:
        return round(self.seconds / self.audio_s, 4) if self.audio_s > 0 else None


def emit_shard(rec: ShardRecord) -> None:
    put(STAGE_SECONDS, rec.seconds, "Seconds", Stage="transcribe_shard")
    if rec.queue_wait_s is not None:
        put(STAGE_SECONDS, rec.queue_wait_s, "Seconds", Stage="queue_wait")
    if rec.audio_s > 0:
        put(AUDIO_SECONDS, rec.audio_s, "Seconds", Model=rec.model)
        put(REAL_TIME_FACTOR, rec.seconds / rec.audio_s, "None", Model=rec.model)
    if rec.redecoded:
        put(CHUNKS_REDECODED, rec.redecoded, "Count", Model=rec.model)


def emit_job_end(job: Any) -> None:
    """Outcome, error code, end-to-end time and cost of a job that just ended."""
    outcome = str(job.status.value).lower()
    put(JOBS_FINISHED, 1, "Count", Outcome=outcome)
    if job.error is not None and outcome == "failed":
        put(JOBS_FAILED, 1, "Count", Code=job.error.code)
    e2e = seconds_between(job.created_at, job.completed_at)
    if e2e is not None and outcome == "completed":
        put(STAGE_SECONDS, e2e, "Seconds", Stage="end_to_end")
    cost = getattr(job, "cost", None)
    if cost is not None:
        put(JOB_COST, cost.total_usd, "None")
    duration = job.media.duration_s if job.media else None
    if outcome == "completed" and duration:
        put(JOB_AUDIO_SECONDS, duration, "Seconds")
