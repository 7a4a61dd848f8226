"""Chunk planning, shard grouping and merging: pure logic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ytcaption.domain.captions import Segment, Word
from ytcaption.domain.stitching import ChunkResult, stitch
from ytcaption.media.chunking import Chunk, assign_shards, balanced_shards, plan_chunks, shard_count
from ytcaption.settings import MediaSettings


def test_chunks_cut_mid_pause_and_respect_the_limit() -> None:
    # speech every 5 s, 4 s long, 1 s pauses, for 100 s
    speech = [(i * 5.0, i * 5.0 + 4.0) for i in range(20)]
    chunks = plan_chunks(speech, 100.0, max_chunk_s=30.0)
    assert len(chunks) >= 4
    for c in chunks:
        assert c.duration <= 30.0
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start
        # each cut lies in a pause, never inside speech
        assert not any(s < a.end < e for s, e in speech)
    covered = [(s, e) for s, e in speech if not any(c.start <= s and e <= c.end for c in chunks)]
    assert covered == []  # every speech region is inside exactly one chunk


def test_long_pauses_are_left_out_and_edges_padded() -> None:
    chunks = plan_chunks([(10.0, 14.0), (40.0, 44.0)], 60.0, max_chunk_s=30.0)
    assert [(c.start, c.end) for c in chunks] == [(9.8, 14.2), (39.8, 44.2)]


def test_speech_longer_than_a_chunk_is_split() -> None:
    chunks = plan_chunks([(0.0, 70.0)], 70.0, max_chunk_s=30.0)
    assert len(chunks) == 3 and all(c.duration <= 30.0 for c in chunks)
    assert chunks[0].start == 0.0 and chunks[-1].end == 70.0


def test_no_speech_no_chunks() -> None:
    assert plan_chunks([], 60.0) == []


def test_shards_group_consecutive_chunks_by_audio_length() -> None:
    chunks = [Chunk(i, i * 30.0, i * 30.0 + 25.0) for i in range(10)]
    sharded = assign_shards(chunks, MediaSettings(shard_audio_s=100.0))
    # 250 s in the fewest shards of 100 s: three, of equal audio rather than 100 + 100 + 50
    assert [c.shard for c in sharded] == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert shard_count(sharded) == 3
    assert [c.shard for c in assign_shards(chunks[:1], MediaSettings(shard_audio_s=1.0))] == [0]


@pytest.mark.parametrize(("shard_audio_s", "multiple", "expected"), [
    (100.0, 2, 4),    # three rounded up to a multiple of the slots
    (600.0, 2, 2),    # one shard would leave a slot idle
    (600.0, 1, 1),
    (10.0, 4, 10),    # never more shards than chunks
    (100.0, 3, 3),
])
def test_shard_count_is_a_multiple_of_the_slots(shard_audio_s: float, multiple: int, expected: int) -> None:
    chunks = [Chunk(i, i * 30.0, i * 30.0 + 25.0) for i in range(10)]
    sharded = assign_shards(chunks, MediaSettings(shard_audio_s=shard_audio_s, parallel_shards=multiple))
    assert shard_count(sharded) == expected
    shards = [c.shard for c in sharded]
    assert shards == sorted(shards) and set(shards) == set(range(expected))  # consecutive, numbered 0..n-1
    audio = [sum(c.duration for c in sharded if c.shard == k) for k in range(expected)]
    assert max(audio) - min(audio) <= 25.0  # equal to within a chunk


def test_uneven_chunks_leave_no_shard_number_unused() -> None:
    # one long chunk among short ones: the split by audio would skip a shard number
    chunks = [Chunk(0, 0.0, 2.0), Chunk(1, 2.0, 30.0), Chunk(2, 30.0, 31.0), Chunk(3, 31.0, 32.0)]
    for n in range(1, 5):
        shards = [c.shard for c in balanced_shards(chunks, n)]
        assert set(shards) == set(range(max(shards) + 1))


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_balanced_shards_never_exceed_worker_count(n: int) -> None:
    chunks = [Chunk(i, i * 20.0, i * 20.0 + (5 + 3 * (i % 4))) for i in range(7)]
    sharded = balanced_shards(chunks, n)
    assert shard_count(sharded) <= n
    assert [c.shard for c in sharded] == sorted(c.shard for c in sharded)


def test_merge_orders_offsets_and_clamps_spills() -> None:
    r1 = ChunkResult(index=1, start=10.0, end=20.0, language="en", segments=[
        Segment(start=9.5, end=12.0, text="second", words=[Word(start=9.0, end=12.0, word="second")])])
    r0 = ChunkResult(index=0, start=0.0, end=10.0, language="en", segments=[
        Segment(start=1.0, end=10.4, text="first")])
    r2 = ChunkResult(index=2, start=20.0, end=30.0, language="de", segments=[])
    tr = stitch([r1, r2, r0], duration=30.0, model="tiny.en")
    assert [s.text for s in tr.segments] == ["first", "second"]
    assert tr.segments[0].end == 10.0  # clamped into its chunk
    assert tr.segments[1].start == 10.0 and tr.segments[1].words[0].start == 10.0
    assert tr.language == "en"  # duration-weighted majority


def test_a_chunk_is_decoded_packed_and_its_times_map_back_to_the_timeline() -> None:
    from ytcaption.media.chunking import PACKED_GAP_S, Packing

    # two sentences with a 2.5 s pause between them, in one chunk
    chunks = plan_chunks([(1.0, 4.0), (6.5, 9.0)], 12.0, max_chunk_s=30.0)
    assert len(chunks) == 1
    packing = Packing(chunks[0])
    window = packing.window(np.arange(int(chunks[0].duration * 16000), dtype=np.float32), chunks[0].start)
    # the 2.5 s pause shrinks to PACKED_GAP_S; the rest of the chunk is kept
    assert len(window) / 16000 == pytest.approx(chunks[0].duration - (2.5 - PACKED_GAP_S), abs=0.01)
    # a word at the start of the second sentence in the window is at 6.5 s on the timeline
    second = packing.offsets[1] + PACKED_GAP_S / 2
    assert packing.to_timeline(second) == pytest.approx(6.5, abs=0.01)
    assert packing.to_timeline(0.0) == pytest.approx(chunks[0].start, abs=0.01)
    assert packing.to_timeline(1e9) == packing.parts[-1][1]


def test_pauses_do_not_count_against_a_chunks_window() -> None:
    # 4 s of speech every 6.8 s (2.8 s pauses): 30 s windows hold more than 30 s of timeline
    speech = [(i * 6.8, i * 6.8 + 4.0) for i in range(20)]
    chunks = plan_chunks(speech, 136.0, max_chunk_s=30.0)
    assert len(chunks) < 136.0 / 30.0 + 1
    assert max(c.duration for c in chunks) > 30.0
    from ytcaption.media.chunking import WINDOW_MARGIN_S, packed_length

    assert all(packed_length(c.speech, c.start, c.end) <= 30.0 - WINDOW_MARGIN_S + 1e-6 for c in chunks)
