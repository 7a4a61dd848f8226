"""The site-captions stage on moto with a loopback site: prefer, fallback, and the download's
refusal that sends a job there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, SpeechClip
from tests.servers import LoopbackServer, loopback_server
from tests.sites import add_site
from tests.stages import Stages
from ytcaption.adapters import storage as keys
from ytcaption.adapters.table import Table
from ytcaption.domain.errors import SourceBlocked
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.settings import PipelineSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def site(short_clip: SpeechClip) -> Iterator[tuple[LoopbackServer, dict[str, str]]]:
    with loopback_server() as srv:
        pages = add_site(srv, short_clip.encode(".mp3").read_bytes(), audio_status=403)
        yield srv, pages


@pytest.fixture
def stages(moto_stack: dict[str, Any], tmp_path: Any) -> Stages:
    return Stages(PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "work"),
                                     allow_loopback_urls=True))


def url_job(repo: Table, url: str, **options: Any) -> Job:
    job = Job.new(source=Source(kind="url", url=url), options=JobOptions(**options), status=JobStatus.QUEUED,
                  ttl_days=1)
    repo.create(job)
    return job


def test_prefer_completes_the_job_from_people_made_captions(stages: Stages,
                                                            site: tuple[LoopbackServer, dict[str, str]]) -> None:
    srv, pages = site
    job = url_job(stages.repo, pages["captioned"], language="en", formats=["srt", "txt"], site_captions="prefer")
    out = stages.site_captions.run(job.job_id, "prefer")
    assert out == {"completed": True, "source": "site_captions"}
    done = stages.repo.get(job.job_id)
    assert done.status == JobStatus.COMPLETED and done.transcript_source == "site_captions"
    assert done.language == "en" and set(done.results) == {"json", "srt", "txt"}
    assert [e.status for e in done.events] == [JobStatus.QUEUED, JobStatus.DOWNLOADING, JobStatus.COMPLETED]
    doc = stages.storage.get_json(keys.result_key(job.job_id, "json"))
    assert doc["source"] == "site_captions" and doc["model"] is None
    assert [s["text"] for s in doc["segments"]] == ["Captions made by people.",
                                                    "They say what the speaker means."]
    srt = stages.storage.get_bytes(keys.result_key(job.job_id, "srt")).decode()
    # laid out by the same cue rules as every result (2 lines of <= 42 characters, 1-7 s)
    assert srt.startswith("1\n00:00:00,500 --> 00:00:06,000\nCaptions made by people.\n")
    assert ("GET", "/site/talk.mp3") not in srv.hits  # no audio, no GPU
    from ytcaption.domain.captions import Transcript, render

    rendered = render(Transcript.model_validate(doc), "vtt")  # as the API renders a format not asked for
    assert rendered.startswith("WEBVTT\nLanguage: en\n\nNOTE Converted from the site's own people-made captions")


def test_prefer_picks_the_requested_language(stages: Stages, site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    job = url_job(stages.repo, pages["captioned"], language="de", model="base", site_captions="prefer")
    assert stages.site_captions.run(job.job_id, "prefer")["completed"] is True
    doc = stages.storage.get_json(keys.result_key(job.job_id, "json"))
    assert doc["language"] == "de" and doc["segments"][0]["text"] == "Untertitel von Menschen."


def test_prefer_without_matching_captions_goes_on_to_download(stages: Stages,
                                                              site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    for page, language in (("english", "fr"), ("bare", "en")):
        model = "base" if language != "en" else "tiny.en"
        job = url_job(stages.repo, pages[page], language=language, model=model, site_captions="prefer")
        assert stages.site_captions.run(job.job_id, "prefer") == {"completed": False, "source": None}
        kept = stages.repo.get(job.job_id)
        assert kept.status == JobStatus.DOWNLOADING and not kept.results  # the Download state runs next


def test_refused_audio_download_is_source_blocked(stages: Stages,
                                                  site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    job = url_job(stages.repo, pages["english"], site_captions="fallback")
    with pytest.raises(SourceBlocked) as exc:
        stages.download.run(job.job_id)
    assert "HTTP 403" in exc.value.message and "YTDLP__PROXY_SECRET_ARN" in exc.value.message


def _refusal() -> dict[str, Any]:
    cause = {"errorMessage": "the site refused the download (HTTP 403)", "errorType": "SourceBlocked"}
    return {"Error": "SourceBlocked", "Cause": json.dumps(cause)}


def test_fallback_uses_the_sites_captions_when_the_download_was_refused(
        stages: Stages, site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    job = url_job(stages.repo, pages["english"], site_captions="fallback")
    stages.repo.transition(job.job_id, JobStatus.DOWNLOADING, message="downloading")
    assert stages.site_captions.run(job.job_id, "fallback", _refusal()) == {"completed": True,
                                                                          "source": "site_captions"}
    done = stages.repo.get(job.job_id)
    assert done.status == JobStatus.COMPLETED and done.transcript_source == "site_captions"
    assert "site's people-made captions (en)" in (done.events[-1].message or "")
    assert done.media and done.media.title and done.media.title.startswith("English talk")


def test_fallback_without_captions_fails_with_the_refusal(stages: Stages,
                                                          site: tuple[LoopbackServer, dict[str, str]]) -> None:
    _, pages = site
    job = url_job(stages.repo, pages["bare"], site_captions="fallback")
    with pytest.raises(SourceBlocked) as exc:
        stages.site_captions.run(job.job_id, "fallback", _refusal())
    assert "HTTP 403" in exc.value.message and "no captions in the requested language" in exc.value.message
    assert stages.repo.get(job.job_id).status == JobStatus.DOWNLOADING  # MarkFailed records the failure


def test_a_prefer_result_is_reused_but_not_by_a_transcription_request(
        stages: Stages, site: tuple[LoopbackServer, dict[str, str]]) -> None:
    from ytcaption.adapters.result_cache import cache_key

    opts = JobOptions(language="en", site_captions="prefer")
    assert cache_key("youtube:x", opts) != cache_key("youtube:x", JobOptions(language="en"))
    assert cache_key("youtube:x", JobOptions(language="en", site_captions="never")) == cache_key(
        "youtube:x", JobOptions(language="en"))


def test_downloads_go_through_the_configured_proxy(moto_stack: dict[str, Any], tmp_path: Any,
                                                   short_clip: SpeechClip) -> None:
    from tests.sites import counting_proxy
    from ytcaption.media.ytdlp import YtdlpSettings

    with loopback_server() as srv, counting_proxy() as proxy:
        url = srv.serve("/talk.mp3", short_clip.encode(".mp3").read_bytes(), "audio/mpeg")
        stages = Stages(PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "w"),
                                             allow_loopback_urls=True, ytdlp=YtdlpSettings(proxy_url=proxy.url)))
        job = url_job(stages.repo, url)
        out = stages.download.run(job.job_id)
        assert out["duration_s"] and out["duration_s"] > 1
        assert proxy.requests and set(proxy.requests) == {url}  # every request went through the proxy
        assert len(srv.hits) == len(proxy.requests)
