"""The fidelity guard and the engine's re-decode, with a deterministic fake model.

The fake reads "speech" encoded in the samples themselves (word k is a run of
samples of value k/1000), so what a window holds is known exactly, and it can
be told to fail the way Whisper fails on long media: end a window early, or
stretch one segment over speech it does not transcribe, or write "Thank you."
into silence. The real model is exercised in tests/integration/test_fidelity.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from ytcaption.domain.captions import Segment
from ytcaption.domain.jobs import JobOptions
from ytcaption.domain.stitching import ChunkResult
from ytcaption.engine import guard
from ytcaption.engine.engine import transcribe_shard
from ytcaption.engine.transcription import ChunkTranscript
from ytcaption.media.chunking import Chunk, plan_chunks

RATE = 16000
WORD_S = 0.4
GAP_S = 0.1


def seg(start: float, end: float, text: str) -> Segment:
    return Segment(start=start, end=end, text=text)


# --- the guard on its own ---------------------------------------------------------------------


def test_a_segment_far_too_long_for_its_text_is_flagged() -> None:
    # 25 s of speech, one segment over all of it holding one short sentence
    regions = [(0.0, 12.0), (12.5, 25.0)]
    review = guard.review([seg(0.0, 25.0, "He was not an ill disposed young man.")], regions, (0.0, 25.0), cps=14.0)
    assert not review.ok and review.reasons == ["sparse"]
    assert review.spans == [(0.0, 25.0)]
    assert review.missing_s > 20


def test_speech_with_no_words_is_flagged_and_only_that_part() -> None:
    regions = [(0.0, 4.0), (4.5, 9.0), (9.3, 14.0)]
    segments = [seg(0.0, 4.0, "The storm passed during the night, leaving it wet."),
                seg(4.5, 9.0, "Farmers in the valley grow apples, pears and cherries.")]
    review = guard.review(segments, regions, (0.0, 15.0), cps=14.0)
    assert review.reasons == ["uncovered"]
    assert review.spans == [(9.0, 14.0)]  # regions 0.3 s apart count as one


def test_short_gaps_in_coverage_are_not_judged() -> None:
    # Whisper's timestamps are a few hundred ms off: a 0.6 s edge is not "missing speech"
    regions = [(0.0, 10.0)]
    text = "When the train arrived at the station, the passengers stepped onto the quiet platform."
    review = guard.review([seg(0.3, 9.4, text)], regions, (0.0, 10.0), cps=9.0)
    assert review.ok, review


def test_loops_are_flagged() -> None:
    looping = "I'm going to go to the store. " * 12
    review = guard.review([seg(0.0, 20.0, looping)], [(0.0, 20.0)], (0.0, 20.0), cps=14.0)
    assert "loop" in review.reasons


def test_text_that_only_repeats_the_prompt_is_flagged() -> None:
    review = guard.review([seg(0.0, 5.0, "Glossary: Kubernetes, Terraform.")], [(0.0, 5.0)], (0.0, 5.0),
                          cps=14.0, prompt="Glossary: Kubernetes, Terraform.")
    assert review.reasons == ["prompt"]


def test_normal_speech_passes() -> None:
    regions = [(0.0, 3.8), (4.4, 8.1), (8.8, 12.5)]
    segments = [seg(0.0, 3.9, "The river runs past the old mill by the road."),
                seg(4.4, 8.2, "Every morning the baker opens the shop early."),
                seg(8.8, 12.5, "Scientists measure the ocean at many depths.")]
    assert guard.review(segments, regions, (0.0, 13.0), cps=14.0).ok


def test_text_from_non_speech_is_dropped() -> None:
    regions = [(10.0, 14.0)]
    segments = [seg(1.0, 3.0, "Thank you."), seg(10.2, 13.9, "Real words were said here."), seg(20.0, 22.0, "♪ ♪")]
    kept = guard.drop_non_speech(segments, regions, no_speech_prob=0.1, avg_logprob=-0.3)
    assert [s.text for s in kept] == ["Real words were said here."]
    # Whisper's own silence rule: confident no-speech and unconfident text
    assert guard.drop_non_speech(segments[1:2], regions, no_speech_prob=0.9, avg_logprob=-1.5) == []


def test_speaking_rate_is_the_medias_own() -> None:
    slow = [(40, 5.0)] * 9  # 8 characters a second
    assert guard.speaking_rate(slow) == pytest.approx(8.0)
    assert guard.speaking_rate([(40, 5.0)]) == guard.PRIOR_CPS  # too little to judge


# --- the engine's re-decode, with a fake model ---------------------------------------------------


def spoken(words: int, *, pause_every: int = 0, pause_s: float = 1.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Audio where word k (1-based) is a run of value k/1000; returns the word spans too."""
    parts, spans, t = [], [], 0.0
    for k in range(1, words + 1):
        parts.append(np.full(int(WORD_S * RATE), k / 1000, np.float32))
        spans.append((t, t + WORD_S))
        t += WORD_S
        gap = pause_s if pause_every and k % pause_every == 0 else GAP_S
        parts.append(np.zeros(int(gap * RATE), np.float32))
        t += gap
    return np.concatenate(parts), spans


