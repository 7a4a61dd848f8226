"""Fault injection on the local runtime: every case ends with a clear final status,
a history that ends with it, and nothing left running."""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any
from urllib.parse import unquote_plus

import pytest

from tests.conftest import SpeechClip, load_event
from tests.e2e.conftest import HeldTranscription
from tests.servers import LoopbackServer, Route
from ytcaption_local.cli import Client
from ytcaption_local.faults import Fault
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.slow]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
LIVE = ("AWAITING_UPLOAD", "QUEUED", "DOWNLOADING", "NORMALIZING", "TRANSCRIBING", "MERGING")

#: Attempts botocore makes per call (ytcaption.adapters.aws: standard mode, max_attempts 5 = 5 retries after the first).
SDK_ATTEMPTS = 6


def settle(runtime: LocalRuntime, client: Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    """The job's final document, once its execution has ended too."""
    job = client.wait(job_id, poll_s=0.3, timeout_s=timeout)
    if job.get("execution_arn"):
        sfn = runtime.client("stepfunctions")
        deadline = time.monotonic() + 60
        while sfn.describe_execution(executionArn=job["execution_arn"])["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution still running"
            time.sleep(0.2)
    return job


def assert_consistent(job: dict[str, Any], status: str, code: str | None = None) -> None:
    assert job["status"] == status, (job.get("error"), _runtime_errors(job))
    terminal = [e for e in job["events"] if e["status"] in TERMINAL]
    assert len(terminal) == 1 and job["events"][-1]["status"] == status
    if code is not None:
        assert job["error"]["code"] == code
        assert job["events"][-1]["error"]["code"] == code
    else:
        assert job["error"] is None


_RT: dict[str, LocalRuntime] = {}


def _runtime_errors(job: dict[str, Any]) -> list[str]:
    """Runtime errors in the execution's history: what to read when a case fails."""
    rt = _RT.get("rt")
    if rt is None or not job.get("execution_arn"):
        return []
    events = rt.client("stepfunctions").get_execution_history(executionArn=job["execution_arn"],
                                                              maxResults=1000)["events"]
    return [str(e)[:1500] for e in events if "States.Runtime" in str(e)][:2]


@pytest.fixture(autouse=True)
def _remember_runtime(runtime: LocalRuntime) -> None:
    _RT["rt"] = runtime


def execution_status(runtime: LocalRuntime, job: dict[str, Any]) -> str:
    """The execution's status; NEVER_STARTED for a job whose StartExecution failed."""
    sfn = runtime.client("stepfunctions")
    try:
        return str(sfn.describe_execution(executionArn=job["execution_arn"])["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return "NEVER_STARTED"


def invocations(runtime: LocalRuntime, function: str, job_id: str) -> list[str]:
    return [o for (f, j, o) in runtime.invocations if f == function and j == job_id]


def test_download_times_out_then_succeeds(runtime: LocalRuntime, client: Client, media_server: LoopbackServer,
                                          short_clip: SpeechClip) -> None:
    media_server.routes["/slow.mp3"] = Route(body=short_clip.encode(".mp3").read_bytes(),
                                             content_type="audio/mpeg", delay_first=4.0)
    job = client.submit_url(media_server.url("/slow.mp3"), {"formats": ["txt"], "fresh": True})
    done = settle(runtime, client, job["job_id"])
    assert_consistent(done, "COMPLETED")
    assert invocations(runtime, "DownloadFunction", job["job_id"]) == ["DownloadFailed", "ok"]
    assert execution_status(runtime, done) == "SUCCEEDED"


def test_download_fails_permanently(runtime: LocalRuntime, client: Client, media_server: LoopbackServer) -> None:
    media_server.routes["/private.mp3"] = Route(status=403, body=b"no", content_type="text/plain")
    job = client.submit_url(media_server.url("/private.mp3"), {"fresh": True})
    done = settle(runtime, client, job["job_id"])
    assert_consistent(done, "FAILED", "SOURCE_BLOCKED")  # a refusal: the message names the setting that helps
    assert invocations(runtime, "DownloadFunction", job["job_id"]) == ["SourceBlocked"]
    assert execution_status(runtime, done) == "FAILED"


def test_worker_crash_mid_shard_is_retried_without_redoing_finished_chunks(
    runtime: LocalRuntime, client: Client, long_clip: SpeechClip
) -> None:
    s3 = runtime.client("s3")
    bucket = runtime.outputs["BucketName"]
    planted: dict[str, Any] = {}
    lock = threading.Lock()

    def plant(job_id: str, shard: int) -> None:
        with lock:  # Batch jobs start two at a time
            if job_id == planted.get("job") and "fault" not in planted:
                _plant(job_id)

    def _plant(job_id: str) -> None:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"work/{job_id}/manifest.json")["Body"].read())
        by_shard: dict[int, list[int]] = {}
        for c in manifest["chunks"]:
            by_shard.setdefault(c["shard"], []).append(c["index"])
        shard_id, chunks = next((s, cs) for s, cs in sorted(by_shard.items()) if len(cs) >= 2)
        planted.update(shard=shard_id, first=chunks[0], second=chunks[1])
        # the shard's second transcript cannot be stored (S3 fails more often than the SDK
        # retries): the worker stops mid-shard with StorageError, retryable, exit 75
        planted["fault"] = runtime.faults.add(Fault("s3", "PutObject", times=SDK_ATTEMPTS, status=500,
                                                    code="InternalError",
                                                    path_contains=f"{job_id}/transcripts/{chunks[1]:05d}"))

    runtime.batch_hooks.append(plant)
    try:
        job = client.submit_file(long_clip.encode(".ogg"), {"formats": ["txt"], "fresh": True})
        planted["job"] = job["job_id"]
        done = settle(runtime, client, job["job_id"], timeout=300)
    finally:
        runtime.batch_hooks.remove(plant)
    assert_consistent(done, "COMPLETED")
    assert planted["fault"].hits == SDK_ATTEMPTS
    runs = [(s, ok) for (j, s, ok) in runtime.batch_runs if j == job["job_id"] and s == planted["shard"]]
    assert runs.count((planted["shard"], False)) == 1 and runs[-1] == (planted["shard"], True)
    jid = job["job_id"]
    # the chunk finished before the crash was stored once and not transcribed again
    assert runtime.faults.count("s3", "PutObject", f"{jid}/transcripts/{planted['first']:05d}") == 1
    assert runtime.faults.count("s3", "PutObject", f"{jid}/transcripts/{planted['second']:05d}") == SDK_ATTEMPTS + 1
    assert done["chunks"]["done"] == done["chunks"]["total"]


@pytest.mark.parametrize("stage", ["DownloadFunction", "NormalizeFunction", "MergeFunction"])
def test_a_stage_that_raises_fails_the_job_with_a_code(runtime: LocalRuntime, client: Client,
                                                       media_server: LoopbackServer, stage: str) -> None:
    runtime.lambda_faults[stage] = [RuntimeError("injected bug")]
    try:
        job = client.submit_url(media_server.url("/talk.mp3") + f"?stage={stage}", {"formats": ["txt"], "fresh": True})
        done = settle(runtime, client, job["job_id"])
    finally:
        runtime.lambda_faults.pop(stage, None)
    assert_consistent(done, "FAILED", "INTERNAL_ERROR")
    assert "injected bug" not in done["error"]["message"]  # internals stay in the logs
    assert invocations(runtime, stage, job["job_id"]) == ["RuntimeError"]
    assert execution_status(runtime, done) == "FAILED"


def test_notify_that_keeps_failing_does_not_fail_a_completed_job(
    runtime: LocalRuntime, client: Client, media_server: LoopbackServer
) -> None:
    runtime.lambda_faults["NotifyFunction"] = [RuntimeError("bus down") for _ in range(4)]
    try:
        job = client.submit_url(media_server.url("/talk.mp3") + "?notify", {"formats": ["txt"], "fresh": True})
        done = settle(runtime, client, job["job_id"])
    finally:
        runtime.lambda_faults.pop("NotifyFunction", None)
    assert_consistent(done, "COMPLETED")
    assert invocations(runtime, "NotifyFunction", job["job_id"]) == ["RuntimeError"] * 4
    assert execution_status(runtime, done) == "SUCCEEDED"


def test_failure_path_that_fails_too_is_caught_by_the_reconciler(
    runtime: LocalRuntime, client: Client, media_server: LoopbackServer
) -> None:
    runtime.lambda_faults["DownloadFunction"] = [RuntimeError("bug")]
    runtime.lambda_faults["MarkFailedFunction"] = [RuntimeError("db down") for _ in range(6)]
    try:
        job = client.submit_url(media_server.url("/talk.mp3") + "?orphan", {"fresh": True})
        sfn = runtime.client("stepfunctions")
        deadline = time.monotonic() + 120
        while sfn.describe_execution(executionArn=client.job(job["job_id"])["execution_arn"])["status"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        runtime.lambda_faults.pop("DownloadFunction", None)
        runtime.lambda_faults.pop("MarkFailedFunction", None)
    assert client.job(job["job_id"])["status"] in ("QUEUED", "DOWNLOADING")  # the record is stuck...
    report = runtime.reconcile(grace_s=0)
    assert {"job_id": job["job_id"], "code": "ORPHANED"} in report["failed"]
    assert_consistent(client.job(job["job_id"]), "FAILED", "ORPHANED")  # ... until the reconciler


def test_dynamodb_throttling_is_absorbed(runtime: LocalRuntime, client: Client,
                                         media_server: LoopbackServer) -> None:
    fault = runtime.faults.add(Fault("dynamodb", "UpdateItem", times=3, status=400,
                                     code="ProvisionedThroughputExceededException", message="slow down"))
    job = client.submit_url(media_server.url("/talk.mp3") + "?throttle", {"formats": ["txt"], "fresh": True})
    done = settle(runtime, client, job["job_id"])
    runtime.faults.clear()
    assert fault.hits == 3
    assert_consistent(done, "COMPLETED")


def test_s3_transient_errors_are_absorbed(runtime: LocalRuntime, client: Client,
                                          media_server: LoopbackServer) -> None:
    put = runtime.faults.add(Fault("s3", "PutObject", times=3, status=503, code="SlowDown"))
    get = runtime.faults.add(Fault("s3", "GetObject", times=2, status=500, code="InternalError"))
    job = client.submit_url(media_server.url("/talk.mp3") + "?s3", {"formats": ["txt"], "fresh": True})
    done = settle(runtime, client, job["job_id"])
    runtime.faults.clear()
    assert put.hits == 3 and get.hits == 2
    assert_consistent(done, "COMPLETED")


def test_same_s3_event_three_times_starts_one_job(runtime: LocalRuntime, client: Client,
                                                  short_clip: SpeechClip) -> None:
    bucket = runtime.outputs["BucketName"]
    key = "uploads/inbox/standup.mp3"
    runtime.client("s3").put_object(Bucket=bucket, Key=key, Body=short_clip.encode(".mp3").read_bytes())
    event = copy.deepcopy(load_event("s3_put.json"))
    rec = event["Records"][0]
    rec["s3"]["bucket"]["name"] = bucket
    rec["s3"]["object"].update({"key": key, "size": 1, "sequencer": "0A1B2C3D4E5F"})
    results = [runtime.invoke("UploadTriggerFunction", event) for _ in range(3)]
    assert results[0] == results[1] == results[2] and len(results[0]["jobs"]) == 1
    job_id = results[0]["jobs"][0]
    sfn = runtime.client("stepfunctions")
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=runtime.outputs["StateMachineArn"],
                                                   maxResults=1000)["executions"]]
    assert names.count(job_id) == 1
    assert_consistent(settle(runtime, client, job_id), "COMPLETED")


def test_trigger_failures_are_retried_then_dead_lettered(runtime: LocalRuntime, client: Client,
                                                         short_clip: SpeechClip) -> None:
    bucket = runtime.outputs["BucketName"]
    s3 = runtime.client("s3")
    runtime.lambda_faults["UploadTriggerFunction"] = [RuntimeError("cold start failed")]
    s3.put_object(Bucket=bucket, Key="uploads/retry/a.mp3", Body=short_clip.encode(".mp3").read_bytes())
    assert invocations(runtime, "UploadTriggerFunction", None)[-2:] == ["RuntimeError", "ok"]
    runtime.lambda_faults["UploadTriggerFunction"] = [RuntimeError("broken") for _ in range(3)]
    s3.put_object(Bucket=bucket, Key="uploads/retry/b.mp3", Body=b"ID3")
    runtime.lambda_faults.pop("UploadTriggerFunction", None)
    msgs = runtime.client("sqs").receive_message(QueueUrl=runtime.outputs["DeadLetterQueueUrl"],
                                                 MaxNumberOfMessages=10).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in msgs]
    assert any(unquote_plus(b["requestPayload"]["Records"][0]["s3"]["object"]["key"]) == "uploads/retry/b.mp3"
               and b["requestContext"]["condition"] == "RetriesExhausted" for b in bodies)


