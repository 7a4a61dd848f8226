"""What a job cost: usage counted (or estimated) per component, priced from settings.

Measured: stage wall times (the job's timings) and the GPU seconds of every Batch
attempt (the worker's shard records). Estimated from the job's shape (chunks,
shards, formats, source kind): Step Functions transitions, S3 and DynamoDB
requests. Prices are list prices (us-east-1) unless set with ``COST__*``; the
GPU price is what you tell it (Spot varies by zone and hour).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from ytcaption.telemetry import ShardRecord, seconds_between


class Throughput(BaseModel):
    """Speeds the per-audio-hour estimate assumes (``COST__THROUGHPUT__GPU_X=46`` etc.); a job's
    own cost is measured, never taken from these.

    ``gpu_x``: faster-whisper's published benchmark (README of v1.1.0, 13 minutes of audio,
    large-v2 fp16, ``batch_size=8``, beam 5: 17 s on an RTX 3070 Ti, 46x real time). A T4
    (g4dn) has about half that card's memory bandwidth (320 vs 608 GB/s) and fp16 throughput,
    so 23x; large-v3-turbo is assumed no slower than large-v2 there (same 32-layer encoder,
    4 decoder layers instead of 32; probably faster, not measured: no GPU here).
    """

    gpu_x: float = 23.0
    #: Per Batch job: container start on a running instance and loading the model from the
    #: image (baked in, no download). Instance boot and image pull are not job time.
    shard_start_s: float = 10.0
    #: Normalize (decode, resample, chunk) on the Lambda, x real time: measured on this
    #: project's CPU by ``python -m bench.cost`` (95x), plus the chunk uploads.
    normalize_x: float = 95.0
    chunk_upload_s_per_audio_h: float = 20.0
    download_s_per_audio_h: float = 10.0
    merge_s: float = 2.0


class Prices(BaseModel):
    """``COST__GPU_USD_PER_HOUR=0.526`` etc. Defaults: us-east-1 list prices."""

    #: g4dn.xlarge: about $0.20/h on Spot (varies), $0.526/h On-Demand.
    gpu_usd_per_hour: float = 0.20
    lambda_gb_s_usd: float = 0.0000166667
    lambda_request_usd: float = 0.20 / 1e6
    #: Standard workflows.
    sfn_transition_usd: float = 0.025 / 1000
    s3_put_usd: float = 0.005 / 1000
    s3_get_usd: float = 0.0004 / 1000
    #: On-demand request units.
    ddb_write_usd: float = 0.625 / 1e6
    ddb_read_usd: float = 0.125 / 1e6
    #: Lambda memory per stage (MB), as in template.yaml.
    download_memory_mb: int = 2048
    normalize_memory_mb: int = 6144
    merge_memory_mb: int = 1024
    other_memory_mb: int = 512
    #: What the per-audio-hour estimate assumes (not used to price a job).
    throughput: Throughput = Field(default_factory=Throughput)


class Usage(BaseModel):
    lambda_gb_s: float = 0.0
    lambda_requests: int = 0
    sfn_transitions: int = 0
    batch_gpu_s: float = 0.0
    batch_attempts: int = 0
    s3_puts: int = 0
    s3_gets: int = 0
    ddb_write_units: int = 0
    ddb_read_units: int = 0
    #: Longest wait of a shard between its Batch submission and its worker starting.
    queue_wait_s: float | None = None
    #: Audio the workers transcribed (retried chunks count once per attempt).
    transcribed_audio_s: float = 0.0
    chunks_redecoded: int = 0


class Cost(BaseModel):
    lambda_usd: float
    step_functions_usd: float
    batch_gpu_usd: float
    s3_usd: float
    dynamodb_usd: float
    total_usd: float
    #: Total over the media's duration, per hour of audio (None without a duration).
    usd_per_audio_hour: float | None = None
    gpu_usd_per_hour: float


def _stage_seconds(job: Any, stage: str, now: str) -> float:
    t = job.timings.get(stage)
    if t is None:
        return 0.0
    if t.seconds is not None:
        return float(t.seconds)
    return seconds_between(t.started_at, now) or 0.0


def usage_for(job: Any, shards: list[ShardRecord], prices: Prices, *, now: str) -> Usage:
    """Usage of a job about to end (``job`` as read before its final transition)."""
    chunks = int(job.chunks.total)
    n_shards = int(job.chunks.shards)
    is_url = job.source.kind == "url"
    ran = [s for s in ("download", "normalize", "merge") if s in job.timings]
    mem = {"download": prices.download_memory_mb, "normalize": prices.normalize_memory_mb,
           "merge": prices.merge_memory_mb}
    gb_s = sum(_stage_seconds(job, s, now) * mem[s] / 1024 for s in ran)
    # API submit + a status poll or two, notify or mark-failed: ~0.2 s each at the default memory
    gb_s += 4 * 0.2 * prices.other_memory_mb / 1024
    formats = len(set(["json", *job.options.formats]))
    # Intake, Route, [Download], Normalize, Reused, Transcribe + one per shard, Merge, Notify, Done
    transitions = 8 + (1 if is_url else 0) + n_shards
    s3_puts = 1 + chunks + 1 + chunks + len(shards) + formats  # source, chunk audio, manifest, transcripts
    s3_gets = 2 + 2 * chunks + n_shards + 3 * chunks + 1  # head+get source, worker heads+gets, merge
    if job.options.diarize:  # speaker windows stored apart (GPU workers): a check and a PUT each, the merge's GET
        apart = sum(s.speaker_objects for s in shards)
        refs = len(job.options.known_speakers or {})  # each clip read, their prints checked, stored, read
        s3_puts += apart + (1 if refs else 0)
        s3_gets += 2 * apart + (refs + 2 if refs else 0)
    doc_kb = max(1, math.ceil(len(job.model_dump_json()) / 1024))
    writes = len(job.events) + 3  # status moves (+ final), cache keys, result cache entry
    write_units = writes * doc_kb + 2 * chunks  # per chunk: counter + progress (small updates)
    read_units = (2 * len(job.events) + n_shards + 4) * max(1, math.ceil(doc_kb / 4))
    gpu_s = sum(s.seconds for s in shards)
    waits = [s.queue_wait_s for s in shards if s.queue_wait_s is not None]
    return Usage(
        lambda_gb_s=round(gb_s, 3),
        lambda_requests=len(ran) + 4,
        sfn_transitions=transitions,
        batch_gpu_s=round(gpu_s, 3),
        batch_attempts=len(shards),
        s3_puts=s3_puts,
        s3_gets=s3_gets,
        ddb_write_units=write_units,
        ddb_read_units=read_units,
        queue_wait_s=round(max(waits), 3) if waits else None,
        transcribed_audio_s=round(sum(s.audio_s for s in shards), 3),
        chunks_redecoded=sum(s.redecoded for s in shards),
    )


def price(usage: Usage, prices: Prices, *, audio_s: float | None) -> Cost:
    lam = usage.lambda_gb_s * prices.lambda_gb_s_usd + usage.lambda_requests * prices.lambda_request_usd
    sfn = usage.sfn_transitions * prices.sfn_transition_usd
    gpu = usage.batch_gpu_s / 3600 * prices.gpu_usd_per_hour
    s3 = usage.s3_puts * prices.s3_put_usd + usage.s3_gets * prices.s3_get_usd
    ddb = usage.ddb_write_units * prices.ddb_write_usd + usage.ddb_read_units * prices.ddb_read_usd
    total = lam + sfn + gpu + s3 + ddb
    return Cost(
        lambda_usd=round(lam, 10),
        step_functions_usd=round(sfn, 10),
        batch_gpu_usd=round(gpu, 10),
        s3_usd=round(s3, 10),
        dynamodb_usd=round(ddb, 10),
        total_usd=round(total, 10),
        usd_per_audio_hour=round(total / audio_s * 3600, 6) if audio_s else None,
        gpu_usd_per_hour=prices.gpu_usd_per_hour,
    )


def final_fields(job: Any, shards: list[ShardRecord], prices: Prices, *, now: str) -> dict[str, Any]:
    """The ``usage`` and ``cost`` fields to write with a job's final transition."""
    usage = usage_for(job, shards, prices, now=now)
    duration = job.media.duration_s if job.media else None
    cost = price(usage, prices, audio_s=duration)
    return {"usage": usage.model_dump(mode="json"), "cost": cost.model_dump(mode="json")}


