"""Search, media info and site captions on the local runtime: the real template, gateway routes
and state machine (SiteCaptionsFirst / DownloadRefused / SiteCaptionsFallback branches)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SpeechClip
from tests.servers import LoopbackServer, loopback_server
from tests.sites import add_site
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ytdlp"
CLI = [sys.executable, "-m", "ytcaption_local.cli"]


@pytest.fixture(scope="module")
def site(short_clip: SpeechClip) -> Iterator[tuple[LoopbackServer, dict[str, str]]]:
    with loopback_server() as srv:
        pages = add_site(srv, short_clip.encode(".mp3").read_bytes())
        # the same pages, but the site refuses the audio (as YouTube does to cloud addresses)
        srv.serve("/blocked/talk.mp3", b"Forbidden", "text/plain", status=403)
        for name in ("english", "bare"):
            srv.routes[f"/blocked/{name}.html"] = srv.routes[f"/site/{name}.html"]
            srv.routes["/blocked/en.vtt"] = srv.routes["/site/en.vtt"]
        pages.update({f"blocked_{n}": srv.url(f"/blocked/{n}.html") for n in ("english", "bare")})
        yield srv, pages


def states(runtime: LocalRuntime, job: dict[str, Any]) -> list[str]:
    """The states the job's execution entered, in order (once it has ended)."""
    import time

    sfn = runtime.client("stepfunctions")
    deadline = time.monotonic() + 60
    while sfn.describe_execution(executionArn=job["execution_arn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still running"
        time.sleep(0.2)
    events = sfn.get_execution_history(
        executionArn=job["execution_arn"], maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def test_prefer_completes_from_the_sites_captions_without_transcribing(
        runtime: LocalRuntime, client: Client, site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    job = client.submit_url(pages["captioned"], {"language": "en", "site_captions": "prefer", "formats": ["srt"]})
    done = client.wait(job["job_id"], poll_s=0.3, timeout_s=120)
    assert done["status"] == "COMPLETED", done.get("error")
    assert done["transcript_source"] == "site_captions"
    assert states(runtime, done) == ["Intake", "Route", "SiteCaptionsFirst", "SiteCaptionsFound", "Notify", "Done"]
    body = json.loads(client.result(job["job_id"], "json"))
    assert body["source"] == "site_captions" and body["segments"][0]["text"] == "Captions made by people."
    assert b"Captions made by people." in client.result(job["job_id"], "srt")


def test_prefer_without_captions_in_the_language_transcribes(
        runtime: LocalRuntime, client: Client, site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    job = client.submit_url(pages["bare"], {"site_captions": "prefer", "formats": ["txt"], "fresh": True})
    done = client.wait(job["job_id"], poll_s=0.3, timeout_s=180)
    assert done["status"] == "COMPLETED", done.get("error")
    assert done["transcript_source"] == "transcription"
    visited = states(runtime, done)
    assert visited[:5] == ["Intake", "Route", "SiteCaptionsFirst", "SiteCaptionsFound", "Download"]
    assert "Transcribe" in visited and "Merge" in visited


def test_fallback_uses_the_sites_captions_when_the_audio_is_refused(
        runtime: LocalRuntime, client: Client, site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    job = client.submit_url(pages["blocked_english"], {"site_captions": "fallback", "formats": ["vtt"]})
    done = client.wait(job["job_id"], poll_s=0.3, timeout_s=120)
    assert done["status"] == "COMPLETED", done.get("error")
    assert done["transcript_source"] == "site_captions"
    assert states(runtime, done) == ["Intake", "Route", "Download", "DownloadRefused", "SiteCaptionsFallback", "Notify", "Done"]
    assert [i[2] for i in runtime.invocations if i[0] == "DownloadFunction" and i[1] == job["job_id"]] == [
        "SourceBlocked"]  # a refusal is not retried
    assert b"Captions made by people." in client.result(job["job_id"], "vtt")


def test_refused_audio_without_fallback_fails_source_blocked(
        runtime: LocalRuntime, client: Client, site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    for options, expected in (({}, ["Intake", "Route", "Download", "DownloadRefused", "MarkFailed", "Failed"]),
                              ({"site_captions": "fallback"},
                               ["Intake", "Route", "Download", "DownloadRefused", "SiteCaptionsFallback", "MarkFailed",
                                "Failed"])):
        job = client.submit_url(pages["blocked_bare"], {**options, "fresh": True})
        done = client.wait(job["job_id"], poll_s=0.3, timeout_s=120)
        assert done["status"] == "FAILED" and done["error"]["code"] == "SOURCE_BLOCKED"
        assert "YTDLP__PROXY_SECRET_ARN" in done["error"]["message"]
        assert states(runtime, done) == expected
    assert "no captions in the requested language" in done["error"]["message"]


@pytest.fixture
def youtube_api(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from yt_dlp.extractor.youtube._base import YoutubeBaseInfoExtractor

    calls: list[str] = []

    def call_api(self: Any, ep: str, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(str(query.get("query")))
        return json.loads((FIXTURES / "search_videos.innertube.json").read_text())

    monkeypatch.setattr(YoutubeBaseInfoExtractor, "_call_api", call_api)
    return calls


def test_search_and_info_are_served_by_the_media_api_function(
        runtime: LocalRuntime, client: Client, youtube_api: list[str],
        site: tuple[LoopbackServer, dict[str, str]]) -> None:
    before = len(runtime.api_calls)
    doc = client.json("GET", "/v1/search", query={"q": "e2e captions", "limit": "3"})
    assert [i["id"] for i in doc["items"]] == ["dQw4w9WgXcQ", "9bZkp7q19f0", "kJQP7kiw5Fk"]
    info = client.json("GET", "/v1/media", query={"url": site[1]["english"]})
    assert info["accepted"] is True and [c["language"] for c in info["captions"]["manual"]] == ["en"]
    assert runtime.api_calls[before:] == [("MediaApiFunction", "GET", "/v1/search"),
                                          ("MediaApiFunction", "GET", "/v1/media")]
    spec = client.json("GET", "/v1/openapi.json")
    assert {"/v1/search", "/v1/media"} <= set(spec["paths"])
    assert "site_captions" in json.dumps(spec["components"])


def test_cli_search_table_and_info(runtime: LocalRuntime, youtube_api: list[str],
                                   site: tuple[LoopbackServer, dict[str, str]]) -> None:
    api = ["--api", runtime.api_url, "--api-key", runtime.api_key]
    out = subprocess.run([*CLI, "search", "cli captions", "--limit", "2", *api], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:6] == ["#", "ID", "LENGTH", "VIEWS", "DATE", "CHANNEL"]
    assert lines[1].split()[:4] == ["1", "dQw4w9WgXcQ", "3:32", "1.2M"]
    assert "Intro to closed captions" in lines[1] and "10:01" in lines[2]
    info = subprocess.run([*CLI, "info", site[1]["captioned"], *api], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "people-made: en, de" in info.stdout and "accepted:  yes" in info.stdout
