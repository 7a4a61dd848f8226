"""Stage metrics, shard records, usage and cost, worker log lines: the stages against moto."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from tests.servers import LoopbackServer
from tests.stages import Stages
from ytcaption import telemetry
from ytcaption.adapters import storage as keys
from ytcaption.domain.costs import shard_records
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.settings import MediaSettings, PipelineSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def sink() -> Iterator[telemetry.MemorySink]:
    s = telemetry.MemorySink()
    telemetry.set_sink(s)
    yield s
    telemetry.set_sink(None)


@pytest.fixture
def stages(moto_stack: dict[str, Any], tmp_path: Any) -> Stages:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "work"),
                                allow_loopback_urls=True, media=MediaSettings(chunk_max_s=10.0, shard_audio_s=15.0))
    return Stages(settings)


def url_job(stages: Stages, url: str) -> Job:
    job = Job.new(source=Source(kind="url", url=url), options=JobOptions(), status=JobStatus.QUEUED, ttl_days=1,
                  correlation_id="corr-123")
    stages.repo.create(job)
    return job


@pytest.mark.slow
def test_a_job_records_stage_metrics_shard_records_usage_and_cost(
        stages: Stages, server: LoopbackServer, sink: telemetry.MemorySink) -> None:
    # Given a URL job run through every stage, each shard "submitted" 2 s before it starts
    job = url_job(stages, server.url("/talk.mp3"))
    stages.download.run(job.job_id)
    plan = stages.normalize.run(job.job_id)
    assert "trace_header" in plan  # handed to the Batch jobs by the state machine
    for shard in plan["shards"]:
        stages.transcribe.run(job.job_id, shard, submitted_at="2020-01-01T00:00:00.000Z")
    stages.merge.run(job.job_id)
    done = stages.repo.get(job.job_id)

    # Then every stage emitted its duration, with low-cardinality dimensions only
    for stage in ("download", "normalize", "merge", "transcribe_shard", "queue_wait", "end_to_end"):
        assert sink.values("StageSeconds", Stage=stage), stage
    assert len(sink.values("StageSeconds", Stage="transcribe_shard")) == len(plan["shards"])
    assert min(sink.values("StageSeconds", Stage="queue_wait")) > 3600  # since 2020
    assert sink.values("JobsFinished", Outcome="completed") == [1.0]
    audio = sum(sink.values("AudioSeconds", Model="tiny.en"))
    assert done.media and done.media.duration_s
    assert 0.8 * done.media.duration_s <= audio <= done.media.duration_s + 0.01  # chunks leave edge silence out
    assert all(0 < v < 5 for v in sink.values("RealTimeFactor", Model="tiny.en"))
    assert all(set(d) <= {"Stage", "Model", "Outcome", "Code", "Kind"} for _, _, _, d in sink.records)
    assert not any(job.job_id in json.dumps(d) for _, _, _, d in sink.records)

    # And the job's usage is what the workers recorded, priced at the configured GPU price
    records = shard_records(stages.storage, job.job_id)
    assert sorted(r.shard for r in records) == plan["shards"]
    assert done.usage and done.cost
    assert done.usage.batch_gpu_s == pytest.approx(sum(r.seconds for r in records), abs=0.01)
    assert done.usage.batch_attempts == len(plan["shards"])
    assert done.cost.batch_gpu_usd == pytest.approx(done.usage.batch_gpu_s / 3600 * 0.20, rel=1e-3)
    parts = (done.cost.lambda_usd + done.cost.step_functions_usd + done.cost.batch_gpu_usd + done.cost.s3_usd
             + done.cost.dynamodb_usd)
    assert done.cost.total_usd == pytest.approx(parts, abs=1e-7) and done.cost.total_usd > 0
    assert done.cost.usd_per_audio_hour == pytest.approx(done.cost.total_usd / done.media.duration_s * 3600,
                                                         rel=1e-3)
    assert done.usage.lambda_gb_s > 0 and done.usage.sfn_transitions >= 9 + len(plan["shards"])
    assert sink.values("JobCostUSD") == [pytest.approx(done.cost.total_usd)]
    assert "cost" in done.public() and "usage" in done.public()


def test_a_failed_job_counts_its_error_code_and_the_gpu_time_it_used(
        stages: Stages, sink: telemetry.MemorySink) -> None:
    job = url_job(stages, "http://127.0.0.1:9/x.mp3")
    rec = telemetry.ShardRecord(shard=0, model="tiny.en", started_at="2026-01-01T00:00:00Z",
                                ended_at="2026-01-01T00:01:00Z", seconds=60.0, audio_s=0.0, outcome="error")
    stages.storage.put_json(keys.shard_record_key(job.job_id, 0, "a1"), rec.model_dump(mode="json"))
    stages.mark_failed.run(job.job_id, {"Error": "States.TaskFailed", "Cause": "{}"})
    failed = stages.repo.get(job.job_id)
    assert failed.status == JobStatus.FAILED and failed.cost and failed.usage
    assert failed.usage.batch_gpu_s == 60.0
    assert failed.cost.batch_gpu_usd == pytest.approx(60 / 3600 * 0.20)
    assert sink.values("JobsFailed", Code="TRANSCRIPTION_FAILED") == [1.0]
    assert sink.values("JobsFinished", Outcome="failed") == [1.0]
    assert not sink.values("StageSeconds", Stage="end_to_end")  # only completed jobs count end to end


@pytest.mark.slow
def test_every_worker_log_line_is_json_with_the_job_correlation_and_trace_ids(
        stages: Stages, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from ytcaption import worker
    from ytcaption.observability import logger

    job = url_job(stages, server.url("/talk.mp3"))
    stages.download.run(job.job_id)
    stages.normalize.run(job.job_id)
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", trace)
    monkeypatch.setenv("MEDIA__CHUNK_MAX_S", "10")
    logger.setLevel("INFO")
    out = io.StringIO()  # what the awslogs driver would ship: the logger's own JSON lines
    handler = logging.StreamHandler(out)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        assert worker.main(["--job-id", job.job_id, "--shard", "0", "--submitted-at", "2026-01-01T00:00:00Z"]) == 0
    finally:
        logger.removeHandler(handler)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    logs = [json.loads(ln) for ln in lines if '"level"' in ln]
    assert len(logs) >= 2  # "shard done", "shard finished"
    for doc in logs:
        assert doc["job_id"] == job.job_id and doc["correlation_id"] == "corr-123", doc
        assert doc["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793", doc
        assert doc["shard"] == 0
