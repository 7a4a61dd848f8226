"""Bad input of every kind ends in a clear code, never a crash or a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ApiClient, SpeechClip
from ytcaption.domain.errors import Throttled, YTCaptionError
from ytcaption.engine.engine import transcribe_file

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
    from ytcaption import services

    services.reset()
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


# --- client input that used to make 5xx (issue 11, finding 5) -------------------------------

GOOD = '{"url": "https://media.example.test/a.mp3"}'


@pytest.mark.parametrize(("name", "kwargs", "status", "code"), [
    ("array nested 1000 deep", {"raw_body": "[" * 1000 + "]" * 1000}, 400, "INVALID_REQUEST"),
    ("object nested 1000 deep", {"raw_body": '{"a":' * 1000 + "1" + "}" * 1000}, 400, "INVALID_REQUEST"),
    ("NUL in the URL host", {"body": {"url": "https://exa\x00mple.test/a.mp3"}}, 400, "INVALID_REQUEST"),
    ("NUL in the webhook host", {"body": {"url": "https://media.example.test/a.mp3",
                                          "webhook_url": "https://ho\x00ok.example.test/h"}}, 400, "INVALID_REQUEST"),
    ("lone surrogate in the URL", {"raw_body": '{"url": "https://media.example.test/\\ud800.mp3"}'},
     400, "INVALID_REQUEST"),
    ("lone surrogate in a key", {"raw_body": '{"url": "https://media.example.test/a.mp3", "\\udc00": 1}'},
     400, "INVALID_REQUEST"),
    ("Content-Type text/plain", {"raw_body": GOOD, "headers": {"Content-Type": "text/plain"}},
     415, "UNSUPPORTED_MEDIA_TYPE"),
])
def test_hostile_bodies_get_a_4xx_in_the_error_shape(api: ApiClient, name: str, kwargs: dict[str, object],
                                                     status: int, code: str) -> None:
    got, headers, body = api("POST", "/v1/transcriptions", **kwargs)  # type: ignore[arg-type]
    assert (got, body["error"]["code"]) == (status, code), (name, body)
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("ctype", ["Application/Json", "APPLICATION/JSON; charset=UTF-8",
                                   "application/vnd.ytcaption+json", "application/json;charset=utf-8"])
def test_json_media_type_variants_are_accepted(api: ApiClient, ctype: str) -> None:
    status, _, body = api("POST", "/v1/transcriptions", raw_body=GOOD, headers={"Content-Type": ctype})
    assert status == 202, body


def test_lone_surrogate_in_a_header_is_refused(api: ApiClient) -> None:
    status, _, body = api("POST", "/v1/transcriptions", raw_body=GOOD, headers={"Idempotency-Key": "k\ud800"})
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"


def _cursor(doc: object) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def test_forged_cursors_are_refused(api: ApiClient) -> None:
    # Given a real cursor from a listing
    for i in range(3):
        assert api("POST", "/v1/transcriptions", {"url": f"https://media.example.test/{i}.mp3"})[0] == 202
    status, _, page = api("GET", "/v1/transcriptions", query={"limit": "1"})
    assert status == 200 and page["next_cursor"]
    assert api("GET", "/v1/transcriptions", query={"limit": "1", "cursor": page["next_cursor"]})[0] == 200
    job = "0" * 32
    forged = [
        {"k": {"pk": {"S": "x"}, "foo": {"S": "y"}}, "s": None},                      # not the index's key
        {"k": {"pk": {"S": f"JOB#{job}"}, "entity": {"S": "CLAIM"},
               "created_at": {"S": "2026-01-01T00:00:00Z"}}, "s": None},            # another partition
        {"k": {"pk": {"S": "IDEMPOTENCY#abc"}, "entity": {"S": "JOB"},
               "created_at": {"S": "2026-01-01T00:00:00Z"}}, "s": None},            # not a job's key
        {"k": {"pk": {"S": f"JOB#{job}"}, "entity": {"S": "JOB"},
               "created_at": {"S": "yesterday"}}, "s": None},                        # not a timestamp
        {"k": {"pk": {"S": f"JOB#{job}"}, "status": {"S": "FAILED"},
               "created_at": {"S": "2026-01-01T00:00:00Z"}}, "s": "QUEUED"},          # status mismatch
        {"k": [], "s": None},
        "a string",
    ]
    for doc in forged:
        status, _, body = api("GET", "/v1/transcriptions", query={"cursor": _cursor(doc)})
        assert status == 400 and body["error"]["code"] == "INVALID_CURSOR", (doc, body)


def test_a_5xx_body_never_names_an_internal_operation(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from ytcaption.adapters.table import Table

    def broken(self: Table, op: str, **kwargs: object) -> object:
        from ytcaption.adapters import aws

        raise aws.translate(ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, op),
                            f"DynamoDB {op}")

    monkeypatch.setattr(Table, "_call", broken)
    status, _, body = api("GET", "/v1/transcriptions")
    assert status == 500 and body["error"]["code"] == "INTERNAL_ERROR"
    assert "DynamoDB" not in body["error"]["message"] and "query" not in body["error"]["message"]

    def throttled(self: Table, op: str, **kwargs: object) -> object:
        raise Throttled(f"DynamoDB {op}: AWS throttled the request")

    monkeypatch.setattr(Table, "_call", throttled)
    status, _, body = api("GET", "/v1/transcriptions")
    assert status == 503 and body["error"]["code"] == "THROTTLED"
    assert "DynamoDB" not in body["error"]["message"]
