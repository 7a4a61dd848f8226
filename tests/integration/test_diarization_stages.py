"""Diarization through the pipeline stages against moto: embeddings per shard, one clustering at the merge."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from tests.servers import LoopbackServer
from tests.stages import Stages
from ytcaption.adapters import storage as keys
from ytcaption.domain.errors import SpeakerModelUnavailable
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.settings import DiarizationSettings, MediaSettings, PipelineSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("flite")),
                                 reason="needs espeak-ng and flite (make test installs them)")]


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[str]]:
    """About 50 s: two voices taking turns, encoded as mp3; and who speaks each sentence."""
    from tests.media.corpus import VOICES, Builder, sentences
    from tests.media.speech import encode

    tmp = tmp_path_factory.mktemp("two")
    rng = random.Random(7)  # noqa: S311 - test media
    b = Builder(tmp)
    order = [0, 0, 1, 0, 1, 1, 0, 1, 0, 1]
    voices = [VOICES[2], VOICES[5]]
    for s, v in zip(sentences(len(order), 7), order, strict=True):
        b.speak(s, voices[v])
        b.pause(rng.uniform(0.4, 0.8))
    case = b.build("two", "two voices")
    return encode(case.samples, 16000, tmp / "two.mp3").read_bytes(), [u.voice for u in case.utterances]


def _pipeline(tmp_path: Path, **diarization: Any) -> Stages:
    return Stages(PipelineSettings(
        jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "work"), allow_loopback_urls=True,
        media=MediaSettings(chunk_max_s=10.0, shard_audio_s=20.0), diarization=DiarizationSettings(**diarization)))


def _job(pipeline: Stages, url: str, **options: Any) -> Job:
    job = Job.new(source=Source(kind="url", url=url), options=JobOptions(**options), status=JobStatus.QUEUED,
                  ttl_days=1)
    pipeline.repo.create(job)
    return job


@pytest.mark.parametrize("beside", [False, True], ids=["after-decoding", "beside-decoding"])
def test_speakers_are_found_per_shard_and_labelled_once_across_shards(
    moto_stack: dict[str, Any], tmp_path: Path, server: LoopbackServer, two_voices: tuple[bytes, list[str]],
    monkeypatch: pytest.MonkeyPatch, beside: bool,
) -> None:
    # Given a two-voice recording cut into several shards, embedded after the decoding (CPU
    # workers) or on a thread beside it (as GPU workers do)
    monkeypatch.setattr("ytcaption.stages.transcribe.embeddings_beside_decoder", lambda settings: beside)
    pipeline = _pipeline(tmp_path)
    url = server.serve("/two.mp3", two_voices[0], "audio/mpeg")
    job = _job(pipeline, url, diarize=True, formats=["vtt", "txt"])
    pipeline.download.run(job.job_id)
    plan = pipeline.normalize.run(job.job_id)
    assert len(plan["shards"]) >= 2
    # When every shard runs, and the first one runs again (a Batch retry)
    storage, fetched = pipeline.transcribe.storage, []
    get_bytes = storage.get_bytes

    def counting(key: str) -> bytes:
        fetched.append(key)
        return get_bytes(key)

    monkeypatch.setattr(storage, "get_bytes", counting)
    for shard in plan["shards"]:
        pipeline.transcribe.run(job.job_id, shard)
    audio = [k for k in fetched if k.startswith(keys.chunk_audio_key(job.job_id, 0).rsplit("/", 1)[0] + "/")]
    # each chunk's audio is fetched once: the speaker windows use the decoder's bytes (beside the
    # decoder both threads may ask for a chunk at the same moment)
    assert sorted(set(audio)) == sorted(keys.chunk_audio_key(job.job_id, i) for i in range(plan["chunks"]))
    assert len(audio) == plan["chunks"] if not beside else len(audio) <= 2 * plan["chunks"]
    s3 = moto_stack["s3"]

    def stored(key: str) -> dict[str, str]:
        objs = s3.list_objects_v2(Bucket=BUCKET, Prefix=key.rsplit("/", 1)[0] + "/").get("Contents", [])
        return {o["Key"]: o["ETag"] for o in objs}

    apart, results = stored(keys.speaker_embeddings_key(job.job_id, 0)), stored(keys.chunk_result_key(job.job_id, 0))
    windows = [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())["speaker_windows"] for k in results]
    if beside:  # one object per chunk, written beside the decoder
        assert len(apart) == plan["chunks"] and windows == [None] * plan["chunks"]
    else:  # in each chunk's result, with no request of their own
        assert apart == {} and len(windows) == plan["chunks"] and all(windows)
    pipeline.transcribe.run(job.job_id, plan["shards"][0])
    # the retry neither duplicates nor changes them
    assert (stored(keys.speaker_embeddings_key(job.job_id, 0)), stored(keys.chunk_result_key(job.job_id, 0))) == (
        apart, results)
    pipeline.merge.run(job.job_id)

    # Then the result names two speakers, in order of first appearance, on segments and in every format
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=keys.result_key(job.job_id, "json"))["Body"].read())
    assert [s["label"] for s in doc["speakers"]] == ["SPEAKER_1", "SPEAKER_2"]
    assert all(s["speaking_time"] > 10 for s in doc["speakers"])
    labels = [s["speaker"] for s in doc["segments"]]
    assert labels[0] == "SPEAKER_1" and set(labels) == {"SPEAKER_1", "SPEAKER_2"}
    assert all(not s["words"] for s in doc["segments"])  # words were not asked for
    vtt = s3.get_object(Bucket=BUCKET, Key=keys.result_key(job.job_id, "vtt"))["Body"].read().decode()
    assert "<v SPEAKER_2>" in vtt
    txt = s3.get_object(Bucket=BUCKET, Key=keys.result_key(job.job_id, "txt"))["Body"].read().decode()
    assert txt.startswith("SPEAKER_1: ")
    assert pipeline.repo.get(job.job_id).status == JobStatus.COMPLETED


def test_known_speakers_name_their_cluster_and_the_rest_are_reported(
    moto_stack: dict[str, Any], tmp_path: Path, server: LoopbackServer, two_voices: tuple[bytes, list[str]]
) -> None:
    """References uploaded to the bucket: one voice of the recording (named), one voice that is not
    in it and one key that holds nothing (both reported unmatched, the job still completes)."""
    from tests.media.corpus import VOICES, say
    from tests.media.speech import encode

    s3 = moto_stack["s3"]
    line = "This is a short reference clip of my own voice, recorded for the caption service."
    for key, voice in (("speakers/ann.mp3", VOICES[5]), ("speakers/carol.mp3", VOICES[1])):
        clip = encode(say(line, voice, tmp_path), 16000, tmp_path / key.split("/")[1])
        s3.put_object(Bucket=BUCKET, Key=key, Body=clip.read_bytes())
    pipeline = _pipeline(tmp_path)
    job = _job(pipeline, server.serve("/two.mp3", two_voices[0], "audio/mpeg"), diarize=True,
               known_speakers={"Ann": "speakers/ann.mp3", "Carol": "speakers/carol.mp3", "Dan": "speakers/missing.mp3"})
    pipeline.download.run(job.job_id)
    plan = pipeline.normalize.run(job.job_id)
    for shard in plan["shards"]:
        pipeline.transcribe.run(job.job_id, shard)
    pipeline.merge.run(job.job_id)

    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=keys.result_key(job.job_id, "json"))["Body"].read())
    # VOICES[5] speaks second in the recording: its cluster is the second to appear, now named Ann
    assert [s["label"] for s in doc["speakers"]] == ["SPEAKER_1", "Ann"]
    assert sorted(doc["unmatched_speakers"]) == ["Carol", "Dan"]
    first_ann = next(i for i, v in enumerate(two_voices[1]) if v == VOICES[5].label)
    assert doc["segments"][0]["speaker"] == "SPEAKER_1" and "Ann" in {s["speaker"] for s in doc["segments"]}
    assert first_ann > 0
    assert pipeline.repo.get(job.job_id).status == JobStatus.COMPLETED


def test_a_damaged_speaker_model_fails_the_shard_before_any_transcription(
    moto_stack: dict[str, Any], tmp_path: Path, server: LoopbackServer, two_voices: tuple[bytes, list[str]]
) -> None:
    bad = tmp_path / "campplus.onnx"
    bad.write_bytes(b"\0" * 1024)
    pipeline = _pipeline(tmp_path, model_path=str(bad))
    job = _job(pipeline, server.serve("/two.mp3", two_voices[0], "audio/mpeg"), diarize=True)
    pipeline.download.run(job.job_id)
    plan = pipeline.normalize.run(job.job_id)

    def no_whisper(options: JobOptions) -> Any:
        raise AssertionError("Whisper was loaded for a job whose speaker model is damaged")

    with pytest.raises(SpeakerModelUnavailable, match="hash"):
        pipeline.transcribe.run(job.job_id, plan["shards"][0], transcriber_factory=no_whisper)


def test_openai_route_answers_diarized_json_in_openai_shape(two_voices: tuple[bytes, list[str]]) -> None:
    from ytcaption.api.openai_api import SyncRequest, render, transcribe_bytes
    from ytcaption.settings import SyncSettings

    options = JobOptions(model="tiny.en", diarize=True, word_timestamps=True, formats=["json"])
    transcript = transcribe_bytes(two_voices[0], "two.mp3", options, SyncSettings())
    doc = json.loads(render(transcript, SyncRequest(model="tiny.en", response_format="diarized_json"),
                            "transcribe").body)
    assert set(doc) == {"task", "duration", "text", "segments", "usage"}
    assert doc["segments"][0]["type"] == "transcript.text.segment"
    assert doc["segments"][0]["speaker"] == "A"
    assert {s["speaker"] for s in doc["segments"]} == {"A", "B"}
