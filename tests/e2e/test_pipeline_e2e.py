"""The whole system on the local runtime: HTTP API on loopback -> Step Functions (moto,
the real ASL) -> pipeline Lambdas and Batch workers (real handlers, tiny.en) -> captions."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SpeechClip
from tests.e2e.conftest import HeldTranscription
from tests.evaluation import wer
from tests.servers import LoopbackServer, loopback_server
from tests.subtitles import parse_srt, parse_vtt
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def wait(client: Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    return client.wait(job_id, poll_s=0.3, timeout_s=timeout)


def execution(runtime: LocalRuntime, job: dict[str, Any]) -> dict[str, Any]:
    return dict(runtime.client("stepfunctions").describe_execution(executionArn=job["execution_arn"]))


def wait_execution(runtime: LocalRuntime, job: dict[str, Any], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = execution(runtime, job)["status"]
        if status != "RUNNING":
            return str(status)
        time.sleep(0.2)
    return "RUNNING"


def test_url_job_completes_with_accurate_captions_in_every_format(
    runtime: LocalRuntime, client: Client, media_server: LoopbackServer, short_clip: SpeechClip
) -> None:
    job = client.submit_url(media_server.url("/talk.mp3"), {"language": "en"})
    done = wait(client, job["job_id"])
    assert done["status"] == "COMPLETED", done.get("error")
    assert done["progress"] == 100 and done["language"] == "en"
    assert [e["status"] for e in done["events"]] == [
        "QUEUED", "DOWNLOADING", "NORMALIZING", "TRANSCRIBING", "MERGING", "COMPLETED"]
    assert done["chunks"]["total"] >= 2 and done["chunks"]["done"] == done["chunks"]["total"]
    assert set(done["timings"]) == {"download", "normalize", "transcribe", "merge"}
    doc = json.loads(client.result(job["job_id"], "json"))
    text = " ".join(s["text"] for s in doc["segments"])
    assert wer(short_clip.text, text) <= 0.15, text
    parse_srt(client.result(job["job_id"], "srt").decode())
    parse_vtt(client.result(job["job_id"], "vtt").decode())
    assert wer(short_clip.text, client.result(job["job_id"], "txt").decode()) <= 0.15
    assert wait_execution(runtime, done) == "SUCCEEDED"
    shards = {s for (j, s, ok) in runtime.batch_runs if j == job["job_id"] and ok}
    assert len(shards) == done["chunks"]["shards"] >= 2  # one Batch job per shard


def test_upload_through_presigned_url_completes(client: Client, short_clip: SpeechClip) -> None:
    path = short_clip.encode(".m4a")
    job = client.submit_file(path, {"formats": ["srt"]})
    assert job["status"] == "AWAITING_UPLOAD"
    done = wait(client, job["job_id"])
    assert done["status"] == "COMPLETED", done.get("error")
    assert [e["status"] for e in done["events"]][:3] == ["AWAITING_UPLOAD", "QUEUED", "NORMALIZING"]
    assert "download" not in done["timings"]  # uploads skip the Download state
    srt = client.result(job["job_id"], "srt").decode()
    assert wer(short_clip.text, " ".join(" ".join(c.lines) for c in parse_srt(srt))) <= 0.15


def test_missing_source_fails_fast_with_its_code(runtime: LocalRuntime, client: Client,
                                                 media_server: LoopbackServer) -> None:
    job = client.submit_url(media_server.url("/gone.mp3"), {})
    done = wait(client, job["job_id"])
    assert done["status"] == "FAILED"
    assert done["error"]["code"] in ("SOURCE_NOT_FOUND", "DOWNLOAD_FAILED")
    assert done["events"][-1]["status"] == "FAILED" and done["events"][-1]["error"] == done["error"]
    downloads = [o for (f, j, o) in runtime.invocations if f == "DownloadFunction" and j == job["job_id"]]
    assert downloads == ["SourceNotFound"]  # a permanent error is not retried
    assert wait_execution(runtime, done) == "FAILED"


def test_worker_that_fails_once_is_retried_and_the_job_completes(
    runtime: LocalRuntime, client: Client, media_server: LoopbackServer
) -> None:
    failed: list[tuple[str, int]] = []
    target: dict[str, str] = {}

    def crash_once(job_id: str, shard: int) -> None:
        if job_id == target.get("id") and not failed:
            failed.append((job_id, shard))
            raise RuntimeError("simulated Spot interruption")

    runtime.batch_hooks.append(crash_once)
    try:
        job = client.submit_url(media_server.url("/talk.webm"), {"fresh": True})
        target["id"] = job["job_id"]
        done = wait(client, job["job_id"])
    finally:
        runtime.batch_hooks.remove(crash_once)
    assert done["status"] == "COMPLETED", done.get("error")
    assert len(failed) == 1
    runs = [(s, ok) for (j, s, ok) in runtime.batch_runs if j == job["job_id"]]
    assert (failed[0][1], False) in runs and (failed[0][1], True) in runs


def test_cancel_during_transcription_stays_cancelled(
    runtime: LocalRuntime, client: Client, media_server: LoopbackServer
) -> None:
    with loopback_server() as receiver:
        receiver.serve("/hook", b"", "text/plain")
        with HeldTranscription(runtime) as held:
            job = client.submit_url(media_server.url("/talk.mp3"), {"fresh": True, "webhook_url": receiver.url("/hook")})
            held.job_id = job["job_id"]
            assert held.entered.wait(60), "transcription never started"
            assert client.job(job["job_id"])["status"] == "TRANSCRIBING"
            cancelled = client.json("DELETE", f"/v1/transcriptions/{job['job_id']}")
            assert cancelled["status"] == "CANCELLED"
        assert wait_execution(runtime, cancelled) in ("ABORTED", "FAILED")
        time.sleep(2)
        final = client.job(job["job_id"])
        assert final["status"] == "CANCELLED"
        assert [e["status"] for e in final["events"]][-1] == "CANCELLED"
        assert "MERGING" not in [e["status"] for e in final["events"]]
    assert [p["body"]["status"] for p in receiver.posts] == ["CANCELLED"]  # announced once


def test_webhook_gets_exactly_one_completion_call(client: Client, media_server: LoopbackServer) -> None:
    with loopback_server() as receiver:
        receiver.serve("/hook", b"", "text/plain")
        job = client.submit_url(media_server.url("/talk.mp3"), {"webhook_url": receiver.url("/hook"), "fresh": True})
        done = wait(client, job["job_id"])
        assert done["status"] == "COMPLETED"
        deadline = time.monotonic() + 10
        while not receiver.posts and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        assert len(receiver.posts) == 1
        call = receiver.posts[0]
        assert call["body"]["job_id"] == job["job_id"] and call["body"]["status"] == "COMPLETED"
        assert call["headers"]["x-ytcaption-event"] == "job.completed"


def test_ten_jobs_at_once_all_complete(runtime: LocalRuntime, client: Client, tmp_path: Path,
                                       short_clip: SpeechClip) -> None:
    # ten short distinct sources
    from tests.media.speech import encode

    clip = short_clip.samples[: short_clip.rate * 6]
    with loopback_server() as srv:
        urls = []
        for i in range(10):
            path = encode(clip * (0.5 + i / 20), short_clip.rate, tmp_path / f"c{i}.mp3")
            urls.append(srv.serve(f"/c{i}.mp3", path.read_bytes(), "audio/mpeg"))
        with ThreadPoolExecutor(max_workers=10) as pool:
            jobs = list(pool.map(lambda u: client.submit_url(u, {"formats": ["txt"]}), urls))
        finals = [wait(client, j["job_id"], timeout=300) for j in jobs]
    assert [f["status"] for f in finals] == ["COMPLETED"] * 10, [f.get("error") for f in finals]
    assert len({f["job_id"] for f in finals}) == 10
    for f in finals:
        assert f["events"][-1]["status"] == "COMPLETED"
        assert wait_execution(runtime, f) == "SUCCEEDED"
    listed = client.json("GET", "/v1/transcriptions", query={"status": "COMPLETED", "limit": "100"})
    assert {f["job_id"] for f in finals} <= {j["job_id"] for j in listed["items"]}
    for status in ("QUEUED", "DOWNLOADING", "NORMALIZING", "TRANSCRIBING", "MERGING"):
        stuck = client.json("GET", "/v1/transcriptions", query={"status": status})
        assert not {j["job_id"] for j in stuck["items"]} & {f["job_id"] for f in finals}


def test_health_over_http_needs_the_api_key(runtime: LocalRuntime) -> None:
    req = urllib.request.Request(runtime.api_url + "/v1/health", headers={"X-Api-Key": runtime.api_key})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
        assert resp.headers["X-Correlation-ID"]
    for headers in ({}, {"X-Api-Key": "wrong"}):
        req = urllib.request.Request(runtime.api_url + "/v1/health", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=5)
        assert exc.value.code == 403
        assert json.loads(exc.value.read())["error"]["code"] == "INVALID_API_KEY"
