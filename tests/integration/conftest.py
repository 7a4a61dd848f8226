"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SpeechClip
from tests.servers import LoopbackServer, loopback_server


@pytest.fixture
def server(short_clip: SpeechClip) -> Iterator[LoopbackServer]:
    """A loopback site serving the short speech clip as /talk.mp3 (modules may define their own)."""
    with loopback_server() as srv:
        srv.serve("/talk.mp3", short_clip.encode(".mp3").read_bytes(), "audio/mpeg")
        yield srv
