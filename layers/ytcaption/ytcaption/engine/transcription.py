"""faster-whisper behind a small protocol, and where model weights come from.

Device and compute type come from settings: ``auto`` picks CUDA float16 when a
GPU is visible (the Batch image) and CPU int8 otherwise. Where weights come
from (the image, offline packages with their hash checked) is
:mod:`ytcaption.engine.model_store`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ytcaption.domain.captions import Segment, SegmentStats, Word
from ytcaption.domain.catalogue import KNOWN_MODELS
from ytcaption.domain.errors import ModelUnavailable, TranscriptionFailed
from ytcaption.domain.jobs import JobOptions
from ytcaption.engine.language_id import LanguageGuess
from ytcaption.engine.model_store import resolve_model
from ytcaption.settings import WhisperSettings

__all__ = ["ChunkTranscript", "Transcriber", "WhisperTranscriber", "choose_device", "choose_streams", "load_model",
           "resolve_model"]

@dataclass
class ChunkTranscript:
    """One window's decode; times are relative to the window's first sample.

    ``no_speech_prob`` and ``avg_logprob`` are Whisper's own confidence for the
    window; the fidelity guard reads them to drop text made up from non-speech.
    """

    segments: list[Segment]
    language: str | None
    language_probability: float | None
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0


class Transcriber(Protocol):
    """What the engine needs of a speech model (faster-whisper, or a test fake)."""

    def transcribe_batch(
        self, windows: Sequence[np.ndarray], options: JobOptions, *,
        language: str | Sequence[str | None] | None = None,
        contexts: Sequence[Sequence[Segment] | None] | None = None,
    ) -> list[ChunkTranscript]:
        """Decode several windows (each at most 30 s) in one batched pass.

        ``language`` is one for all windows or one per window (None: detect it).

        ``contexts[i]`` are the segments that came before window ``i`` (they
        condition the decode the way Whisper conditions a window on the ones
        before it); they follow the user's prompt.
        """
        ...

    def transcribe(
        self, samples: np.ndarray, options: JobOptions, *, language: str | None = None
    ) -> ChunkTranscript:
        """Decode one window thoroughly: seek loop and temperature fallback (the guard's last resort)."""
        ...


def choose_device(settings: WhisperSettings) -> tuple[str, str]:
    device = settings.device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute = settings.compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "int8"
    return device, compute


def choose_streams(settings: WhisperSettings) -> int:
    """How many streams of chunks a shard is decoded in side by side (``WhisperSettings.streams``)."""
    if settings.streams > 0:
        return settings.streams
    return max(1, settings.batch_size) if choose_device(settings)[0] == "cuda" else 1


_models: dict[tuple[Any, ...], Any] = {}
_models_lock = threading.Lock()


def load_model(name: str, settings: WhisperSettings, *, num_workers: int = 1) -> Any:
    """Load (once per process) a faster-whisper model; concurrent calls share it."""
    from faster_whisper import WhisperModel

    path = resolve_model(name, settings)
    device, compute = choose_device(settings)
    key = (path, device, compute, settings.cpu_threads, num_workers)
    with _models_lock:
        if key not in _models:
            try:
                _models[key] = WhisperModel(
                    path,
                    device=device,
                    compute_type=compute,
                    cpu_threads=settings.cpu_threads,
                    num_workers=num_workers,
                    local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1",
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelUnavailable(f"model {name} could not be loaded on {device}: {exc}") from exc
        return _models[key]


#: Temperatures of the thorough decode (Whisper's fallback ladder).
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class WhisperTranscriber:
    """faster-whisper behind the engine's two calls.

    ``transcribe_batch`` runs the encoder and the beam search over many windows
    at once (CTranslate2 batches them: on a GPU this is what keeps it busy, on a
    CPU it uses the cores better than one window at a time) and keeps Whisper's
    timestamp tokens, so a window comes back as timed segments. It relies on
    faster-whisper internals (pinned: ``tests/unit/test_transcription.py``
    checks they are there). ``transcribe`` is faster-whisper's plain call on one
    window, with its seek loop and temperature fallback: slower, used by the
    fidelity guard when the batched decode of a window lost speech.
    """

    def __init__(self, model_name: str, settings: WhisperSettings, *, num_workers: int | None = None) -> None:
        self.settings = settings
        self.model_name = model_name
        self.model = load_model(model_name, settings, num_workers=num_workers or settings.num_workers)

    @property
    def multilingual(self) -> bool:
        """What the model was trained for (the catalogue), else what its tokenizer says."""
        card = KNOWN_MODELS.get(self.model_name)
        return card.multilingual if card is not None else bool(self.model.model.is_multilingual)

    def detect_language(self, samples: np.ndarray) -> LanguageGuess:
        """The spoken language of (the first 30 s of) ``samples``, from the model's language head."""
        if not self.multilingual:
            return LanguageGuess("en", 1.0, (("en", 1.0),))
        try:
            language, probability, probs = self.model.detect_language(audio=samples)
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionFailed(f"language detection failed: {exc}") from exc
        top = tuple((lang, round(float(p), 4)) for lang, p in sorted(probs, key=lambda lp: -lp[1])[:5])
        return LanguageGuess(language, round(float(probability), 4), top)

    def _language(self, options: JobOptions, language: str | None) -> str | None:
        if not self.multilingual:
            return "en"
        return language or (None if options.language == "auto" else options.language)

    def transcribe_batch(
        self, windows: Sequence[np.ndarray], options: JobOptions, *,
        language: str | Sequence[str | None] | None = None,
        contexts: Sequence[Sequence[Segment] | None] | None = None,
    ) -> list[ChunkTranscript]:
        if not windows:
            return []
        wanted = list(language) if language is not None and not isinstance(language, str) else \
            [language] * len(windows)
        try:
            return self._batch(windows, options, [self._language(options, w) for w in wanted],
                               contexts or [None] * len(windows))
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionFailed(f"transcription failed: {exc}") from exc

    def _batch(
        self, windows: Sequence[np.ndarray], options: JobOptions, wanted: Sequence[str | None],
        contexts: Sequence[Sequence[Segment] | None],
    ) -> list[ChunkTranscript]:
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        m = self.model
        features = np.stack([pad_or_trim(m.feature_extractor(w)[..., :-1]) for w in windows])
        encoded = m.encode(features)
        langs: list[tuple[str, float]] = [(w, 1.0) if w else ("", 0.0) for w in wanted]
        if any(w is None for w in wanted):  # detect from each window's own encoding
            detected = m.model.detect_language(encoded)
            langs = [known if known[0] else (d[0][0][2:-2], float(d[0][1])) for known, d in zip(langs, detected,
                                                                                              strict=True)]
        # One generate call per language, and apart for windows with and without
        # context: CTranslate2 wants the start-of-transcript token at one position
        # for the whole batch, so a window with no context would cut every other
        # window's context to nothing.
        groups: dict[tuple[str, bool], list[int]] = {}
        for i, (code, _) in enumerate(langs):
            groups.setdefault((code, bool(contexts[i])), []).append(i)
        decoded: dict[int, ChunkTranscript] = {}
        for (code, _), items in groups.items():
            tokenizer = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task=options.task, language=code)
            # every window of the group keeps the same number of context tokens
            # (the most recent ones), as many as the shortest context has
            user = tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
            before = [_context_tokens(tokenizer, contexts[i] or ()) for i in items]
            keep = min(min(len(b) for b in before), m.max_length // 2 - 1 - len(user))
            prompts = [m.get_prompt(tokenizer, user + (b[len(b) - keep :] if keep > 0 else []),
                                    without_timestamps=False) for b in before]
            sub = encoded if len(items) == len(windows) else _rows(encoded, items)
            results = m.model.generate(
                sub, prompts,
                beam_size=self.settings.beam_size, max_length=m.max_length,
                return_scores=True, return_no_speech_prob=True,
                suppress_blank=True, suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            )
            grouped: list[list[dict[str, Any]]] = []
            sizes = []
            for i, result in zip(items, results, strict=True):
                tokens = result.sequences_ids[0]
                duration = len(windows[i]) / 16000
                size = int(np.ceil(duration) * m.frames_per_second)
                sizes.append(size)
                parts, _, _ = m._split_segments_by_timestamps(
                    tokenizer=tokenizer, tokens=tokens, time_offset=0.0, segment_size=size,
                    segment_duration=duration, seek=0,
                )
                grouped.append([{**p, "text": tokenizer.decode(p["tokens"])} for p in parts])
                logprob = result.scores[0] * (len(tokens) ** 1.0) / (len(tokens) + 1)
                decoded[i] = ChunkTranscript([], code, round(langs[i][1], 4),
                                             no_speech_prob=round(float(result.no_speech_prob), 4),
                                             avg_logprob=round(float(logprob), 4))
            if options.word_timestamps:
                m.add_word_timestamps(grouped, tokenizer, sub, sizes, "\"'“¿([{-",
                                      "\"'.。,，!！?？:：”)]}、", 0.0)
            for i, parts in zip(items, grouped, strict=True):
                duration = len(windows[i]) / 16000
                window = decoded[i]
                decoded[i].segments = [
                    _segment(p["start"], min(p["end"], duration), p["text"], p.get("words"),
                             SegmentStats(seek=int(p["seek"]), tokens=list(p["tokens"]), temperature=0.0,
                                          avg_logprob=window.avg_logprob, no_speech_prob=window.no_speech_prob,
                                          compression_ratio=get_compression_ratio(p["text"].strip())))
                    for p in parts
                    if p["text"].strip()
                ]
        return [decoded[i] for i in range(len(windows))]

    def transcribe(
        self, samples: np.ndarray, options: JobOptions, *, language: str | None = None
    ) -> ChunkTranscript:
        lang = self._language(options, language)
        try:
            segments, info = self.model.transcribe(
                samples,
                language=lang,
                task=options.task,
                beam_size=self.settings.beam_size,
                initial_prompt=options.initial_prompt,
                word_timestamps=options.word_timestamps,
                vad_filter=False,  # the engine has found the speech already
                condition_on_previous_text=False,
                temperature=list(FALLBACK_TEMPERATURES),
            )
            raw = list(segments)
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionFailed(f"transcription failed: {exc}") from exc
        out = [_segment(s.start, s.end, s.text, [w._asdict() for w in s.words or []],
                        SegmentStats(seek=int(s.seek), tokens=list(s.tokens), temperature=float(s.temperature),
                                     avg_logprob=float(s.avg_logprob), compression_ratio=float(s.compression_ratio),
                                     no_speech_prob=float(s.no_speech_prob)))
               for s in raw if s.text.strip()]
        worst = max((s.no_speech_prob for s in raw), default=0.0)
        logprob = min((s.avg_logprob for s in raw), default=0.0)
        return ChunkTranscript(out, info.language, round(float(info.language_probability), 4),
                               no_speech_prob=round(float(worst), 4), avg_logprob=round(float(logprob), 4))


def _context_tokens(tokenizer: Any, segments: Sequence[Segment]) -> list[int]:
    """The tokens Whisper conditions a window on: the earlier segments' own, timestamps included.

    Whisper's previous-text prompt keeps the timestamp tokens it wrote; given
    the bare text instead, it drifts into writing a whole window as one
    segment (measured: 21 segments of 23-27 s on a 12-minute case, against
    none for plain ``transcribe``). A segment without tokens (another model's,
    or a test's) gives its text.
    """
    out: list[int] = []
    for s in segments:
        tokens = s.stats.tokens if s.stats is not None else []
        out += tokens if tokens else tokenizer.encode(" " + s.text.strip())
    return out


def _rows(encoded: Any, items: Sequence[int]) -> Any:
    """Some rows of an encoder output (a CTranslate2 StorageView), on the device it lives on."""
    import ctranslate2

    if encoded.device == "cpu":
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.array(encoded)[list(items)]))
    host = np.array(encoded.to_device(ctranslate2.Device.cpu))
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(host[list(items)])).to_device(
        ctranslate2.Device.cuda)


def _segment(start: float, end: float, text: str, words: list[dict[str, Any]] | None,
             stats: SegmentStats | None = None) -> Segment:
    return Segment(
        start=round(float(start), 3),
        end=round(float(max(end, start)), 3),
        text=text.strip(),
        words=[Word(start=round(float(w["start"]), 3), end=round(float(w["end"]), 3), word=w["word"],
                    probability=round(float(w["probability"]), 4)) for w in (words or [])],
        stats=stats,
    )
