"""Fault suite: a webhook receiver that accepts connections and never answers. Nothing the
pipeline or the API does may hang on it: the job completes, the execution ends, and a
cancel answers at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.servers import LoopbackServer
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.slow]


@contextmanager
def hanging_receiver() -> Iterator[tuple[str, list[socket.socket]]]:
    """Accepts every connection, reads nothing, answers nothing."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook", held
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def quick_webhooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A 1 s webhook timeout in the runtime's handlers (they share this process's environment)."""
    from ytcaption import services

    monkeypatch.setenv("WEBHOOK_TIMEOUT_S", "1")
    services.reset()
    yield
    monkeypatch.undo()
    services.reset()


def test_job_completes_and_execution_ends_despite_a_hanging_receiver(
    runtime: LocalRuntime, client: Client, media_server: LoopbackServer, quick_webhooks: None
) -> None:
    with hanging_receiver() as (url, held):
        job = client.submit_url(media_server.url("/talk.mp3"), {"formats": ["txt"], "fresh": True,
                                                                "webhook_url": url})
        done = client.wait(job["job_id"], poll_s=0.3, timeout_s=180)
        assert done["status"] == "COMPLETED" and done["error"] is None
        sfn = runtime.client("stepfunctions")
        deadline = time.monotonic() + 60
        while (status := sfn.describe_execution(executionArn=done["execution_arn"])["status"]) == "RUNNING":
            assert time.monotonic() < deadline, "the execution hangs on the webhook"
            time.sleep(0.3)
        assert status == "SUCCEEDED"
        assert held, "the receiver was never called"
    assert client.job(job["job_id"])["status"] == "COMPLETED"


def test_cancel_answers_at_once_despite_a_hanging_receiver(runtime: LocalRuntime, client: Client) -> None:
    # the deployment's default webhook timeout (10 s): the API must not wait that long
    with hanging_receiver() as (url, held):
        job = client.json("POST", "/v1/uploads", {"filename": "a.mp3", "content_type": "audio/mpeg",
                                                  "size_bytes": 10, "webhook_url": url})
        started = time.monotonic()
        cancelled = client.json("DELETE", f"/v1/transcriptions/{job['job_id']}")
        took = time.monotonic() - started
        assert cancelled["status"] == "CANCELLED"
        assert held, "the receiver was never called"
    assert took < 4, f"cancel took {took:.1f} s"
    assert client.job(job["job_id"])["status"] == "CANCELLED"
