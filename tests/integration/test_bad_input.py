"""Bad input of every kind ends in a clear code, never a crash or a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ApiClient, SpeechClip
from ytcaption.engine import transcribe_file
from ytcaption.errors import YTCaptionError

pytestmark = pytest.mark.integration


def outcome(path: Path) -> str:
    try:
        transcript = transcribe_file(path)
    except YTCaptionError as exc:
        return exc.code
    return "OK" if transcript.duration is not None else "EMPTY"


def test_corrupt_truncated_and_mislabelled_media(short_clip: SpeechClip, tmp_path: Path) -> None:
    mp3 = short_clip.encode(".mp3").read_bytes()
    wav = short_clip.encode(".wav").read_bytes()
    cases = {
        "zero.mp3": b"",
        "truncated_header.m4a": short_clip.encode(".m4a").read_bytes()[:200],
        "half.mp3": mp3[: len(mp3) // 2],
        "noise_in_the_middle.mp3": mp3[:4000] + bytes(range(256)) * 40 + mp3[14240:],
        "wav_named.mp3": wav,
        "mp3_named.wav": mp3,
        "text.webm": b"WEBVTT\n\n00:00.000 --> 00:01.000\nnot media\n",
        "png.mp4": b"\x89PNG\r\n\x1a\n" + b"\x00" * 512,
    }
    results = {}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        results[name] = outcome(path)
    assert results["zero.mp3"] == "UNSUPPORTED_MEDIA"
    assert results["truncated_header.m4a"] == "UNSUPPORTED_MEDIA"
    assert results["text.webm"] == "UNSUPPORTED_MEDIA"
    assert results["png.mp4"] == "UNSUPPORTED_MEDIA"
    # what can be decoded is transcribed: content decides, not the extension
    assert results["wav_named.mp3"] == "OK" and results["mp3_named.wav"] == "OK"
    assert results["half.mp3"] == "OK" and results["noise_in_the_middle.mp3"] in ("OK", "UNSUPPORTED_MEDIA")


ODD_URLS = [
    "HTTP://MEDIA.EXAMPLE.TEST/a.mp3",              # fine: schemes are case-insensitive
    "https://exämple.test/vidéo.mp3",                # IDN host and path
    "https://xn--exmple-cua.test/a.mp3",             # punycode
    "https://ｌｏｃａｌｈｏｓｔ/a.mp3",                  # fullwidth: IDNA maps it to localhost
    "https://example.test/" + "a" * 2000,            # long but legal
    "https://example.test/" + "a" * 3000,            # over the 2048 limit
    "https://example.test/a.mp3#" + "x" * 100,
    "https://[::1/",                                  # broken IPv6 literal
    "https://example.test:99999/a.mp3",              # port out of range
    "https://exa mple.test/a.mp3",                   # whitespace
    "data:audio/mp3;base64,AAAA",
    "javascript:alert(1)",
    "//example.test/a.mp3",
    "https://",
    "\u202ehttps://example.test/a.mp3",
    "https://example.test/\x00.mp3",
]


@pytest.mark.parametrize("url", ODD_URLS)
def test_odd_urls_are_accepted_or_refused_with_a_code(api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                      url: str) -> None:
    monkeypatch.setenv("ALLOW_LOOPBACK_URLS", "false")
    from ytcaption.settings import clear_settings_cache

    clear_settings_cache()
    status, _, body = api("POST", "/v1/transcriptions", {"url": url})
    assert status in (202, 400), body
    if status == 400:
        assert body["error"]["code"] in ("INVALID_REQUEST", "UNSAFE_URL")
    if "ｌｏｃａｌｈｏｓｔ" in url:
        assert status == 400 and body["error"]["code"] == "UNSAFE_URL"


@pytest.mark.parametrize("field", ["filename", "initial_prompt", "language", "model"])
def test_very_long_strings_are_refused(api: ApiClient, field: str) -> None:
    body = {"filename": "a.mp3", "content_type": "audio/mpeg", "size_bytes": 10, field: "x" * 100_000}
    status, _, resp = api("POST", "/v1/uploads", body)
    assert status == 400 and resp["error"]["code"] == "INVALID_REQUEST"
