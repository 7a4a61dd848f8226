"""More faults on the local runtime (issue 11): Step Functions refusing to start, a Lambda
timeout, a Batch attempt timeout, EventBridge failing. Each ends with a code, nothing stuck."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_faults import SDK_ATTEMPTS, assert_consistent, execution_status, settle
from tests.servers import LoopbackServer
from ytcaption_local.cli import ApiError, Client
from ytcaption_local.faults import Fault
from ytcaption_local.runtime import BatchAttemptTimeout, LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.slow]


def test_start_execution_failing_fails_the_job_at_once(runtime: LocalRuntime, client: Client,
                                                       media_server: LoopbackServer) -> None:
    fault = runtime.faults.add(Fault("stepfunctions", "StartExecution", times=SDK_ATTEMPTS, status=500,
                                     code="InternalServerError", message="injected"))
    with pytest.raises(ApiError) as refused:
        client.submit_url(media_server.url("/talk.mp3") + "?nostart", {"formats": ["txt"], "fresh": True})
    runtime.faults.clear()
    assert fault.hits == SDK_ATTEMPTS
    # a dependency's 5xx, as aws.translate names it; retryable, so the client may submit again
    assert refused.value.status == 503 and refused.value.code in ("SERVICE_UNAVAILABLE", "STORAGE_ERROR")
    # the job the request created is not left QUEUED with nothing to run it
    newest = client.json("GET", "/v1/transcriptions", query={"limit": "1"})["items"][0]
    job = client.job(newest["job_id"])
    assert job["source"]["url"].endswith("?nostart")
    assert_consistent(job, "FAILED", refused.value.code)


def test_a_lambda_timeout_fails_the_job_with_timeout(runtime: LocalRuntime, client: Client,
                                                     media_server: LoopbackServer) -> None:
    # what Lambda reports when a function runs past its timeout
    timed_out: Any = type("Sandbox.Timedout", (Exception,), {})
    runtime.lambda_faults["NormalizeFunction"] = [timed_out("Task timed out after 900.00 seconds")]
    job = client.submit_url(media_server.url("/talk.mp3") + "?ltimeout", {"formats": ["txt"], "fresh": True})
    done = settle(runtime, client, job["job_id"])
    runtime.lambda_faults.pop("NormalizeFunction", None)
    assert_consistent(done, "FAILED", "TIMEOUT")
    assert execution_status(runtime, done) == "FAILED"


def test_a_batch_attempt_timeout_fails_the_job_with_timeout(runtime: LocalRuntime, client: Client,
                                                            media_server: LoopbackServer) -> None:
    def too_slow(job_id: str, shard: int) -> None:
        raise BatchAttemptTimeout()

    runtime.batch_hooks.append(too_slow)
    try:
        job = client.submit_url(media_server.url("/talk.mp3") + "?btimeout", {"formats": ["txt"], "fresh": True})
        done = settle(runtime, client, job["job_id"])
    finally:
        runtime.batch_hooks.remove(too_slow)
    assert_consistent(done, "FAILED", "TIMEOUT")
    attempts = [r for r in runtime.batch_runs if r[0] == job["job_id"]]
    assert attempts and all(not ok for _, _, ok in attempts)
    assert len({shard for _, shard, _ in attempts}) == len(attempts)  # a timed-out attempt is not retried


def test_eventbridge_failing_does_not_fail_a_completed_job(runtime: LocalRuntime, client: Client,
                                                           media_server: LoopbackServer) -> None:
    fault = runtime.faults.add(Fault("events", "PutEvents", times=100, status=500,
                                     code="InternalException", message="injected"))
    job = client.submit_url(media_server.url("/talk.mp3") + "?events", {"formats": ["txt"], "fresh": True})
    done = settle(runtime, client, job["job_id"])
    runtime.faults.clear()
    assert fault.hits >= 1
    assert_consistent(done, "COMPLETED")
    assert execution_status(runtime, done) == "SUCCEEDED"
