"""Diarization error rate, for the tests and the bench (``bench/diarization.py``).

DER = (missed speech + false alarm + speaker confusion) / reference speech, measured on a
10 ms grid, with ``collar`` seconds either side of every reference boundary not scored
(the usual 0.25 s forgives where exactly a turn starts), hypothesis labels mapped one to
one onto reference labels to maximise agreement (as NIST's md-eval does).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STEP = 0.01

Span = tuple[float, float, str]


@dataclass(frozen=True)
class DiarizationError:
    scored_s: float
    missed_s: float
    false_alarm_s: float
    confusion_s: float
    speakers_ref: int
    speakers_hyp: int

    @property
    def der(self) -> float:
        return (self.missed_s + self.false_alarm_s + self.confusion_s) / self.scored_s if self.scored_s else 0.0


def _grid(spans: Sequence[Span], n: int, names: dict[str, int]) -> np.ndarray:
    out = np.full(n, -1, int)
    for a, b, who in spans:
        out[round(a / STEP): round(b / STEP)] = names.setdefault(who, len(names))
    return out


def _best_map(co: np.ndarray) -> dict[int, int]:
    """hyp index -> ref index maximising the matched time (exhaustive when small, else greedy)."""
    n_hyp, n_ref = co.shape
    if n_hyp == 0 or n_ref == 0:
        return {}
    if min(n_hyp, n_ref) <= 7 and max(n_hyp, n_ref) <= 8:
        best, best_sum = {}, -1.0
        if n_hyp <= n_ref:
            for perm in itertools.permutations(range(n_ref), n_hyp):
                s = sum(co[h, r] for h, r in enumerate(perm))
                if s > best_sum:
                    best, best_sum = dict(enumerate(perm)), s
        else:
            for perm in itertools.permutations(range(n_hyp), n_ref):
                s = sum(co[h, r] for r, h in enumerate(perm))
                if s > best_sum:
                    best, best_sum = {h: r for r, h in enumerate(perm)}, s
        return best
    pairs = sorted(((co[h, r], h, r) for h in range(n_hyp) for r in range(n_ref)), reverse=True)
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for _, h, r in pairs:
        if h not in mapping and r not in used:
            mapping[h] = r
            used.add(r)
    return mapping


def diarization_error(reference: Sequence[Span], hypothesis: Sequence[Span], *, collar: float = 0.25,
                      duration: float | None = None) -> DiarizationError:
    end = max([b for _, b, _ in [*reference, *hypothesis]] + [duration or 0.0])
    n = round(end / STEP) + 1
    ref_names: dict[str, int] = {}
    hyp_names: dict[str, int] = {}
    ref = _grid(reference, n, ref_names)
    hyp = _grid(hypothesis, n, hyp_names)
    scored = np.ones(n, bool)
    c = round(collar / STEP)
    for a, b, _ in reference:
        for t in (a, b):
            i = round(t / STEP)
            scored[max(0, i - c): i + c] = False
    co = np.zeros((len(hyp_names), len(ref_names)))
    both = scored & (ref >= 0) & (hyp >= 0)
    np.add.at(co, (hyp[both], ref[both]), 1)
    mapping = _best_map(co)
    mapped = np.array([mapping.get(int(h), -2) if h >= 0 else -1 for h in hyp])
    missed = scored & (ref >= 0) & (hyp < 0)
    false_alarm = scored & (ref < 0) & (hyp >= 0)
    confusion = both & (mapped != ref)
    return DiarizationError(
        scored_s=float((scored & (ref >= 0)).sum() * STEP),
        missed_s=float(missed.sum() * STEP),
        false_alarm_s=float(false_alarm.sum() * STEP),
        confusion_s=float(confusion.sum() * STEP),
        speakers_ref=len(ref_names),
        speakers_hyp=len(hyp_names),
    )
