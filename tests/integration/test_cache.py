"""The result cache: same source and options reuse a completed result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, ApiClient, SpeechClip
from ytcaption.adapters.result_cache import ResultCache, extracted_source_id, youtube_id
from ytcaption.adapters.storage import Storage, result_key
from ytcaption.adapters.table import Table
from ytcaption.domain.jobs import JobStatus, MediaInfo

pytestmark = pytest.mark.integration
VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


@pytest.mark.parametrize(("url", "vid"), [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42", "dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ?si=x", "dQw4w9WgXcQ"),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/watch?v=short", None),
    ("https://vimeo.com/123456", None),
    ("https://evil.example/watch?v=dQw4w9WgXcQ", None),
])
def test_youtube_ids(url: str, vid: str | None) -> None:
    assert youtube_id(url) == vid


def executions(stack: dict[str, Any]) -> list[dict[str, Any]]:
    return list(stack["sfn"].list_executions(stateMachineArn=stack["state_machine_arn"])["executions"])


def complete(stack: dict[str, Any], job_id: str) -> None:
    repo = Table(TABLE, stack["dynamodb"])
    doc = {"language": "en", "segments": [{"start": 0, "end": 1.5, "text": "Never gonna give you up.", "words": []}]}
    stack["s3"].put_object(Bucket=BUCKET, Key=result_key(job_id, "json"), Body=json.dumps(doc).encode())
    for s in ("DOWNLOADING", "NORMALIZING", "TRANSCRIBING", "MERGING"):
        repo.transition(job_id, JobStatus(s))
    done = repo.transition(job_id, JobStatus.COMPLETED, fields={"results": {"json": result_key(job_id, "json")},
                                                                 "language": "en"})
    cache = ResultCache(repo, Storage(BUCKET, stack["s3"]))
    for key in done.cache_keys:
        cache.remember(key, done)


def test_same_video_same_options_reuses_the_result(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    _, _, first = api("POST", "/v1/transcriptions", {"url": VIDEO, "language": "en"})
    complete(moto_stack, first["job_id"])
    status, _, second = api("POST", "/v1/transcriptions", {"url": "https://youtu.be/dQw4w9WgXcQ", "language": "en",
                                                           "formats": ["srt"]})
    assert status == 202 and second["status"] == "COMPLETED"
    assert second["job_id"] != first["job_id"]
    _, _, doc = api("GET", f"/v1/transcriptions/{second['job_id']}")
    assert doc["reused_from"] == first["job_id"] and doc["execution_arn"] is None
    assert "reused the result" in doc["events"][-1]["message"]
    status, _, srt = api("GET", f"/v1/transcriptions/{second['job_id']}/result", query={"format": "srt"})
    assert status == 200 and "Never gonna give you up." in srt
    assert len(executions(moto_stack)) == 1  # nothing ran again


def test_fresh_or_other_options_run_again(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    _, _, first = api("POST", "/v1/transcriptions", {"url": VIDEO})
    complete(moto_stack, first["job_id"])
    _, _, fresh = api("POST", "/v1/transcriptions", {"url": VIDEO, "fresh": True})
    _, _, other = api("POST", "/v1/transcriptions", {"url": VIDEO, "model": "base"})
    assert fresh["status"] == other["status"] == "QUEUED"
    assert len(executions(moto_stack)) == 3


# --- poisoning: the key is what yt-dlp downloaded, and a good entry is never replaced ---------------

A_ID, B_ID = "AAAAAAAAAAA", "BBBBBBBBBBB"


@pytest.mark.parametrize("url", [
    f"https://www.youtube.com/watch?v={A_ID}&v={B_ID}",        # two ids: which one is downloaded?
    f"https://www.youtube.com/watch?%76={A_ID}&v={B_ID}",      # an encoded key we would decode
    f"https://www.youtube.com/watch?V={A_ID}",                 # not the parameter yt-dlp reads
    f"https://www.youtube.com/watch?x=1;v={A_ID}",             # ';' separators
    f"https://www.youtube.com/watch?feature=share#v={B_ID}",   # an id in the fragment
    f"https://www.youtube.com/watch?v={A_ID}#v={B_ID}",
    f"https://www.youtube.com/shorts/%41{A_ID[1:]}",            # an encoded path
])
def test_ambiguous_urls_have_no_cache_id(url: str) -> None:
    assert youtube_id(url) is None


@pytest.mark.parametrize("url", [
    VIDEO, f"{VIDEO}&t=42", f"https://www.youtube.com/watch?feature=share&v={A_ID}",
    f"https://youtu.be/{A_ID}?si=x", f"https://www.youtube.com/shorts/{A_ID}",
    f"https://youtu.be/{A_ID}?v={B_ID}", f"https://www.youtube.com/embed/{A_ID}?v={B_ID}",  # the path wins
    f"https://www.youtube.com/live/{A_ID}?v={B_ID}", f"https://music.youtube.com/watch?v={A_ID}",
])
def test_the_ids_we_accept_are_the_ids_yt_dlp_extracts(url: str) -> None:
    """Lookups use our parser (the API has no yt-dlp); it must agree with yt-dlp's own."""
    from yt_dlp.extractor.youtube import YoutubeIE

    assert YoutubeIE.suitable(url) and youtube_id(url) == YoutubeIE._match_id(url)


def test_extracted_ids() -> None:
    assert extracted_source_id({"id": A_ID, "extractor_key": "Youtube"}) == f"youtube:{A_ID}"
    assert extracted_source_id({"id": "talk", "extractor_key": "Generic"}) is None
    assert extracted_source_id({"id": "../x", "extractor_key": "Youtube"}) is None


