"""Stitch chunk transcripts into one transcript on the original timeline.

Chunks are cut mid-pause (see :mod:`ytcaption.media.chunking`), so stitching is
ordering plus guarding: every time is clamped into its chunk's span and made
monotonic, which keeps cues from overlapping when the model's timestamps spill
a little past a chunk's edge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from ytcaption.domain.captions import LanguageSpan, Segment, Transcript, Word


class ChunkResult(BaseModel):
    """One chunk's transcript, as a worker stores it (times already absolute)."""

    index: int
    start: float
    end: float
    language: str | None = None
    language_probability: float | None = None
    segments: list[Segment] = Field(default_factory=list)
    #: The fidelity guard found speech missing and decoded (part of) the chunk again.
    redecoded: bool = False
    #: Why: "uncovered" (speech with no words), "sparse" (a segment too long for its
    #: text), "loop", "prompt" (text only repeating the prompt).
    guard: list[str] = Field(default_factory=list)
    #: A diarized job's speaker windows of this chunk (``ChunkEmbeddings.to_bytes``, base64), stored
    #: with its transcript: no request of their own to write or to read back. A GPU worker computes
    #: them beside the decoder and stores them apart instead (``speaker_embeddings_key``).
    speaker_windows: str | None = None


def shift(segments: Iterable[Segment], offset: float) -> list[Segment]:
    return [
        Segment(
            start=round(s.start + offset, 3),
            end=round(s.end + offset, 3),
            text=s.text,
            words=[Word(start=round(w.start + offset, 3), end=round(w.end + offset, 3), word=w.word,
                        probability=w.probability) for w in s.words],
            stats=s.stats and s.stats.model_copy(update={"seek": s.stats.seek + round(offset * 100)}),
        )
        for s in segments
    ]


def _clamp(t: float, lo: float, hi: float) -> float:
    return min(max(t, lo), hi)


def stitch(
    results: Iterable[ChunkResult], *, duration: float | None, model: str | None, task: str = "transcribe"
) -> Transcript:
    ordered = sorted(results, key=lambda r: r.index)
    segments: list[Segment] = []
    floor = 0.0
    votes: dict[str, float] = defaultdict(float)
    probs: dict[str, list[float]] = defaultdict(list)
    for r in ordered:
        if r.language:
            votes[r.language] += r.end - r.start
            if r.language_probability is not None:
                probs[r.language].append(r.language_probability)
        lo = max(r.start, floor)
        for s in r.segments:
            start = round(_clamp(s.start, lo, r.end), 3)
            end = round(_clamp(s.end, start, r.end), 3)
            words = []
            wfloor = start
            for w in s.words:
                ws = round(_clamp(w.start, wfloor, end), 3)
                we = round(_clamp(w.end, ws, end), 3)
                words.append(Word(start=ws, end=we, word=w.word, probability=w.probability))
                wfloor = we
            segments.append(Segment(start=start, end=end, text=s.text.strip(), words=words, stats=s.stats,
                                    language=r.language))
            lo = floor = end
    language = max(votes, key=lambda k: votes[k]) if votes else None
    lp = probs.get(language or "", [])
    return Transcript(
        language=language,
        language_probability=round(sum(lp) / len(lp), 4) if lp else None,
        duration=duration,
        model=model,
        task=task,
        language_spans=language_spans(ordered),
        segments=[s for s in segments if s.text],
        chunks=len(ordered),
        redecoded_chunks=sum(r.redecoded for r in ordered),
    )


def language_spans(results: Iterable[Any]) -> list[LanguageSpan]:
    """Chunk results (``index``, ``start``, ``end``, ``language``) -> spans, in time order."""
    spans: list[LanguageSpan] = []
    for r in sorted(results, key=lambda r: r.index):
        if not r.language:
            continue
        if spans and spans[-1].language == r.language:
            spans[-1].end = r.end
        else:
            spans.append(LanguageSpan(language=r.language, start=r.start, end=r.end))
    return spans
