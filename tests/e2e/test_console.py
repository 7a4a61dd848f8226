"""The local web console in headless Chromium (Debian's chromium driven by playwright):
submit a file, watch it complete, check the state machine's colours and the captions."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SpeechClip
from tests.evaluation import wer
from ytcaption_local.console import state_colours
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(os.environ.get("YTCAPTION_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))
SUCCEEDED = "#b7e4a8"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_console_static_files_are_served_without_a_key_and_its_views_need_one(runtime: LocalRuntime) -> None:
    with urllib.request.urlopen(f"{runtime.api_url}/console/") as resp:
        assert resp.status == 200 and b"app.js" in resp.read()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{runtime.api_url}/console/api/asl")
    assert err.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{runtime.api_url}/console/../template.yaml")
    assert err.value.code == 404


def test_state_colours_follow_the_history() -> None:
    events = [
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Download"}},
        {"type": "TaskFailed"},
        {"type": "TaskStateExited", "stateExitedEventDetails": {"name": "Download"}},
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "MarkFailed"}},
        {"type": "TaskStateExited", "stateExitedEventDetails": {"name": "MarkFailed"}},
        {"type": "FailStateEntered", "stateEnteredEventDetails": {"name": "Failed"}},
    ]
    assert state_colours(events, "FAILED") == {"Download": "caught", "MarkFailed": "succeeded", "Failed": "failed"}
    assert state_colours(events[:1], "RUNNING") == {"Download": "running"}
    assert state_colours(events[:1], "TIMED_OUT") == {"Download": "failed"}


def test_submit_a_file_watch_it_complete_and_follow_the_captions(
        runtime: LocalRuntime, browser: Any, short_clip: SpeechClip) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Given the console opened with the key from `ytcaption local serve`
    page.goto(f"{runtime.api_url}/console#key={runtime.api_key}")
    page.wait_for_selector("#submit-form")
    # When a file is submitted
    page.set_input_files("#submit-form input[type=file]", str(short_clip.encode(".m4a", name="console-talk")))
    page.click("#submit-form button[type=submit]")
    page.wait_for_url("**/console/#/job/*")
    job_id = page.url.rsplit("/", 1)[-1]
    # Then the job page follows it to COMPLETED
    page.wait_for_function("document.querySelector('#job-status')?.textContent === 'COMPLETED'", timeout=240_000)
    job = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{runtime.api_url}/v1/transcriptions/{job_id}", headers={"X-Api-Key": runtime.api_key})).read())
    assert job["status"] == "COMPLETED"

    # the state machine, coloured from the execution's history: an upload skips Download
    page.wait_for_function("document.querySelector('#graph')?.dataset.execution === 'SUCCEEDED'", timeout=30_000)
    status = page.eval_on_selector_all(
        "rect[data-state]", "els => Object.fromEntries(els.map(e => [e.dataset.state, [e.dataset.status, e.getAttribute('fill')]]))")
    for state in ("Intake", "Route", "Normalize", "Transcribe", "TranscribeShard", "Merge", "Notify", "Done"):
        assert status[state] == ["succeeded", SUCCEEDED], (state, status[state])
    for state in ("Download", "CreateJob", "MarkFailed", "Failed", "Cancelled"):
        assert status[state][0] == "none", (state, status[state])

    # the chunk grid: every chunk done; the stage timeline has every stage the job went through
    page.wait_for_function(f"document.querySelectorAll('#chunks div.done').length === {job['chunks']['total']}")
    stages = page.eval_on_selector_all(".timeline .bar", "els => els.map(e => e.dataset.stage)")
    assert stages == ["queued", "normalize", "transcribe", "merge"]
    assert page.inner_text("#job-cost").startswith("$")
    assert "null" not in page.inner_text("#job-head")

    # captions beside the audio: the text is what was said, and the cue being spoken is highlighted
    page.wait_for_selector(".cue")
    cues = page.eval_on_selector_all(".cue", "els => els.map(e => [e.dataset.start, e.innerText])")
    text = " ".join(t.split("\n", 1)[-1] if "\n" in t else t.split(" ", 3)[-1] for _, t in cues)
    assert wer(short_clip.text, text) <= 0.2, text
    page.wait_for_function("document.querySelector('#audio').readyState >= 1")
    last = len(cues) - 1
    page.eval_on_selector("#audio", f"a => {{ a.currentTime = {float(cues[last][0]) + 0.2}; }}")
    page.wait_for_selector(f".cue.active[data-index='{last}']")
    assert page.eval_on_selector_all(".cue.active", "els => els.length") == 1
    formats = page.eval_on_selector_all(".downloads button", "els => els.map(e => e.dataset.format)")
    assert set(formats) == {"json", "srt", "vtt", "txt"}
    with page.expect_download() as dl:
        page.click(".downloads button[data-format=srt]")
    assert "-->" in Path(dl.value.path()).read_text()

    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "console-job.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []
    page.close()
