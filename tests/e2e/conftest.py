"""The local runtime, started once for the e2e tests, and an HTTP client for its API."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.conftest import SpeechClip
from tests.servers import LoopbackServer, loopback_server
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime, RuntimeOptions


@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    # short chunks and shards so a 25 s clip fans out over several Batch jobs
    rt = LocalRuntime(RuntimeOptions(api_port=0, shard_audio_s=25.0,
                                     extra_env={"MEDIA__CHUNK_MAX_S": "12", "MEDIA__DOWNLOAD_TIMEOUT_S": "2"})).start()
    try:
        yield rt
    finally:
        rt.stop()


@pytest.fixture
def client(runtime: LocalRuntime) -> Client:
    return Client(runtime.api_url, api_key=runtime.api_key, timeout=30)


@pytest.fixture(scope="package")
def media_server(short_clip: SpeechClip) -> Iterator[LoopbackServer]:
    with loopback_server() as srv:
        srv.serve("/talk.mp3", short_clip.encode(".mp3").read_bytes(), "audio/mpeg")
        srv.serve("/talk.webm", short_clip.encode(".webm").read_bytes(), "audio/webm")
        yield srv


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The final sweep runs after every other e2e test, over every job they made."""
    sweep = [i for i in items if i.name == "test_final_sweep_every_job_is_terminal"]
    for item in sweep:
        items.remove(item)
        # after the last e2e test (hooks see the whole session's items)
        last = max((n for n, i in enumerate(items) if i.nodeid.startswith("tests/e2e/")), default=len(items) - 1)
        items.insert(last + 1, item)


class HeldTranscription:
    """Holds a job's Batch workers at their start until released (to act mid-transcription)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.job_id: str | None = None
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, job_id: str, shard: int) -> None:
        if job_id == self.job_id:
            self.entered.set()
            self.release.wait(30)

    def __enter__(self) -> HeldTranscription:
        self.runtime.batch_hooks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.runtime.batch_hooks.remove(self)
