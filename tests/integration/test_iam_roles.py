"""The integration tests run handlers and stages as their template roles (tests/conftest.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BUCKET, TABLE, ApiClient
from tests.factories import make_job
from tests.stages import Stages
from ytcaption.adapters.table import Table
from ytcaption.domain.errors import YTCaptionError
from ytcaption.settings import PipelineSettings

pytestmark = pytest.mark.integration


def remove_action(enforcer: Any, function: str, action: str) -> None:
    role = enforcer.function_roles[function]
    for name, doc in list(enforcer.policies[role].items()):
        reduced = copy.deepcopy(doc)
        for st in reduced["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            st["Action"] = [a for a in actions if a != action] or ["none:None"]
        if reduced != doc:
            enforcer.put_policy(role, name, reduced)


def test_the_api_handler_runs_as_the_api_role(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    status, _, _ = api("POST", "/v1/transcriptions", {"url": "https://media.example.test/a.mp3"})
    assert status == 202
    remove_action(moto_stack["iam"], "ApiFunction", "states:StartExecution")
    status, _, body = api("POST", "/v1/transcriptions", {"url": "https://media.example.test/b.mp3"})
    assert status >= 500 and body["error"]["code"] == "INTERNAL_ERROR"


def test_a_stage_runs_as_its_function_role(moto_stack: dict[str, Any], tmp_path: Any) -> None:
    stages = Stages(PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path)))
    job = make_job()
    Table(TABLE, moto_stack["dynamodb"]).create(job)
    remove_action(moto_stack["iam"], "NotifyFunction", "dynamodb:GetItem")
    with pytest.raises(YTCaptionError, match="AccessDenied"):
        stages.notify.run(job.job_id)
    stages.mark_failed.run(job.job_id, {"Error": "DownloadFailed", "Cause": "x"})  # another role: allowed


def test_test_code_itself_acts_as_an_operator(moto_stack: dict[str, Any]) -> None:
    moto_stack["dynamodb"].list_tables()  # no function may; the operator may
    with moto_stack["iam"].as_function("ApiFunction"), pytest.raises(ClientError) as raised:
        moto_stack["dynamodb"].list_tables()
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"


def test_cancel_with_an_unreachable_webhook_needs_only_the_api_role(api: ApiClient,
                                                                     moto_stack: dict[str, Any]) -> None:
    """The API announces a cancel itself: a failed delivery releases its claim (DeleteItem)."""
    from ytcaption_local.runtime import free_port

    hook = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: the delivery fails
    _, _, job = api("POST", "/v1/transcriptions", {"url": "https://media.example.test/a.mp3", "webhook_url": hook})
    status, _, body = api("DELETE", f"/v1/transcriptions/{job['job_id']}")
    assert status == 200 and body["status"] == "CANCELLED", body


def test_parallel_reads_run_as_the_callers_role(moto_stack: dict[str, Any]) -> None:
    """Storage.get_many reads on a thread pool: each GET must still run as the function that
    asked, not as the administrator a thread without a principal would sign as."""
    from ytcaption.adapters.storage import Storage

    s3 = moto_stack["s3"]
    for i in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"work/j/{i}.json", Body=f"{i}".encode())
    wanted = [f"work/j/{i}.json" for i in (3, 0, 4)] + ["work/j/missing.json", "work/j/1.json"]
    storage = Storage(BUCKET, s3)
    with moto_stack["iam"].as_function("MergeFunction"):
        assert storage.get_many(wanted) == [b"3", b"0", b"4", None, b"1"]  # in order; none for a missing key
    remove_action(moto_stack["iam"], "MergeFunction", "s3:GetObject")
    with moto_stack["iam"].as_function("MergeFunction"), pytest.raises(YTCaptionError, match="AccessDenied"):
        storage.get_many(wanted)
