"""Per-chunk language decisions for ``language: auto`` (a fake detector; real speech is in tests/integration)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ytcaption.domain.captions import Segment
from ytcaption.domain.jobs import JobOptions
from ytcaption.domain.stitching import ChunkResult, language_spans, stitch
from ytcaption.engine.language_id import (
    ChunkLanguages,
    LanguageGuess,
    chunk_languages,
    pick_windows,
    vote,
)
from ytcaption.media.chunking import Chunk


def chunks(*spans: tuple[float, float]) -> list[Chunk]:
    return [Chunk(i, a, b, 0) for i, (a, b) in enumerate(spans)]


class FakeDetector:
    """Answers from a table by chunk index (the audio's first sample carries the index)."""

    def __init__(self, table: dict[int, LanguageGuess]) -> None:
        self.table = table
        self.calls: list[int] = []

    def detect_language(self, samples: np.ndarray) -> LanguageGuess:
        index = int(samples[0])
        self.calls.append(index)
        return self.table[index]


def audio(c: Chunk) -> np.ndarray:
    return np.full(16, float(c.index), np.float32)


def test_windows_are_spread_over_the_whole_media_not_the_start() -> None:
    cs = chunks(*[(10.0 * i, 10.0 * i + 9.5) for i in range(20)])  # 200 s in 20 chunks
    picked = [c.index for c in pick_windows(cs, 5)]
    assert picked == [2, 6, 9, 13, 17]  # nearest to 10 %, 30 %, 50 %, 70 %, 90 % of the timeline
    assert [c.index for c in pick_windows(cs[:2], 5)] == [0, 1]
    assert pick_windows([], 5) == []


def test_vote_weighs_each_window_by_its_length() -> None:
    got = vote([(LanguageGuess("de", 0.9, (("de", 0.9), ("en", 0.1))), 25.0),
                (LanguageGuess("en", 0.9, (("en", 0.9), ("de", 0.1))), 5.0)])
    assert got is not None and got.language == "de" and got.probability == 0.7667
    assert vote([]) is None


def test_confident_chunks_keep_their_own_language_and_unsure_ones_take_the_media_language() -> None:
    # Given an English talk whose chunk 1 is a 2 s interjection and chunk 3 is music
    cs = chunks((0, 20), (20, 22), (22, 45), (45, 60), (60, 85))
    table = {
        0: LanguageGuess("en", 0.95, (("en", 0.95),)),
        1: LanguageGuess("es", 0.80, (("es", 0.80), ("en", 0.15))),  # too short to trust
        2: LanguageGuess("en", 0.90, (("en", 0.90),)),
        3: LanguageGuess("nn", 0.20, (("nn", 0.20), ("en", 0.10))),  # unsure
        4: LanguageGuess("es", 0.97, (("es", 0.97),)),  # a real switch to Spanish
    }
    det = FakeDetector(table)
    decide = ChunkLanguages(det, cs, audio)
    got = [decide(c, audio(c)) for c in cs]
    assert [g.language for g in got] == ["en", "en", "en", "en", "es"]
    assert got[1].probability == 0.15 and got[3].probability == 0.10  # the chosen language's own probability
    # the media's language was looked up once, from windows over the whole file, reusing chunk guesses
    assert sorted(det.calls) == [0, 1, 2, 3, 4]


def test_only_auto_on_a_multilingual_model_decides_per_chunk() -> None:
    class Multi:
        multilingual = True

        def detect_language(self, samples: Any) -> LanguageGuess:
            return LanguageGuess("en", 1.0)

    class English(Multi):
        multilingual = False

    cs = chunks((0, 10))
    assert isinstance(chunk_languages(Multi(), cs, audio, JobOptions(model="base")), ChunkLanguages)
    assert chunk_languages(Multi(), cs, audio, JobOptions(model="base", language="de")) is None
    english = chunk_languages(English(), cs, audio, JobOptions(model="distil-large-v3"))
    assert english is not None and english(cs[0], audio(cs[0])).language == "en"
    assert chunk_languages(object(), cs, audio, JobOptions(model="base")) is None


def test_merge_records_languages_per_span_and_per_segment_and_the_majority_by_duration() -> None:
    def result(i: int, a: float, b: float, lang: str) -> ChunkResult:
        return ChunkResult(index=i, start=a, end=b, language=lang, language_probability=0.9,
                           segments=[Segment(start=a, end=b - 1, text=f"chunk {i}")])

    results = [result(0, 0, 20, "en"), result(1, 20, 30, "en"), result(2, 30, 55, "es"), result(3, 55, 60, "en")]
    tr = stitch(results, duration=60, model="base")
    assert [(s.language, s.start, s.end) for s in tr.language_spans] == [
        ("en", 0, 30), ("es", 30, 55), ("en", 55, 60)]
    assert [s.language for s in tr.segments] == ["en", "en", "es", "en"]
    assert tr.language == "en"  # 35 s of English against 25 s of Spanish
    assert language_spans([]) == []
