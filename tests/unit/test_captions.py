"""Caption writers: integer-millisecond timestamps and cue layout, checked by strict parsers."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.subtitles import parse_srt, parse_vtt
from ytcaption.domain.captions import (
    MAX_CUE_S,
    MIN_CUE_S,
    Segment,
    Transcript,
    Word,
    build_cues,
    render,
    timestamp,
    to_srt,
    to_txt,
    to_vtt,
)


@pytest.mark.parametrize(("t", "srt", "vtt"), [
    (1.001, "00:00:01,001", "00:00:01.001"),   # truncation would print ,000
    (0.0, "00:00:00,000", "00:00:00.000"),
    (59.9996, "00:01:00,000", "00:01:00.000"),
    (3661.999, "01:01:01,999", "01:01:01.999"),
    (2.0004, "00:00:02,000", "00:00:02.000"),
    (7.3449, "00:00:07,345", "00:00:07.345"),
])
def test_timestamps_are_rounded_integer_milliseconds(t: float, srt: str, vtt: str) -> None:
    assert timestamp(t) == srt
    assert timestamp(t, ".") == vtt


def test_regression_one_point_zero_zero_one_seconds_in_srt() -> None:
    tr = Transcript(segments=[Segment(start=1.001, end=2.5, text="Hi.")])
    assert "00:00:01,001 --> 00:00:02,500" in to_srt(tr)


LONG = ("This sentence is deliberately long so that it must be split over several cues, "
        "because no single caption may hold more than two lines of forty two characters. "
        "Supercalifragilisticexpialidociousandthensomemorelettersfortesting is one word.")


def transcript_with(words: bool) -> Transcript:
    segs = []
    t = 0.0
    for sentence in [LONG, "Short one.", "Another short sentence follows here."]:
        toks = sentence.split()
        ws = []
        for tok in toks:
            ws.append(Word(start=round(t, 3), end=round(t + 0.3, 3), word=" " + tok))
            t += 0.35
        segs.append(Segment(start=ws[0].start, end=ws[-1].end, text=sentence, words=ws if words else []))
        t += 1.0
    return Transcript(language="en", segments=segs)


@pytest.mark.parametrize("words", [True, False])
def test_cues_respect_line_length_lines_and_durations(words: bool) -> None:
    tr = transcript_with(words)
    cues = build_cues(tr)
    assert len(cues) >= 4
    for c in cues:
        assert 1 <= len(c.lines) <= 2 and all(len(line) <= 42 for line in c.lines)
        assert c.end - c.start <= MAX_CUE_S + 0.35
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start
        assert a.end - a.start >= MIN_CUE_S or a.end == b.start
    spoken = " ".join(" ".join(c.lines) for c in cues).split()
    assert "".join(spoken) == "".join(" ".join(s.text for s in tr.segments).split())


@pytest.mark.parametrize("words", [True, False])
def test_srt_and_vtt_pass_strict_parsers(words: bool) -> None:
    tr = transcript_with(words)
    srt, vtt = to_srt(tr), to_vtt(tr)
    assert len(parse_srt(srt)) == len(parse_vtt(vtt)) == len(build_cues(tr))


def test_short_cue_is_extended_to_minimum_without_overlap() -> None:
    tr = Transcript(segments=[Segment(start=0.0, end=0.2, text="Hi."),
                              Segment(start=5.0, end=5.3, text="Yes."),
                              Segment(start=5.5, end=6.0, text="No.")])
    cues = parse_srt(to_srt(tr))
    assert (cues[0].start_ms, cues[0].end_ms) == (0, 1000)
    assert cues[-1].start_ms >= cues[-2].end_ms


def test_vtt_escapes_arrows_in_text() -> None:
    tr = Transcript(segments=[Segment(start=0.0, end=2.0, text="a --> b")])
    parse_vtt(to_vtt(tr))


def test_txt_paragraphs_at_long_pauses_and_json_round_trips() -> None:
    tr = Transcript(language="en", segments=[Segment(start=0, end=1, text="One."),
                                             Segment(start=1.2, end=2, text="Two."),
                                             Segment(start=9, end=10, text="Three.")])
    assert to_txt(tr) == "One. Two.\n\nThree.\n"
    assert Transcript.model_validate(json.loads(render(tr, "json"))) == tr


def test_empty_transcript_renders_valid_empty_files() -> None:
    tr = Transcript()
    assert parse_srt(to_srt(tr)) == [] and parse_vtt(to_vtt(tr)) == []
    assert to_txt(tr) == ""
