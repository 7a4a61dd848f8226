"""The engine: normalize -> silence-cut chunks -> transcribe -> merge.

:func:`transcribe_shard` is the step a GPU Batch job runs for its shard; the
in-process :func:`transcribe_file` runs the same steps for a whole file with
one thread per shard, which is what the local runtime, the benchmarks and
Python users without AWS call.

    from ytcaption.engine import transcribe_file
    transcript = transcribe_file("talk.mp4")
    print(transcript.text)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ytcaption.captions import Segment, Transcript
from ytcaption.errors import MediaTooLong
from ytcaption.jobs import JobOptions
from ytcaption.language_id import LanguageGuess, chunk_languages
from ytcaption.media import audio as audio_mod
from ytcaption.media.chunking import Chunk, balanced_shards, detect_speech, plan_chunks, slice_audio
from ytcaption.merge import ChunkResult, merge, shift
from ytcaption.settings import MediaSettings, WhisperSettings
from ytcaption.transcription import Transcriber, WhisperTranscriber, choose_device

#: How much of the previous chunk's text conditions the next one (like Whisper's
#: own condition_on_previous_text across its 30 s windows).
CONTEXT_CHARS = 200


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


def _context(segments: Sequence[Segment]) -> str | None:
    """The end of a chunk's text, to condition the next chunk on."""
    return " ".join(s.text for s in segments)[-CONTEXT_CHARS:] or None


def transcribe_shard(
    transcriber: Transcriber,
    chunks: Sequence[Chunk],
    load: Callable[[Chunk], np.ndarray],
    options: JobOptions,
    *,
    done: Callable[[Chunk], ChunkResult | None] = lambda c: None,
    on_result: Callable[[ChunkResult], bool | None] = lambda r: None,
    languages: Callable[[Chunk, np.ndarray], LanguageGuess] | None = None,
) -> list[ChunkResult]:
    """Transcribe a shard's chunks in order.

    ``done`` returns a chunk's stored result if an earlier attempt finished it
    (so a retried shard skips it); ``on_result`` stores a new one and may
    return False to stop early (the job was cancelled). ``languages`` decides
    each chunk's language (``auto`` on a multilingual model: see
    :mod:`ytcaption.language_id`); without it, with ``auto``, the first chunk's
    detected language is kept for the rest of the shard.
    """
    results: list[ChunkResult] = []
    language: str | None = None
    context: str | None = None
    for chunk in chunks:
        previous = done(chunk)
        if previous is not None:
            results.append(previous)
            language = language or previous.language
            context = _context(previous.segments)
            continue
        audio = load(chunk)
        guess = languages(chunk, audio) if languages is not None else None
        part = transcriber.transcribe(audio, options, language=guess.language if guess else language, context=context)
        if options.language == "auto" and language is None and part.segments and guess is None:
            language = part.language
        result = ChunkResult(
            index=chunk.index,
            start=chunk.start,
            end=chunk.end,
            language=guess.language if guess else part.language,
            language_probability=guess.probability if guess else part.language_probability,
            segments=shift(part.segments, chunk.start),
        )
        results.append(result)
        context = _context(part.segments)
        if on_result(result) is False:
            break
    return results


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
    transcript = merge(results, duration=plan.duration, model=options.model, task=options.task)
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