def words_in(samples: np.ndarray) -> list[tuple[int, float, float]]:
    """(word number, start, end) of every word run in a window."""
    out: list[tuple[int, float, float]] = []
    values = np.round(samples * 1000).astype(int)
    i = 0
    while i < len(values):
        if values[i] > 0:
            j = i
            while j < len(values) and values[j] == values[i]:
                j += 1
            if j - i > RATE * WORD_S * 0.5:
                out.append((int(values[i]), i / RATE, j / RATE))
            i = j
        else:
            i += 1
    return out


@dataclass
class FakeModel:
    """Transcribes exactly, unless told to fail on long windows the way Whisper does."""

    failure: str = ""  # "early" | "sparse" | ""
    first_pass_only: bool = False  # fail only windows decoded with context (the first pass), whatever their length
    batch_calls: list[int] = field(default_factory=list)
    contexts: list[list[str | None]] = field(default_factory=list)
    thorough_calls: int = 0

    def _decode(self, samples: np.ndarray, fail: bool) -> ChunkTranscript:
        found = words_in(samples)
        if fail and found:
            if self.failure == "early":  # the window ends at 8 s
                found = [w for w in found if w[2] <= 8.0]
            elif self.failure == "sparse":  # one segment over everything, with the first three words
                text = " ".join(f"w{k}" for k, _, _ in found[:3])
                return ChunkTranscript([seg(0.0, found[-1][2], text)], "en", 1.0)
        return ChunkTranscript([seg(s, e, f"w{k}") for k, s, e in found], "en", 1.0)

    def transcribe_batch(
        self, windows: Sequence[np.ndarray], options: JobOptions, *, language: str | None = None,
        contexts: Sequence[Sequence[Segment] | None] | None = None,
    ) -> list[ChunkTranscript]:
        self.batch_calls.append(len(windows))
        self.contexts.append([" ".join(s.text for s in c) if c else None for c in contexts or []])
        if self.first_pass_only:
            return [self._decode(w, fail=contexts is not None) for w in windows]
        return [self._decode(w, fail=len(w) / RATE > 15.0) for w in windows]

    def transcribe(self, samples: np.ndarray, options: JobOptions, *, language: str | None = None) -> ChunkTranscript:
        self.thorough_calls += 1
        return self._decode(samples, fail=False)


def chunks_for(samples: np.ndarray, spans: list[tuple[float, float]], max_chunk_s: float = 30.0) -> list[Chunk]:
    return plan_chunks(guard.merge_spans(spans, gap=0.2), len(samples) / RATE, max_chunk_s=max_chunk_s)


def run(model: FakeModel, samples: np.ndarray, chunks: list[Chunk], **kw: object) -> list[int]:
    results = transcribe_shard(model, chunks, lambda c: samples[round(c.start * RATE) : round(c.end * RATE)],
                               JobOptions(), **kw)  # type: ignore[arg-type]
    return [int(w[1:]) for r in sorted(results, key=lambda r: r.index) for s in r.segments for w in s.text.split()]


@pytest.mark.parametrize("failure", ["early", "sparse"])
def test_a_chunk_that_loses_speech_is_decoded_again_and_recovers_every_word(failure: str) -> None:
    # Given 120 words in chunks of up to 30 s, and a model that loses speech on windows over 15 s
    samples, spans = spoken(120, pause_every=12)
    chunks = chunks_for(samples, spans)
    assert max(c.duration for c in chunks) > 15.0
    model = FakeModel(failure=failure)
    # When the shard is transcribed
    results = transcribe_shard(model, chunks, lambda c: samples[round(c.start * RATE): round(c.end * RATE)],
                               JobOptions())
    got = [int(w[1:]) for r in sorted(results, key=lambda r: r.index) for s in r.segments for w in s.text.split()]
    # Then every word is there once, in order, and the re-decode is on the record
    assert got == list(range(1, 121))
    redone = [r for r in results if r.redecoded]
    assert redone and all(r.guard == ["sparse" if failure == "sparse" else "uncovered"] for r in redone)
    assert all(not r.redecoded for r in results if r.end - r.start <= 15.0)


def test_without_the_guard_the_same_model_loses_words() -> None:
    """The failure the guard catches is real in this setup (the test above can fail)."""
    samples, spans = spoken(120, pause_every=12)
    chunks = chunks_for(samples, spans)
    model = FakeModel(failure="early")
    got = [w for c in chunks for part in model.transcribe_batch(
        [samples[round(c.start * RATE): round(c.end * RATE)]], JobOptions()) for s in part.segments
        for w in s.text.split()]
    assert len(got) < 100


def test_chunks_go_through_the_model_in_batches() -> None:
    samples, spans = spoken(200, pause_every=5)
    chunks = chunks_for(samples, spans, max_chunk_s=10.0)
    model = FakeModel()
    assert run(model, samples, chunks, batch_size=4) == list(range(1, 201))
    assert model.batch_calls[0] == 4 and sum(model.batch_calls) == len(chunks)
    assert model.thorough_calls == 0


