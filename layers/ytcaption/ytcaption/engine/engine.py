"""The engine: normalize -> silence-cut chunks -> transcribe -> merge.

:func:`transcribe_shard` is the step a GPU Batch job runs for its shard; the
in-process :func:`transcribe_file` runs the same steps for a whole file with
one thread per shard, which is what the local runtime, the benchmarks and
Python users without AWS call.

    from ytcaption.engine.engine import transcribe_file
    transcript = transcribe_file("talk.mp4")
    print(transcript.text)
"""

from __future__ import annotations

import bisect
import itertools
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ytcaption.domain.captions import Segment, Transcript, Word
from ytcaption.domain.errors import MediaTooLong
from ytcaption.domain.jobs import JobOptions
from ytcaption.domain.stitching import ChunkResult, stitch
from ytcaption.engine import guard
from ytcaption.engine.language_id import LanguageGuess, chunk_languages
from ytcaption.engine.transcription import (
    ChunkTranscript,
    Transcriber,
    WhisperTranscriber,
    choose_device,
    choose_streams,
)
from ytcaption.media import audio as audio_mod
from ytcaption.media.audio import SAMPLE_RATE
from ytcaption.media.chunking import (
    PACKED_GAP_S,
    Chunk,
    Packing,
    balanced_shards,
    detect_speech,
    plan_chunks,
    slice_audio,
)
from ytcaption.settings import MediaSettings, WhisperSettings


@dataclass
class ChunkPlan:
    samples: np.ndarray
    chunks: list[Chunk]
    duration: float
    input_lufs: float | None
    gain_db: float
    container: str
    seconds: dict[str, float] = field(default_factory=dict)


def check_duration(duration: float | None, media: MediaSettings) -> None:
    if duration is not None and duration > media.max_duration_s:
        raise MediaTooLong(
            f"media is {duration:.0f} s long; the maximum is {media.max_duration_s:.0f} s"
        )


def prepare(path: str | Path, media: MediaSettings) -> ChunkPlan:
    """Decode, normalize and cut a media file into chunks (the normalize stage)."""
    t0 = time.perf_counter()
    info = audio_mod.probe(path)
    check_duration(info.duration_s, media)
    norm = audio_mod.load_normalized(path)
    check_duration(norm.duration_s, media)  # containers can lie about their length
    t1 = time.perf_counter()
    speech = detect_speech(norm.samples, max_speech_s=media.chunk_max_s - 1.0)
    chunks = plan_chunks(speech, norm.duration_s, max_chunk_s=media.chunk_max_s)
    t2 = time.perf_counter()
    return ChunkPlan(
        samples=norm.samples,
        chunks=chunks,
        duration=round(norm.duration_s, 3),
        input_lufs=norm.input_lufs,
        gain_db=norm.gain_db,
        container=info.container,
        seconds={"normalize": round(t1 - t0, 3), "chunk": round(t2 - t1, 3)},
    )


#: How much of the text before a chunk in its stream conditions it: more than the
#: 223 tokens Whisper itself conditions a window on, which is the limit that binds
#: (``WhisperTranscriber`` keeps the most recent tokens). Measured with tiny.en, one
#: stream per worker: 200 characters left WER 0.028 above this on the ``beds`` bench
#: case and 0.017 on ``gaps``.
CONTEXT_CHARS = 1500


def _recent(segments: Sequence[Segment], chars: int = CONTEXT_CHARS) -> list[Segment]:
    """The last segments of ``segments`` holding about ``chars`` characters of text."""
    out: list[Segment] = []
    size = 0
    for s in reversed(segments):
        if size >= chars:
            break
        out.append(s)
        size += len(s.text) + 1
    return out[::-1]


#: Re-decoded spans are packed into windows of at most this much audio (as chunks are) ...
REDECODE_FILL_S = 27.0
#: ... each span at most this long where pauses allow.
REDECODE_PIECE_S = 12.0


