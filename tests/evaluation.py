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


def word_ops(reference: str, hypothesis: str) -> tuple[int, int, int, int]:
    """(substitutions, deletions, insertions, reference length) of a minimum edit alignment."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    n, m = len(ref), len(hyp)
    # cost and the operation that reached each cell, row by row (0 match/sub, 1 deletion, 2 insertion)
    prev = list(range(m + 1))
    moves = [bytearray([2] * (m + 1))]
    for i in range(1, n + 1):
        cur = [i] + [0] * m
        row = bytearray(m + 1)
        row[0] = 1
        r = ref[i - 1]
        for j in range(1, m + 1):
            diag = prev[j - 1] + (r != hyp[j - 1])
            up, left = prev[j] + 1, cur[j - 1] + 1
            if diag <= up and diag <= left:
                cur[j] = diag
            elif up <= left:
                cur[j], row[j] = up, 1
            else:
                cur[j], row[j] = left, 2
        moves.append(row)
        prev = cur
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        move = moves[i][j] if i and j else (1 if i else 2)
        if move == 0:
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif move == 1:
            dels, i = dels + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return subs, dels, ins, n


def wer(reference: str, hypothesis: str) -> float:
    errors, n = word_errors(reference, hypothesis)
    return errors / max(1, n)
