"""What the project's LocalStack plugin promises about running functions, checked
through the Lambda API (LocalStack only: these create throwaway functions)."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Endpoint

pytestmark = [pytest.mark.endpoint]

HANDLER = '''
import os, sys, time

def lambda_handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError(event["fail"])
    return {
        "python": list(sys.version_info[:2]),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
        "var": os.environ.get("MY_VAR"),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "pid": os.getpid(),
    }
'''


@pytest.fixture(scope="module")
def function(endpoint: Endpoint) -> Iterator[str]:
    if not endpoint.aws_env.get("AWS_ENDPOINT_URL"):
        pytest.skip("creates throwaway functions: LocalStack only (AWS_ENDPOINT_URL is not set)")
    lam = endpoint.client("lambda")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", HANDLER)
    name = f"ytcaption-probe-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.lambda_handler", Timeout=2,
                        Role="arn:aws:iam::000000000000:role/probe", Code={"ZipFile": buf.getvalue()},
                        Environment={"Variables": {"MY_VAR": "from-the-function-config"}})
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    yield name
    lam.delete_function(FunctionName=name)


def invoke(endpoint: Endpoint, name: str, event: dict[str, Any]) -> tuple[dict[str, Any], Any, float]:
    started = time.monotonic()
    resp = endpoint.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return resp, json.loads(resp["Payload"].read()), time.monotonic() - started


def test_zip_function_runs_on_its_runtime_with_its_environment(endpoint: Endpoint, function: str) -> None:
    resp, out, _ = invoke(endpoint, function, {})
    assert "FunctionError" not in resp, out
    assert out["python"] == [3, 12]  # the python3.12 runtime, not LocalStack's interpreter
    assert out["var"] == "from-the-function-config"
    assert out["endpoint"] == endpoint.aws_env["AWS_ENDPOINT_URL"].rstrip("/")
    assert out["task_root"] and out["task_root"] != "/var/task"  # the unzipped code on this machine
    assert 0 < out["remaining_ms"] <= 2000


def test_an_exception_is_a_lambda_error_with_its_type(endpoint: Endpoint, function: str) -> None:
    resp, out, _ = invoke(endpoint, function, {"fail": "bad input"})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "ValueError" and out["errorMessage"] == "bad input"


def test_the_timeout_is_enforced_and_the_next_call_gets_a_fresh_process(endpoint: Endpoint, function: str) -> None:
    _, before, _ = invoke(endpoint, function, {})
    resp, out, took = invoke(endpoint, function, {"sleep": 30})
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Sandbox.Timedout" and "timed out after 2.00 seconds" in out["errorMessage"]
    assert took < 15  # stopped at the 2 s timeout, not after the 30 s sleep
    resp, after, _ = invoke(endpoint, function, {})
    assert "FunctionError" not in resp, after
    assert after["pid"] != before["pid"]  # the timed-out sandbox was killed


def test_a_batch_job_runs_the_worker_and_an_application_error_is_not_retried(endpoint: Endpoint) -> None:
    """The stack's job definition run directly: the worker refuses a job without a job id
    (exit 2), and the template's retry rules send that to EXIT after one attempt."""
    if not endpoint.aws_env.get("AWS_ENDPOINT_URL") or not endpoint.stack:
        pytest.skip("submits to the stack's GPU queue: LocalStack only, with YTCAPTION_STACK_NAME")
    cfn, batch = endpoint.client("cloudformation"), endpoint.client("batch")

    def physical(logical: str) -> str:
        res = cfn.describe_stack_resource(StackName=endpoint.stack, LogicalResourceId=logical)
        return str(res["StackResourceDetail"]["PhysicalResourceId"])

    job_id = batch.submit_job(jobName="probe-without-job-id", jobQueue=physical("TranscriberJobQueue"),
                              jobDefinition=physical("TranscriberJobDefinition"))["jobId"]
    deadline = time.monotonic() + 120
    while (job := batch.describe_jobs(jobs=[job_id])["jobs"][0])["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, job["status"]
        time.sleep(0.5)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Essential container in task exited"
    assert len(job["attempts"]) == 1  # RetryStrategy: onReason "*" -> EXIT for an application error
