"""The OpenAI-compatible synchronous routes, driven by the official ``openai`` client
against the local runtime (real gateway front, authorizer, handler and model)."""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.conftest import SpeechClip
from tests.evaluation import wer
from tests.subtitles import parse_srt, parse_vtt
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")]  # openai marks translations so


@pytest.fixture(scope="module")
def oai(runtime: LocalRuntime) -> openai.OpenAI:
    # max_retries=0: a refusal must come back once, as the exception the client maps it to
    return openai.OpenAI(base_url=runtime.api_url + "/v1", api_key=runtime.api_key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def mp3(short_clip: SpeechClip) -> Path:
    return short_clip.encode(".mp3")


def _multilingual_model_available() -> bool:
    from ytcaption.domain.errors import ModelUnavailable
    from ytcaption.engine.transcription import resolve_model
    from ytcaption.settings import get_sync_settings

    try:  # a local copy only: tests never download weights
        return Path(resolve_model("base", get_sync_settings().whisper)).is_dir()
    except ModelUnavailable:
        return False


def test_json_is_the_transcript(oai: openai.OpenAI, mp3: Path, short_clip: SpeechClip) -> None:
    result = oai.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1")
    assert wer(short_clip.text, result.text) < 0.15
    assert result.usage is not None and result.usage.type == "duration"
    assert abs(result.usage.seconds - len(short_clip.samples) / short_clip.rate) <= 1.0


def test_text_srt_and_vtt_formats(oai: openai.OpenAI, mp3: Path, short_clip: SpeechClip) -> None:
    text = oai.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1", response_format="text")
    assert isinstance(text, str) and wer(short_clip.text, text) < 0.15
    srt = oai.audio.transcriptions.create(file=mp3.open("rb"), model="tiny.en", response_format="srt")
    cues = parse_srt(srt)
    assert cues and wer(short_clip.text, " ".join(" ".join(c.lines) for c in cues)) < 0.15
    vtt = oai.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1", response_format="vtt")
    assert vtt.startswith("WEBVTT")
    assert len(parse_vtt(vtt)) == len(cues)


def test_verbose_json_with_word_and_segment_timestamps(oai: openai.OpenAI, mp3: Path, short_clip: SpeechClip) -> None:
    duration = len(short_clip.samples) / short_clip.rate
    result = oai.audio.transcriptions.create(
        file=mp3.open("rb"), model="whisper-1", response_format="verbose_json", language="en",
        timestamp_granularities=["word", "segment"], prompt="Captions, subtitles.",
    )
    assert result.language == "english" and abs(result.duration - duration) < 0.5
    assert wer(short_clip.text, result.text) < 0.15
    segments, words = result.segments or [], result.words or []
    assert [s.id for s in segments] == list(range(len(segments))) and len(segments) >= 2
    for s in segments:
        assert 0 <= s.start < s.end <= duration + 0.05
        assert s.tokens and all(isinstance(t, int) for t in s.tokens)
        assert s.avg_logprob < 0 and 0 <= s.no_speech_prob <= 1 and s.compression_ratio > 0
        assert s.temperature in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) and s.seek >= 0
    assert [s.seek for s in segments] == sorted(s.seek for s in segments)
    # words: in order, inside their clip, and the same words as the text
    assert wer(result.text, " ".join(w.word for w in words)) < 0.05
    assert all(w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    # each pause of the clip falls between two words, never inside one
    for lo, hi in short_clip.pauses[:-1]:
        assert not any(w.start < (lo + hi) / 2 - 0.3 and w.end > (lo + hi) / 2 + 0.3 for w in words)


def test_word_granularity_alone_leaves_out_segments(oai: openai.OpenAI, mp3: Path) -> None:
    result = oai.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1",
                                             response_format="verbose_json", timestamp_granularities=["word"])
    assert result.words and result.segments is None


def test_translation_with_an_english_only_model_is_refused(oai: openai.OpenAI, mp3: Path) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.audio.translations.create(file=mp3.open("rb"), model="tiny.en")
    assert err.value.code == "TRANSLATION_UNSUPPORTED" and err.value.param == "model"
    assert "English-only" in err.value.message


SPANISH = ["El tren llegó a la estación por la mañana.", "Los niños juegan en el parque cerca del río.",
           "Mi hermano compró pan y leche en la tienda."]


@pytest.fixture(scope="module")
def spanish_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np

    from tests.media.speech import encode, read_audio, silence, synthesize

    d = tmp_path_factory.mktemp("es")
    parts = [read_audio(synthesize(s, d / f"{i}.wav", voice="es")) for i, s in enumerate(SPANISH)]
    rate = parts[0][1]
    samples = np.concatenate([x for p in parts for x in (p[0], silence(0.8, rate))])
    encode(samples, rate, d / "es.mp3")
    return d / "es.mp3"


