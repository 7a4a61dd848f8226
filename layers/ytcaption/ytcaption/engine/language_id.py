"""Spoken-language identification for ``language: auto``: per chunk, backed by a look at the whole media.

Each chunk (at most ~30 s, cut in a pause) is identified on its own with the
model's language head, so a file that changes language is transcribed in each
language and says so per chunk and per segment. A chunk the model is unsure
of (music, a short interjection, noise) does not get a language of its own:
it takes the media's language, found once from several windows spread over
the whole file (not just the first chunk, which may be an intro or music),
weighted by their length. The job's language is the majority by duration
(:func:`ytcaption.domain.stitching.stitch`).

Pure Python at import (numpy only in type hints). The spans of one language
the result lists are made in :mod:`ytcaption.domain.stitching` at the merge.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from ytcaption.media.chunking import Chunk

#: A chunk keeps its own language when the model gives it at least this probability...
MIN_PROBABILITY = 0.5
#: ...and it holds at least this much audio: Whisper's guess on a word or two is noise.
MIN_CHUNK_S = 3.0
#: Windows spread over the media for its overall language.
WINDOWS = 5


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    probability: float
    #: The most likely languages with their probabilities (at most a handful).
    top: tuple[tuple[str, float], ...] = ()

    def probability_of(self, language: str) -> float:
        if language == self.language:
            return self.probability
        return dict(self.top).get(language, 0.0)


class LanguageDetector(Protocol):
    def detect_language(self, samples: np.ndarray) -> LanguageGuess: ...


def pick_windows(chunks: Sequence[Chunk], n: int = WINDOWS) -> list[Chunk]:
    """Up to ``n`` chunks spread evenly over the media's timeline (by time, not by count)."""
    if not chunks:
        return []
    start, end = chunks[0].start, chunks[-1].end
    picked: list[Chunk] = []
    for k in range(min(n, len(chunks))):
        t = start + (end - start) * (k + 0.5) / min(n, len(chunks))
        best = min(chunks, key=lambda c: 0.0 if c.start <= t <= c.end else min(abs(c.start - t), abs(c.end - t)))
        if best not in picked:
            picked.append(best)
    return sorted(picked, key=lambda c: c.start)


def vote(guesses: Iterable[tuple[LanguageGuess, float]]) -> LanguageGuess | None:
    """The language with the most probability mass, each guess weighted by its duration."""
    mass: dict[str, float] = defaultdict(float)
    total = 0.0
    for guess, seconds in guesses:
        w = max(seconds, 0.0)
        total += w
        for lang, p in (guess.top or ((guess.language, guess.probability),)):
            mass[lang] += w * p
    if not mass or total <= 0:
        return None
    ranked = sorted(mass.items(), key=lambda kv: -kv[1])
    return LanguageGuess(ranked[0][0], round(ranked[0][1] / total, 4),
                         tuple((k, round(v / total, 4)) for k, v in ranked[:5]))


@dataclass
class ChunkLanguages:
    """Decides the language of each chunk of one media file (thread-safe: shards share it)."""

    detector: LanguageDetector
    chunks: Sequence[Chunk]
    load: Callable[[Chunk], np.ndarray]
    min_probability: float = MIN_PROBABILITY
    min_chunk_s: float = MIN_CHUNK_S
    _guesses: dict[int, LanguageGuess] = field(default_factory=dict)
    _media: LanguageGuess | None = None
    _media_done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _media_lock: threading.Lock = field(default_factory=threading.Lock)

    def _guess(self, chunk: Chunk, samples: np.ndarray | None = None) -> LanguageGuess:
        with self._lock:
            known = self._guesses.get(chunk.index)
        if known is None:
            known = self.detector.detect_language(self.load(chunk) if samples is None else samples)
            with self._lock:
                self._guesses[chunk.index] = known
        return known

    def media_language(self) -> LanguageGuess | None:
        """The language of the whole media, from windows spread over it (computed once)."""
        with self._media_lock:  # shards running in threads share one look at the media
            if not self._media_done:
                windows = pick_windows(self.chunks)
                self._media = vote((self._guess(c), c.end - c.start) for c in windows)
                self._media_done = True
        return self._media

    def __call__(self, chunk: Chunk, samples: np.ndarray) -> LanguageGuess:
        own = self._guess(chunk, samples)
        if own.probability >= self.min_probability and chunk.end - chunk.start >= self.min_chunk_s:
            return own
        media = self.media_language()
        if media is None or media.language == own.language:
            return own
        return LanguageGuess(media.language, round(own.probability_of(media.language), 4), own.top)


ENGLISH = LanguageGuess("en", 1.0, (("en", 1.0),))


def chunk_languages(
    transcriber: Any, chunks: Sequence[Chunk], load: Callable[[Chunk], np.ndarray], options: Any
) -> Callable[[Chunk, np.ndarray], LanguageGuess] | None:
    """How each chunk's language is decided for ``auto``: per chunk on a multilingual model,
    always English on an English-only one (``distil-*`` models carry a multilingual
    tokenizer, so Whisper's own detection could wander off English); None when the
    job named its language or the transcriber cannot detect."""
    if options.language != "auto" or not hasattr(transcriber, "detect_language"):
        return None
    if not getattr(transcriber, "multilingual", True):
        return lambda chunk, samples: ENGLISH
    return ChunkLanguages(transcriber, list(chunks), load)


# --- the result side (merge): pure Python ---------------------------------------------------------


