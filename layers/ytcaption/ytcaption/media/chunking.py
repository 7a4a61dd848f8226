"""Cut normalized audio at silences into chunks, and group chunks into shards.

Chunks keep their place on the original timeline (``start``/``end`` in seconds
of the normalized audio, which has the source's timeline), so a chunk's
transcript needs only its offset added. Cuts fall in the middle of pauses, so
no word straddles a join: that is what keeps words from being duplicated or
lost when chunk transcripts are stitched. Long pauses are left out of every
chunk (nothing to transcribe, and Whisper hallucinates on silence).

A shard is a run of consecutive chunks that one GPU Batch job transcribes.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ytcaption.media.audio import SAMPLE_RATE
from ytcaption.settings import MediaSettings

#: A pause at least this long ends a chunk even when more would fit.
SKIP_GAP_S = 3.0
#: Silence kept around speech at the edges of a chunk.
EDGE_PAD_S = 0.2
#: A chunk is decoded "packed": its pauses shortened to this, so a 30 s window
#: holds speech rather than silence (every window costs a whole encoder pass).
PACKED_GAP_S = 0.8
#: Packed audio per window, below Whisper's 30 s: in a full window it tends to
#: leave the last sentence for a next window that, for a chunk, never comes.
WINDOW_MARGIN_S = 3.0


@dataclass(frozen=True)
class Chunk:
    index: int
    start: float
    end: float
    shard: int = 0
    #: The VAD's speech regions inside the chunk (absolute seconds): what the
    #: fidelity guard holds the chunk's transcript against.
    speech: tuple[tuple[float, float], ...] = ()

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chunk:
        return cls(int(d["index"]), float(d["start"]), float(d["end"]), int(d.get("shard", 0)),
                   tuple((float(a), float(b)) for a, b in d.get("speech") or ()))

    def with_shard(self, shard: int) -> Chunk:
        return replace(self, shard=shard)

    def packed(self) -> list[tuple[float, float]]:
        """The parts of the chunk its decode window is made of (absolute seconds)."""
        return keep_intervals(self.speech, self.start, self.end) if self.speech else [(self.start, self.end)]


def keep_intervals(
    speech: Sequence[tuple[float, float]], start: float, end: float, *, gap: float = PACKED_GAP_S
) -> list[tuple[float, float]]:
    """Speech regions with ``gap / 2`` of their surroundings, merged: pauses shrink to at most ``gap``."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(speech):
        a, b = max(start, s - gap / 2), min(end, e + gap / 2)
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def packed_length(speech: Sequence[tuple[float, float]], start: float, end: float) -> float:
    return sum(b - a for a, b in keep_intervals(speech, start, end))


class Packing:
    """A chunk's decode window: its kept intervals back to back, and the way back to the timeline."""

    def __init__(self, chunk: Chunk) -> None:
        self.parts = chunk.packed()
        self.offsets = list(itertools.accumulate((b - a for a, b in self.parts), initial=0.0))

    def window(self, audio: np.ndarray, chunk_start: float) -> np.ndarray:
        pieces = [audio[round((a - chunk_start) * SAMPLE_RATE) : round((b - chunk_start) * SAMPLE_RATE)]
                  for a, b in self.parts]
        return np.concatenate(pieces) if pieces else audio[:0]

    def to_timeline(self, t: float) -> float:
        """A time in the window -> the same moment on the media's timeline."""
        for (a, b), at in zip(self.parts, self.offsets, strict=False):
            if t <= at + (b - a):
                return a + max(0.0, t - at)
        return self.parts[-1][1] if self.parts else t


