"""FFmpeg opens nothing but the media it is given: a playlist cannot make it read local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest

from tests.conftest import BUCKET, TABLE, SpeechClip
from tests.servers import loopback_server
from tests.stages import Stages
from ytcaption.domain.errors import UnsupportedMedia, YTCaptionError
from ytcaption.domain.jobs import Job, JobOptions, JobStatus, Source
from ytcaption.media import audio
from ytcaption.settings import PipelineSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def secret_segment(short_clip: SpeechClip) -> Path:
    """A local file holding speech: what a playlist would try to read."""
    return short_clip.encode(".mp3", name="secret")


def playlist(tmp_path: Path, segment: str, name: str = "talk.m3u8") -> Path:
    path = tmp_path / name
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:30\n#EXTINF:30.0,\n{segment}\n#EXT-X-ENDLIST\n")
    return path


def test_ffmpeg_would_read_the_file_without_the_restriction(tmp_path: Path, secret_segment: Path) -> None:
    """The threat is real: FFmpeg's defaults follow the playlist to the local file."""
    with av.open(str(playlist(tmp_path, f"file:{secret_segment}"))) as c:
        assert sum(f.samples for f in c.decode(audio=0)) > 16000


@pytest.mark.parametrize("segment", ["file:{secret}", "{secret}", "concat:{secret}|{secret}",
                                     "subfile,,start,0,end,0,,:{secret}", "http://127.0.0.1:9/x.mp3"])
def test_a_playlist_cannot_reach_other_files(tmp_path: Path, secret_segment: Path, segment: str) -> None:
    path = playlist(tmp_path, segment.format(secret=secret_segment))
    with pytest.raises(UnsupportedMedia):
        audio.probe(path)
    with pytest.raises(UnsupportedMedia):
        audio.decode(path)


def test_ffmpeg_itself_refuses_when_the_playlist_is_not_recognised_first(
        tmp_path: Path, secret_segment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The protocol whitelist holds on its own (the playlist sniffing is only for a clear message)."""
    monkeypatch.setattr(audio, "_PLAYLIST_MAGIC", (b"\0never",))
    with pytest.raises(UnsupportedMedia, match="InvalidDataError"):
        audio.probe(playlist(tmp_path, f"file:{secret_segment}"))


def test_plain_media_still_decodes(short_clip: SpeechClip) -> None:
    for ext in (".mp3", ".m4a", ".wav"):
        assert audio.probe(short_clip.encode(ext)).duration_s


def test_an_uploaded_playlist_fails_the_job_without_a_transcript(
        moto_stack: dict[str, Any], tmp_path: Path, secret_segment: Path) -> None:
    stages = Stages(PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "w")))
    job = Job.new(source=Source(kind="upload", bucket=BUCKET, filename="talk.m3u8"), options=JobOptions(),
                  status=JobStatus.QUEUED, ttl_days=1)
    job.source.key = f"uploads/{job.job_id}/talk.m3u8"
    stages.repo.create(job)
    body = playlist(tmp_path, f"file:{secret_segment}").read_bytes()
    moto_stack["s3"].put_object(Bucket=BUCKET, Key=job.source.key, Body=body)
    with pytest.raises(UnsupportedMedia):
        stages.normalize.run(job.job_id)
    listed = moto_stack["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"work/{job.job_id}/")
    assert listed.get("KeyCount", 0) == 0  # no chunk of the secret audio was cut


@pytest.mark.parametrize(("path", "ctype", "code"), [
    ("/live.m3u8", "application/vnd.apple.mpegurl", "UNSUPPORTED_SOURCE"),  # final, not a site failure
    ("/talk.mp3", "audio/mpeg", "UNSUPPORTED_MEDIA"),  # saved as media, then refused by the decoder
])
def test_a_downloaded_playlist_with_local_segments_is_refused(
        moto_stack: dict[str, Any], tmp_path: Path, secret_segment: Path, path: str, ctype: str, code: str) -> None:
    stages = Stages(PipelineSettings(jobs_table=TABLE, bucket_name=BUCKET, work_dir=str(tmp_path / "w"),
                                         allow_loopback_urls=True))
    with loopback_server() as srv:
        url = srv.serve(path, playlist(tmp_path, f"file://{secret_segment}").read_bytes(), ctype)
        job = Job.new(source=Source(kind="url", url=url), options=JobOptions(), status=JobStatus.QUEUED,
                      ttl_days=1)
        stages.repo.create(job)
        with pytest.raises(YTCaptionError) as raised:
            stages.download.run(job.job_id)
    assert raised.value.code == code, raised.value
    assert stages.repo.get(job.job_id).source.key is None  # nothing was stored to transcribe
