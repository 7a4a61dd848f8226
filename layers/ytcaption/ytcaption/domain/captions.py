"""Transcripts and the caption files made from them (JSON, SRT, VTT, TXT).

Pure Python on purpose: the API Lambda renders a format a job did not ask for
from the stored JSON, and must not import numpy or faster-whisper to do it.

Cue rules (the common broadcast/streaming style guides): at most 42 characters
a line, at most 2 lines a cue, cues last between 1 and 7 seconds and never
overlap; timestamps are integer milliseconds (``round(t * 1000)``), so 1.001 s
prints as ``00:00:01,001``, never truncated to ``,000``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, Field

MAX_LINE_CHARS = 42
MAX_LINES = 2
MIN_CUE_S = 1.0
MAX_CUE_S = 7.0
PARAGRAPH_GAP_S = 2.0
_SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
_CLAUSE_END = (",", ";", ":", "—", "、", "，")


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float | None = None


class SegmentStats(BaseModel):
    """Whisper's decoding figures for a segment (what OpenAI's verbose_json reports).

    ``seek`` is the start of the decoding window in mel frames (100 a second) on
    the chunk's timeline until :func:`ytcaption.domain.stitching.shift` puts it on the media's.
    """

    seek: int
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class Segment(BaseModel):
    start: float
    end: float
    text: str
    words: list[Word] = Field(default_factory=list)
    #: Kept in memory for the synchronous API; not stored with jobs' results.
    stats: SegmentStats | None = Field(None, exclude=True)
    #: The spoken language of the chunk this segment came from (``language: auto`` can vary per chunk).
    language: str | None = None
    #: Who speaks (``diarize: true``): ``SPEAKER_n`` in order of first appearance, or a known speaker's name.
    speaker: str | None = None


class Speaker(BaseModel):
    """One voice found by diarization, with its total speaking time."""

    label: str
    speaking_time: float


class LanguageSpan(BaseModel):
    """A stretch of the media in one language (consecutive chunks that share it)."""

    language: str
    start: float
    end: float


class Transcript(BaseModel):
    language: str | None = None
    language_probability: float | None = None
    duration: float | None = None
    model: str | None = None
    task: str = "transcribe"
    #: ``transcription``, or ``site_captions`` / ``site_automatic_captions`` when the
    #: site's own captions were converted (no model ran).
    source: str | None = None
    #: Where each language is spoken, in time order (one span when the media keeps one language).
    language_spans: list[LanguageSpan] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    #: How many chunks the media was cut into, and how many of them the fidelity
    #: guard decoded again because speech was missing from the first decode.
    chunks: int | None = None
    redecoded_chunks: int | None = None
    #: ``diarize: true``: the speakers in order of first appearance, and the known speakers'
    #: names whose reference voice matched no one.
    speakers: list[Speaker] | None = None
    unmatched_speakers: list[str] | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


#: Results converted from a site's own captions say so (VTT carries a NOTE; JSON its ``source``).
SITE_SOURCES = {
    "site_captions": "Converted from the site's own people-made captions; no speech recognition ran.",
    "site_automatic_captions": "Converted from the site's automatic captions; no speech recognition ran here.",
}


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]
    speaker: str | None = None


def ms(t: float) -> int:
    return max(0, round(t * 1000))


def timestamp(t: float, sep: str = ",") -> str:
    total = ms(t)
    h, rem = divmod(total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


# --- cue layout ----------------------------------------------------------------------


def _tokens(seg: Segment) -> list[tuple[str, float, float]]:
    """Words with times: the model's word timestamps, or times spread by length."""
    if seg.words:
        return [(w.word.strip(), w.start, w.end) for w in seg.words if w.word.strip()]
    words = seg.text.split()
    if not words:
        return []
    total = sum(len(w) + 1 for w in words)
    span = max(seg.end - seg.start, 0.0)
    out, t = [], seg.start
    for w in words:
        d = span * (len(w) + 1) / total
        out.append((w, t, t + d))
        t += d
    return out


def _split_long(word: str) -> list[str]:
    return [word[i : i + MAX_LINE_CHARS] for i in range(0, len(word), MAX_LINE_CHARS)] or [word]


def wrap(words: list[str]) -> list[str] | None:
    """Lay words on at most 2 lines of at most 42 characters, balanced; None if they don't fit."""
    text = " ".join(words)
    if len(text) <= MAX_LINE_CHARS:
        return [text]
    best: tuple[int, list[str]] | None = None
    for i in range(1, len(words)):
        a, b = " ".join(words[:i]), " ".join(words[i:])
        if len(a) <= MAX_LINE_CHARS and len(b) <= MAX_LINE_CHARS:
            score = abs(len(a) - len(b)) - (8 if words[i - 1].endswith(_CLAUSE_END + _SENTENCE_END) else 0)
            if best is None or score < best[0]:
                best = (score, [a, b])
    return best[1] if best else None


