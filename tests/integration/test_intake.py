"""Jobs for executions started by hand from the Step Functions console (the CreateJob step)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from ytcaption.domain.errors import InvalidRequest, UnsafeUrl, UnsupportedMedia
from ytcaption.domain.jobs import JobStatus
from ytcaption.settings import IntakeSettings
from ytcaption.stages.intake import Intake, job_id_for

pytestmark = pytest.mark.integration
ARN = "arn:aws:states:us-east-1:123456789012:execution:sm:by-hand-1"


@pytest.fixture
def intake(moto_stack: dict[str, Any]) -> Intake:
    return Intake(IntakeSettings(jobs_table=TABLE, bucket_name=BUCKET, default_model="base"))


def test_a_url_execution_gets_a_queued_job_tied_to_it_with_the_default_model(intake: Intake) -> None:
    out = intake.create({"url": "https://media.example.test/talk.mp3", "formats": ["srt"]}, ARN)
    assert out == {"job_id": job_id_for(ARN), "source_kind": "url"}
    job = intake.repo.get(out["job_id"])
    assert job.status == JobStatus.QUEUED and job.execution_arn == ARN
    assert job.options.model == "base" and job.options.formats == ["srt"]
    # a retried CreateJob step finds the same job instead of making a second one
    assert intake.create({"url": "https://media.example.test/other.mp3"}, ARN) == out


def test_an_s3_uri_must_name_an_object_in_the_media_bucket(intake: Intake, moto_stack: dict[str, Any]) -> None:
    moto_stack["s3"].put_object(Bucket=BUCKET, Key="incoming/talk.m4a", Body=b"x" * 100, ContentType="audio/mp4")
    out = intake.create({"s3_uri": f"s3://{BUCKET}/incoming/talk.m4a", "language": "auto"}, ARN)
    job = intake.repo.get(out["job_id"])
    assert out["source_kind"] == "upload" and job.source.size_bytes == 100 and job.source.filename == "talk.m4a"
    # copied into the job's work area: the pipeline reads only its own prefixes
    assert job.source.key == f"work/{job.job_id}/source.m4a"
    assert moto_stack["s3"].get_object(Bucket=BUCKET, Key=job.source.key)["Body"].read() == b"x" * 100
    with pytest.raises(InvalidRequest, match="media bucket"):
        intake.create({"s3_uri": "s3://another-bucket/talk.m4a"}, ARN + "-2")
    with pytest.raises(UnsupportedMedia, match="no object"):
        intake.create({"s3_uri": f"s3://{BUCKET}/missing.m4a"}, ARN + "-3")


@pytest.mark.parametrize("payload", [{}, {"url": "ftp://x"}, {"url": "https://a.test/x", "s3_uri": "s3://b/k"},
                                     {"url": "https://a.test/x", "bogus": 1}, ["not", "an", "object"]])
def test_bad_input_is_refused_with_a_clear_error(intake: Intake, payload: Any) -> None:
    with pytest.raises(InvalidRequest):
        intake.create(payload, ARN)
    assert intake.repo.find(job_id_for(ARN)) is None


def test_the_url_policy_applies_as_at_the_api(intake: Intake) -> None:
    with pytest.raises(UnsafeUrl):
        intake.create({"url": "http://169.254.169.254/latest/meta-data"}, ARN)
