"""GET /v1/search and GET /v1/media through the media API handler, on moto, with yt-dlp for real:
recorded YouTube search responses fed to yt-dlp's own search extractor, a loopback site
for info and captions, a loopback proxy, and cookies and proxy from Secrets Manager."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TABLE, ApiClient
from tests.servers import LoopbackServer, loopback_server
from tests.sites import add_site, counting_proxy, json_ld_page

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ytdlp"


@pytest.fixture
def media_api(moto_stack: dict[str, Any]) -> Iterator[ApiClient]:
    """The API client, calling the media API function (what API Gateway maps the routes to)."""
    from ytcaption.media.ytdlp import forget_secrets
    from ytcaption_local.handlers import load_handler

    client = ApiClient()
    client.handler = load_handler("functions/media_api")
    forget_secrets()
    yield client
    forget_secrets()


@pytest.fixture
def youtube_api(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """YouTube's search API answered from recorded responses: only the HTTP call is replaced,
    yt-dlp's YoutubeSearchIE parses them. Returns the calls made."""
    from yt_dlp.extractor.youtube._base import YoutubeBaseInfoExtractor

    calls: list[dict[str, Any]] = []

    def call_api(self: Any, ep: str, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        calls.append({"ep": ep, **query})
        name = "shorts" if str(query.get("params", "")).startswith("EgIQCQ") else "videos"
        return json.loads((FIXTURES / f"search_{name}.innertube.json").read_text())

    monkeypatch.setattr(YoutubeBaseInfoExtractor, "_call_api", call_api)
    return calls


@pytest.fixture
def site(short_clip: Any) -> Iterator[tuple[LoopbackServer, dict[str, str]]]:
    with loopback_server() as srv:
        pages = add_site(srv, short_clip.encode(".mp3").read_bytes())
        srv.serve("/site/long.html", json_ld_page("A very long talk", srv.url("/site/talk.mp3"), "PT5H2M",
                                                  srv.url("/site/thumb.jpg")), "text/html")
        srv.serve("/site/short.html", json_ld_page("A short talk", srv.url("/site/talk.mp3"), "PT20M",
                                                   srv.url("/site/thumb.jpg")), "text/html")
        yield srv, pages


# --- search ------------------------------------------------------------------------------------


def test_search_returns_flat_results_and_caches_them(media_api: ApiClient, youtube_api: list[dict[str, Any]],
                                                      moto_stack: dict[str, Any]) -> None:
    status, _, doc = media_api("GET", "/v1/search", query={"q": "closed  captions", "limit": "2"})
    assert status == 200, doc
    assert youtube_api == [{"ep": "search", "query": "closed captions", "params": "EgIQAfABAQ=="}]
    assert doc["cached"] is False and doc["kind"] == "video" and doc["limit"] == 2
    first = doc["items"][0]
    assert first == {
        "id": "dQw4w9WgXcQ", "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "title": "Intro to closed captions", "channel": "Caption Lab", "duration_s": 212.0,
        "view_count": 1234567, "upload_date": first["upload_date"],
        "thumbnail": "https://i.ytimg.com/vi/dQw4w9WgXcQ/hq720.jpg",
    }
    assert len(doc["items"]) == 2  # the channel result is not a video; the limit holds
    assert time.strftime("%Y-") <= first["upload_date"] or first["upload_date"] >= "2026-"  # "3 days ago"

    again = media_api("GET", "/v1/search", query={"q": "Closed Captions", "limit": "2"})[2]
    assert again["cached"] is True and again["items"] == doc["items"]
    assert len(youtube_api) == 1  # served from the table
    items = moto_stack["dynamodb"].scan(TableName=TABLE)["Items"]
    cached = [i for i in items if i["pk"]["S"].startswith("SEARCH#")]
    assert len(cached) == 1
    assert 0 < int(cached[0]["expires_at"]["N"]) - time.time() <= 600  # brief: DynamoDB TTL removes it

    media_api("GET", "/v1/search", query={"q": "closed captions", "limit": "3"})
    assert len(youtube_api) == 2  # another limit is another search


def test_search_for_shorts_uses_the_shorts_filter(media_api: ApiClient, youtube_api: list[dict[str, Any]]) -> None:
    status, _, doc = media_api("GET", "/v1/search", query={"q": "captions", "kind": "short", "limit": "5"})
    assert status == 200, doc
    assert youtube_api[0]["params"].startswith("EgIQCQ")
    assert [i["url"] for i in doc["items"]] == ["https://www.youtube.com/shorts/aqz-KE-bpKQ",
                                                "https://www.youtube.com/shorts/jNQXAC9IVRw"]
    assert doc["items"][0]["duration_s"] == 30.0 and doc["items"][0]["view_count"] == 5100


@pytest.mark.parametrize("query", [
    {"q": ""}, {"q": "x" * 201}, {"q": "ok", "limit": "0"}, {"q": "ok", "limit": "51"},
    {"q": "ok", "limit": "ten"}, {"q": "ok", "kind": "playlist"}, {}, {"q": "   "}, {"q": "a\x00b"},
])
def test_search_validates_its_query(media_api: ApiClient, youtube_api: list[dict[str, Any]],
                                    query: dict[str, str]) -> None:
    status, _, doc = media_api("GET", "/v1/search", query=query)
    assert status == 400 and doc["error"]["code"] == "INVALID_REQUEST", doc
    assert youtube_api == []


def test_search_refused_by_the_site_is_source_blocked(media_api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from yt_dlp.extractor.youtube._base import YoutubeBaseInfoExtractor
    from yt_dlp.utils import ExtractorError

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ExtractorError("Sign in to confirm you’re not a bot. Use --cookies for the authentication.",
                             expected=True)

    monkeypatch.setattr(YoutubeBaseInfoExtractor, "_call_api", refuse)
    status, _, doc = media_api("GET", "/v1/search", query={"q": "captions"})
    assert status == 502
    assert doc["error"]["code"] == "SOURCE_BLOCKED" and "YTDLP__COOKIES_SECRET_ARN" in doc["error"]["message"]


# --- media info -------------------------------------------------------------------------------


def test_media_info_lists_the_sites_captions(media_api: ApiClient,
                                             site: tuple[LoopbackServer, dict[str, str]]) -> None:
    srv, pages = site
    status, _, doc = media_api("GET", "/v1/media", query={"url": pages["captioned"]})
    assert status == 200, doc
    assert doc["accepted"] is True and doc["problems"] == []
    assert doc["title"].startswith("Captioned talk")  # yt-dlp numbers a page's media: "(1)"
    assert [(c["language"], c["formats"]) for c in doc["captions"]["manual"]] == [("en", ["vtt"]), ("de", ["vtt"])]
    assert doc["captions"]["automatic"] == []
    assert ("GET", "/site/talk.mp3") not in srv.hits  # nothing downloaded


def test_media_info_duration_thumbnails_and_estimate(media_api: ApiClient,
                                                     site: tuple[LoopbackServer, dict[str, str]]) -> None:
    srv, _ = site
    status, _, doc = media_api("GET", "/v1/media", query={"url": srv.url("/site/short.html")})
    assert status == 200, doc
    assert doc["duration_s"] == 1200 and doc["uploader"] == "Ada" and doc["upload_date"] == "2024-03-05"
    assert doc["thumbnails"] == [{"url": srv.url("/site/thumb.jpg"), "width": None, "height": None}]
    est = doc["estimate"]
    from ytcaption.settings import MediaSettings

    shards = -(-1200 // int(MediaSettings().shard_audio_s))  # one GPU job per ShardAudioSeconds of audio
    assert doc["accepted"] is True and est["shards"] == shards and est["cost_usd"] > 0 and est["processing_s"] > 0


def test_media_info_too_long_is_not_accepted(media_api: ApiClient,
                                             site: tuple[LoopbackServer, dict[str, str]]) -> None:
    srv, _ = site
    doc = media_api("GET", "/v1/media", query={"url": srv.url("/site/long.html")})[2]
    assert doc["accepted"] is False and doc["estimate"] is None
    assert [p["code"] for p in doc["problems"]] == ["MEDIA_TOO_LONG"]
    assert "18120 s" in doc["problems"][0]["message"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:a9fe:a9fe]/",
                                 "http://0x7f.1:9/x"])
def test_media_info_applies_the_submission_url_policy(media_api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                      url: str) -> None:
    from ytcaption import services

    monkeypatch.setenv("ALLOW_LOOPBACK_URLS", "false")
    services.reset()
    status, _, doc = media_api("GET", "/v1/media", query={"url": url})
    assert status == 200 and doc["accepted"] is False
    assert [p["code"] for p in doc["problems"]] == ["UNSAFE_URL"]


def test_media_info_rejects_non_http_urls(media_api: ApiClient) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/a", "not a url"):
        status, _, doc = media_api("GET", "/v1/media", query={"url": url})
        assert status == 400 and doc["error"]["code"] == "INVALID_REQUEST"


def test_describe_a_recorded_youtube_video(aws_env: None) -> None:
    from ytcaption.api.discovery import Discovery
    from ytcaption.settings import get_discovery_settings

    info = json.loads((FIXTURES / "youtube_info.json").read_text())
    doc = Discovery(get_discovery_settings(), repo=object()).describe(info["webpage_url"], info)  # type: ignore[arg-type]
    assert doc.accepted and doc.duration_s == 212 and doc.channel == "Caption Lab"
    assert doc.upload_date == "2024-11-17" and doc.view_count == 1234567
    assert [c.language for c in doc.captions.manual] == ["en", "de"]
    assert [c.language for c in doc.captions.automatic] == ["en"]
    assert doc.captions.automatic_translations == 4
    assert doc.thumbnails[0].width == 1280
    assert doc.estimate is not None and doc.estimate.shards == 1


# --- cloud settings: proxy, cookies, secrets --------------------------------------------------------


def test_requests_go_through_the_configured_proxy(media_api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                  site: tuple[LoopbackServer, dict[str, str]]) -> None:
    from ytcaption import services

    srv, pages = site
    with counting_proxy() as proxy:
        monkeypatch.setenv("YTDLP__PROXY_URL", proxy.url)
        services.reset()
        status, _, doc = media_api("GET", "/v1/media", query={"url": pages["captioned"]})
        assert status == 200 and doc["title"].startswith("Captioned talk")
        assert proxy.requests == [pages["captioned"]]
        assert srv.hit_headers[-1]["via"] == "1.1 counting-proxy"


def test_cookies_and_proxy_come_from_secrets_manager(media_api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                     moto_stack: dict[str, Any],
                                                     site: tuple[LoopbackServer, dict[str, str]],
                                                     tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import boto3

    from ytcaption import services

    srv, pages = site
    secret_value = "s3cr3t-session-value-1234"
    cookies = f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\t{secret_value}\n"
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    with counting_proxy() as proxy:
        cookie_arn = sm.create_secret(Name="ytcaption/cookies", SecretString=cookies)["ARN"]
        proxy_arn = sm.create_secret(Name="ytcaption/proxy", SecretString=json.dumps({"url": proxy.url}))["ARN"]
        # what deploying with YtdlpCookiesSecretArn / YtdlpProxySecretArn set grants the function
        iam = moto_stack["iam"]
        iam.put_policy(iam.function_roles["MediaApiFunction"], "ytdlp-secrets", {"Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [cookie_arn, proxy_arn]}]})
        monkeypatch.setenv("YTDLP__COOKIES_SECRET_ARN", cookie_arn)
        monkeypatch.setenv("YTDLP__PROXY_SECRET_ARN", proxy_arn)
        monkeypatch.setenv("WORK_DIR", str(tmp_path))
        services.reset()
        status, _, doc = media_api("GET", "/v1/media", query={"url": pages["captioned"]})
        assert status == 200, doc
        assert proxy.requests == [pages["captioned"]]
    assert f"SID={secret_value}" in srv.hit_headers[-1].get("cookie", "")
    files = list((tmp_path / "ytcaption-ytdlp").glob("cookies-*.txt"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    out, err = capfd.readouterr()
    assert secret_value not in out + err + caplog.text  # never logged


def test_an_unreadable_secret_is_a_clear_error(media_api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                               site: tuple[LoopbackServer, dict[str, str]]) -> None:
    from ytcaption import services

    _, pages = site
    monkeypatch.setenv("YTDLP__COOKIES_SECRET_ARN",
                       "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")
    services.reset()
    status, _, doc = media_api("GET", "/v1/media", query={"url": pages["captioned"]})
    assert status == 503 and doc["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "YTDLP__" in doc["error"]["message"] and "missing" not in doc["error"]["message"]


def test_site_captions_is_for_url_submissions(api: ApiClient) -> None:
    status, _, doc = api("POST", "/v1/uploads", {"filename": "a.mp3", "content_type": "audio/mpeg",
                                                 "size_bytes": 10, "site_captions": "prefer"})
    assert status == 400 and "site_captions" in doc["error"]["message"]
    status, _, doc = api("POST", "/v1/transcriptions", {"url": "https://example.com/a.mp3", "site_captions": "maybe"})
    assert status == 400 and doc["error"]["code"] == "INVALID_REQUEST" and "site_captions" in doc["error"]["message"]
