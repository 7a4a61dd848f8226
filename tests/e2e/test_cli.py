"""The ``ytcaption`` command line: the README's demo, and errors with their codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.evaluation import wer
from tests.servers import LoopbackServer
from tests.subtitles import parse_srt
from ytcaption_local.runtime import LocalRuntime
from ytcaption_local.template import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLI = [sys.executable, "-m", "ytcaption_local.cli"]


def test_demo_transcribes_the_bundled_sample_on_the_embedded_runtime(tmp_path: Path) -> None:
    out = subprocess.run([*CLI, "transcribe", str(ROOT / "samples" / "sample.mp3"), "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    written = [Path(p) for p in out.stdout.split()]
    assert {p.suffix for p in written} == {".json", ".srt", ".vtt", ".txt"}
    assert all(p.exists() and p.parent == tmp_path for p in written)
    srt = (tmp_path / "sample.srt").read_text()
    text = " ".join(" ".join(c.lines) for c in parse_srt(srt))
    assert wer((ROOT / "samples" / "sample.txt").read_text(), text) <= 0.15
    assert "completed" in out.stderr


def test_failed_job_exits_non_zero_with_its_code(runtime: LocalRuntime, media_server: LoopbackServer,
                                                  tmp_path: Path) -> None:
    out = subprocess.run([*CLI, "transcribe", media_server.url("/nothing-here.mp3"), "--api", runtime.api_url, "--api-key", runtime.api_key,
                          "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "error: SOURCE_NOT_FOUND" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_option_is_refused_by_the_api(runtime: LocalRuntime, media_server: LoopbackServer) -> None:
    out = subprocess.run([*CLI, "transcribe", media_server.url("/talk.mp3"), "--api", runtime.api_url, "--api-key", runtime.api_key,
                          "--model", "whisper-9000"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "error: MODEL_UNAVAILABLE" in out.stderr
    assert "available models: tiny.en, base" in out.stderr


def test_status_list_and_result_commands(runtime: LocalRuntime, media_server: LoopbackServer) -> None:
    from ytcaption_local.cli import Client

    client = Client(runtime.api_url, api_key=runtime.api_key)
    job = client.submit_url(media_server.url("/talk.mp3"), {"formats": ["txt"]})
    client.wait(job["job_id"])
    listed = subprocess.run([*CLI, "list", "--api", runtime.api_url, "--api-key", runtime.api_key, "--status", "COMPLETED"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and job["job_id"] in listed.stdout
    result = subprocess.run([*CLI, "result", job["job_id"], "--format", "txt", "--api", runtime.api_url, "--api-key", runtime.api_key],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "captions make a video" in result.stdout.lower()
    cancel = subprocess.run([*CLI, "cancel", job["job_id"], "--api", runtime.api_url, "--api-key", runtime.api_key],
                            capture_output=True, text=True, timeout=60)
    assert cancel.returncode == 1 and "JOB_ALREADY_FINISHED" in cancel.stderr
