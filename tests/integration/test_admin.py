"""GET /v1/admin/stats (separate admin key) and GET /v1/health/ready, through the API handler."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, ApiClient
from tests.factories import make_job
from ytcaption import services
from ytcaption.adapters.table import Table
from ytcaption.domain.costs import Cost, Usage
from ytcaption.domain.jobs import ErrorInfo, JobStatus, MediaInfo, StageTiming

pytestmark = pytest.mark.integration
KEY = "admin-secret-key"


@pytest.fixture
def admin_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_KEY_SHA256", hashlib.sha256(KEY.encode()).hexdigest())
    services.reset()


def seed(repo: Table) -> None:
    for i, transcribe_s in enumerate([10.0, 20.0, 30.0, 40.0]):
        job = make_job(JobStatus.COMPLETED)
        job.timings = {"transcribe": StageTiming(started_at="2026-01-01T00:00:00Z", seconds=transcribe_s)}
        job.media = MediaInfo(duration_s=900.0)
        job.completed_at = job.created_at
        job.usage = Usage(batch_gpu_s=30.0 + i, queue_wait_s=5.0 * (i + 1), transcribed_audio_s=900.0)
        job.cost = Cost(lambda_usd=0.001, step_functions_usd=0.0003, batch_gpu_usd=0.002, s3_usd=0.0001,
                        dynamodb_usd=0.0001, total_usd=0.0035, gpu_usd_per_hour=0.2)
        repo.create(job)
    failed = make_job(JobStatus.FAILED)
    failed.error = ErrorInfo(code="SOURCE_NOT_FOUND", message="404")
    repo.create(failed)
    repo.create(make_job(JobStatus.QUEUED))


def test_admin_stats_need_the_admin_key_not_just_the_api_key(api: ApiClient, admin_on: None) -> None:
    status, _, body = api("GET", "/v1/admin/stats")
    assert status == 403 and body["error"]["code"] == "ADMIN_KEY_REQUIRED"
    status, _, body = api("GET", "/v1/admin/stats", headers={"X-Admin-Key": "wrong"})
    assert status == 403 and body["error"]["code"] == "ADMIN_KEY_REQUIRED"


def test_admin_routes_are_off_without_a_configured_key(api: ApiClient) -> None:
    status, _, body = api("GET", "/v1/admin/stats", headers={"X-Admin-Key": KEY})
    assert status == 403 and "no admin key is configured" in body["error"]["message"]


def test_admin_stats_count_jobs_and_give_stage_percentiles_and_cost(api: ApiClient, admin_on: None,
                                                                    moto_stack: dict[str, Any]) -> None:
    seed(Table(TABLE, moto_stack["dynamodb"]))
    status, _, doc = api("GET", "/v1/admin/stats", headers={"X-Admin-Key": KEY}, query={"since": "1h"})
    assert status == 200, doc
    assert doc["jobs"] == 6 and doc["by_status"] == {"COMPLETED": 4, "FAILED": 1, "QUEUED": 1}
    assert doc["by_error_code"] == {"SOURCE_NOT_FOUND": 1}
    assert doc["stages"]["transcribe"] == {"count": 4, "p50": 20.0, "p95": 40.0, "p99": 40.0, "max": 40.0}
    assert doc["stages"]["queue_wait"]["p50"] == 10.0
    assert doc["audio_hours"] == 1.0  # 4 x 900 s
    assert doc["cost"]["total_usd"] == pytest.approx(0.014) and doc["cost"]["jobs_costed"] == 4
    assert doc["cost"]["usd_per_audio_hour"] == pytest.approx(0.014)
    assert doc["cost"]["batch_gpu_usd"] == pytest.approx(0.008)


def test_admin_stats_since_filters_and_rejects_nonsense(api: ApiClient, admin_on: None,
                                                        moto_stack: dict[str, Any]) -> None:
    seed(Table(TABLE, moto_stack["dynamodb"]))
    _, _, doc = api("GET", "/v1/admin/stats", headers={"X-Admin-Key": KEY}, query={"since": "2999-01-01T00:00:00Z"})
    assert doc["jobs"] == 0 and doc["stages"]["transcribe"]["p50"] is None
    status, _, body = api("GET", "/v1/admin/stats", headers={"X-Admin-Key": KEY}, query={"since": "yesterday"})
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"


def test_ready_checks_table_bucket_and_state_machine(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    status, _, doc = api("GET", "/v1/health/ready")
    assert status == 200 and doc["status"] == "ready", doc
    assert {k: v["ok"] for k, v in doc["checks"].items()} == {"table": True, "bucket": True, "state_machine": True}
    # Given the bucket is gone
    moto_stack["s3"].delete_bucket(Bucket=BUCKET)
    status, _, doc = api("GET", "/v1/health/ready")
    assert status == 503 and doc["status"] == "not_ready"
    assert doc["checks"]["bucket"]["ok"] is False and doc["checks"]["table"]["ok"] is True