def _on_timeline(segments: Sequence[Segment], to_timeline: Callable[[float], float], end: float) -> list[Segment]:
    """Window-relative segments on the media's timeline, clipped to the chunk's end.

    This is where a chunk's text gets its place in the media: a packed window's
    times go through its Packing, a re-decoded span's are shifted by its start.
    """
    out = []
    for s in segments:
        start, stop = min(to_timeline(s.start), end), min(to_timeline(s.end), end)
        out.append(Segment(
            start=round(min(start, stop), 3), end=round(stop, 3), text=s.text, stats=s.stats,
            words=[Word(start=round(min(to_timeline(w.start), end), 3), end=round(min(to_timeline(w.end), end), 3),
                        word=w.word, probability=w.probability) for w in s.words]))
    return out


def _shifted(offset: float) -> Callable[[float], float]:
    return lambda t: offset + t


def _pad(spans: Sequence[guard.Span], chunk: Chunk, pad: float = 0.25, min_len: float = 1.0) -> list[guard.Span]:
    out = []
    for a, b in guard.merge_spans(spans, gap=0.5):
        a, b = max(chunk.start, a - pad), min(chunk.end, b + pad)
        if b - a < min_len:
            grow = (min_len - (b - a)) / 2
            a, b = max(chunk.start, a - grow), min(chunk.end, b + grow)
        out.append((round(a, 3), round(b, 3)))
    return out


def _pieces(spans: Sequence[guard.Span], chunk: Chunk, longest: float = REDECODE_PIECE_S) -> list[guard.Span]:
    """``spans`` padded, and those longer than ``longest`` cut in the pauses between speech regions.

    A window that came back sparse tends to come back sparse again whole: its
    re-decode gets shorter windows.
    """
    out: list[guard.Span] = []
    for a, b in _pad(spans, chunk):
        cuts = [(e + s2) / 2 for (_, e), (s2, _) in itertools.pairwise(chunk.speech) if a < e and s2 < b]
        start = a
        for i, cut in enumerate(cuts):
            following = cuts[i + 1] if i + 1 < len(cuts) else b
            if following - start > longest and cut - start >= 1.0:
                out.append((round(start, 3), round(cut, 3)))
                start = cut
        out.append((round(start, 3), round(b, 3)))
    return out


def _splice(segments: Sequence[Segment], spans: Sequence[guard.Span], new: Sequence[Segment]) -> list[Segment]:
    """Replace what lay in ``spans`` by ``new``."""
    kept = [s for s in segments if not any(a <= (s.start + s.end) / 2 <= b for a, b in spans)]
    return sorted([*kept, *new], key=lambda s: (s.start, s.end))


class _Decoded:
    """One chunk on its way through the guard."""

    def __init__(self, chunk: Chunk, audio: np.ndarray, packing: Packing, part: ChunkTranscript,
                 context: Sequence[Segment] | None = None) -> None:
        self.chunk = chunk
        self.context = " ".join(s.text for s in context or ()) or None
        self.audio = audio
        self.language = part.language
        self.language_probability = part.language_probability
        self.segments = self.clean(part, packing.to_timeline)
        self.review = guard.Review()
        self.reasons: list[str] = []
        self.redecoded = False

    def clean(self, part: ChunkTranscript, to_timeline: Callable[[float], float]) -> list[Segment]:
        return guard.drop_non_speech(
            _on_timeline(part.segments, to_timeline, self.chunk.end), self.chunk.speech,
            no_speech_prob=part.no_speech_prob, avg_logprob=part.avg_logprob,
        )

    def cut(self, span: guard.Span) -> np.ndarray:
        a = round((span[0] - self.chunk.start) * SAMPLE_RATE)
        return self.audio[max(0, a) : round((span[1] - self.chunk.start) * SAMPLE_RATE)]

    def check(self, cps: float, prompt: str | None) -> guard.Review:
        prompt = " ".join(p for p in (prompt, self.context) if p) or None
        self.review = guard.review(self.segments, self.chunk.speech, (self.chunk.start, self.chunk.end),
                                   cps=cps, prompt=prompt)
        return self.review

    def offer(self, spans: Sequence[guard.Span], new: Sequence[Segment], cps: float, prompt: str | None) -> None:
        """Take the re-decoded spans if they account for more of the speech."""
        candidate = _splice(self.segments, spans, new)
        verdict = guard.review(candidate, self.chunk.speech, (self.chunk.start, self.chunk.end), cps=cps,
                               prompt=prompt)
        if verdict.missing_s < self.review.missing_s:
            self.segments, self.review = candidate, verdict

    def result(self) -> ChunkResult:
        return ChunkResult(
            index=self.chunk.index, start=self.chunk.start, end=self.chunk.end,
            language=self.language, language_probability=self.language_probability,
            segments=self.segments, redecoded=self.redecoded, guard=self.reasons,
        )