def test_cancel_racing_with_completion_ends_consistently(runtime: LocalRuntime, client: Client,
                                                         media_server: LoopbackServer) -> None:
    outcomes = []
    for i in range(3):
        job = client.submit_url(media_server.url("/talk.mp3") + f"?race={i}", {"formats": ["txt"], "fresh": True})
        while client.job(job["job_id"])["status"] not in ("MERGING", *TERMINAL):
            if client.job(job["job_id"])["chunks"]["done"] and i == 0:
                break  # one of them is cancelled a little earlier
            time.sleep(0.05)
        try:
            client.json("DELETE", f"/v1/transcriptions/{job['job_id']}")
        except Exception as exc:  # JOB_ALREADY_FINISHED: completion won
            assert "JOB_ALREADY_FINISHED" in str(exc)
        done = settle(runtime, client, job["job_id"])
        assert done["status"] in ("COMPLETED", "CANCELLED")
        assert_consistent(done, done["status"])
        time.sleep(1.0)
        assert client.job(job["job_id"])["status"] == done["status"]  # and it stays
        outcomes.append(done["status"])


def test_execution_stopped_from_outside_the_api(runtime: LocalRuntime, client: Client,
                                                media_server: LoopbackServer) -> None:
    with HeldTranscription(runtime) as held:
        job = client.submit_url(media_server.url("/talk.mp3") + "?stop", {"fresh": True})
        held.job_id = job["job_id"]
        assert held.entered.wait(60)
        doc = client.job(job["job_id"])
        runtime.client("stepfunctions").stop_execution(executionArn=doc["execution_arn"], error="Operator",
                                                       cause="stopped in the console")
    time.sleep(2.0)
    # AWS reports ABORTED; moto 5.2.5 ends a stop during a Map as FAILED (States.Runtime)
    assert execution_status(runtime, doc) in ("ABORTED", "FAILED")
    assert client.job(job["job_id"])["status"] == "TRANSCRIBING"  # nothing else will move it
    report = runtime.reconcile(grace_s=0)
    assert {"job_id": job["job_id"], "code": "ORPHANED"} in report["failed"]
    assert_consistent(client.job(job["job_id"]), "FAILED", "ORPHANED")


def test_final_sweep_every_job_is_terminal(runtime: LocalRuntime, client: Client) -> None:
    runtime.reconcile()  # the scheduled run, with its normal grace period
    seen = 0
    for status in LIVE:
        page = client.json("GET", "/v1/transcriptions", query={"status": status, "limit": "100"})
        assert page["items"] == [], f"jobs left {status}: {[j['job_id'] for j in page['items']]}"
    cursor = None
    while True:
        query = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = client.json("GET", "/v1/transcriptions", query=query)
        for job in page["items"]:
            seen += 1
            assert job["status"] in TERMINAL
            assert job["events"][-1]["status"] == job["status"]
            if job.get("execution_arn"):
                assert execution_status(runtime, job) != "RUNNING", job["job_id"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen > 0  # (in a full run: every job the e2e tests made)
