"""Site metadata logic: caption tracks, WebVTT/SRT import, refusal classification, settings, estimate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ytcaption.domain.errors import DownloadFailed, SourceBlocked, SourceNotFound
from ytcaption.media import site
from ytcaption.media.download import classify
from ytcaption.media.ytdlp import YtdlpSettings, parse_extractor_args, ytdlp_options

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ytdlp"


def youtube_info() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "youtube_info.json").read_text()))


# --- caption tracks --------------------------------------------------------------------------


def test_caption_tracks_separate_people_made_spoken_language_and_translations() -> None:
    tracks = site.caption_tracks(youtube_info())
    manual = sorted(t.language for t in tracks if not t.automatic)
    spoken = [t.language for t in tracks if t.automatic and t.original]
    translated = sorted(t.language for t in tracks if t.automatic and not t.original)
    assert manual == ["de", "en"]
    assert spoken == ["en"]  # "en-orig": what the site recognised, not a translation
    assert translated == ["en", "es", "fr", "ja"]


def test_pick_track_prefers_people_made_in_the_language() -> None:
    info = youtube_info()
    de = site.pick_track(info, "de", automatic=False)
    assert de is not None and not de.automatic and de.best() == ("vtt", de.formats["vtt"])
    auto = site.pick_track(info, "auto", automatic=False)
    assert auto is not None and auto.language == "en" and not auto.automatic  # the video's language
    assert site.pick_track(info, "fr", automatic=False) is None  # no people-made French
    # automatic captions are the spoken language only, never a machine translation
    assert site.pick_track(info, "fr", automatic=True) is None
    info["subtitles"] = {}
    en = site.pick_track(info, "en", automatic=True)
    assert en is not None and en.automatic and en.original and "tlang" not in en.formats["vtt"]


def test_pick_track_needs_a_format_we_convert() -> None:
    info = youtube_info()
    info["subtitles"] = {"en": [{"ext": "json3", "url": "https://example.test/x.json3"}]}
    info["automatic_captions"] = {}
    assert site.pick_track(info, "en", automatic=True) is None


# --- WebVTT / SRT ----------------------------------------------------------------------------------

ROLLING_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.080 --> 00:00:02.790 align:start position:0%
\x20
so<00:00:00.400><c> captions</c><00:00:00.880><c> are</c>

00:00:02.790 --> 00:00:02.800 align:start position:0%
so captions are
\x20

00:00:02.800 --> 00:00:05.110 align:start position:0%
so captions are
made<00:00:03.120><c> by</c><00:00:03.360><c> people</c> &amp; machines
"""

SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Hello</i> there,