class _SpanPack:
    """Spans of several chunks decoded as one window, with :data:`PACKED_GAP_S` of silence between them.

    At most one span of a chunk goes into a window: two neighbouring pieces of
    one chunk side by side would make the window that failed once more.
    """

    def __init__(self, language: str | None) -> None:
        self.language = language
        self.items: list[tuple[_Decoded, guard.Span]] = []
        self.offsets: list[float] = []
        self.length = 0.0

    @classmethod
    def pack(cls, jobs: Sequence[tuple[_Decoded, guard.Span]], fill: float = REDECODE_FILL_S) -> list[_SpanPack]:
        packs: list[_SpanPack] = []
        for d, span in jobs:
            size = span[1] - span[0]
            room = [p for p in packs if p.language == d.language and p.length + PACKED_GAP_S + size <= fill
                    and all(other is not d for other, _ in p.items)]
            pack = room[0] if room else cls(d.language)
            if not room:
                packs.append(pack)
            pack.add(d, span)
        return packs

    def add(self, d: _Decoded, span: guard.Span) -> None:
        at = self.length + PACKED_GAP_S if self.items else 0.0
        self.items.append((d, span))
        self.offsets.append(at)
        self.length = at + span[1] - span[0]

    def window(self) -> np.ndarray:
        gap = np.zeros(round(PACKED_GAP_S * SAMPLE_RATE), dtype=np.float32)
        pieces = []
        for i, (d, span) in enumerate(self.items):
            if i:
                pieces.append(gap)
            audio = d.cut(span)
            pieces.append(audio)
            pieces.append(np.zeros(max(0, round((span[1] - span[0]) * SAMPLE_RATE) - len(audio)), dtype=np.float32))
        return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, dtype=np.float32)

    def split(self, part: ChunkTranscript) -> list[tuple[tuple[_Decoded, guard.Span], list[Segment]]]:
        """Each span's share of the window's segments (by their midpoints), on the media's timeline."""
        shares: list[list[Segment]] = [[] for _ in self.items]
        for s in part.segments:
            mid = (s.start + s.end) / 2
            i = max(0, bisect.bisect_right(self.offsets, mid + PACKED_GAP_S / 2) - 1)
            shares[i].append(s)
        out = []
        for (d, span), at, segments in zip(self.items, self.offsets, shares, strict=True):
            def to_timeline(t: float, at: float = at, span: guard.Span = span) -> float:
                return min(span[1], max(span[0], span[0] + t - at))
            view = ChunkTranscript(segments, part.language, part.language_probability,
                                   no_speech_prob=part.no_speech_prob, avg_logprob=part.avg_logprob)
            out.append(((d, span), d.clean(view, to_timeline)))
        return out


