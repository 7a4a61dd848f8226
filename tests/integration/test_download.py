"""yt-dlp downloads from a loopback HTTP server: success and every failure code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SpeechClip
from tests.servers import LoopbackServer, loopback_server
from ytcaption.domain.errors import YTCaptionError
from ytcaption.media.download import fetch_media

pytestmark = pytest.mark.integration


@pytest.fixture
def server(short_clip: SpeechClip) -> Iterator[LoopbackServer]:
    with loopback_server() as srv:
        srv.serve("/talk.m4a", short_clip.encode(".m4a").read_bytes(), "audio/mp4")
        srv.serve("/talk.webm", short_clip.encode(".webm").read_bytes(), "audio/webm")
        srv.serve("/page.html", b"<html><head><title>Hi</title></head><body>No media.</body></html>", "text/html")
        srv.serve("/notes.mp3", b"these are meeting notes, not audio\n" * 40, "audio/mpeg")
        srv.serve("/busy.mp3", b"", fail_first=100)
        yield srv


def test_direct_media_link_downloads_with_measured_duration(server: LoopbackServer, tmp_path: Path) -> None:
    seen: list[int] = []
    got = fetch_media(server.url("/talk.m4a"), tmp_path / "job", max_bytes=10**8, max_duration_s=600,
                   progress=lambda done, total: seen.append(done))
    assert got.path.exists() and got.path.parent == tmp_path / "job"
    assert got.media.title == "talk" and got.media.extractor == "Generic"
    assert got.media.duration_s is not None and 20 < got.media.duration_s < 40
    assert got.media.size_bytes == got.path.stat().st_size


@pytest.mark.parametrize(("path", "limits", "code", "retryable"), [
    ("/missing.mp3", {}, "SOURCE_NOT_FOUND", False),
    ("/page.html", {}, "UNSUPPORTED_SOURCE", False),
    ("/notes.mp3", {}, "UNSUPPORTED_MEDIA", False),
    ("/busy.mp3", {}, "DOWNLOAD_FAILED", True),
    ("/talk.webm", {"max_duration_s": 5}, "MEDIA_TOO_LONG", False),
    ("/talk.webm", {"max_bytes": 2000}, "MEDIA_TOO_LARGE", False),
])
def test_failures_get_their_code_and_leave_nothing_behind(
    server: LoopbackServer, tmp_path: Path, path: str, limits: dict[str, int], code: str, retryable: bool
) -> None:
    work = tmp_path / "job"
    args = {"max_bytes": 10**8, "max_duration_s": 600, **limits}
    with pytest.raises(YTCaptionError) as exc:
        fetch_media(server.url(path), work, **args)  # type: ignore[arg-type]
    assert exc.value.code == code
    assert exc.value.retryable is retryable
    assert not work.exists()
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(YTCaptionError) as exc:
        fetch_media(f"http://127.0.0.1:{port}/x.mp3", tmp_path / "job", max_bytes=10**8, max_duration_s=60)
    assert exc.value.code == "DOWNLOAD_FAILED" and exc.value.retryable
    assert not (tmp_path / "job").exists()
