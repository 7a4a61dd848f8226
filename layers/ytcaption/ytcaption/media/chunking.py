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

#: A pause at least this long ends a chunk even when more would fit.
SKIP_GAP_S = 3.0
#: Silence kept around speech at the edges of a chunk.
EDGE_PAD_S = 0.2


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
    """Group speech regions into chunks of at most ``max_chunk_s``, cut mid-pause.

    A region longer than the limit (no pause to cut at) is split into equal
    parts; the VAD is asked for regions shorter than the limit, so this is a
    last resort.
    """
    regions: list[tuple[float, float]] = []
    for s, e in speech:
        s, e = max(0.0, s), min(total_s, e)
        if e <= s:
            continue
        n = max(1, math.ceil((e - s) / (max_chunk_s - 2 * pad_s)))
        step = (e - s) / n
        regions += [(s + i * step, s + (i + 1) * step) for i in range(n)]
    regions.sort()

    spans: list[tuple[float, float]] = []
    cur_start: float | None = None
    cur_end = 0.0
    for s, e in regions:
        if cur_start is None:
            cur_start, cur_end = max(0.0, s - pad_s), e
            continue
        gap = s - cur_end
        if gap < skip_gap_s and e - cur_start <= max_chunk_s:
            cur_end = max(cur_end, e)
            continue
        # close the current chunk in the pause before this region
        end = cur_end + (pad_s if gap >= skip_gap_s else gap / 2)
        end = min(end, cur_start + max_chunk_s)
        spans.append((cur_start, end))
        cur_start, cur_end = max(end, s - pad_s), e
    if cur_start is not None:
        spans.append((cur_start, min(total_s, cur_end + pad_s, cur_start + max_chunk_s)))
    return [
        Chunk(i, round(a, 3), round(b, 3),
              speech=tuple((round(max(a, s), 3), round(min(b, e), 3)) for s, e in regions if min(b, e) > max(a, s)))
        for i, (a, b) in enumerate(spans)
    ]


def assign_shards(chunks: Sequence[Chunk], *, shard_audio_s: float) -> list[Chunk]:
    """Consecutive chunks, up to ``shard_audio_s`` of audio per shard (at least one chunk each)."""
    out: list[Chunk] = []
    shard, acc = 0, 0.0
    for c in chunks:
        if acc and acc + c.duration > shard_audio_s:
            shard, acc = shard + 1, 0.0
        out.append(c.with_shard(shard))
        acc += c.duration
    return out


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
    return out


def shard_count(chunks: Sequence[Chunk]) -> int:
    return (max(c.shard for c in chunks) + 1) if chunks else 0


def slice_audio(samples: np.ndarray, chunk: Chunk) -> np.ndarray:
    return samples[round(chunk.start * SAMPLE_RATE) : round(chunk.end * SAMPLE_RATE)]
