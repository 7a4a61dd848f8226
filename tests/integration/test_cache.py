"""The result cache: same source and options reuse a completed result."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, ApiClient
from ytcaption.cache import ResultCache, youtube_id
from ytcaption.jobs import JobStatus
from ytcaption.repository import JobRepository
from ytcaption.storage import Storage, result_key

pytestmark = pytest.mark.integration
VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


@pytest.mark.parametrize(("url", "vid"), [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42", "dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ?si=x", "dQw4w9WgXcQ"),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/watch?v=short", None),
    ("https://vimeo.com/123456", None),
    ("https://evil.example/watch?v=dQw4w9WgXcQ", None),
])
def test_youtube_ids(url: str, vid: str | None) -> None:
    assert youtube_id(url) == vid


def executions(stack: dict[str, Any]) -> list[dict[str, Any]]:
    return list(stack["sfn"].list_executions(stateMachineArn=stack["state_machine_arn"])["executions"])


def complete(stack: dict[str, Any], job_id: str) -> None:
    repo = JobRepository(TABLE, stack["dynamodb"])
    doc = {"language": "en", "segments": [{"start": 0, "end": 1.5, "text": "Never gonna give you up.", "words": []}]}
    stack["s3"].put_object(Bucket=BUCKET, Key=result_key(job_id, "json"), Body=json.dumps(doc).encode())
    for s in ("DOWNLOADING", "NORMALIZING", "TRANSCRIBING", "MERGING"):
        repo.transition(job_id, JobStatus(s))
    done = repo.transition(job_id, JobStatus.COMPLETED, fields={"results": {"json": result_key(job_id, "json")},
                                                                 "language": "en"})
    cache = ResultCache(repo, Storage(BUCKET, stack["s3"]))
    for key in done.cache_keys:
        cache.remember(key, done)


def test_same_video_same_options_reuses_the_result(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    _, _, first = api("POST", "/v1/transcriptions", {"url": VIDEO, "language": "en"})
    complete(moto_stack, first["job_id"])
    status, _, second = api("POST", "/v1/transcriptions", {"url": "https://youtu.be/dQw4w9WgXcQ", "language": "en",
                                                           "formats": ["srt"]})
    assert status == 202 and second["status"] == "COMPLETED"
    assert second["job_id"] != first["job_id"]
    _, _, doc = api("GET", f"/v1/transcriptions/{second['job_id']}")
    assert doc["reused_from"] == first["job_id"] and doc["execution_arn"] is None
    assert "reused the result" in doc["events"][-1]["message"]
    status, _, srt = api("GET", f"/v1/transcriptions/{second['job_id']}/result", query={"format": "srt"})
    assert status == 200 and "Never gonna give you up." in srt
    assert len(executions(moto_stack)) == 1  # nothing ran again


def test_fresh_or_other_options_run_again(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    _, _, first = api("POST", "/v1/transcriptions", {"url": VIDEO})
    complete(moto_stack, first["job_id"])
    _, _, fresh = api("POST", "/v1/transcriptions", {"url": VIDEO, "fresh": True})
    _, _, other = api("POST", "/v1/transcriptions", {"url": VIDEO, "model": "base"})
    assert fresh["status"] == other["status"] == "QUEUED"
    assert len(executions(moto_stack)) == 3