def detect_speech(
    samples: np.ndarray, *, max_speech_s: float, workers: int | None = None
) -> list[tuple[float, float]]:
    """Speech regions (seconds) by the Silero VAD that ships inside faster-whisper.

    The VAD runs single-threaded (~1.5 s per minute of audio here), so long
    audio is split at its quietest moments into one piece per core and the
    pieces are scanned in parallel (onnxruntime releases the GIL).
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if samples.size == 0:
        return []
    opts = VadOptions(
        threshold=0.5,
        min_speech_duration_ms=150,
        max_speech_duration_s=max_speech_s,
        min_silence_duration_ms=250,
        speech_pad_ms=100,
    )
    n = workers or os.cpu_count() or 1
    bounds = _quiet_split_points(samples, n) if len(samples) > 60 * SAMPLE_RATE and n > 1 else []
    edges = [0, *bounds, len(samples)]
    pieces = list(itertools.pairwise(edges))

    def scan(piece: tuple[int, int]) -> list[tuple[float, float]]:
        a, b = piece
        stamps = get_speech_timestamps(samples[a:b], opts, sampling_rate=SAMPLE_RATE)
        return [((a + s["start"]) / SAMPLE_RATE, (a + s["end"]) / SAMPLE_RATE) for s in stamps]

    if len(pieces) == 1:
        return scan(pieces[0])
    with ThreadPoolExecutor(max_workers=len(pieces), thread_name_prefix="vad") as pool:
        return [r for part in pool.map(scan, pieces) for r in part]


def _quiet_split_points(samples: np.ndarray, n: int, window_s: float = 10.0) -> list[int]:
    """Split positions near each 1/n of the audio, at the quietest 50 ms in a 10 s window."""
    frame = SAMPLE_RATE // 20
    points = []
    for k in range(1, n):
        centre = len(samples) * k // n
        lo = max(0, centre - int(window_s / 2 * SAMPLE_RATE))
        hi = min(len(samples), centre + int(window_s / 2 * SAMPLE_RATE))
        region = samples[lo:hi]
        m = len(region) // frame
        if m == 0:
            continue
        energy = np.square(region[: m * frame].reshape(m, frame)).mean(axis=1)
        points.append(lo + int(np.argmin(energy)) * frame + frame // 2)
    return sorted(set(points))


def plan_chunks(
    speech: Sequence[tuple[float, float]],
    total_s: float,
    *,
    max_chunk_s: float = 30.0,
    skip_gap_s: float = SKIP_GAP_S,
    pad_s: float = EDGE_PAD_S,
) -> list[Chunk]:
    """Group speech regions into chunks, cut mid-pause, each filling one decode window.

    A chunk holds at most ``max_chunk_s - WINDOW_MARGIN_S`` of packed audio
    (speech, pauses shortened to ``PACKED_GAP_S``); a pause of ``skip_gap_s``
    or more ends a chunk. A region longer than that (no pause to cut at) is
    split into equal parts; the VAD is asked for shorter regions, so this is
    a last resort.
    """
    fill = max(1.0, max_chunk_s - WINDOW_MARGIN_S)
    regions: list[tuple[float, float]] = []
    for s, e in speech:
        s, e = max(0.0, s), min(total_s, e)
        if e <= s:
            continue
        n = max(1, math.ceil((e - s) / (fill - 2 * pad_s)))
        step = (e - s) / n
        regions += [(s + i * step, s + (i + 1) * step) for i in range(n)]
    regions.sort()

    spans: list[tuple[float, float]] = []
    cur_start: float | None = None
    cur_end = 0.0
    group: list[tuple[float, float]] = []
    for s, e in regions:
        if cur_start is None:
            cur_start, cur_end, group = max(0.0, s - pad_s), e, [(s, e)]
            continue
        gap = s - cur_end
        if gap < skip_gap_s and packed_length([*group, (s, e)], cur_start, e + pad_s) <= fill:
            cur_end = max(cur_end, e)
            group.append((s, e))
            continue
        # close the current chunk in the pause before this region
        end = cur_end + (pad_s if gap >= skip_gap_s else gap / 2)
        spans.append((cur_start, end))
        cur_start, cur_end, group = max(end, s - pad_s), e, [(s, e)]
    if cur_start is not None:
        spans.append((cur_start, min(total_s, cur_end + pad_s)))
    return [
        Chunk(i, round(a, 3), round(b, 3),
              speech=tuple((round(max(a, s), 3), round(min(b, e), 3)) for s, e in regions if min(b, e) > max(a, s)))
        for i, (a, b) in enumerate(spans)
    ]


def assign_shards(chunks: Sequence[Chunk], media: MediaSettings) -> list[Chunk]:
    """Consecutive chunks in shards of about equal audio, each about ``media.shard_audio_s`` at most.

    The count is ``media.shards_for`` the chunks' audio: the fewest shards of
    ``shard_audio_s``, rounded up to a multiple of ``parallel_shards`` (the
    Batch jobs that run at once: equal shards finish together instead of one
    long shard finishing alone), and never more than the chunks. A shard can
    exceed ``shard_audio_s`` by part of one chunk.
    """
    if not chunks:
        return []
    return balanced_shards(chunks, min(len(chunks), media.shards_for(sum(c.duration for c in chunks))))


def balanced_shards(chunks: Sequence[Chunk], n: int) -> list[Chunk]:
    """Split into at most ``n`` runs of about equal audio (the in-process engine's workers)."""
    total = sum(c.duration for c in chunks)
    if not chunks or n <= 1 or total <= 0:
        return [c.with_shard(0) for c in chunks]
    out: list[Chunk] = []
    position = 0.0
    for c in chunks:
        middle = position + c.duration / 2
        out.append(c.with_shard(min(n - 1, int(middle * n / total))))
        position += c.duration
    return _numbered(out)


def _numbered(chunks: list[Chunk]) -> list[Chunk]:
    """Shards numbered 0, 1, 2... in order (an uneven split can skip a number)."""
    number = {s: k for k, s in enumerate(sorted({c.shard for c in chunks}))}
    return [c if number[c.shard] == c.shard else c.with_shard(number[c.shard]) for c in chunks]


def shard_count(chunks: Sequence[Chunk]) -> int:
    return (max(c.shard for c in chunks) + 1) if chunks else 0


def slice_audio(samples: np.ndarray, chunk: Chunk) -> np.ndarray:
    return samples[round(chunk.start * SAMPLE_RATE) : round(chunk.end * SAMPLE_RATE)]