@pytest.mark.skipif(not _multilingual_model_available(), reason="no multilingual model on this machine yet")
def test_translation_with_a_multilingual_model(oai: openai.OpenAI, spanish_mp3: Path) -> None:
    # Spanish speech in, English text out (base translates roughly: a few key words must come through)
    result = oai.audio.translations.create(file=spanish_mp3.open("rb"), model="base", response_format="verbose_json")
    assert result.task == "translate" and result.language == "spanish"  # type: ignore[attr-defined]
    english = result.text.lower()
    assert sum(w in english for w in ("train", "station", "morning", "children", "park", "river", "bread",
                                      "milk", "brother", "store", "shop")) >= 4, english
    same = oai.audio.transcriptions.create(file=spanish_mp3.open("rb"), model="base", language="es")
    assert wer(" ".join(SPANISH), same.text) < 0.5


def test_a_language_an_english_only_model_does_not_know_is_refused(oai: openai.OpenAI, mp3: Path) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1", language="de")
    assert err.value.code == "LANGUAGE_UNSUPPORTED" and err.value.param == "language"


@pytest.mark.parametrize("model", ["gpt-99", "large-v3"])
def test_unknown_or_unavailable_model_is_refused(oai: openai.OpenAI, mp3: Path, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.audio.transcriptions.create(file=mp3.open("rb"), model=model)
    assert err.value.code == "MODEL_UNAVAILABLE" and err.value.param == "model"


def test_bad_file_is_a_bad_request(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.audio.transcriptions.create(file=("notes.mp3", b"this is not audio at all" * 40), model="whisper-1")
    assert err.value.code == "UNSUPPORTED_MEDIA" and err.value.param == "file"
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"


def test_too_long_file_names_the_job_api(oai: openai.OpenAI, long_clip: SpeechClip) -> None:
    # the default limit (SYNC__MAX_DURATION_S, 60 s) against ~100 s of speech
    with pytest.raises(openai.APIStatusError) as err:
        oai.audio.transcriptions.create(file=long_clip.encode(".mp3").open("rb"), model="whisper-1")
    assert err.value.status_code == 413 and err.value.code == "MEDIA_TOO_LONG"
    assert "/v1/uploads" in err.value.message


def test_too_large_file_is_refused_before_decoding(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        oai.audio.transcriptions.create(file=("big.wav", b"\0" * (4 * 1024**2 + 1)), model="whisper-1")
    assert err.value.status_code == 413 and err.value.code == "MEDIA_TOO_LARGE"


def test_bad_parameters_are_bad_requests(oai: openai.OpenAI, mp3: Path) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1", response_format="json",
                                        timestamp_granularities=["word"])
    assert err.value.param == "timestamp_granularities"
    with pytest.raises(openai.BadRequestError) as err:
        oai.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1", temperature=3.0)
    assert err.value.code == "INVALID_REQUEST" and err.value.param == "temperature"


def test_wrong_key_is_an_authentication_error(runtime: LocalRuntime, mp3: Path) -> None:
    wrong = openai.OpenAI(base_url=runtime.api_url + "/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        wrong.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1")
    assert err.value.code == "INVALID_API_KEY"


def test_x_api_key_still_works_on_the_openai_routes(runtime: LocalRuntime) -> None:
    client = openai.OpenAI(base_url=runtime.api_url + "/v1", api_key="ignored", max_retries=0,
                           default_headers={"X-Api-Key": runtime.api_key})
    with pytest.raises(openai.BadRequestError) as err:  # authorized: the handler itself answers
        client.audio.transcriptions.create(file=("x.wav", b"RIFF"), model="whisper-1")
    assert err.value.code == "UNSUPPORTED_MEDIA"


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bearer_key_works_on_the_job_api_and_a_wrong_key_keeps_its_403(runtime: LocalRuntime) -> None:
    url = runtime.api_url + "/v1/transcriptions?limit=1"
    assert _get(url, {"Authorization": f"Bearer {runtime.api_key}"})[0] == 200
    assert _get(url, {"X-Api-Key": runtime.api_key})[0] == 200
    status, body = _get(url, {"Authorization": "Bearer wrong"})
    assert status == 403 and body["error"]["code"] == "INVALID_API_KEY"  # type: ignore[index]


def test_the_readme_call_against_ytcaption_local_serve(mp3: Path, short_clip: SpeechClip) -> None:
    """The README's example, verbatim in shape, against the ``ytcaption local serve`` process."""
    import subprocess
    import sys

    from ytcaption_local.runtime import free_port

    port, key = free_port(), "readme-example-key-0123456789"
    proc = subprocess.Popen([sys.executable, "-m", "ytcaption_local.cli", "local", "serve", "--port", str(port),
                             "--api-key", key], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(4)]
        assert any("OpenAI(base_url=" in line for line in banner), banner
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60)
        for fmt in ("json", "text", "srt", "verbose_json", "vtt"):
            result = client.audio.transcriptions.create(file=mp3.open("rb"), model="whisper-1", response_format=fmt)
            text = result if isinstance(result, str) else result.text
            assert "make a video useful" in text.lower().replace("\n", " "), (fmt, text)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
