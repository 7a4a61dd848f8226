"""No speech lost, no text made up: the engine with the real model on varied media.

Two speech generators (espeak-ng and flite) taking turns inside chunks, real
recordings (LibriVox, a voice actor), real and synthetic music, noise and
silence. The long (10+ minute) versions of these cases are in bench/quality.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.evaluation import wer
from tests.media import corpus
from tests.media.speech import encode
from ytcaption.domain.jobs import JobOptions
from ytcaption.engine.engine import transcribe_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def tts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (corpus.espeak_available() and corpus.flite_available()):
        pytest.fail("espeak-ng and flite are required: scripts/ensure-system-deps installs them")
    return tmp_path_factory.mktemp("tts")


def real() -> None:
    if not corpus.real_available():
        pytest.fail("the real recordings are Debian packages: scripts/ensure-system-deps installs them")


def write(samples: np.ndarray, path: Path) -> Path:
    return encode(samples, corpus.RATE, path)


def test_voices_taking_turns_inside_chunks_lose_no_sentence(tts: Path, tmp_path: Path) -> None:
    # Given about 100 s of four voices (two synthesizers) taking turns with short gaps
    case = corpus.case_voices(tts, minutes=1.6, seed=11)
    assert len({u.voice for u in case.utterances}) >= 3
    path = write(case.samples, tmp_path / "voices.flac")
    # When it is transcribed with word timestamps
    transcript = transcribe_file(path, JobOptions(language="en", word_timestamps=True))
    # Then every stretch of speech of 3 s or more has words in it
    words = [w for s in transcript.segments for w in s.words]
    empty = [u for u in case.utterances if u.end - u.start >= 3.0
             and not any(u.start - 0.2 <= (w.start + w.end) / 2 <= u.end + 0.2 for w in words)]
    assert empty == [], f"speech without words: {[(u.start, u.end, u.text) for u in empty]}"
    assert wer(case.reference, transcript.text) <= 0.2
    # and captions stay sentence-sized: conditioned on bare text, Whisper wrote whole windows as one segment
    longest = max(transcript.segments, key=lambda s: s.end - s.start)
    assert longest.end - longest.start <= 12.0, (longest.start, longest.end, longest.text)
    assert transcript.chunks and transcript.redecoded_chunks is not None


@pytest.mark.parametrize("kind", ["real music", "synthetic music", "pink noise", "silence"])
def test_non_speech_yields_no_captions(kind: str, tmp_path: Path) -> None:
    seconds = 40.0
    if kind == "real music":
        real()
        track = sorted(corpus.MUSIC.glob("*.wav"))[2]
        samples = corpus._load(track)[: int(seconds * corpus.RATE)] * 0.5
    elif kind == "synthetic music":
        samples = corpus.music(seconds, 0.1)
    elif kind == "pink noise":
        samples = corpus.pink_noise(seconds, 0.05)
    else:
        samples = np.zeros(int(seconds * corpus.RATE), np.float32)
    transcript = transcribe_file(write(samples, tmp_path / "x.flac"), JobOptions(language="en"))
    assert transcript.segments == [], [s.text for s in transcript.segments]


def test_speech_right_after_noise_is_kept(tmp_path: Path) -> None:
    """Silero on its own drops the first sentence after 30 s of noise (shared/FACTS.md)."""
    real()
    clips = [c for c in corpus.real_speech() if c[2] == "librivox"]
    speech = np.concatenate([np.concatenate([a, np.zeros(8000, np.float32)]) for a, _, _ in clips])
    rms = float(np.sqrt(np.mean(speech[speech != 0] ** 2)))
    samples = np.concatenate([corpus.pink_noise(30.0, rms / 3), speech])
    transcript = transcribe_file(write(samples, tmp_path / "after-noise.flac"), JobOptions(language="en"))
    first = clips[0][1]
    assert wer(first, " ".join(transcript.text.split()[: len(first.split()) + 2])) <= 0.35, transcript.text
    assert wer(" ".join(t for _, t, _ in clips), transcript.text) <= 0.25


def test_real_recordings_are_transcribed(tmp_path: Path) -> None:
    real()
    clips = [c for c in corpus.real_speech() if c[2] == "allison"][:12]
    samples = np.concatenate([np.concatenate([a, np.zeros(9600, np.float32)]) for a, _, _ in clips])
    transcript = transcribe_file(write(samples, tmp_path / "prompts.flac"), JobOptions(language="en"))
    assert wer(" ".join(t for _, t, _ in clips), transcript.text) <= 0.12
