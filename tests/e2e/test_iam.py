"""IAM enforced on the local runtime: every function, the Batch worker and the state
machine call AWS as their own role from template.yaml, so a permission missing there
fails here as it would on AWS."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import SpeechClip
from tests.servers import LoopbackServer
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def denied(call: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return str(raised.value.response["Error"]["Code"])


def test_each_function_has_only_its_own_permissions(runtime: LocalRuntime) -> None:
    iam, table = runtime.iam, runtime.outputs["JobsTableName"]
    bucket = runtime.outputs["BucketName"]
    assert len(set(iam.function_roles.values())) == len(runtime.functions)  # one role each
    with iam.as_function("ApiFunction"):
        runtime.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "nothing"}})
        assert denied(lambda: runtime.client("dynamodb").delete_table(TableName=table)) == "AccessDeniedException"
        assert denied(lambda: runtime.client("s3").put_object(Bucket=bucket, Key="work/x", Body=b"x")) == \
            "AccessDenied"
        assert denied(lambda: runtime.client("batch").describe_jobs(jobs=["x"])) == "AccessDeniedException"
    with iam.as_function("NotifyFunction"):
        assert denied(lambda: runtime.client("s3").get_object(Bucket=bucket, Key="results/x")) == "AccessDenied"
    with iam.as_batch_job():
        assert denied(lambda: runtime.client("stepfunctions").list_state_machines()) == "AccessDeniedException"
    # outside any function: the operator (the runtime, these tests) may do anything
    runtime.client("batch").describe_jobs(jobs=["x"])


def test_unknown_credentials_are_refused(runtime: LocalRuntime) -> None:
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=runtime.endpoint, region_name="us-east-1",
                       aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
    code = denied(lambda: ddb.list_tables())
    assert code in ("UnrecognizedClientException", "InvalidClientTokenId", "403"), code


def test_the_same_upload_twice_reuses_the_first_result(runtime: LocalRuntime, client: Client,
                                                         short_clip: SpeechClip) -> None:
    """Normalize's reuse path reads and copies results/*: its role must allow it."""
    path = short_clip.encode(".m4a", name="iam-reuse")
    options = {"initial_prompt": "a reuse under IAM"}  # a cache entry of this test's own
    first = client.wait(client.submit_file(path, options)["job_id"], poll_s=0.3, timeout_s=180)
    assert first["status"] == "COMPLETED", first.get("error")
    second = client.wait(client.submit_file(path, options)["job_id"], poll_s=0.3, timeout_s=180)
    assert second["status"] == "COMPLETED", second.get("error")
    assert second["reused_from"] == first["job_id"]
    assert client.result(second["job_id"], "json") == client.result(first["job_id"], "json")


@pytest.fixture
def without_permission(runtime: LocalRuntime) -> Iterator[Any]:
    """Remove one action from one role's policies for a test, as a template edit would."""
    saved: list[tuple[str, str, dict[str, Any]]] = []

    def remove(function: str, action: str) -> None:
        role = runtime.iam.function_roles[function]
        for name, doc in runtime.iam.policies[role].items():
            reduced = copy.deepcopy(doc)
            for st in reduced["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                st["Action"] = [a for a in actions if a != action] or ["none:None"]
            if reduced != doc:
                saved.append((role, name, doc))
                runtime.iam.put_policy(role, name, reduced)
        assert saved, f"{function} had no {action}"

    yield remove
    for role, name, doc in saved:
        runtime.iam.put_policy(role, name, doc)


@pytest.mark.faults  # the fault suite's "denied IAM call"
def test_a_denied_iam_call_fails_the_job_with_a_code(runtime: LocalRuntime, client: Client,
                                                      media_server: LoopbackServer, without_permission: Any) -> None:
    # Given the download function may no longer write the work area
    without_permission("DownloadFunction", "s3:PutObject")
    # fresh: in a full run an earlier result for the same file completes the job without a download
    job = client.submit_url(media_server.url("/talk.mp3") + "?iam-denied", {"fresh": True})
    done = client.wait(job["job_id"], poll_s=0.3, timeout_s=120)
    # Then the job fails with a code, and nothing of it is left running
    assert done["status"] == "FAILED" and done["error"]["code"] == "INTERNAL_ERROR", done
    assert done["events"][-1]["status"] == "FAILED"
    outcomes = [o for (f, j, o) in runtime.invocations if f == "DownloadFunction" and j == job["job_id"]]
    assert outcomes and all(o != "ok" for o in outcomes), outcomes
    sfn, deadline = runtime.client("stepfunctions"), time.monotonic() + 60
    while sfn.describe_execution(executionArn=done["execution_arn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still running"
        time.sleep(0.2)
    assert sfn.describe_execution(executionArn=done["execution_arn"])["status"] == "FAILED"


def test_a_missing_object_is_a_404_only_to_roles_that_may_list_the_bucket(runtime: LocalRuntime) -> None:
    """As on S3: without s3:ListBucket, HEAD of a missing key is 403 (the template grants
    ListBucket to every function that checks whether an object exists)."""
    bucket, s3 = runtime.outputs["BucketName"], runtime.client("s3")
    with runtime.iam.as_function("NormalizeFunction"):
        assert denied(lambda: s3.head_object(Bucket=bucket, Key="results/none/transcript.json")) == "404"
    with runtime.iam.as_function("DownloadFunction"):  # may read work/*, not list the bucket
        assert denied(lambda: s3.head_object(Bucket=bucket, Key="work/none/source.mp3")) == "403"