def test_a_retried_shard_skips_finished_chunks_and_stops_when_told() -> None:
    samples, spans = spoken(60, pause_every=6)
    chunks = chunks_for(samples, spans, max_chunk_s=8.0)
    model = FakeModel()
    first = transcribe_shard(model, chunks[:2], lambda c: samples[round(c.start * RATE): round(c.end * RATE)],
                             JobOptions())
    stored = {r.index: r for r in first}
    seen: list[int] = []
    transcribe_shard(model, chunks, lambda c: samples[round(c.start * RATE): round(c.end * RATE)], JobOptions(),
                     done=lambda c: stored.get(c.index), on_result=lambda r: seen.append(r.index) or len(seen) < 3,
                     batch_size=2)
    assert len(seen) == 3 and len(set(seen)) == 3 and min(seen) >= 2  # finished chunks skipped; stopped after 3


def test_each_stream_is_conditioned_on_its_previous_chunk() -> None:
    samples, spans = spoken(80, pause_every=5)
    chunks = chunks_for(samples, spans, max_chunk_s=6.0)
    model = FakeModel()
    results = transcribe_shard(model, chunks, lambda c: samples[round(c.start * RATE): round(c.end * RATE)],
                               JobOptions(), batch_size=2)
    by_index = {r.index: " ".join(s.text for s in r.segments) for r in results}
    half = len(chunks) // 2
    # round 0 decodes the first chunk of each stream with no context; round 1 the next ones,
    # each conditioned on the text of the chunk before it in its own stream
    assert model.contexts[0] == [None, None]
    assert model.contexts[1] == [by_index[0], by_index[half]]
    # and later rounds on all of their stream's text so far, as Whisper conditions a window
    assert model.contexts[2] == [f"{by_index[0]} {by_index[1]}", f"{by_index[half]} {by_index[half + 1]}"]
    assert [r.index for r in results] == sorted(by_index)


def stream_of_one(max_chunk_s: float) -> tuple[FakeModel, list[Chunk], list[ChunkResult]]:
    """A shard decoded as one stream by a model whose first pass ends every window at 8 s."""
    samples, spans = spoken(160, pause_every=10)
    chunks = chunks_for(samples, spans, max_chunk_s=max_chunk_s)
    model = FakeModel(failure="early", first_pass_only=True)
    results = transcribe_shard(model, chunks, lambda c: samples[round(c.start * RATE): round(c.end * RATE)],
                               JobOptions(), batch_size=8, streams=1)
    got = [int(w[1:]) for r in sorted(results, key=lambda r: r.index) for s in r.segments for w in s.text.split()]
    assert got == list(range(1, 161))
    return model, chunks, results


def test_one_stream_conditions_each_chunk_on_all_the_text_before_it_that_passed() -> None:
    model, chunks, results = stream_of_one(max_chunk_s=14.0)
    # the first pass is one window at a time, each conditioned on all the text before it that passed
    # the guard: a chunk after a failing one gets the text before the failing one
    failing = {r.index for r in results if r.redecoded}
    by_index = {r.index: " ".join(s.text for s in r.segments) for r in results}
    assert model.batch_calls[: len(chunks)] == [1] * len(chunks)
    expected = [[" ".join(by_index[j] for j in range(i) if j not in failing) or None] for i in range(len(chunks))]
    assert model.contexts[: len(chunks)] == expected
    assert failing and sum(1 for c in expected if c[0]) >= 3


def test_one_stream_still_re_decodes_in_batches() -> None:
    model, chunks, results = stream_of_one(max_chunk_s=15.0)
    assert model.batch_calls[: len(chunks)] == [1] * len(chunks)
    assert sum(r.redecoded for r in results) >= 4 and model.batch_calls[len(chunks) :] == [2]

def test_failing_spans_of_several_chunks_share_a_re_decode_window() -> None:
    # Given chunks of about 20 s whose first pass ends every window at 8 s
    samples, spans = spoken(160, pause_every=10)
    chunks = chunks_for(samples, spans, max_chunk_s=22.0)
    model = FakeModel(failure="early", first_pass_only=True)
    # When the shard is transcribed
    results = transcribe_shard(model, chunks, lambda c: samples[round(c.start * RATE): round(c.end * RATE)],
                               JobOptions(), batch_size=8)
    # Then every word comes back once, in order, each in its own chunk's time range
    got = [int(w[1:]) for r in sorted(results, key=lambda r: r.index) for s in r.segments for w in s.text.split()]
    assert got == list(range(1, 161))
    for r in results:
        assert all(r.start <= s.start <= s.end <= r.end for s in r.segments)
    # and the lost tails were decoded again packed together: fewer windows than failing chunks
    redone = [r for r in results if r.redecoded]
    first_pass = len(chunks)
    assert len(redone) >= 4
    assert sum(model.batch_calls) - first_pass < len(redone)
    assert model.thorough_calls == 0
