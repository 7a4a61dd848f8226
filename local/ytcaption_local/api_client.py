"""A small client for the YTCaption HTTP API, on httpx: what the CLI, the tests and the benches use.

httpx brings timeouts, redirects and connection reuse; this module adds the
API's conventions: the stage URL with or without ``/v1``, the API key header,
errors as :class:`ApiError` with the API's stable code, and retries.

Retries (with exponential backoff, at most ``retries`` times):
- a connection that could not be made (refused, DNS, connect timeout) for any
  method: the request never reached the server, so repeating it is safe;
- ``429`` and ``503`` for idempotent methods only (GET, HEAD, PUT, DELETE),
  waiting what ``Retry-After`` says (capped). A POST is not repeated: the API may
  have created a job before a dependency failed (it answers 503 and marks that
  job FAILED), and a second POST would create another.
"""

from __future__ import annotations

import email.utils
import json
import mimetypes
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 503})
#: The longest a Retry-After is honoured; a longer one ends the retries.
MAX_RETRY_AFTER_S = 60.0


class ApiError(Exception):
    """The API refused a request: its HTTP status and stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class ApiUnreachable(ApiError):
    """No answer at all (refused, timed out, DNS): ``status`` is 0."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "API_UNREACHABLE", f"{url}: {reason}")


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_of(resp: httpx.Response) -> ApiError:
    try:
        err = resp.json()["error"]
        return ApiError(resp.status_code, str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(resp.status_code, f"HTTP_{resp.status_code}", resp.text[:200])


def _reason(exc: httpx.TransportError) -> str:
    return str(exc.__cause__ or exc.__context__ or exc) or type(exc).__name__


def _media_type(path: Path) -> str:
    """The Content-Type an upload is declared with: audio/* or video/* by its name, else octet-stream
    (the API accepts nothing else as media)."""
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return ctype if ctype.startswith(("audio/", "video/")) else "application/octet-stream"


class Client:
    """The YTCaption API at ``base_url`` (the stage URL, with or without ``/v1``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        # `local serve` prints the URL with /v1 and README uses it: both are accepted
        self.base = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.timeout = timeout
        self.retries, self.backoff_s, self._sleep = retries, backoff_s, sleep
        self.http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                 follow_redirects=True, transport=transport,
                                 headers={"User-Agent": "ytcaption-cli"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport with retries --------------------------------------------------------

    def send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request, retried as the module docstring says; raises :class:`ApiUnreachable`."""
        attempt = 0
        while True:
            try:
                resp = self.http.request(method, url, **kw)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.retries or not _rewindable(kw):
                    raise ApiUnreachable(self.base, _reason(exc)) from None
                self._sleep(self._backoff(attempt))
            except httpx.TransportError as exc:  # read timeouts, resets mid-answer: not repeated
                raise ApiUnreachable(self.base, _reason(exc)) from None
            else:
                if (resp.status_code not in RETRY_STATUSES or method.upper() not in IDEMPOTENT
                        or attempt >= self.retries or not _rewindable(kw)):
                    return resp
                wait = retry_after_s(resp.headers.get("Retry-After"))
                if wait is not None and wait > MAX_RETRY_AFTER_S:
                    return resp
                resp.close()
                self._sleep(self._backoff(attempt) if wait is None else wait)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return float(self.backoff_s * 2**attempt * (1 + 0.25 * random.random()))  # noqa: S311 - jitter

    def request(self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if self.api_key:
            hdrs["X-Api-Key"] = self.api_key
        resp = self.send(method, self.base + path, params=query, headers=hdrs,
                         **({"json": body} if body is not None else {}))
        if resp.status_code >= 400:
            raise _error_of(resp)
        return resp.status_code, dict(resp.headers), resp.content

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        _, _, raw = self.request(method, path, body, **kw)
        return json.loads(raw) if raw else None

    # --- the API's operations ----------------------------------------------------------

    def submit_url(self, url: str, options: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", "/v1/transcriptions", {"url": url, **options}))

    def upload_speaker_clip(self, path: Path) -> str:
        """A known speaker's reference clip, PUT to the key ``POST /v1/speakers`` reserves; returns the key."""
        ctype = _media_type(path)
        data = path.read_bytes()
        clip = dict(self.json("POST", "/v1/speakers",
                              {"filename": path.name, "content_type": ctype, "size_bytes": len(data)}))
        try:
            resp = self.http.put(clip["upload_url"], content=data, headers=clip["upload_headers"],
                                 timeout=httpx.Timeout(max(self.timeout, 300), connect=10.0))
        except httpx.TransportError as exc:
            raise ApiUnreachable(clip["upload_url"].split("?")[0], _reason(exc)) from None
        if resp.status_code not in (200, 204):
            raise ApiError(resp.status_code, "UPLOAD_FAILED", "the reference clip was not accepted")
        return str(clip["key"])

    def submit_file(self, path: Path, options: dict[str, Any],
                    on_bytes: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Reserve an upload, then PUT the file to its presigned URL (streamed, with its length)."""
        ctype = _media_type(path)
        size = path.stat().st_size
        job = dict(self.json("POST", "/v1/uploads",
                             {"filename": path.name, "content_type": ctype, "size_bytes": size, **options}))

        def blocks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    if on_bytes:
                        on_bytes(len(block))
                    yield block

        # a generator cannot be sent twice: a failed connect is retried with a fresh one
        attempt = 0
        while True:
            try:
                resp = self.http.put(job["upload_url"], content=blocks(),
                                     headers={**job["upload_headers"], "Content-Length": str(size)},
                                     timeout=httpx.Timeout(max(self.timeout, 300), connect=10.0))
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.retries:
                    raise ApiUnreachable(job["upload_url"].split("?")[0], _reason(exc)) from None
                self._sleep(self._backoff(attempt))
                attempt += 1
            except httpx.TransportError as exc:
                raise ApiUnreachable(job["upload_url"].split("?")[0], _reason(exc)) from None
        if resp.status_code not in (200, 204):
            raise ApiError(resp.status_code, "UPLOAD_FAILED", "the upload was not accepted")
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/transcriptions/{job_id}"))

    def result(self, job_id: str, fmt: str) -> bytes:
        _, _, raw = self.request("GET", f"/v1/transcriptions/{job_id}/result", query={"format": fmt})
        return raw

    def wait(self, job_id: str, *, poll_s: float = 0.5, timeout_s: float = 6 * 3600,
             show: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if show:
                show(job)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise ApiError(0, "CLIENT_TIMEOUT", f"job {job_id} did not finish in {timeout_s:.0f} s")
            time.sleep(poll_s)


def _rewindable(kw: dict[str, Any]) -> bool:
    """A request whose body is bytes or JSON can be sent again; a stream cannot."""
    content = kw.get("content")
    return content is None or isinstance(content, bytes | str)
