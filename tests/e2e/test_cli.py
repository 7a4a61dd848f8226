"""The ``ytcaption`` command line: the README's demo, and errors with their codes."""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.evaluation import wer
from tests.servers import LoopbackServer
from tests.subtitles import parse_srt
from ytcaption_local.runtime import LocalRuntime
from ytcaption_local.template import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLI = [sys.executable, "-m", "ytcaption_local.cli"]
#: The console script pyproject installs: what a user runs.
YTCAPTION = str(Path(sys.executable).parent / "ytcaption")


def run_timed(argv: list[str], timeout: float) -> tuple[int, str, str, float]:
    """Run a command; return its exit code, stdout, stderr and the seconds from its last output to its exit."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = {proc.stdout: b"", proc.stderr: b""}
    sel = selectors.DefaultSelector()
    for stream in out:
        sel.register(stream, selectors.EVENT_READ)
    last, deadline = time.monotonic(), time.monotonic() + timeout
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            data = key.fileobj.read1(65536)  # type: ignore[union-attr]
            if not data:
                sel.unregister(key.fileobj)
                continue
            out[key.fileobj] += data  # type: ignore[index]
            last = time.monotonic()
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return code, out[proc.stdout].decode(), out[proc.stderr].decode(), time.monotonic() - last


def test_demo_transcribes_the_bundled_sample_on_the_embedded_runtime(tmp_path: Path) -> None:
    code, stdout, stderr, tail_s = run_timed(
        [YTCAPTION, "transcribe", str(ROOT / "samples" / "sample.mp3"), "--output-dir", str(tmp_path)], 300)
    assert code == 0, stderr
    written = [Path(p) for p in stdout.split()]
    assert {p.suffix for p in written} == {".json", ".srt", ".vtt", ".txt"}
    assert all(p.exists() and p.parent == tmp_path for p in written)
    srt = (tmp_path / "sample.srt").read_text()
    text = " ".join(" ".join(c.lines) for c in parse_srt(srt))
    assert wer((ROOT / "samples" / "sample.txt").read_text(), text) <= 0.15
    lines = stderr.splitlines()
    assert any(line.startswith("completed: ") for line in lines)
    # transcription shows its chunks, not one long "20%"
    counts = [tuple(map(int, line.rsplit("(", 1)[1].split()[0].split("/")))
              for line in lines if line.startswith("transcribing... ") and line.endswith(" chunks)")]
    assert counts, lines
    assert len({total for _, total in counts}) == 1 and counts == sorted(counts), counts  # done only grows
    # the pipeline's JSON log lines (warnings, if any) go to the file named at start, not between
    # the CLI's lines (tests/unit/test_cli_first_run.py shows a warning landing there)
    assert not [line for line in lines if line.lstrip().startswith("{")], stderr
    assert any("the pipeline's log: " in line for line in lines)
    # the shell prompt comes back right after the last line (it took 2-9 s before)
    assert tail_s < 1.5, tail_s


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
    # the URL `local serve` prints (with /v1) and the bare stage URL both work
    listed = subprocess.run([*CLI, "list", "--api", runtime.api_url + "/v1", "--api-key", runtime.api_key,
                             "--status", "COMPLETED"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and job["job_id"] in listed.stdout
    result = subprocess.run([*CLI, "result", job["job_id"], "--format", "txt", "--api", runtime.api_url, "--api-key", runtime.api_key],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "captions make a video" in result.stdout.lower()
    cancel = subprocess.run([*CLI, "cancel", job["job_id"], "--api", runtime.api_url, "--api-key", runtime.api_key],
                            capture_output=True, text=True, timeout=60)
    assert cancel.returncode == 1 and "JOB_ALREADY_FINISHED" in cancel.stderr


def test_a_refused_api_key_exits_2(runtime: LocalRuntime) -> None:
    out = subprocess.run([*CLI, "list", "--api", runtime.api_url + "/v1", "--api-key", "not-the-key-" * 3],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("error: INVALID_API_KEY") and "Traceback" not in out.stderr


def test_the_key_can_come_from_the_environment(runtime: LocalRuntime) -> None:
    import os

    env = {**os.environ, "YTCAPTION_API": runtime.api_url + "/v1", "YTCAPTION_API_KEY": runtime.api_key}
    out = subprocess.run([*CLI, "list", "--limit", "1"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
