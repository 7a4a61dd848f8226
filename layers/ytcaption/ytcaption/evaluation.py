"""Word error rate, for tests and benchmarks that check accuracy against a known text."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9']+")


def normalize_text(text: str) -> list[str]:
    """Words, lower case, accents folded (``llegó`` -> ``llego``, ``Straße`` -> ``strasse``),
    so other languages than English are compared word for word too."""
    text = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return [w.strip("'") for w in _WORD.findall(text) if w.strip("'")]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    errors, n = word_errors(reference, hypothesis)
    return errors / max(1, n)
