"""Shared by the benchmarks: a 3+ minute speech file from known text."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.media.speech import PASSAGE, encode, speech_track


def long_speech(ext: str = ".mp3", *, repeats: int = 1) -> tuple[Path, str]:
    """About 3.5 minutes of speech per repeat, encoded as ``ext``; returns (path, text)."""
    work = Path(tempfile.mkdtemp(prefix="ytcaption-bench-"))
    sentences = PASSAGE * repeats
    samples, rate = speech_track(sentences, work, pause_s=0.9)
    return encode(samples, rate, work / f"speech{ext}"), " ".join(sentences)
