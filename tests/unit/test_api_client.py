"""The CLI's HTTP client: which failures are retried, how long it waits, and what a refusal says.

A transport stands in for the network (httpx's MockTransport): these are tests of the retry
rules around it; the real API is driven in tests/e2e/test_cli.py.
"""

from __future__ import annotations

import httpx
import pytest

from ytcaption_local.api_client import ApiError, ApiUnreachable, Client, retry_after_s


def client(answers: list[httpx.Response | Exception], seen: list[httpx.Request],
           slept: list[float], **kw: object) -> Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Client("http://api.test/v1", api_key="k" * 20, sleep=slept.append,
                  transport=httpx.MockTransport(handle), **kw)  # type: ignore[arg-type]


def ok(doc: object = None) -> httpx.Response:
    return httpx.Response(200, json=doc if doc is not None else {"job_id": "j", "status": "QUEUED"})




def test_a_refused_connection_is_retried_with_growing_backoff() -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    c = client([httpx.ConnectError("refused"), httpx.ConnectError("refused"), ok()], seen, slept)
    assert c.json("POST", "/v1/transcriptions", {"url": "https://x"})["job_id"] == "j"
    assert len(seen) == 3 and seen[-1].url == "http://api.test/v1/transcriptions"
    assert seen[-1].headers["X-Api-Key"] == "k" * 20
    assert 0.5 <= slept[0] < slept[1] <= 1.25


def test_connection_retries_run_out_as_api_unreachable() -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    c = client([httpx.ConnectError("refused")] * 4, seen, slept)
    with pytest.raises(ApiUnreachable) as exc:
        c.job("j")
    assert exc.value.status == 0 and exc.value.code == "API_UNREACHABLE" and "refused" in exc.value.message
    assert len(seen) == 4 and len(slept) == 3


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_on_a_read_wait_what_retry_after_says(status: int) -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    busy = httpx.Response(status, headers={"Retry-After": "7"}, json={"error": {"code": "THROTTLED", "message": "m"}})
    c = client([busy, ok({"job_id": "j", "status": "COMPLETED"})], seen, slept)
    assert c.job("j")["status"] == "COMPLETED"
    assert slept == [7.0]


def test_a_post_answered_503_is_not_sent_twice() -> None:
    # the API may have created the job before a dependency failed: a second POST makes another
    seen: list[httpx.Request] = []
    slept: list[float] = []
    c = client([httpx.Response(503, json={"error": {"code": "SERVICE_UNAVAILABLE", "message": "sfn down"}})],
               seen, slept)
    with pytest.raises(ApiError) as exc:
        c.submit_url("https://x", {})
    assert (exc.value.status, exc.value.code, exc.value.message) == (503, "SERVICE_UNAVAILABLE", "sfn down")
    assert len(seen) == 1 and slept == []


def test_a_retry_after_beyond_a_minute_is_not_waited_for() -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    c = client([httpx.Response(503, headers={"Retry-After": "3600"})], seen, slept)
    with pytest.raises(ApiError) as exc:
        c.job("j")
    assert exc.value.status == 503 and exc.value.code == "HTTP_503" and slept == []


def test_redirects_are_followed() -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    moved = httpx.Response(307, headers={"Location": "http://api.test/v2/transcriptions/j"})
    c = client([moved, ok()], seen, slept)
    assert c.job("j")["job_id"] == "j" and str(seen[-1].url) == "http://api.test/v2/transcriptions/j"


def test_retries_zero_sends_once() -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    c = client([httpx.ConnectError("reset")], seen, slept, retries=0)
    with pytest.raises(ApiUnreachable):
        c.job("j")
    assert len(seen) == 1


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("12") == 12.0
    assert retry_after_s("Wed, 02 Dec 2026 00:00:30 GMT", now=1796169600.0) == 30.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None
