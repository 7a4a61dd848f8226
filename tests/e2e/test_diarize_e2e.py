"""Speaker labels end to end on the local runtime: the CLI with --diarize, and a plain S3
upload whose metadata asks for them; a generated three-voice recording, the real speaker
model (``make speaker-model``), tiny.en."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ytcaption.engine.diarization import default_model_path
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("flite")),
                                 reason="needs espeak-ng and flite (make test installs them)")]
CLI = [sys.executable, "-m", "ytcaption_local.cli"]
LABELS = ["SPEAKER_1", "SPEAKER_2", "SPEAKER_3"]


@pytest.fixture(scope="module")
def three_voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 70 s: three voices (espeak scotland, flite rms, flite awb) taking turns."""
    from tests.media.corpus import VOICES, Builder, sentences
    from tests.media.speech import encode

    assert default_model_path().exists(), "the speaker model is missing: make speaker-model (make test builds it)"
    tmp = tmp_path_factory.mktemp("three")
    rng = random.Random(11)  # noqa: S311 - test media
    voices = [VOICES[2], VOICES[3], VOICES[5]]
    order = [0, 0, 1, 1, 2, 0, 2, 1, 0, 2, 1, 2]
    b = Builder(tmp)
    for s, v in zip(sentences(len(order), 11), order, strict=True):
        b.speak(s, voices[v])
        b.pause(rng.uniform(0.4, 0.8))
    return encode(b.build("three", "three voices").samples, 16000, tmp / "three.mp3")


def _assert_three_speakers(doc: dict[str, Any]) -> None:
    assert [s["label"] for s in doc["speakers"]] == LABELS
    assert all(s["speaking_time"] > 5 for s in doc["speakers"])
    assert {s["speaker"] for s in doc["segments"]} == set(LABELS)
    assert doc["segments"][0]["speaker"] == "SPEAKER_1"


def test_the_cli_labels_three_speakers_in_every_format(runtime: LocalRuntime, three_voices: Path,
                                                       tmp_path: Path) -> None:
    out = subprocess.run([*CLI, "transcribe", str(three_voices), "--api", runtime.api_url, "--api-key",
                          runtime.api_key, "--diarize", "--format", "json,vtt,srt,txt", "--output-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    _assert_three_speakers(json.loads((tmp_path / "three.json").read_text()))
    vtt = (tmp_path / "three.vtt").read_text()
    assert all(f"<v {label}>" in vtt for label in LABELS)
    srt = (tmp_path / "three.srt").read_text()
    txt = (tmp_path / "three.txt").read_text()
    for text in (srt, txt):
        assert all(f"{label}: " in text for label in LABELS)
    assert txt.startswith("SPEAKER_1: ")


def test_a_known_speaker_clip_uploaded_by_the_cli_names_that_voice(runtime: LocalRuntime, three_voices: Path,
                                                                    tmp_path: Path) -> None:
    """--known-speaker NAME=FILE: the clip goes up through POST /v1/speakers, the worker embeds it, and
    the merge names the matching cluster; a voice that is not in the recording is reported."""
    from tests.media.corpus import VOICES, say
    from tests.media.speech import encode

    line = "Hello, this is a short reference clip of my own voice, for the caption service."
    rita = encode(say(line, VOICES[3], tmp_path), 16000, tmp_path / "rita.mp3")  # the second voice heard
    sam = encode(say(line, VOICES[1], tmp_path), 16000, tmp_path / "sam.mp3")  # not in the recording
    out = subprocess.run([*CLI, "transcribe", str(three_voices), "--api", runtime.api_url, "--api-key",
                          runtime.api_key, "--diarize", "--known-speaker", f"Rita={rita}", "--known-speaker",
                          f"Sam={sam}", "--format", "json,vtt", "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "three.json").read_text())
    assert [s["label"] for s in doc["speakers"]] == ["SPEAKER_1", "Rita", "SPEAKER_3"]
    assert doc["unmatched_speakers"] == ["Sam"]
    assert "<v Rita>" in (tmp_path / "three.vtt").read_text()


def test_an_s3_upload_asks_for_speakers_in_its_metadata(runtime: LocalRuntime, client: Client,
                                                        three_voices: Path) -> None:
    key = "uploads/diarize/panel.mp3"
    runtime.client("s3").put_object(Bucket=runtime.outputs["BucketName"], Key=key, Body=three_voices.read_bytes(),
                                    Metadata={"diarize": "true", "formats": "json,vtt"})
    deadline, job_id = time.monotonic() + 60, None
    while job_id is None and time.monotonic() < deadline:
        for item in client.json("GET", "/v1/transcriptions", query={"limit": "50"})["items"]:
            if key in json.dumps(item.get("source") or {}):
                job_id = item["job_id"]
        time.sleep(0.5)
    assert job_id, "the upload started no job"
    done = client.wait(job_id, poll_s=0.3, timeout_s=600)
    assert done["status"] == "COMPLETED", done.get("error")
    assert done["options"]["diarize"] is True, json.dumps({k: done.get(k) for k in ("options", "source", "events")})[:1500]
    _assert_three_speakers(json.loads(client.result(job_id, "json")))
    assert "<v SPEAKER_3>" in client.result(job_id, "vtt").decode()
