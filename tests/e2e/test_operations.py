"""Operating the local stack: hand-started executions, usage and cost, stage metrics."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.conftest import SpeechClip
from tests.servers import LoopbackServer
from ytcaption.stages.intake import job_id_for
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_by_hand(runtime: LocalRuntime, payload: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    """What an operator does in the Step Functions console: Start execution, paste the input."""
    sfn = runtime.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=runtime.outputs["StateMachineArn"], name=f"by-hand-{uuid.uuid4().hex[:8]}",
                              input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex = sfn.describe_execution(executionArn=arn)
        if ex["status"] != "RUNNING":
            return dict(ex)
        time.sleep(0.3)
    raise AssertionError("execution still running")


def test_execution_started_by_hand_with_a_url_creates_its_job_and_completes(
        runtime: LocalRuntime, client: Client, media_server: LoopbackServer) -> None:
    # fresh: an earlier test's result for the same file would be reused, with no GPU time to count
    ex = run_by_hand(runtime, {"url": media_server.url("/talk.mp3"), "formats": ["srt"], "fresh": True})
    assert ex["status"] == "SUCCEEDED", ex
    job = client.job(job_id_for(ex["executionArn"]))
    assert job["status"] == "COMPLETED" and job["execution_arn"] == ex["executionArn"]
    assert job["options"]["formats"] == ["srt"] and b"-->" in client.result(job["job_id"], "srt")
    # a job run like any other: usage and cost recorded, GPU seconds from the workers
    assert job["cost"]["total_usd"] > 0 and job["usage"]["batch_gpu_s"] > 0
    assert job["usage"]["queue_wait_s"] is not None and job["usage"]["queue_wait_s"] >= 0
    assert runtime.metrics.values("StageSeconds", Stage="queue_wait")


def test_execution_started_by_hand_with_an_s3_uri_transcribes_that_object(
        runtime: LocalRuntime, client: Client, short_clip: SpeechClip) -> None:
    bucket = runtime.outputs["BucketName"]
    runtime.client("s3").put_object(Bucket=bucket, Key="console/talk.m4a",
                                    Body=short_clip.encode(".m4a").read_bytes())
    ex = run_by_hand(runtime, {"s3_uri": f"s3://{bucket}/console/talk.m4a"})
    assert ex["status"] == "SUCCEEDED", ex
    job = client.job(job_id_for(ex["executionArn"]))
    assert job["status"] == "COMPLETED" and job["source"]["kind"] == "upload"


@pytest.mark.parametrize("payload", [{"s3_uri": "s3://someone-elses-bucket/a.mp3"}, {"url": "ftp://x"}, {}])
def test_bad_hand_written_input_fails_the_execution_without_a_job(runtime: LocalRuntime, client: Client,
                                                                  payload: dict[str, Any]) -> None:
    ex = run_by_hand(runtime, payload, timeout=30)
    assert ex["status"] == "FAILED" and ex.get("error") == "InvalidInput", ex
    with pytest.raises(Exception, match=r"no job"):
        client.job(job_id_for(ex["executionArn"]))


def test_reconciler_reports_the_batch_queue_depth(runtime: LocalRuntime) -> None:
    out = runtime.reconcile(grace_s=3600)
    assert out["batch_queue_depth"] == 0  # nothing waits for a GPU between tests
    assert runtime.metrics.values("BatchQueueDepth")[-1] == 0.0


def test_alarms_and_dashboard_are_deployed_from_the_template(runtime: LocalRuntime) -> None:
    cw = runtime.client("cloudwatch")
    names = {a["AlarmName"].removeprefix("ytcaption-local-") for a in cw.describe_alarms()["MetricAlarms"]}
    assert {"FailedExecutionsAlarm", "EndToEndP95Alarm", "LambdaErrorsAlarm"} <= names
    body = json.loads(cw.get_dashboard(DashboardName="ytcaption-local-operations")["DashboardBody"])
    assert any(w["type"] == "alarm" for w in body["widgets"])


def test_ytcaption_stats_prints_percentiles_and_cost(runtime: LocalRuntime, client: Client,
                                                    media_server: LoopbackServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from ytcaption_local.cli import main

    job = client.submit_url(media_server.url("/talk.mp3"), {"fresh": True})
    assert client.wait(job["job_id"], poll_s=0.3, timeout_s=180)["status"] == "COMPLETED"
    capsys.readouterr()
    assert main(["stats", "--since", "1h", "--api", runtime.api_url, "--api-key", runtime.api_key,
                 "--admin-key", runtime.admin_key]) == 0
    out = capsys.readouterr().out
    assert "end_to_end" in out and "per audio hour" in out and "COMPLETED" in out
    assert main(["stats", "--api", runtime.api_url, "--api-key", runtime.api_key, "--admin-key", "wrong"]) == 1
    assert "ADMIN_KEY_REQUIRED" in capsys.readouterr().err