def run_download(moto_stack: dict[str, Any], tmp_path: Path, job_id: str, downloaded_id: str | None,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The download stage, with yt-dlp's answer fixed to ``downloaded_id`` (YouTube is not
    reachable offline; the real yt-dlp path is covered below and in test_download)."""
    from tests.stages import Stages
    from ytcaption.media import download as dl
    from ytcaption.settings import PipelineSettings

    def fake(url: str, work: Any, **_: Any) -> dl.Downloaded:
        Path(work).mkdir(parents=True, exist_ok=True)
        path = Path(work) / "source.m4a"
        path.write_bytes(b"audio")
        return dl.Downloaded(path, MediaInfo(title="t", size_bytes=5), downloaded_id)

    monkeypatch.setattr(dl, "fetch_media", fake)
    Stages(PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path))).download.run(job_id)


def test_an_ambiguous_url_caches_the_video_yt_dlp_downloaded(api: ApiClient, moto_stack: dict[str, Any],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a URL our parser reads as A while yt-dlp downloads B
    _, _, first = api("POST", "/v1/transcriptions", {"url": f"https://www.youtube.com/watch?v={A_ID}&v={B_ID}"})
    assert first["status"] == "QUEUED"
    run_download(moto_stack, tmp_path, first["job_id"], f"youtube:{B_ID}", monkeypatch)
    complete(moto_stack, first["job_id"])
    # When A and B are asked for, Then only B reuses that transcript
    _, _, a = api("POST", "/v1/transcriptions", {"url": f"https://www.youtube.com/watch?v={A_ID}"})
    _, _, b = api("POST", "/v1/transcriptions", {"url": f"https://youtu.be/{B_ID}"})
    assert a["status"] == "QUEUED"
    assert b["status"] == "COMPLETED"
    _, _, doc = api("GET", f"/v1/transcriptions/{b['job_id']}")
    assert doc["reused_from"] == first["job_id"]


def test_a_url_that_turns_out_not_to_be_youtube_is_not_cached(api: ApiClient, moto_stack: dict[str, Any],
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, first = api("POST", "/v1/transcriptions", {"url": VIDEO})
    run_download(moto_stack, tmp_path, first["job_id"], None, monkeypatch)
    complete(moto_stack, first["job_id"])
    _, _, again = api("POST", "/v1/transcriptions", {"url": VIDEO})
    assert again["status"] == "QUEUED"


def test_a_fresh_run_does_not_replace_a_good_entry(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    _, _, first = api("POST", "/v1/transcriptions", {"url": VIDEO})
    complete(moto_stack, first["job_id"])
    _, _, fresh = api("POST", "/v1/transcriptions", {"url": VIDEO, "fresh": True})
    complete(moto_stack, fresh["job_id"])
    _, _, third = api("POST", "/v1/transcriptions", {"url": VIDEO})
    _, _, doc = api("GET", f"/v1/transcriptions/{third['job_id']}")
    assert doc["reused_from"] == first["job_id"]


def test_an_entry_whose_result_is_gone_is_replaced(api: ApiClient, moto_stack: dict[str, Any]) -> None:
    _, _, first = api("POST", "/v1/transcriptions", {"url": VIDEO})
    complete(moto_stack, first["job_id"])
    moto_stack["s3"].delete_object(Bucket=BUCKET, Key=result_key(first["job_id"], "json"))
    _, _, second = api("POST", "/v1/transcriptions", {"url": VIDEO})
    assert second["status"] == "QUEUED"
    complete(moto_stack, second["job_id"])
    _, _, third = api("POST", "/v1/transcriptions", {"url": VIDEO})
    _, _, doc = api("GET", f"/v1/transcriptions/{third['job_id']}")
    assert doc["reused_from"] == second["job_id"]


def test_normalize_reuses_the_result_of_the_same_bytes_under_its_own_role(
        moto_stack: dict[str, Any], tmp_path: Path, short_clip: SpeechClip) -> None:
    """The reuse path reads and copies results/*: NormalizeFunction's policy must allow it."""
    from tests.stages import Stages
    from ytcaption.adapters.result_cache import cache_key
    from ytcaption.domain.jobs import Job, JobOptions, Source
    from ytcaption.settings import PipelineSettings

    body = short_clip.encode(".m4a").read_bytes()
    repo = Table(TABLE, moto_stack["dynamodb"])
    first = Job.new(source=Source(kind="url", url="https://media.example.test/a.m4a"), options=JobOptions(),
                    status=JobStatus.QUEUED, ttl_days=1)
    first.cache_keys = [cache_key(f"sha256:{hashlib.sha256(body).hexdigest()}", JobOptions())]
    repo.create(first)
    complete(moto_stack, first.job_id)
    second = Job.new(source=Source(kind="upload", bucket=BUCKET, filename="a.m4a"), options=JobOptions(),
                     status=JobStatus.QUEUED, ttl_days=1)
    second.source.key = f"uploads/{second.job_id}/a.m4a"
    repo.create(second)
    moto_stack["s3"].put_object(Bucket=BUCKET, Key=second.source.key, Body=body)
    out = Stages(PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path))).normalize.run(
        second.job_id)
    assert out["reused"] is True
    done = repo.get(second.job_id)
    assert done.status == JobStatus.COMPLETED and done.reused_from == first.job_id
