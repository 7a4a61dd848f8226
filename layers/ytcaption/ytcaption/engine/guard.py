"""The fidelity guard: hold a window's transcript against the window's own speech.

Whisper can lose speech without any error: on a voice change inside a 30 s
window it may end the window early, or stretch one timestamp pair over 25 s
of speech while writing a single sentence; conditioned on earlier text it can
skip what follows; on music or noise it writes "Thank you." The engine knows
where the speech is (the VAD regions it cut the chunks from), so every window
is checked against them:

- speech with no words in it (a region of 1 s or more that no segment covers);
- a segment far too long for its text (characters per second of speech far
  below this media's own median);
- loops: a high gzip compression ratio, or the same words over and over;
- text that only repeats the prompt;
- text from non-speech: a window Whisper itself calls silent (no-speech
  probability high and confidence low), or a segment lying outside every
  speech region.

Pure functions over plain numbers: the engine decides what to re-decode.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ytcaption.domain.captions import Segment

Span = tuple[float, float]

#: A segment is "too long for its text" when, at the media's own speaking rate,
#: its text accounts for less than this share of the speech under it ...
SPARSE_RATIO = 0.75
#: ... and leaves at least this many seconds of speech unaccounted for.
SPARSE_MIN_DEFICIT_S = 3.0
#: Speech this long with no segment over it is missing (Whisper's timestamps are
#: good to a few hundred milliseconds, so shorter gaps are not judged).
UNCOVERED_MIN_S = 1.0
#: Whisper's own loop detector: gzip compression ratio above this is a loop.
COMPRESSION_RATIO_MAX = 2.4
#: Characters per second of speech assumed until the media has shown its own rate.
PRIOR_CPS = 14.0
#: Phrases Whisper is known to write into silence, music and noise.
HALLUCINATIONS = frozenset({
    "thank you", "thank you very much", "thanks for watching", "thank you for watching",
    "please subscribe", "subscribe", "you", "bye", "bye bye", "so", "okay", "music",
    "like and subscribe", "see you next time", "thanks",
})
_WORDS = re.compile(r"[\w']+")


@dataclass
class Review:
    """What the guard found in one window; ``spans`` need decoding again."""

    spans: list[Span] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    missing_s: float = 0.0  # speech seconds not accounted for by text: lower is better

    @property
    def ok(self) -> bool:
        return not self.spans


def overlap(a: Span, b: Span) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def speech_in(span: Span, regions: Sequence[Span]) -> float:
    return sum(overlap(span, r) for r in regions)


def merge_spans(spans: Sequence[Span], gap: float = 0.0) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    """The parts of ``spans`` outside every hole (both sorted, non-overlapping)."""
    out: list[Span] = []
    for a, b in spans:
        cur = a
        for ha, hb in holes:
            if hb <= cur or ha >= b:
                continue
            if ha > cur:
                out.append((cur, ha))
            cur = max(cur, hb)
        if cur < b:
            out.append((cur, b))
    return out


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


def repeats(text: str, n: int = 4, times: int = 3) -> bool:
    """The same ``n`` words ``times`` times or more: a decoding loop."""
    words = _WORDS.findall(text.lower())
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return bool(grams) and max(grams.values()) >= times


def _plain(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def speaking_rate(samples: Sequence[tuple[int, float]]) -> float:
    """Characters per second of speech for this media: the median over well-sized segments."""
    rates = sorted(chars / s for chars, s in samples if s >= 2.0)
    if len(rates) < 5:
        return PRIOR_CPS
    return rates[len(rates) // 2]


def rate_samples(segments: Sequence[Segment], regions: Sequence[Span]) -> list[tuple[int, float]]:
    return [(len(s.text), speech_in((s.start, s.end), regions)) for s in segments]


def drop_non_speech(
    segments: Sequence[Segment], regions: Sequence[Span], *, no_speech_prob: float, avg_logprob: float,
    no_speech_threshold: float = 0.6, logprob_floor: float = -1.0,
) -> list[Segment]:
    """Segments that come from speech: Whisper's own silence rule, then the VAD's regions."""
    if no_speech_prob > no_speech_threshold and avg_logprob < logprob_floor:
        return []
    kept = []
    for s in segments:
        padded = (s.start - 0.3, s.end + 0.3)
        speech = speech_in(padded, regions)
        if speech <= 0.0:
            continue  # nothing was said there
        if _plain(s.text) in HALLUCINATIONS and speech < 0.5 * max(0.1, s.end - s.start):
            continue
        if not _WORDS.search(s.text):
            continue  # only symbols (music notes, dashes)
        kept.append(s)
    return kept


def review(
    segments: Sequence[Segment], regions: Sequence[Span], window: Span, *, cps: float, prompt: str | None = None,
) -> Review:
    """Check a window's segments (times on the same timeline as ``regions`` and ``window``)."""
    result = Review()
    sparse: list[Span] = []
    covered: list[Span] = []
    for s in segments:
        span = (s.start, s.end)
        speech = speech_in(span, regions)
        deficit = speech - len(s.text) / max(cps, 1e-6)
        if deficit >= SPARSE_MIN_DEFICIT_S and len(s.text) < SPARSE_RATIO * cps * speech:
            sparse.append(span)
            result.missing_s += deficit
            result.reasons.append("sparse")
        elif compression_ratio(s.text) > COMPRESSION_RATIO_MAX or repeats(s.text):
            sparse.append(span)
            result.missing_s += max(speech, s.end - s.start)
            result.reasons.append("loop")
        else:
            covered.append(span)
    text = " ".join(s.text for s in segments)
    if len(text) > 200 and compression_ratio(text) > COMPRESSION_RATIO_MAX:
        sparse.append(window)  # the window as a whole goes round in circles
        result.missing_s += speech_in(window, regions)
        result.reasons.append("loop")
    if prompt and text and _plain(text) and _plain(text) in _plain(prompt):
        sparse.append(window)
        result.missing_s += speech_in(window, regions)
        result.reasons.append("prompt")
    # speech that no segment covers: each region less what segments cover, pieces of 1 s or more
    inside = [(max(a, window[0]), min(b, window[1])) for a, b in regions if overlap((a, b), window) > 0]
    uncovered = [piece for piece in subtract(merge_spans(inside, gap=0.3), merge_spans(covered + sparse))
                 if piece[1] - piece[0] >= UNCOVERED_MIN_S]
    result.missing_s += sum(b - a for a, b in uncovered)
    if uncovered:
        result.reasons.append("uncovered")
    result.spans = merge_spans(sparse + uncovered, gap=0.5)
    result.reasons = sorted(set(result.reasons))
    result.missing_s = round(result.missing_s, 3)
    return result