def shard_records(storage: Any, job_id: str) -> list[ShardRecord]:
    """Every worker attempt's record for a job (an unreadable one is skipped, not fatal)."""
    from ytcaption.adapters.storage import shard_records_prefix

    out = []
    for key in storage.list_keys(shard_records_prefix(job_id)):
        try:
            out.append(ShardRecord.model_validate(storage.get_json(key)))
        except Exception:  # a cost estimate must not fail the job's end
            from ytcaption.observability import logger

            logger.warning("unreadable shard record skipped", extra={"key": key})
    return sorted(out, key=lambda r: (r.shard, r.started_at))


def ending_fields(job: Any, storage: Any, prices: Prices) -> dict[str, Any]:
    """Read the job's shard records, emit their metrics, and price the job (its last write)."""
    from ytcaption.domain.jobs import now_iso
    from ytcaption.telemetry import emit_shard

    try:
        shards = shard_records(storage, job.job_id)
    except Exception:
        shards = []
    for rec in shards:
        emit_shard(rec)
    return final_fields(job, shards, prices, now=now_iso())


def per_audio_hour(prices: Prices, *, real_time_factor: float, shard_audio_s: float, load_s: float,
                   lambda_gb_s_per_audio_h: float = 0.0) -> float:
    """The README's arithmetic: dollars per audio hour for a given GPU speed.

    ``real_time_factor`` is processing seconds per audio second (0.02 = 50x real time);
    every shard also pays ``load_s`` (container start and model load).
    """
    shards = 3600 / shard_audio_s
    gpu_s = 3600 * real_time_factor + shards * load_s
    return gpu_s / 3600 * prices.gpu_usd_per_hour + lambda_gb_s_per_audio_h * prices.lambda_gb_s_usd


