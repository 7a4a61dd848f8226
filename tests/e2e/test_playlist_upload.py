"""An uploaded playlist cannot make the service read this machine's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SpeechClip
from ytcaption_local.cli import ApiError, Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_an_uploaded_m3u8_with_file_segments_fails_without_a_transcript(
        client: Client, short_clip: SpeechClip, tmp_path: Path) -> None:
    secret = short_clip.encode(".mp3", name="local-secret")  # speech in a file on this machine
    playlist = tmp_path / "talk.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:30\n#EXTINF:30.0,\nfile:{secret}\n#EXT-X-ENDLIST\n")
    job = client.submit_file(playlist, {})
    done = client.wait(job["job_id"], poll_s=0.3, timeout_s=120)
    assert done["status"] == "FAILED" and done["error"]["code"] == "UNSUPPORTED_MEDIA", done
    assert done["results"] == {}
    with pytest.raises(ApiError):
        client.result(job["job_id"], "txt")
