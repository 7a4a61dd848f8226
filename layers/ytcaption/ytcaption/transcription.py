"""faster-whisper behind a small protocol, and where model weights come from.

Device and compute type come from settings: ``auto`` picks CUDA float16 when a
GPU is visible (the Batch image) and CPU int8 otherwise. Where weights come
from (the image, offline packages with their hash checked) is
:mod:`ytcaption.model_store`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ytcaption.captions import Segment, Word
from ytcaption.catalogue import KNOWN_MODELS
from ytcaption.errors import ModelUnavailable, TranscriptionFailed
from ytcaption.jobs import JobOptions
from ytcaption.language_id import LanguageGuess
from ytcaption.model_store import resolve_model
from ytcaption.settings import WhisperSettings

__all__ = ["ChunkTranscript", "Transcriber", "WhisperTranscriber", "choose_device", "load_model", "resolve_model"]

@dataclass
class ChunkTranscript:
    segments: list[Segment]
    language: str | None
    language_probability: float | None


class Transcriber(Protocol):
    def transcribe(
        self,
        samples: np.ndarray,
        options: JobOptions,
        *,
        language: str | None = None,
        context: str | None = None,
    ) -> ChunkTranscript: ...


def choose_device(settings: WhisperSettings) -> tuple[str, str]:
    device = settings.device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute = settings.compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "int8"
    return device, compute


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


class WhisperTranscriber:
    """Transcribes one chunk of 16 kHz mono audio; times are relative to the chunk."""

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

    def transcribe(
        self,
        samples: np.ndarray,
        options: JobOptions,
        *,
        language: str | None = None,
        context: str | None = None,
    ) -> ChunkTranscript:
        """``context`` is the previous chunk's text; it follows the user's prompt."""
        prompt = " ".join(p for p in (options.initial_prompt, context) if p) or None
        lang = language or (None if options.language == "auto" else options.language)
        if self.model_name.endswith(".en"):
            lang = "en"
        try:
            segments, info = self.model.transcribe(
                samples,
                language=lang,
                task=options.task,
                beam_size=self.settings.beam_size,
                initial_prompt=prompt,
                word_timestamps=options.word_timestamps,
                vad_filter=self.settings.vad_filter,
                condition_on_previous_text=True,
            )
            out = [
                Segment(
                    start=float(s.start),
                    end=float(s.end),
                    text=s.text.strip(),
                    words=[
                        Word(start=float(w.start), end=float(w.end), word=w.word,
                             probability=round(float(w.probability), 4))
                        for w in (s.words or [])
                    ],
                )
                for s in segments
                if s.text.strip()
            ]
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionFailed(f"transcription failed: {exc}") from exc
        return ChunkTranscript(out, info.language, round(float(info.language_probability), 4))