def hour_estimate(prices: Prices, *, shard_audio_s: float, chunk_s: float = 30.0, audio_s: float = 3600.0,
                  model: str = "large-v3-turbo") -> tuple[Usage, Cost]:
    """Usage and cost of one URL job of ``audio_s`` seconds at the given settings, from the
    throughput assumptions, priced by the model every job is priced with (README's table)."""
    from ytcaption.domain.jobs import ChunkCounts, Job, JobOptions, JobStatus, MediaInfo, Source, StageTiming

    t = prices.throughput
    shards = max(1, math.ceil(audio_s / shard_audio_s))
    job = Job.new(source=Source(kind="url", url="https://example.test/a"), options=JobOptions(model=model),
                  status=JobStatus.MERGING, ttl_days=1)
    job.chunks = ChunkCounts(total=math.ceil(audio_s / chunk_s), done=math.ceil(audio_s / chunk_s), shards=shards)
    job.media = MediaInfo(duration_s=audio_s)
    hours = audio_s / 3600
    job.timings = {
        "download": StageTiming(started_at="x", seconds=t.download_s_per_audio_h * hours),
        "normalize": StageTiming(started_at="x",
                                 seconds=audio_s / t.normalize_x + t.chunk_upload_s_per_audio_h * hours),
        "merge": StageTiming(started_at="x", seconds=t.merge_s),
    }
    records = []
    left = audio_s
    for i in range(shards):
        part = min(shard_audio_s, left)
        left -= part
        records.append(ShardRecord(shard=i, model=model, started_at="x", ended_at="x",
                                   seconds=part / t.gpu_x + t.shard_start_s, audio_s=part))
    usage = usage_for(job, records, prices, now="x")
    return usage, price(usage, prices, audio_s=audio_s)
