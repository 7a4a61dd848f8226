"""Pipeline stages called directly against moto, with the real model and real audio."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, SpeechClip
from tests.evaluation import wer
from tests.factories import make_job
from tests.servers import LoopbackServer
from tests.stages import Stages
from ytcaption.adapters import storage as keys
from ytcaption.adapters.table import Table
from ytcaption.domain.errors import JobCancelled, SourceNotFound, TranscriptionFailed
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.engine.transcription import WhisperTranscriber
from ytcaption.settings import MediaSettings, PipelineSettings
from ytcaption.stages.mark_failed import failure_from_step_functions

pytestmark = pytest.mark.integration


@pytest.fixture
def stages(moto_stack: dict[str, Any], tmp_path: Any) -> Stages:
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "work"), allow_loopback_urls=True,
                                media=MediaSettings(chunk_max_s=10.0, shard_audio_s=15.0))
    return Stages(settings)


def url_job(repo: Table, url: str, **options: Any) -> Job:
    job = Job.new(source=Source(kind="url", url=url), options=JobOptions(**options),
                  status=JobStatus.QUEUED, ttl_days=1)
    repo.create(job)
    return job


class CountingTranscriber:
    """Counts the windows decoded (the guard's re-decodes of spans count too)."""

    def __init__(self, inner: WhisperTranscriber) -> None:
        self.inner, self.calls = inner, 0

    def transcribe_batch(self, windows: Any, *a: Any, **kw: Any) -> Any:
        self.calls += len(windows)
        return self.inner.transcribe_batch(windows, *a, **kw)

    def transcribe(self, *a: Any, **kw: Any) -> Any:
        return self.inner.transcribe(*a, **kw)


@pytest.mark.slow
def test_stages_take_a_url_job_to_captions(stages: Stages, server: LoopbackServer, short_clip: SpeechClip,
                                           moto_stack: dict[str, Any]) -> None:
    job = url_job(stages.repo, server.url("/talk.mp3"), formats=["srt", "vtt"])
    stages.download.run(job.job_id)
    plan = stages.normalize.run(job.job_id)
    assert plan["chunks"] >= 3 and len(plan["shards"]) >= 2
    stored = stages.repo.get(job.job_id)
    assert stored.status == JobStatus.TRANSCRIBING and stored.chunks.total == plan["chunks"]
    assert stored.media and stored.media.title == "talk" and stored.media.duration_s

    counting = CountingTranscriber(WhisperTranscriber("tiny.en", stages.settings.whisper))
    for shard in plan["shards"]:
        stages.transcribe.run(job.job_id, shard, transcriber_factory=lambda o: counting)
    assert counting.calls >= plan["chunks"]
    decoded = counting.calls
    # a retried shard skips every chunk that already has a transcript
    stages.transcribe.run(job.job_id, plan["shards"][0], transcriber_factory=lambda o: counting)
    assert counting.calls == decoded
    assert stages.repo.get(job.job_id).progress == 95

    out = stages.merge.run(job.job_id)
    assert set(out["results"]) == {"json", "srt", "vtt"}
    done = stages.repo.get(job.job_id)
    assert done.status == JobStatus.COMPLETED and done.language == "en"
    assert [e.status for e in done.events] == [JobStatus.QUEUED, JobStatus.DOWNLOADING, JobStatus.NORMALIZING,
                                               JobStatus.TRANSCRIBING, JobStatus.MERGING, JobStatus.COMPLETED]
    doc = json.loads(moto_stack["s3"].get_object(Bucket=BUCKET, Key=keys.result_key(job.job_id, "json"))["Body"].read())
    text = " ".join(s["text"] for s in doc["segments"])
    assert wer(short_clip.text, text) <= 0.15
    assert set(done.timings) == {"download", "normalize", "transcribe", "merge"}


def test_normalize_plans_a_multiple_of_the_parallel_shards(moto_stack: dict[str, Any], tmp_path: Any,
                                                            server: LoopbackServer, short_clip: SpeechClip) -> None:
    """Two shards of 15 s would hold the clip; with three Batch jobs at once it is three of equal audio."""
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "work"),
                                allow_loopback_urls=True,
                                media=MediaSettings(chunk_max_s=10.0, shard_audio_s=15.0, parallel_shards=3))
    stages = Stages(settings)
    job = url_job(stages.repo, server.url("/talk.mp3"))
    stages.download.run(job.job_id)
    plan = stages.normalize.run(job.job_id)
    manifest = stages.storage.get_json(keys.manifest_key(job.job_id))
    assert plan["chunks"] >= 3 and plan["shards"] == [0, 1, 2] and manifest["shards"] == 3
    assert sorted({c["shard"] for c in manifest["chunks"]}) == [0, 1, 2]


def test_download_failure_is_final_and_cleans_up(stages: Stages, server: LoopbackServer) -> None:
    job = url_job(stages.repo, server.url("/nope.mp3"))
    with pytest.raises(SourceNotFound):
        stages.download.run(job.job_id)
    assert not (stages.download.workdir(job.job_id, "download")).exists()
    assert stages.repo.get(job.job_id).status == JobStatus.DOWNLOADING


def test_cancelled_job_stops_at_the_next_stage(stages: Stages, server: LoopbackServer) -> None:
    job = url_job(stages.repo, server.url("/talk.mp3"))
    stages.repo.transition(job.job_id, JobStatus.CANCELLED)
    with pytest.raises(JobCancelled):
        stages.download.run(job.job_id)
    assert stages.transcribe.run(job.job_id, 0) == {"skipped": True, "status": "CANCELLED"}