def transcribe_shard(
    transcriber: Transcriber,
    chunks: Sequence[Chunk],
    load: Callable[[Chunk], np.ndarray],
    options: JobOptions,
    *,
    done: Callable[[Chunk], ChunkResult | None] = lambda c: None,
    on_result: Callable[[ChunkResult], bool | None] = lambda r: None,
    batch_size: int = 8,
    streams: int | None = None,
    context: bool = True,
    languages: Callable[[Chunk, np.ndarray], LanguageGuess] | None = None,
) -> list[ChunkResult]:
    """Transcribe a shard's chunks in ``streams``, each chunk held to the fidelity guard.

    ``done`` returns a chunk's stored result if an earlier attempt finished it
    (so a retried shard skips it); ``on_result`` stores a new one and may
    return False to stop early (the job was cancelled). ``languages`` decides
    each chunk's language (``auto`` on a multilingual model: see
    :mod:`ytcaption.engine.language_id`); without it, with ``auto``, each window's
    language is detected from its own audio.

    The shard is cut into ``streams`` (default ``batch_size``) runs of
    consecutive chunks decoded side by side: round k decodes the k-th chunk of
    every stream in one batch, each conditioned (``context``) on the text
    before it in its own stream, as Whisper conditions a window on the text
    before it. The first chunk of a stream has no such text, so fewer streams
    mean better text and smaller batches (see ``WhisperSettings.streams``).
    That context helps on every case measured and makes Whisper skip whole
    sentences when voices change, so every chunk's transcript is checked
    against the chunk's own speech (:mod:`ytcaption.engine.guard`). A chunk
    that passes is stored at once. The spans that fail wait for the end of the
    first pass, then are decoded again without context, several chunks' spans
    packed into one window (every window costs a whole 30 s encoder pass,
    however little audio it holds) and ``batch_size`` windows at a time; what
    still fails goes through Whisper's thorough decode (seek loop, temperature
    fallback). Each time the version that accounts for more speech wins. The
    chunk after a failing one in its stream is conditioned on the text before
    the failing one.
    """
    results: list[ChunkResult] = []
    todo: list[Chunk] = []
    for chunk in chunks:
        previous = done(chunk)
        if previous is not None:
            results.append(previous)
        else:
            todo.append(chunk)
    rates: list[tuple[int, float]] = []
    prompt = options.initial_prompt
    size = max(1, batch_size)
    lanes = max(1, streams or size)
    # streams of consecutive chunks, decoded side by side: round k decodes the
    # k-th chunk of every stream in one batch, each conditioned on the text
    # before it in its own stream (the guard catches what that costs)
    runs = [todo[j * len(todo) // lanes : (j + 1) * len(todo) // lanes] for j in range(lanes)]
    order = [s[k] for k in range(max((len(s) for s in runs), default=0)) for s in runs if k < len(s)]
    recent: dict[int, list[Segment]] = {}  # a chunk's index -> its stream's recent segments up to and with it
    failing: list[_Decoded] = []
    previous_of = {c.index: prev.index for s in runs for prev, c in itertools.pairwise(s)} if context else {}
    for i in range(0, len(order), lanes):
        batch = order[i : i + lanes]
        audio = [load(c) for c in batch]
        packings = [Packing(c) for c in batch]
        contexts = [recent.get(previous_of.get(c.index, -1)) or None for c in batch]
        guesses = [languages(c, a) if languages is not None else None for c, a in zip(batch, audio, strict=True)]
        parts = transcriber.transcribe_batch([p.window(a, c.start) for p, a, c in zip(packings, audio, batch,
                                                                                       strict=True)],
                                             options, contexts=contexts,
                                             language=[g.language if g else None for g in guesses])
        decoded = [_Decoded(c, a, k, p, x) for c, a, k, p, x in zip(batch, audio, packings, parts, contexts,
                                                                     strict=True)]
        for d, g in zip(decoded, guesses, strict=True):
            if g is not None:
                d.language, d.language_probability = g.language, g.probability
        for d in decoded:
            rates += guard.rate_samples(d.segments, d.chunk.speech)
        cps = guard.speaking_rate(rates)
        for d in decoded:
            before = recent.get(previous_of.get(d.chunk.index, -1), [])
            if d.check(cps, prompt).ok:
                recent[d.chunk.index] = _recent([*before, *d.segments])
                result = d.result()
                results.append(result)
                if on_result(result) is False:
                    return results
            else:  # re-decoded after the first pass; the next chunk is conditioned on what came before this one
                recent[d.chunk.index] = before
                d.redecoded, d.reasons = True, list(d.review.reasons)
                failing.append(d)
    cps = guard.speaking_rate(rates)
    # first remedy: the failing spans again without context, packed several to a window
    # (every window costs a whole 30 s encoder pass, however little audio it holds)
    packs = _SpanPack.pack([(d, span) for d in failing for span in _pieces(d.review.spans, d.chunk)])
    redone: dict[int, tuple[list[guard.Span], list[Segment]]] = {id(d): ([], []) for d in failing}
    for k in range(0, len(packs), size):
        group = packs[k : k + size]
        again = transcriber.transcribe_batch([p.window() for p in group], options,
                                             language=[p.language for p in group])
        for pack, part in zip(group, again, strict=True):
            for (d, span), segments in pack.split(part):
                redone[id(d)][0].append(span)
                redone[id(d)][1].extend(segments)
    for d in failing:
        d.offer(*redone[id(d)], cps, prompt)
    # last remedy: Whisper's thorough decode of what still fails
    for d in failing:
        if not d.review.ok:
            spans, segments = [], []
            for span in _pieces(d.review.spans, d.chunk):
                part = transcriber.transcribe(d.cut(span), options, language=d.language)
                spans.append(span)
                segments += d.clean(part, _shifted(span[0]))
            d.offer(spans, segments, cps, prompt)
        result = d.result()
        results.append(result)
        if on_result(result) is False:
            return results
    return sorted(results, key=lambda r: r.index)


def default_workers(whisper: WhisperSettings) -> int:
    device, _ = choose_device(whisper)
    return 1 if device == "cuda" else max(1, os.cpu_count() or 1)


def transcribe_file(
    path: str | Path,
    options: JobOptions | None = None,
    *,
    whisper: WhisperSettings | None = None,
    media: MediaSettings | None = None,
    workers: int | None = None,
    transcriber: Transcriber | None = None,
    report: dict[str, float] | None = None,
) -> Transcript:
    """Transcribe a local media file in this process, in parallel over shards."""
    options = options or JobOptions()
    whisper = whisper or WhisperSettings()
    media = media or MediaSettings()
    n = workers or default_workers(whisper)
    if whisper.cpu_threads == 0 and choose_device(whisper)[0] == "cpu":
        # one worker per core, one thread per worker: more threads than cores is slower
        whisper = whisper.model_copy(update={"cpu_threads": max(1, (os.cpu_count() or 1) // n)})
    t0 = time.perf_counter()
    plan = prepare(path, media)
    shards = balanced_shards(plan.chunks, n)
    by_shard: dict[int, list[Chunk]] = {}
    for c in shards:
        by_shard.setdefault(c.shard, []).append(c)
    t1 = time.perf_counter()
    engine = transcriber or WhisperTranscriber(options.model, whisper, num_workers=max(1, len(by_shard)))
    t2 = time.perf_counter()

    languages = chunk_languages(engine, plan.chunks, lambda c: slice_audio(plan.samples, c), options)

    def run(shard_chunks: list[Chunk]) -> list[ChunkResult]:
        return transcribe_shard(engine, shard_chunks, lambda c: slice_audio(plan.samples, c), options,
                                batch_size=whisper.batch_size, streams=choose_streams(whisper),
                                context=whisper.condition_on_previous_text,
                                languages=languages)

    results: list[ChunkResult] = []
    if len(by_shard) <= 1:
        for chunks in by_shard.values():
            results += run(chunks)
    else:
        with ThreadPoolExecutor(max_workers=len(by_shard), thread_name_prefix="shard") as pool:
            for part in pool.map(run, by_shard.values()):
                results += part
    t3 = time.perf_counter()
    transcript = stitch(results, duration=plan.duration, model=options.model, task=options.task)
    if report is not None:
        report.update(plan.seconds)
        report.update(
            {
                "plan": round(t1 - t0, 3),
                "model_load": round(t2 - t1, 3),
                "transcribe": round(t3 - t2, 3),
                "merge": round(time.perf_counter() - t3, 3),
                "chunks": len(plan.chunks),
                "shards": len(by_shard),
                "audio_s": plan.duration,
            }
        )
    return transcript
