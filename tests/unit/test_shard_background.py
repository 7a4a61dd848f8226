"""The shard's embeddings run beside its transcription: what the thread must keep of the caller."""

from __future__ import annotations

import contextvars
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from ytcaption.stages.speakers import shard_embeddings
from ytcaption.stages.transcribe import Background

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_background_returns_what_the_work_returned_on_another_thread() -> None:
    caller = threading.get_native_id()
    job = Background(lambda: threading.get_native_id())
    assert job.result() != caller


def test_background_raises_the_works_error_when_asked_for_its_result() -> None:
    def fail() -> None:
        raise ValueError("embedding failed")

    job = Background(fail)
    with pytest.raises(ValueError, match="embedding failed"):
        job.result()


def test_background_runs_in_the_callers_context() -> None:
    # locally, the principal that calls AWS (IAM as the Batch job's role) lives in a context variable:
    # a thread that lost it would call as the admin and hide a missing permission
    token = who.set("batch-job-role")
    try:
        job = Background(lambda: who.get())
    finally:
        who.reset(token)
    assert job.result() == "batch-job-role"


class _Storage:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def exists(self, key: str) -> bool:
        return key in self.objects

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data


class _Embedder:
    def embed_chunk(self, samples: Any, start: float) -> Any:
        return SimpleNamespace(to_bytes=lambda: b"e")


def test_shard_embeddings_stop_at_the_next_chunk_once_told() -> None:
    storage, loaded = _Storage(), []
    chunks = [SimpleNamespace(index=i, start=10.0 * i) for i in range(4)]
    options = SimpleNamespace(known_speakers=None)

    def load(c: Any) -> list[float]:
        loaded.append(c.index)
        return [0.0]

    done = shard_embeddings(storage, _Embedder(), "job", options, 1, chunks, load,  # type: ignore[arg-type]
                            should_stop=lambda: len(loaded) >= 2)
    assert done == 2 and loaded == [0, 1] and len(storage.objects) == 2


@pytest.mark.parametrize(("device", "gpus", "beside"), [
    ("auto", 1, True), ("auto", 0, False), ("cuda", 0, True), ("cpu", 1, False),
])
def test_embeddings_run_beside_the_decoder_only_on_a_gpu(monkeypatch: pytest.MonkeyPatch, device: str, gpus: int,
                                                          beside: bool) -> None:
    import ctranslate2

    from ytcaption.settings import WhisperSettings
    from ytcaption.stages.transcribe import embeddings_beside_decoder

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: gpus)
    assert embeddings_beside_decoder(WhisperSettings(device=device)) is beside
