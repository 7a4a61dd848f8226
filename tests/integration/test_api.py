"""The HTTPS API handler with API Gateway proxy events, against moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.conftest import BUCKET, TABLE, ApiClient
from ytcaption.adapters.storage import result_key
from ytcaption.adapters.table import Table
from ytcaption.domain.jobs import JobStatus

pytestmark = pytest.mark.integration
URL = "https://media.example.test/talk.mp3"


def executions(stack: dict[str, Any]) -> list[dict[str, Any]]:
    return list(stack["sfn"].list_executions(stateMachineArn=stack["state_machine_arn"])["executions"])


def submit(api: ApiClient, **extra: Any) -> dict[str, Any]:
    status, _, body = api("POST", "/v1/transcriptions", {"url": URL, **extra})
    assert status == 202, body
    return dict(body)


def test_submit_records_job_and_starts_execution(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    status, headers, body = api(
        "POST", "/v1/transcriptions", {"url": URL, "language": "en", "formats": ["srt", "vtt"]},
        headers={"X-Correlation-ID": "corr-123"},
    )
    assert status == 202
    assert body["status"] == "QUEUED"
    assert body["status_url"] == f"https://api.example.test/v1/transcriptions/{body['job_id']}"
    assert body["result_url"].endswith("/result")
    assert headers["X-Correlation-ID"] == "corr-123"
    assert headers["Location"] == body["status_url"]
    runs = executions(moto_stack)
    assert [r["name"] for r in runs] == [body["job_id"]]
    status, _, job = api("GET", f"/v1/transcriptions/{body['job_id']}")
    assert status == 200
    assert job["correlation_id"] == "corr-123"
    assert job["source"] == {"kind": "url", "url": URL, "bucket": None, "key": None,
                             "filename": None, "content_type": None, "size_bytes": None,
                             "upload_expires_at": None}
    assert job["options"]["formats"] == ["srt", "vtt"]
    assert job["execution_arn"] == runs[0]["executionArn"]
    assert job["events"][0]["status"] == "QUEUED"


def test_correlation_id_is_generated_when_absent(api: ApiClient) -> None:
    _, headers, _ = api("GET", "/v1/health")
    assert len(headers["X-Correlation-ID"]) == 36


def test_same_idempotency_key_twice_gives_one_job(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    h = {"Idempotency-Key": "retry-me-1"}
    s1, _, first = api("POST", "/v1/transcriptions", {"url": URL}, headers=h)
    s2, _, second = api("POST", "/v1/transcriptions", {"url": URL}, headers=h)
    assert (s1, s2) == (202, 202)
    assert first["job_id"] == second["job_id"]
    assert len(executions(moto_stack)) == 1
    # the same key for a different request is refused, not silently mapped
    s3, _, other = api("POST", "/v1/transcriptions", {"url": URL + "?v=2"}, headers=h)
    assert s3 == 422 and other["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_job_history_endpoint(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = submit(api)
    Table(TABLE, moto_stack["dynamodb"]).transition(job["job_id"], JobStatus.DOWNLOADING)
    status, _, body = api("GET", f"/v1/transcriptions/{job['job_id']}/events")
    assert status == 200
    assert [e["status"] for e in body["events"]] == ["QUEUED", "DOWNLOADING"]


def test_list_with_status_filter_and_cursor(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    ids = {submit(api)["job_id"] for _ in range(3)}
    status, _, page1 = api("GET", "/v1/transcriptions", query={"limit": "2"})
    assert status == 200 and len(page1["items"]) == 2 and page1["next_cursor"]
    _, _, page2 = api("GET", "/v1/transcriptions", query={"limit": "2", "cursor": page1["next_cursor"]})
    got = {j["job_id"] for j in page1["items"] + page2["items"]}
    assert got == ids
    _, _, queued = api("GET", "/v1/transcriptions", query={"status": "QUEUED"})
    assert {j["job_id"] for j in queued["items"]} == ids
    _, _, done = api("GET", "/v1/transcriptions", query={"status": "COMPLETED"})
    assert done == {"items": [], "next_cursor": None}


def test_cancel_stops_execution_and_completed_job_gives_409(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = submit(api)
    status, _, body = api("DELETE", f"/v1/transcriptions/{job['job_id']}")
    assert status == 200 and body["status"] == "CANCELLED"
    run = executions(moto_stack)[0]
    desc = moto_stack["sfn"].describe_execution(executionArn=run["executionArn"])
    assert desc["status"] in ("ABORTED", "SUCCEEDED")  # moto's Pass machine may finish first
    status, _, body = api("DELETE", f"/v1/transcriptions/{job['job_id']}")
    assert status == 409 and body["error"]["code"] == "JOB_ALREADY_FINISHED"

    done = submit(api)
    repo = Table(TABLE, moto_stack["dynamodb"])
    for s in ("DOWNLOADING", "NORMALIZING", "TRANSCRIBING", "MERGING", "COMPLETED"):
        repo.transition(done["job_id"], JobStatus(s))
    status, _, body = api("DELETE", f"/v1/transcriptions/{done['job_id']}")
    assert status == 409 and body["error"] == {
        "code": "JOB_ALREADY_FINISHED", "message": body["error"]["message"]}
    assert repo.get(done["job_id"]).status == JobStatus.COMPLETED


def _complete_with_results(moto_stack: dict[str, Any], job_id: str, docs: dict[str, str]) -> None:
    repo = Table(TABLE, moto_stack["dynamodb"])
    for fmt, text in docs.items():
        moto_stack["s3"].put_object(Bucket=BUCKET, Key=result_key(job_id, fmt), Body=text.encode())
    for s in ("DOWNLOADING", "NORMALIZING", "TRANSCRIBING", "MERGING"):
        repo.transition(job_id, JobStatus(s))
    repo.transition(job_id, JobStatus.COMPLETED,
                    fields={"results": {f: result_key(job_id, f) for f in docs}})


TRANSCRIPT = {
    "language": "en", "duration": 2.5, "model": "tiny.en",
    "segments": [{"start": 0.0, "end": 1.001, "text": "Hello there.", "words": []},
                 {"start": 1.2, "end": 2.4, "text": "General Kenobi.", "words": []}],
}


def test_results_in_each_format_with_content_types(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    job = submit(api, formats=["json", "srt"])
    status, _, body = api("GET", f"/v1/transcriptions/{job['job_id']}/result", query={"format": "srt"})
    assert status == 409 and body["error"]["code"] == "JOB_NOT_COMPLETED"
    srt = "1\n00:00:00,000 --> 00:00:01,001\nHello there.\n"
    _complete_with_results(moto_stack, job["job_id"], {"json": json.dumps(TRANSCRIPT), "srt": srt})
    status, headers, body = api("GET", f"/v1/transcriptions/{job['job_id']}/result", query={"format": "srt"})
    assert status == 200 and body == srt
    assert headers["Content-Type"] == "application/x-subrip; charset=utf-8"
    status, headers, body = api("GET", f"/v1/transcriptions/{job['job_id']}/result")
    assert status == 200 and body["segments"][1]["text"] == "General Kenobi."
    # a format the job did not ask for is rendered from the canonical JSON
    status, headers, body = api("GET", f"/v1/transcriptions/{job['job_id']}/result", query={"format": "vtt"})
    assert status == 200 and headers["Content-Type"].startswith("text/vtt")
    assert body.startswith("WEBVTT")
    assert "00:00:00.000 --> 00:00:02.400\nHello there. General Kenobi." in body
    status, _, body = api("GET", f"/v1/transcriptions/{job['job_id']}/result", query={"format": "txt"})
    assert status == 200 and "Hello there." in body and "General Kenobi." in body


def test_large_result_redirects_to_presigned_url(api: ApiClient, moto_stack: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INLINE_RESULT_MAX_BYTES", "10")
    job = submit(api)
    _complete_with_results(moto_stack, job["job_id"], {"json": json.dumps(TRANSCRIPT)})
    status, headers, _ = api("GET", f"/v1/transcriptions/{job['job_id']}/result")
    assert status == 302
    assert BUCKET in headers["Location"] and "Signature" in headers["Location"]
    assert json.loads(requests.get(headers["Location"], timeout=5).text)["language"] == "en"


def test_upload_reservation_gives_expiring_presigned_put(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    status, _, body = api("POST", "/v1/uploads", {
        "filename": "../../My Talk (final).mp3", "content_type": "audio/mpeg", "size_bytes": 5,
        "language": "en"})
    assert status == 201, body
    assert body["status"] == "AWAITING_UPLOAD"
    assert body["upload_method"] == "PUT"
    assert "X-Amz-Expires=900" in body["upload_url"]
    assert f"uploads/{body['job_id']}/My_Talk_final_.mp3" in body["upload_url"]
    put = requests.put(body["upload_url"], data=b"hello", headers=body["upload_headers"], timeout=5)
    assert put.status_code == 200
    obj = moto_stack["s3"].get_object(Bucket=BUCKET, Key=f"uploads/{body['job_id']}/My_Talk_final_.mp3")
    assert obj["Body"].read() == b"hello"
    assert executions(moto_stack) == []  # it starts when the upload's S3 event arrives


def test_speaker_clip_gets_a_presigned_put_under_speakers_that_a_job_can_name(
        api: ApiClient, moto_stack: dict[str, Any]) -> None:
    status, _, body = api("POST", "/v1/speakers", {"filename": "../Ann Lee.wav", "content_type": "audio/wav",
                                                   "size_bytes": 4})
    assert status == 201, body
    assert body["key"].startswith("speakers/") and body["key"].endswith("/Ann_Lee.wav")
    put = requests.put(body["upload_url"], data=b"RIFF", headers=body["upload_headers"], timeout=5)
    assert put.status_code == 200
    assert moto_stack["s3"].get_object(Bucket=BUCKET, Key=body["key"])["Body"].read() == b"RIFF"
    assert executions(moto_stack) == []  # a reference clip starts no job
    status, _, job = api("POST", "/v1/transcriptions", {"url": URL, "diarize": True,
                                                        "known_speakers": {"Ann Lee": body["key"]}})
    assert status == 202, job


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"filename": "a.wav", "content_type": "audio/wav", "size_bytes": 21 * 1024 * 1024}, 413, "UPLOAD_TOO_LARGE"),
    ({"filename": "a.exe", "content_type": "application/x-msdownload", "size_bytes": 4}, 400, "INVALID_REQUEST"),
    ({"filename": "a.wav", "content_type": "audio/wav", "size_bytes": 0}, 400, "INVALID_REQUEST"),
    ({"filename": "a.wav", "content_type": "audio/wav", "size_bytes": 4, "key": "work/x"}, 400, "INVALID_REQUEST"),
])
def test_bad_speaker_clip_requests_get_their_code(api: ApiClient, body: dict, status: int, code: str) -> None:
    got, _, doc = api("POST", "/v1/speakers", body)
    assert (got, doc["error"]["code"]) == (status, code)


def test_openapi_document_lists_every_route(api: ApiClient) -> None:
    status, _, doc = api("GET", "/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/v1/transcriptions", "/v1/uploads", "/v1/speakers", "/v1/transcriptions/{job_id}",
            "/v1/transcriptions/{job_id}/result", "/v1/transcriptions/{job_id}/events",
            "/v1/health"} <= set(doc["paths"])


JOB = "0123456789abcdef0123456789abcdef"
BAD_REQUESTS: list[tuple[str, str, str, Any, dict[str, str] | None, int, str]] = [
    ("not json", "POST", "/v1/transcriptions", "{not json", None, 400, "INVALID_REQUEST"),
    ("missing url", "POST", "/v1/transcriptions", {}, None, 400, "INVALID_REQUEST"),
    ("ftp url", "POST", "/v1/transcriptions", {"url": "ftp://example.com/a.mp3"}, None, 400, "INVALID_REQUEST"),
    ("file url", "POST", "/v1/transcriptions", {"url": "file:///etc/passwd"}, None, 400, "INVALID_REQUEST"),
    ("javascript url", "POST", "/v1/transcriptions", {"url": "javascript:alert(1)"}, None, 400, "INVALID_REQUEST"),
    ("url without host", "POST", "/v1/transcriptions", {"url": "http:///x"}, None, 400, "INVALID_REQUEST"),
    ("url not a string", "POST", "/v1/transcriptions", {"url": 42}, None, 400, "INVALID_REQUEST"),
    ("huge url", "POST", "/v1/transcriptions", {"url": "https://a.example/" + "x" * 5000}, None, 400, "INVALID_REQUEST"),
    ("unknown model", "POST", "/v1/transcriptions", {"url": URL, "model": "whisper-9000"}, None, 422, "MODEL_UNAVAILABLE"),
    ("model not installed", "POST", "/v1/transcriptions", {"url": URL, "model": "small"}, None, 422, "MODEL_UNAVAILABLE"),
    ("model name not a name", "POST", "/v1/transcriptions", {"url": URL, "model": "../x"}, None, 400, "INVALID_REQUEST"),
    ("english model translating", "POST", "/v1/transcriptions", {"url": URL, "model": "tiny.en", "task": "translate"}, None, 422, "TRANSLATION_UNSUPPORTED"),
    ("upload, model not installed", "POST", "/v1/uploads", {"filename": "a.mp3", "content_type": "audio/mpeg", "size_bytes": 10, "model": "large-v3"}, None, 422, "MODEL_UNAVAILABLE"),
    ("unknown language", "POST", "/v1/transcriptions", {"url": URL, "language": "xx"}, None, 400, "INVALID_REQUEST"),
    ("unknown format", "POST", "/v1/transcriptions", {"url": URL, "formats": ["pdf"]}, None, 400, "INVALID_REQUEST"),
    ("unknown task", "POST", "/v1/transcriptions", {"url": URL, "task": "dance"}, None, 400, "INVALID_REQUEST"),
    ("unknown field", "POST", "/v1/transcriptions", {"url": URL, "priority": "high"}, None, 400, "INVALID_REQUEST"),
    ("bad webhook", "POST", "/v1/transcriptions", {"url": URL, "webhook_url": "gopher://x"}, None, 400, "INVALID_REQUEST"),
    ("english model, german", "POST", "/v1/transcriptions", {"url": URL, "model": "tiny.en", "language": "de"}, None, 422, "LANGUAGE_UNSUPPORTED"),
    ("zero speakers", "POST", "/v1/transcriptions", {"url": URL, "diarize": True, "num_speakers": 0}, None, 422, "INVALID_SPEAKER_COUNT"),
    ("negative speakers", "POST", "/v1/transcriptions", {"url": URL, "diarize": True, "min_speakers": -2}, None, 422, "INVALID_SPEAKER_COUNT"),
    ("min above max speakers", "POST", "/v1/transcriptions", {"url": URL, "diarize": True, "min_speakers": 4, "max_speakers": 2}, None, 422, "INVALID_SPEAKER_COUNT"),
    ("more than 32 speakers", "POST", "/v1/transcriptions", {"url": URL, "diarize": True, "max_speakers": 33}, None, 422, "INVALID_SPEAKER_COUNT"),
    ("speakers without diarize", "POST", "/v1/transcriptions", {"url": URL, "num_speakers": 2}, None, 422, "INVALID_SPEAKER_COUNT"),
    ("upload, speakers 0", "POST", "/v1/uploads", {"filename": "a.mp3", "content_type": "audio/mpeg", "size_bytes": 10, "diarize": True, "num_speakers": 0}, None, 422, "INVALID_SPEAKER_COUNT"),
    ("known speaker key escapes", "POST", "/v1/transcriptions", {"url": URL, "diarize": True, "known_speakers": {"Ann": "../x.wav"}}, None, 422, "INVALID_KNOWN_SPEAKERS"),
    ("body is a list", "POST", "/v1/transcriptions", [URL], None, 400, "INVALID_REQUEST"),
    ("empty idempotency key", "POST", "/v1/transcriptions", {"url": URL}, {"Idempotency-Key": " "}, 400, "INVALID_REQUEST"),
    ("oversize upload", "POST", "/v1/uploads", {"filename": "a.mp3", "content_type": "audio/mpeg", "size_bytes": 10**13}, None, 413, "UPLOAD_TOO_LARGE"),
    ("zero-size upload", "POST", "/v1/uploads", {"filename": "a.mp3", "content_type": "audio/mpeg", "size_bytes": 0}, None, 400, "INVALID_REQUEST"),
    ("non-media upload", "POST", "/v1/uploads", {"filename": "a.exe", "content_type": "application/x-msdownload", "size_bytes": 10}, None, 400, "INVALID_REQUEST"),
    ("upload without name", "POST", "/v1/uploads", {"content_type": "audio/mpeg", "size_bytes": 10}, None, 400, "INVALID_REQUEST"),
    ("unknown job", "GET", f"/v1/transcriptions/{JOB}", None, None, 404, "JOB_NOT_FOUND"),
    ("malformed job id", "GET", "/v1/transcriptions/..%2F..%2Fetc", None, None, 404, "JOB_NOT_FOUND"),
    ("result of unknown job", "GET", f"/v1/transcriptions/{JOB}/result", None, None, 404, "JOB_NOT_FOUND"),
    ("cancel unknown job", "DELETE", f"/v1/transcriptions/{JOB}", None, None, 404, "JOB_NOT_FOUND"),
    ("unknown route", "GET", "/v1/nothing-here", None, None, 404, "NOT_FOUND"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS],
)
def test_bad_requests_get_4xx_with_stable_code(
    api: ApiClient, method: str, path: str, body: Any, headers: dict[str, str] | None, status: int, code: str
) -> None:
    raw = body if isinstance(body, str) else None
    got_status, got_headers, got = api(method, path, None if raw else body, headers=headers, raw_body=raw)
    assert got_status == status, got
    assert got_headers["Content-Type"] == "application/json"
    assert set(got) == {"error"} and set(got["error"]) == {"code", "message"}
    assert got["error"]["code"] == code
    assert "Traceback" not in got["error"]["message"]


@pytest.mark.parametrize(("query", "code"), [
    ({"limit": "0"}, "INVALID_REQUEST"), ({"limit": "1000"}, "INVALID_REQUEST"),
    ({"limit": "ten"}, "INVALID_REQUEST"), ({"status": "SLEEPING"}, "INVALID_REQUEST"),
    ({"cursor": "garbage!"}, "INVALID_CURSOR"),
])
def test_bad_list_queries(api: ApiClient, query: dict[str, str], code: str) -> None:
    status, _, body = api("GET", "/v1/transcriptions", query=query)
    assert status == 400 and body["error"]["code"] == code


def test_bad_result_format(api: ApiClient) -> None:
    job = submit(api)
    status, _, body = api("GET", f"/v1/transcriptions/{job['job_id']}/result", query={"format": "docx"})
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"


def test_service_default_model_applies_when_none_is_asked(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_MODEL", "large-v3-turbo")
    monkeypatch.setenv("BAKED_MODELS", "large-v3-turbo,tiny.en")
    job = submit(api)
    _, _, doc = api("GET", f"/v1/transcriptions/{job['job_id']}")
    assert doc["options"]["model"] == "large-v3-turbo"
    explicit = submit(api, model="base")
    _, _, doc = api("GET", f"/v1/transcriptions/{explicit['job_id']}")
    assert doc["options"]["model"] == "base"


def test_models_lists_the_catalogue_in_openai_shape(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment whose worker image holds large-v3-turbo (and this machine's offline packages)
    monkeypatch.setenv("BAKED_MODELS", "large-v3-turbo")
    status, _, doc = api("GET", "/v1/models")
    assert status == 200
    assert doc["object"] == "list"
    assert [(m["id"], m["source"]) for m in doc["data"]] == [
        ("tiny.en", "package"), ("base", "package"), ("large-v3-turbo", "image")]
    tiny = doc["data"][0]
    assert tiny["object"] == "model" and tiny["owned_by"] == "openai" and tiny["default"] is True
    assert tiny["languages"] == ["en"] and tiny["tasks"] == ["transcribe"]
    status, _, one = api("GET", "/v1/models/base")
    assert status == 200 and one["id"] == "base" and one["tasks"] == ["transcribe", "translate"]
    status, _, err = api("GET", "/v1/models/small")
    assert status == 404 and err["error"]["code"] == "MODEL_NOT_FOUND"


def test_a_model_outside_the_catalogue_is_refused_at_once_naming_the_available_ones(
    api: ApiClient, moto_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("BAKED_MODELS", "large-v3-turbo")
    t0 = time.perf_counter()
    status, _, body = api("POST", "/v1/transcriptions", {"url": URL, "model": "small"})
    assert time.perf_counter() - t0 < 1.0
    assert status == 422 and body["error"]["code"] == "MODEL_UNAVAILABLE"
    assert "available models: tiny.en, base, large-v3-turbo" in body["error"]["message"]
    status, _, body = api("POST", "/v1/transcriptions", {"url": URL, "model": "large-v3-turbo", "task": "translate"})
    assert status == 422 and body["error"]["code"] == "TRANSLATION_UNSUPPORTED"
    assert "(available: base)" in body["error"]["message"]
    assert executions(moto_stack) == []  # nothing was started for any of them