2
00:00:03,600 --> 00:00:05,000
general
Kenobi.
"""


def test_parse_rolling_automatic_vtt_keeps_each_line_once() -> None:
    cues = site.parse_caption_file(ROLLING_VTT)
    assert cues == [(0.08, 2.79, "so captions are"), (2.8, 5.11, "made by people & machines")]


def test_parse_srt() -> None:
    assert site.parse_caption_file(SRT) == [(1.0, 3.5, "Hello there,"), (3.6, 5.0, "general Kenobi.")]


def test_parse_ignores_headers_and_broken_cues() -> None:
    assert site.parse_caption_file("WEBVTT\n\nNOTE hi\n\nSTYLE\n::cue {}\n\n00:00:05.000 --> 00:00:04.000\nx\n") == []


# --- fields ------------------------------------------------------------------------------------


def test_best_thumbnail_and_dates() -> None:
    info = youtube_info()
    assert site.best_thumbnail({"thumbnails": info["thumbnails"]}).endswith("maxresdefault.jpg")  # type: ignore[union-attr]
    assert [t["width"] for t in site.thumbnails(info, 2)] == [1280, 480]
    assert site.iso_date({"upload_date": "20241117"}) == "2024-11-17"
    assert site.iso_date({"timestamp": 0}) == "1970-01-01"
    assert site.iso_date({}) is None


# --- refusals -------------------------------------------------------------------------------------


def _download_error(cause: BaseException) -> BaseException:
    from yt_dlp.utils import DownloadError

    return DownloadError(f"ERROR: {cause}", exc_info=(type(cause), cause, None))


@pytest.mark.parametrize(("message", "hint"), [
    ("Sign in to confirm you’re not a bot. Use --cookies-from-browser or --cookies for the authentication.",
     "YTDLP__COOKIES_SECRET_ARN"),
    ("Sign in to confirm your age. This video may be inappropriate for some users.", "YTDLP__COOKIES_SECRET_ARN"),
    ("The uploader has not made this video available in your country", "YTDLP__PROXY_SECRET_ARN"),
])
def test_site_refusals_are_source_blocked_and_name_the_setting(message: str, hint: str) -> None:
    from yt_dlp.utils import ExtractorError

    err = classify(_download_error(ExtractorError(message, expected=True)))
    assert isinstance(err, SourceBlocked) and err.code == "SOURCE_BLOCKED" and not err.retryable
    assert hint in err.message


def test_geo_restricted_error_and_http_403_are_blocked_404_is_not_found_429_is_retried() -> None:
    from yt_dlp.networking import Response
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import ExtractorError, GeoRestrictedError

    geo = classify(_download_error(GeoRestrictedError("This video is not available", countries=["DE"])))
    assert isinstance(geo, SourceBlocked) and "proxy" in geo.message

    def http(status: int) -> BaseException:
        import io

        resp = Response(io.BytesIO(b""), "https://example.test/a.mp3", {}, status=status)
        try:  # as yt-dlp raises it: inside the handler of the HTTP error
            raise HTTPError(resp)
        except HTTPError as err:
            return _download_error(ExtractorError("Unable to download webpage", cause=err))

    assert isinstance(classify(http(403)), SourceBlocked)
    assert isinstance(classify(http(404)), SourceNotFound)
    assert isinstance(classify(http(429)), DownloadFailed)
    private = classify(_download_error(ExtractorError("This video has been removed by the uploader", expected=True)))
    assert isinstance(private, SourceNotFound)


# --- settings -------------------------------------------------------------------------------------


def test_extractor_args_in_yt_dlp_syntax() -> None:
    assert parse_extractor_args("youtube:player_client=web_safari,android_vr;lang=en youtubetab:skip=webpage") == {
        "youtube": {"player_client": ["web_safari", "android_vr"], "lang": ["en"]},
        "youtubetab": {"skip": ["webpage"]},
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_extractor_args("youtube")
    with pytest.raises(ValueError):
        YtdlpSettings(extractor_args="youtube:player_client")


def test_pacing_and_plain_proxy_options() -> None:
    opts = ytdlp_options(YtdlpSettings(proxy_url="http://127.0.0.1:9", sleep_requests_s=1.5, sleep_interval_s=2))
    assert opts["proxy"] == "http://127.0.0.1:9"
    assert opts["sleep_interval_requests"] == 1.5
    assert opts["sleep_interval"] == 2 and opts["max_sleep_interval"] == 2
    assert "cookiefile" not in opts and "extractor_args" not in opts


# --- estimate -------------------------------------------------------------------------------------


def test_estimate_scales_with_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    from ytcaption.api.discovery import estimate
    from ytcaption.settings import DiscoverySettings

    monkeypatch.setenv("JOBS_TABLE", "t")
    monkeypatch.setenv("BUCKET_NAME", "b")
    from ytcaption.settings import MediaSettings

    s = DiscoverySettings(default_model="large-v3-turbo", media=MediaSettings(shard_audio_s=600.0))
    one = estimate(300, s)
    assert one.shards == 1 and one.model == "large-v3-turbo"
    # 300 s / 60x prepare + 120 s start + 300 s / 30x on the GPU
    assert one.processing_s == pytest.approx(5 + 120 + 10)
    assert one.gpu_seconds == pytest.approx(10 + 120)
    assert one.cost_usd == pytest.approx(130 * 0.526 / 3600, abs=1e-4)
    long = estimate(3 * 3600, s)
    assert long.shards == 18  # 600 s shards
    # 18 shards in 2 waves of up to 16 in parallel: wall time grows far slower than audio
    assert long.processing_s == pytest.approx(10800 / 60 + 120 + 2 * 20)
    assert long.cost_usd > one.cost_usd * 10
