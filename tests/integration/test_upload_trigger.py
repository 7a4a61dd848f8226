"""The S3 upload trigger handler with S3 put events, against moto."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, ApiClient, load_event
from ytcaption.adapters.table import Table
from ytcaption.domain.jobs import JobStatus
from ytcaption_local.handlers import LambdaContext, load_handler

pytestmark = pytest.mark.integration


def s3_event(key: str, size: int, sequencer: str = "0055AED6DCD90281E5") -> dict[str, Any]:
    ev = copy.deepcopy(load_event("s3_put.json"))
    rec = ev["Records"][0]
    rec["s3"]["bucket"]["name"] = BUCKET
    rec["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{BUCKET}"
    rec["s3"]["object"].update({"key": key, "size": size, "sequencer": sequencer})
    return dict(ev)


def trigger(event: dict[str, Any]) -> dict[str, Any]:
    handler = load_handler("functions/upload_trigger")
    return dict(handler(event, LambdaContext(function_name="upload_trigger")))


def executions(stack: dict[str, Any]) -> list[dict[str, Any]]:
    return list(stack["sfn"].list_executions(stateMachineArn=stack["state_machine_arn"])["executions"])


def reserve(api: ApiClient, size: int = 4) -> dict[str, Any]:
    status, _, body = api("POST", "/v1/uploads", {
        "filename": "talk.wav", "content_type": "audio/wav", "size_bytes": size})
    assert status == 201
    return dict(body)


def test_upload_to_reserved_key_starts_that_job(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = reserve(api)
    key = f"uploads/{job['job_id']}/talk.wav"
    moto_stack["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"RIFF")
    out = trigger(s3_event(key, 4))
    assert out == {"jobs": [job["job_id"]]}
    stored = Table(TABLE, moto_stack["dynamodb"]).get(job["job_id"])
    assert stored.status == JobStatus.QUEUED
    assert [e.status for e in stored.events] == [JobStatus.AWAITING_UPLOAD, JobStatus.QUEUED]
    assert [r["name"] for r in executions(moto_stack)] == [job["job_id"]]


def test_same_event_delivered_twice_starts_one_execution(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = reserve(api)
    key = f"uploads/{job['job_id']}/talk.wav"
    moto_stack["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"RIFF")
    event = s3_event(key, 4)
    trigger(event)
    trigger(event)
    assert len(executions(moto_stack)) == 1
    stored = Table(TABLE, moto_stack["dynamodb"]).get(job["job_id"])
    assert [e.status for e in stored.events].count(JobStatus.QUEUED) == 1


def test_plain_upload_creates_job_with_metadata_options_once(moto_stack: dict[str, Any]) -> None:
    key = "uploads/meetings/2026 standup.mp3"
    moto_stack["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"ID3",
                                Metadata={"language": "en", "formats": "srt,txt"})
    event = s3_event("uploads/meetings/2026+standup.mp3", 3)  # keys arrive URL-encoded
    first = trigger(event)
    second = trigger(event)
    assert first == second and len(first["jobs"]) == 1
    job = Table(TABLE, moto_stack["dynamodb"]).get(first["jobs"][0])
    assert job.status == JobStatus.QUEUED
    assert job.source.key == key
    assert job.options.language == "en" and job.options.formats == ["srt", "txt"]
    assert len(executions(moto_stack)) == 1


@pytest.mark.parametrize(("metadata", "code"), [
    ({"formats": "pdf"}, "INVALID_REQUEST"),
    ({"model": "nope"}, "MODEL_UNAVAILABLE"),
    ({"model": "large-v3"}, "MODEL_UNAVAILABLE"),
    ({"model": "tiny.en", "language": "de"}, "LANGUAGE_UNSUPPORTED"),
    ({"model": "tiny.en", "task": "translate"}, "TRANSLATION_UNSUPPORTED"),
])
def test_plain_upload_with_bad_metadata_fails_visibly(
    moto_stack: dict[str, Any], metadata: dict[str, str], code: str
) -> None:
    key = "uploads/bad.mp3"
    moto_stack["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"ID3", Metadata=metadata)
    out = trigger(s3_event(key, 3))
    job = Table(TABLE, moto_stack["dynamodb"]).get(out["jobs"][0])
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.code == code
    assert job.events[-1].error is not None and job.events[-1].error.code == code
    if "model" in metadata:
        assert job.options.model == metadata["model"]  # the record shows what was asked for
    assert executions(moto_stack) == []


def test_upload_larger_than_declared_fails_the_job(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = reserve(api, size=4)
    key = f"uploads/{job['job_id']}/talk.wav"
    trigger(s3_event(key, 4096))
    stored = Table(TABLE, moto_stack["dynamodb"]).get(job["job_id"])
    assert stored.status == JobStatus.FAILED and stored.error is not None
    assert stored.error.code == "MEDIA_TOO_LARGE"
    assert executions(moto_stack) == []


def test_upload_for_cancelled_job_is_ignored(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = reserve(api)
    api("DELETE", f"/v1/transcriptions/{job['job_id']}")
    key = f"uploads/{job['job_id']}/talk.wav"
    assert trigger(s3_event(key, 4)) == {"jobs": []}
    assert executions(moto_stack) == []


def test_keys_outside_uploads_and_folders_are_ignored(moto_stack: dict[str, Any]) -> None:
    assert trigger(s3_event("results/x/captions.srt", 10)) == {"jobs": []}
    assert trigger(s3_event("uploads/folder/", 0)) == {"jobs": []}


# --- late uploads (issue 11, finding 8) -----------------------------------------------------------

def test_upload_that_lands_after_its_job_failed_is_deleted(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = reserve(api)
    repo = Table(TABLE, moto_stack["dynamodb"])
    repo.transition(job["job_id"], JobStatus.FAILED, message="upload missing")
    key = f"uploads/{job['job_id']}/talk.wav"
    moto_stack["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"RIFF")
    assert trigger(s3_event(key, 4)) == {"jobs": []}
    assert moto_stack["s3"].list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount") == 0
    assert repo.get(job["job_id"]).status == JobStatus.FAILED
    assert executions(moto_stack) == []


def test_upload_for_cancelled_or_oversized_job_is_deleted(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    cancelled, oversized = reserve(api), reserve(api, size=4)
    api("DELETE", f"/v1/transcriptions/{cancelled['job_id']}")
    for job, size in ((cancelled, 4), (oversized, 4096)):
        key = f"uploads/{job['job_id']}/talk.wav"
        moto_stack["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"x" * size)
        trigger(s3_event(key, size))
        assert moto_stack["s3"].list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount") == 0


def test_upload_missing_waits_for_a_put_begun_before_the_url_expired(
    api: ApiClient, moto_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from ytcaption import services
    from ytcaption.settings import PipelineSettings
    from ytcaption.stages.reconcile import Reconciler

    monkeypatch.setenv("PRESIGN_EXPIRY_S", "1")
    services.reset()
    small, large = reserve(api, size=4), reserve(api, size=100 * 1024 * 1024)
    time.sleep(2.2)  # both URLs have expired
    settings = PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, presign_expiry_s=1)
    out = Reconciler(settings, executions=None).run(grace_s=0)
    failed = {f["job_id"]: f["code"] for f in out["failed"]}
    # the 4-byte upload cannot still be running; 100 MB at the slowest rate waited for (256 KiB/s) can
    assert failed.get(small["job_id"]) == "UPLOAD_MISSING"
    assert large["job_id"] not in failed
    assert Table(TABLE, moto_stack["dynamodb"]).get(large["job_id"]).status == JobStatus.AWAITING_UPLOAD


def test_a_retried_reservation_keeps_the_first_urls_expiry(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    import time

    body = {"filename": "talk.wav", "content_type": "audio/wav", "size_bytes": 4}
    first = api("POST", "/v1/uploads", body, headers={"Idempotency-Key": "late-1"})[2]
    time.sleep(1.1)
    again = api("POST", "/v1/uploads", body, headers={"Idempotency-Key": "late-1"})[2]
    assert again["job_id"] == first["job_id"]
    assert again["upload_expires_at"] == first["upload_expires_at"]
