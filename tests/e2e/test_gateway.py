"""The local gateway speaks HTTP like a server people rely on (issue 10: it was hand-parsed
on ``http.server``): bad framing gets a JSON 4xx, a refused body is never read as a second
request, the client's Host is never reflected, and 20 clients at once see no reset."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from ytcaption_local.cli import ApiError, Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = pytest.mark.e2e


def raw_exchange(runtime: LocalRuntime, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes; everything the server answers until it closes (or the timeout)."""
    parts = urlsplit(runtime.api_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return out


def head_and_body(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def request(runtime: LocalRuntime, method: str, path: str, extra: str = "", body: bytes = b"") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {runtime.api_key}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode() + body


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "+5"])
def test_bad_content_length_gets_a_json_400_at_once(runtime: LocalRuntime, length: str) -> None:
    started = time.monotonic()
    raw = raw_exchange(runtime, request(runtime, "POST", "/v1/transcriptions", f"Content-Length: {length}\r\n"))
    status, headers, body = head_and_body(raw)
    assert status == 400 and headers["Content-Type"].startswith("application/json"), raw[:300]
    assert json.loads(body)["error"]["code"] == "INVALID_REQUEST"
    assert time.monotonic() - started < 5


def test_a_refused_body_is_not_read_as_a_second_request(runtime: LocalRuntime) -> None:
    # a body that is itself a complete request: it must never be answered
    smuggled = request(runtime, "DELETE", "/v1/transcriptions/" + "0" * 32, "Content-Length: 0\r\n")
    raw = raw_exchange(runtime, request(runtime, "POST", "/v1/transcriptions",
                                        f"Content-Length: {7 * 1024 * 1024}\r\n", smuggled))
    status, _, body = head_and_body(raw)
    assert status == 413 and json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert raw.count(b"HTTP/1.") == 1, raw


def test_unparseable_request_line_gets_json_not_html(runtime: LocalRuntime) -> None:
    raw = raw_exchange(runtime, b"NOT A REQUEST AT ALL\r\n\r\n")
    status, headers, body = head_and_body(raw)
    assert status == 400 and headers.get("Content-Type") == "application/json", raw
    assert json.loads(body)["error"]["code"] == "INVALID_REQUEST"


def test_the_host_header_is_not_reflected(runtime: LocalRuntime) -> None:
    doc = json.dumps({"url": "https://media.example.test/a.mp3", "formats": ["txt"]}).encode()
    evil = request(runtime, "POST", "/v1/transcriptions", f"Content-Length: {len(doc)}\r\n", doc)
    evil = evil.replace(b"Host: x\r\n", b"Host: evil.example\r\nX-Forwarded-Proto: javascript\r\n")
    status, headers, body = head_and_body(raw_exchange(runtime, evil))
    assert status == 202, body
    assert headers["Location"].startswith(runtime.api_url + "/v1/transcriptions/")
    assert json.loads(body)["status_url"].startswith(runtime.api_url)
    Client(runtime.api_url, api_key=runtime.api_key).json("DELETE", headers["Location"][len(runtime.api_url):])


def test_twenty_concurrent_clients_see_no_reset(runtime: LocalRuntime) -> None:
    client = Client(runtime.api_url, api_key=runtime.api_key, timeout=60, retries=0)  # a reset must show, not be retried away

    def one_client(n: int) -> list[str]:
        problems = []
        for i in range(14):  # 20 clients x 14 rounds x 3-4 requests = 980 requests
            try:
                job = client.json("POST", "/v1/uploads", {"filename": f"c{n}-{i}.mp3", "content_type": "audio/mpeg",
                                                          "size_bytes": 1000, "formats": ["txt"]})
                # served by up to function_concurrency environments at once: each answer is its own
                assert client.json("GET", f"/v1/transcriptions/{job['job_id']}")["job_id"] == job["job_id"]
                if i % 2:  # routes with and without a path parameter, side by side
                    assert "items" in client.json("GET", "/v1/transcriptions?limit=5")
                client.json("DELETE", f"/v1/transcriptions/{job['job_id']}")  # leaves no job waiting
            except (OSError, ApiError, AssertionError, KeyError) as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
        return problems

    with ThreadPoolExecutor(20) as pool:
        problems = [p for batch in pool.map(one_client, range(20)) for p in batch]
    assert problems == []


def test_a_slow_request_does_not_hold_up_the_next(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several execution environments per function, as Lambda runs them: while one request is
    held inside the API handler, another is answered (the runtime used to serve one at a time),
    and each logs with its own job's id (the logger's keys were shared by every thread)."""
    import io
    import logging
    import threading

    from ytcaption.api.service import JobService
    from ytcaption.observability import logger

    client = Client(runtime.api_url, api_key=runtime.api_key, timeout=30, retries=0)
    new = {"content_type": "audio/mpeg", "size_bytes": 1000, "formats": ["txt"]}
    job = client.json("POST", "/v1/uploads", {"filename": "slow.mp3", **new})
    other = client.json("POST", "/v1/uploads", {"filename": "other.mp3", **new})
    inside, release = threading.Event(), threading.Event()
    real_get = JobService.get

    def held_get(self: JobService, job_id: str) -> object:
        if job_id == job["job_id"]:
            inside.set()
            release.wait(20)
            logger.warning("the held request goes on")
        return real_get(self, job_id)

    monkeypatch.setattr(JobService, "get", held_get)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    answers: list[dict[str, object]] = []
    slow = threading.Thread(target=lambda: answers.append(client.json("GET", f"/v1/transcriptions/{job['job_id']}")))
    slow.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        # the held request is still inside; this one binds another job id in its own environment
        assert client.json("GET", f"/v1/transcriptions/{other['job_id']}")["job_id"] == other["job_id"]
        assert time.monotonic() - started < 10
        assert not answers
    finally:
        release.set()
        slow.join(30)
        logger.removeHandler(handler)
    assert answers and answers[0]["job_id"] == job["job_id"]
    held = [json.loads(line) for line in out.getvalue().splitlines() if "the held request goes on" in line]
    assert len(held) == 1 and held[0]["job_id"] == job["job_id"], held
    for j in (job, other):
        client.json("DELETE", f"/v1/transcriptions/{j['job_id']}")