def build_cues(transcript: Transcript) -> list[Cue]:
    tokens: list[tuple[str, float, float]] = []
    who: list[str | None] = []  # each token's speaker: a cue never holds two
    for seg in transcript.segments:
        for w, s, e in _tokens(seg):
            parts = _split_long(w)
            step = (e - s) / len(parts)
            tokens += [(p, s + i * step, s + (i + 1) * step) for i, p in enumerate(parts)]
            who += [seg.speaker] * len(parts)
    cues: list[Cue] = []
    group: list[tuple[str, float, float]] = []
    speaker: list[str | None] = [None]

    def flush(upto: int | None = None) -> None:
        """Emit ``group[:upto]`` as a cue and keep the rest for the next one."""
        n = len(group) if upto is None else upto
        if n:
            lines = wrap([g[0] for g in group[:n]]) or [" ".join(g[0] for g in group[:n])]
            cues.append(Cue(group[0][1], group[n - 1][2], lines, speaker[0]))
            del group[:n]

    def natural_break() -> int | None:
        """Where to end the cue instead of mid-phrase: after the last sentence end,
        else the last clause end, in the second half of the group."""
        for marks in (_SENTENCE_END, _CLAUSE_END):
            for j in range(len(group) - 1, len(group) // 2 - 1, -1):
                if group[j][0].endswith(marks):
                    return j + 1
        return None

    for tok, tok_speaker in zip(tokens, who, strict=True):
        if group and tok_speaker != speaker[0]:
            flush()
        speaker[0] = tok_speaker
        if group:
            candidate = [g[0] for g in group] + [tok[0]]
            too_long = tok[2] - group[0][1] > MAX_CUE_S
            gap = tok[1] - group[-1][2] > PARAGRAPH_GAP_S
            if gap:
                flush()
            elif too_long or wrap(candidate) is None:
                flush(natural_break())
                while group and (wrap([g[0] for g in group] + [tok[0]]) is None
                                 or tok[2] - group[0][1] > MAX_CUE_S):
                    flush()
            elif group[-1][0].endswith(_SENTENCE_END) and len(" ".join(candidate)) > MAX_LINE_CHARS:
                flush()  # a sentence ends and the cue is already a full line: start afresh
        group.append(tok)
    flush()
    return _fix_timing(cues)


def _fix_timing(cues: list[Cue]) -> list[Cue]:
    """Monotonic, non-overlapping, at least MIN_CUE_S where the next cue leaves room."""
    for i, cue in enumerate(cues):
        if i and cue.start < cues[i - 1].end:
            cue.start = cues[i - 1].end
        nxt = cues[i + 1].start if i + 1 < len(cues) else None
        end = max(cue.end, cue.start + MIN_CUE_S)
        if nxt is not None and end > nxt:
            end = max(nxt, cue.start + 0.001)
        cue.end = end
    return [c for c in cues if ms(c.end) > ms(c.start)]


# --- writers ----------------------------------------------------------------------------


def to_srt(transcript: Transcript) -> str:
    blocks = []
    last: str | None = None
    for i, c in enumerate(build_cues(transcript), 1):
        lines = list(c.lines)
        if c.speaker and c.speaker != last:  # name the speaker when the voice changes
            lines[0] = f"{c.speaker}: {lines[0]}"
        last = c.speaker
        blocks.append(f"{i}\n{timestamp(c.start)} --> {timestamp(c.end)}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    out = ["WEBVTT", ""]
    if transcript.language:
        out = ["WEBVTT", f"Language: {transcript.language}", ""]
    if transcript.source in SITE_SOURCES:
        out += [f"NOTE {SITE_SOURCES[transcript.source]}", ""]
    for c in build_cues(transcript):
        text = "\n".join(line.replace("-->", "->") for line in c.lines)
        if c.speaker:
            text = f"<v {c.speaker}>{text}"
        out += [f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}", text, ""]
    return "\n".join(out)


def to_txt(transcript: Transcript) -> str:
    paragraphs: list[list[str]] = []
    last_end: float | None = None
    last_speaker: str | None = None
    for seg in transcript.segments:
        text = seg.text.strip()
        if not text:
            continue
        changed = seg.speaker is not None and seg.speaker != last_speaker
        if last_end is None or seg.start - last_end > PARAGRAPH_GAP_S or changed:
            paragraphs.append([])
        if changed:
            text = f"{seg.speaker}: {text}"
            last_speaker = seg.speaker
        paragraphs[-1].append(text)
        last_end = seg.end
    return "\n\n".join(" ".join(p) for p in paragraphs) + ("\n" if paragraphs else "")


def to_json(transcript: Transcript) -> str:
    return json.dumps(transcript.model_dump(mode="json"), ensure_ascii=False, indent=1)


WRITERS = {"json": to_json, "srt": to_srt, "vtt": to_vtt, "txt": to_txt}


def render(transcript: Transcript, fmt: str) -> str:
    return WRITERS[fmt](transcript)