@pytest.mark.slow
def test_a_chunk_without_a_transcript_fails_the_merge_with_its_index(
    stages: Stages, server: LoopbackServer, short_clip: SpeechClip, moto_stack: dict[str, Any]
) -> None:
    # the merge reads every chunk's result at once (Storage.get_many): a missing one still names itself
    job = url_job(stages.repo, server.url("/talk.mp3"))
    stages.download.run(job.job_id)
    plan = stages.normalize.run(job.job_id)
    for shard in plan["shards"]:
        stages.transcribe.run(job.job_id, shard)
    moto_stack["s3"].delete_object(Bucket=BUCKET, Key=keys.chunk_result_key(job.job_id, 1))
    with pytest.raises(TranscriptionFailed, match="chunk 1 has no transcript") as raised:
        stages.merge.run(job.job_id)
    # as the state machine's failure path does with the error the merge Lambda raised
    cause = json.dumps({"errorMessage": raised.value.message, "errorType": "TranscriptionFailed"})
    out = stages.mark_failed.run(job.job_id, {"Error": "TranscriptionFailed", "Cause": cause})
    assert out["status"] == "FAILED" and out["code"] == "TRANSCRIPTION_FAILED"
    failed = stages.repo.get(job.job_id)
    assert failed.status == JobStatus.FAILED and failed.error and "chunk 1" in failed.error.message


def test_mark_failed_records_code_and_message(stages: Stages) -> None:
    job = make_job()
    stages.repo.create(job)
    cause = json.dumps({"errorMessage": "the source was not found (HTTP 404)", "errorType": "SourceNotFound",
                        "stackTrace": ["  File secret.py"]})
    out = stages.mark_failed.run(job.job_id, {"Error": "SourceNotFound", "Cause": cause})
    assert out["status"] == "FAILED" and out["code"] == "SOURCE_NOT_FOUND"
    failed = stages.repo.get(job.job_id)
    assert failed.error and failed.error.model_dump() == {"code": "SOURCE_NOT_FOUND",
                                                          "message": "the source was not found (HTTP 404)"}
    assert failed.events[-1].status == JobStatus.FAILED
    # a second failure report (a retried MarkFailed) changes nothing
    assert stages.mark_failed.run(job.job_id, {"Error": "States.Timeout"})["status"] == "FAILED"
    assert stages.repo.get(job.job_id).error == failed.error


@pytest.mark.parametrize(("error", "code"), [
    ({"Error": "DownloadFailed", "Cause": json.dumps({"errorMessage": "HTTP 503"})}, "DOWNLOAD_FAILED"),
    ({"Error": "MediaTooLong", "Cause": json.dumps({"errorMessage": "too long"})}, "MEDIA_TOO_LONG"),
    ({"Error": "States.TaskFailed", "Cause": json.dumps({"StatusReason": "Essential container exited"})},
     "TRANSCRIPTION_FAILED"),
    ({"Error": "States.Timeout", "Cause": ""}, "TIMEOUT"),
    ({"Error": "Lambda.Unknown", "Cause": "boom"}, "INTERNAL_ERROR"),
    ({}, "INTERNAL_ERROR"),
])
def test_step_functions_errors_map_to_stable_codes(error: dict[str, str], code: str) -> None:
    exc = failure_from_step_functions(error)
    assert exc.code == code and "Traceback" not in exc.message and "stackTrace" not in exc.message


def _batch_cause(shard: int, exit_code: int | None) -> str:
    """A failed Batch job as Step Functions' .sync integration reports it (DescribeJobs, PascalCase)."""
    container: dict[str, object] = {"Environment": [{"Name": "JOB_ID", "Value": "x"},
                                                    {"Name": "SHARD_INDEX", "Value": str(shard)}]}
    if exit_code is not None:
        container["ExitCode"] = exit_code
    return json.dumps({"JobName": "ytcaption-x-shard", "Status": "FAILED", "Container": container})


def test_a_failed_shard_fails_the_job_with_what_its_worker_recorded(
    stages: Stages, moto_stack: dict[str, Any]
) -> None:
    from ytcaption.domain.errors import ModelUnavailable, StorageError

    job = Job.new(source=Source(kind="url", url="https://example.test/a.mp3"), options=JobOptions(),
                  status=JobStatus.TRANSCRIBING, ttl_days=1)
    stages.repo.create(job)
    # two shards failed; the Batch job reported to the state machine is shard 1's
    stages.transcribe.record_worker_error(job.job_id, 0, StorageError("S3 put_object: transient AWS error (SlowDown)"))
    stages.transcribe.record_worker_error(job.job_id, 1, ModelUnavailable("model small is not available offline"))
    out = stages.mark_failed.run(job.job_id, {"Error": "States.TaskFailed", "Cause": _batch_cause(1, 65)})
    assert out["code"] == "MODEL_UNAVAILABLE"
    failed = stages.repo.get(job.job_id)
    assert failed.error is not None
    assert failed.error.model_dump() == {"code": "MODEL_UNAVAILABLE", "message": "model small is not available offline"}


def test_a_shard_that_died_without_a_word_says_how_it_ended() -> None:
    # killed (out of memory, say): nothing recorded, the exit code is all there is
    exc = failure_from_step_functions({"Error": "States.TaskFailed", "Cause": _batch_cause(0, 137)})
    assert exc.code == "TRANSCRIPTION_FAILED"
    assert exc.message == "a transcription worker failed: it stopped with exit code 137 and reported nothing"
