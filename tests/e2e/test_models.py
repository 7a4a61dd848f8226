"""The model catalogue and worker failures on the local runtime (real template, state machine and worker)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SpeechClip
from ytcaption_local.cli import ApiError, Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e]
CLI = [sys.executable, "-m", "ytcaption_local.cli"]


def test_models_endpoint_and_cli_show_the_offline_models(runtime: LocalRuntime) -> None:
    out = subprocess.run([*CLI, "models", "--api", runtime.api_url, "--api-key", runtime.api_key, "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["object"] == "list"
    assert [(m["id"], m["source"], m["default"]) for m in doc["data"]] == [
        ("tiny.en", "package", True), ("base", "package", False)]
    table = subprocess.run([*CLI, "models"], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert rows == [["tiny.en", "package", "en", "transcribe", "yes"],
                    ["base", "package", "all", "(100)", "transcribe,translate"]]


def test_unknown_model_is_refused_in_under_a_second(client: Client) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ApiError) as exc:
        client.submit_url("http://127.0.0.1:9/talk.mp3", {"model": "small"})
    assert time.perf_counter() - t0 < 1.0
    assert (exc.value.status, exc.value.code) == (422, "MODEL_UNAVAILABLE")
    assert "available models: tiny.en, base" in exc.value.message


@pytest.fixture
def image_claims_small(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A deployer lists `small` in BakedModels but the worker image does not hold it."""
    from ytcaption import services

    monkeypatch.setenv("BAKED_MODELS", "small")
    services.reset()
    yield
    monkeypatch.undo()
    services.reset()


def test_a_worker_that_fails_permanently_fails_the_job_at_once_with_its_own_code(
    runtime: LocalRuntime, client: Client, short_clip: SpeechClip, image_claims_small: None
) -> None:
    # Given a model the catalogue offers but the worker cannot load
    t0 = time.perf_counter()
    job = client.submit_file(short_clip.encode(".mp3"), {"model": "small", "formats": ["txt"], "fresh": True})
    done = client.wait(job["job_id"], poll_s=0.2, timeout_s=60)
    elapsed = time.perf_counter() - t0
    # Then the job fails with the worker's own code and message, quickly
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "MODEL_UNAVAILABLE", done["error"]
    assert "small" in done["error"]["message"] and "no reason given" not in done["error"]["message"]
    assert done["events"][-1]["error"]["code"] == "MODEL_UNAVAILABLE"
    assert "worker_error" not in done  # internal bookkeeping stays internal
    print(f"permanent worker failure: FAILED {elapsed:.1f} s after submission")
    assert elapsed < 10.0, f"took {elapsed:.1f} s"
    # and nothing retried it: each shard's Batch job ran once (exit 65 -> EXIT)
    runs = [(shard, ok) for (j, shard, ok) in runtime.batch_runs if j == job["job_id"]]
    assert runs and all(not ok for _, ok in runs)
    assert len(runs) == len({shard for shard, _ in runs})
    scheduled = [e for e in _history(runtime, done) if e["type"] == "TaskScheduled"
                 and e["taskScheduledEventDetails"]["resourceType"] == "batch"]
    assert len(scheduled) == len(runs)  # the state machine did not retry a shard either


def _history(runtime: LocalRuntime, job: dict[str, Any]) -> list[dict[str, Any]]:
    sfn = runtime.client("stepfunctions")
    return list(sfn.get_execution_history(executionArn=job["execution_arn"], maxResults=1000)["events"])


@pytest.mark.slow
def test_cli_transcribes_spanish_offline_with_base_and_auto_language(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    from tests.languages import TEXT, speak
    from tests.media.speech import encode

    samples, rate = speak(TEXT["es"], "es", tmp_path, "es")
    media = encode(samples, rate, tmp_path / "spanish.mp3")
    out = subprocess.run([*CLI, "transcribe", str(media), "--api", runtime.api_url, "--api-key", runtime.api_key,
                          "--model", "base", "--language", "auto", "--format", "json,srt",
                          "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "out" / "spanish.json").read_text())
    assert doc["language"] == "es" and doc["model"] == "base"
    assert [s["language"] for s in doc["language_spans"]] == ["es"]
    assert {s["language"] for s in doc["segments"]} == {"es"}
    assert "language es" in out.stderr
