"""The OpenAI-compatible routes' logic: form parsing, model choice, response shapes,
the key authorizer, and the local API Gateway front read from the template."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ytcaption.api import openai_api
from ytcaption.api.apikeys import KeyRing, Unauthorized, authorize, presented_key
from ytcaption.domain.captions import Segment, SegmentStats, Transcript, Word
from ytcaption.domain.errors import YTCaptionError
from ytcaption.domain.languages import WHISPER_LANGUAGES
from ytcaption.domain.stitching import ChunkResult, shift, stitch
from ytcaption.settings import SyncLimits, SyncSettings, WhisperSettings

BOUNDARY = "----b0undary"


def form(fields: dict[str, str | list[str]], file: tuple[str, bytes] | None = ("a.wav", b"RIFF\r\n--x\r\n\0\xff")) -> bytes:
    out = b""
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{v}\r\n").encode()
    if file:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file[0]}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + file[1] + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def read(fields: dict[str, str | list[str]], task: str = "transcribe") -> openai_api.SyncRequest:
    return openai_api.read_form(openai_api.parse_multipart(form(fields), CTYPE), task=task)[0]


def code_of(exc: pytest.ExceptionInfo[YTCaptionError]) -> tuple[str, str | None]:
    return exc.value.code, getattr(exc.value, "param", None)


# --- the form -------------------------------------------------------------------------------


def test_multipart_keeps_binary_file_bytes_exactly() -> None:
    payload = bytes(range(256)) * 50 + b"\r\n--not-the-boundary\r\n"
    parts = openai_api.parse_multipart(form({"model": "whisper-1"}, ("x.mp3", payload)), CTYPE)
    req, file = openai_api.read_form(parts, task="transcribe")
    assert file.data == payload and file.filename == "x.mp3" and req.model == "whisper-1"


def test_repeated_granularities_and_defaults() -> None:
    req = read({"model": "whisper-1", "response_format": "verbose_json",
                "timestamp_granularities[]": ["word", "segment"]})
    assert req.timestamp_granularities == ["word", "segment"] and req.temperature == 0.0 and req.language is None


@pytest.mark.parametrize(("fields", "task", "param"), [
    ({"model": "whisper-1", "response_format": "xml"}, "transcribe", "response_format"),
    ({"model": "whisper-1", "temperature": "1.5"}, "transcribe", "temperature"),
    ({"model": "whisper-1", "language": "klingon"}, "transcribe", "language"),
    ({"model": "whisper-1", "timestamp_granularities[]": "word"}, "transcribe", "timestamp_granularities"),
    ({"model": "whisper-1", "stream": "true"}, "transcribe", "stream"),
    ({"model": "whisper-1", "language": "de"}, "translate", "language"),
    ({}, "transcribe", "model"),
])
def test_bad_fields_name_their_parameter(fields: dict[str, Any], task: str, param: str) -> None:
    with pytest.raises(YTCaptionError) as err:
        read(fields, task)
    assert code_of(err) == ("INVALID_REQUEST", param)


@pytest.mark.parametrize(("body", "ctype"), [
    (form({"model": "whisper-1"}, None), CTYPE),  # no file
    (b"--" + BOUNDARY.encode() + b"\r\nno headers end", CTYPE),  # malformed
    (b'{"model": "whisper-1"}', "application/json"),
    (form({"model": "whisper-1"}), "multipart/form-data"),  # no boundary
    (form({"model": "whisper-1"}), "multipart/form-data; boundary=\u00e9t\u00e9"),  # not ASCII
])
def test_malformed_forms_are_bad_requests(body: bytes, ctype: str) -> None:
    with pytest.raises(YTCaptionError) as err:
        openai_api.read_form(openai_api.parse_multipart(body, ctype), task="transcribe")
    assert err.value.http_status == 400


# --- models ---------------------------------------------------------------------------------


def settings(tmp_path: Path, *, baked: tuple[str, ...] = (), sync_model: str = "") -> SyncSettings:
    for name in baked:
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "model.bin").write_bytes(b"")
    return SyncSettings(default_model="tiny.en", sync=SyncLimits(model=sync_model),
                        whisper=WhisperSettings(model_dir=str(tmp_path)))


def test_whisper_1_is_the_deployment_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert openai_api.serve_model("whisper-1", task="transcribe", language=None,
                                  settings=settings(tmp_path)) == "tiny.en"
    s = settings(tmp_path, baked=("base",), sync_model="base")
    assert openai_api.serve_model("whisper-1", task="translate", language=None, settings=s) == "base"
    assert openai_api.serve_model("base", task="transcribe", language="de", settings=s) == "base"


@pytest.mark.parametrize(("model", "task", "language", "code", "param"), [
    ("gpt-4o", "transcribe", None, "MODEL_UNAVAILABLE", "model"),
    ("large-v3", "transcribe", None, "MODEL_UNAVAILABLE", "model"),  # a Whisper model not baked here
    ("tiny.en", "translate", None, "TRANSLATION_UNSUPPORTED", "model"),
    ("tiny.en", "transcribe", "es", "LANGUAGE_UNSUPPORTED", "language"),
])
def test_model_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, task: str,
                        language: str | None, code: str, param: str) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(YTCaptionError) as err:
        openai_api.serve_model(model, task=task, language=language, settings=settings(tmp_path))
    assert code_of(err) == (code, param)
    assert openai_api.OPENAI_STATUS.get(code, err.value.http_status) == 400  # what OpenAI clients see


# --- responses ------------------------------------------------------------------------------


def _stats(seek: int) -> SegmentStats:
    return SegmentStats(seek=seek, tokens=[50363, 11, 50400], temperature=0.0, avg_logprob=-0.3,
                        compression_ratio=1.2, no_speech_prob=0.01)


def test_verbose_json_shape_and_seek_on_the_media_timeline() -> None:
    seg = Segment(start=0.5, end=1.5, text="Hello there.", stats=_stats(0),
                  words=[Word(start=0.5, end=0.9, word=" Hello"), Word(start=0.9, end=1.5, word=" there.")])
    chunk = ChunkResult(index=0, start=30.0, end=32.0, language="en", segments=shift([seg], 30.0))
    t = stitch([chunk], duration=32.0, model="tiny.en")
    doc = openai_api.verbose_json(t, "transcribe", ["word", "segment"])
    assert doc["language"] == "english" and doc["duration"] == 32.0 and doc["text"] == "Hello there."
    assert doc["segments"] == [{"id": 0, "seek": 3000, "start": 30.5, "end": 31.5, "text": "Hello there.",
                                "tokens": [50363, 11, 50400], "temperature": 0.0, "avg_logprob": -0.3,
                                "compression_ratio": 1.2, "no_speech_prob": 0.01}]
    assert doc["words"] == [{"word": "Hello", "start": 30.5, "end": 30.9}, {"word": "there.", "start": 30.9, "end": 31.5}]
    assert doc["usage"] == {"type": "duration", "seconds": 32}
    assert "words" not in openai_api.verbose_json(t, "transcribe", [])
    assert "segments" not in openai_api.verbose_json(t, "transcribe", ["word"])


def test_stats_stay_out_of_stored_results() -> None:
    seg = Segment(start=0, end=1, text="a", stats=_stats(0))
    assert "stats" not in json.loads(Transcript(segments=[seg]).model_dump_json())["segments"][0]


def test_every_whisper_language_has_its_name() -> None:
    assert set(openai_api.LANGUAGE_NAMES) == set(WHISPER_LANGUAGES)


def test_errors_use_openai_shape_with_our_code(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"resource": "/v1/audio/transcriptions", "path": "/v1/audio/transcriptions", "httpMethod": "POST",
             "headers": {"Content-Type": CTYPE}, "requestContext": {"stage": "v1", "resourcePath": "/"},
             "body": base64.b64encode(form({"model": "whisper-1", "response_format": "xml"})).decode(),
             "isBase64Encoded": True}
    resp = openai_api.handle(event, None)
    body = json.loads(resp["body"])
    assert resp["statusCode"] == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "INVALID_REQUEST" and body["error"]["type"] == "invalid_request_error"
    assert resp["headers"]["X-Request-ID"]


# --- the authorizer -------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "key"), [
    ({"X-Api-Key": "k1"}, "k1"),
    ({"authorization": "Bearer k2"}, "k2"),
    ({"Authorization": "bearer  k3 "}, "k3"),
    ({"x-api-key": "k1", "Authorization": "Bearer k2"}, "k1"),
    ({"Authorization": "Basic abc"}, None),
    ({"Authorization": "Bearer "}, None),
    ({}, None),
])
def test_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(headers) == key


@pytest.fixture
def keyring(aws_env: None) -> Any:
    with mock_aws():
        apigw = boto3.client("apigateway")
        apigw.create_api_key(name="good", value="good-key-0123456789abc", enabled=True)
        apigw.create_api_key(name="off", value="disabled-key-0123456789abc", enabled=False)
        yield KeyRing(apigw, min_refresh_s=0), apigw


def _event(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"type": "REQUEST", "path": path, "headers": headers, "methodArn": "arn:aws:execute-api:r:a:api/v1/POST" + path}


def test_openai_routes_need_a_real_key(keyring: Any) -> None:
    keys, apigw = keyring
    ok = authorize(_event("/v1/audio/transcriptions", {"Authorization": "Bearer good-key-0123456789abc"}), keys)
    assert ok["usageIdentifierKey"] == "good-key-0123456789abc"
    assert ok["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-Api-Key": "disabled-key-0123456789abc"}):
        with pytest.raises(Unauthorized, match=r"^Unauthorized$"):
            authorize(_event("/v1/audio/translations", headers), keys)
    # a key created a moment ago works (a miss refreshes the ring)
    apigw.create_api_key(name="new", value="brand-new-key-0123456789abc", enabled=True)
    assert authorize(_event("/v1/audio/transcriptions", {"X-Api-Key": "brand-new-key-0123456789abc"}), keys)


def test_other_routes_leave_the_check_to_the_usage_plan(keyring: Any) -> None:
    keys, _ = keyring
    passed = authorize(_event("/v1/transcriptions", {"Authorization": "Bearer whatever"}), keys)
    assert passed["usageIdentifierKey"] == "whatever"  # API Gateway answers 403 INVALID_API_KEY for it
    assert "usageIdentifierKey" not in authorize(_event("/v1/health", {}), keys)


# --- the local API Gateway front, from the template -------------------------------------------


@pytest.fixture(scope="module")
def front() -> Any:
    from ytcaption_local.apigw import LocalApiGateway
    from ytcaption_local.runtime import transformed_template

    template, _ = transformed_template()
    rest = next(r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")
    calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(lid: str, event: dict[str, Any], ctx: Any) -> Any:
        calls.append((lid, event))
        if lid == "ApiKeyAuthorizerFunction":
            return authorize(event, KeyRing(_StaticKeys()))
        return {"statusCode": 200, "body": lid}

    return LocalApiGateway(rest, invoke, "the-key"), calls


class _StaticKeys:
    """An API Gateway client stand-in that knows one key (the front's routing is under test here)."""

    def get_paginator(self, name: str) -> Any:
        class P:
            def paginate(self, **kw: Any) -> Any:
                return [{"items": [{"value": "the-key", "enabled": True}]}]
        return P()


def _request(method: str, path: str, headers: dict[str, str], body: str | None = None) -> dict[str, Any]:
    from ytcaption_local.gateway import build_event

    return build_event(method, path, headers=headers, body=body)


def test_template_routes_audio_to_the_sync_function(front: Any) -> None:
    gw, calls = front
    bearer = {"Authorization": "Bearer the-key", "Content-Type": CTYPE}
    assert gw(_request("POST", "/v1/audio/transcriptions", bearer, "x"), None)["body"] == "OpenAiAudioFunction"
    assert gw(_request("POST", "/v1/audio/translations", bearer, "x"), None)["body"] == "OpenAiAudioFunction"
    assert gw(_request("GET", "/v1/transcriptions", bearer), None)["body"] == "ApiFunction"
    # the audio resources have POST only: API Gateway does not fall back to {proxy+}
    missing = gw(_request("GET", "/v1/audio/transcriptions", bearer), None)
    assert missing["statusCode"] == 404 and json.loads(missing["body"])["error"]["code"] == "NOT_FOUND"
    lid, event = [c for c in calls if c[0] != "ApiKeyAuthorizerFunction"][-3]
    assert lid == "OpenAiAudioFunction" and event["isBase64Encoded"] and base64.b64decode(event["body"]) == b"x"


def test_template_gateway_refusals(front: Any) -> None:
    gw, _ = front
    unauthorized = gw(_request("POST", "/v1/audio/transcriptions", {"Authorization": "Bearer wrong"}), None)
    assert unauthorized["statusCode"] == 401
    assert json.loads(unauthorized["body"])["error"]["code"] == "INVALID_API_KEY"
    assert set(json.loads(unauthorized["body"])["error"]) >= {"message", "type", "param", "code"}
    forbidden = gw(_request("GET", "/v1/transcriptions", {"X-Api-Key": "wrong"}), None)
    assert forbidden["statusCode"] == 403 and json.loads(forbidden["body"])["error"]["code"] == "INVALID_API_KEY"
    assert gw(_request("GET", "/v1/transcriptions", {}), None)["statusCode"] == 403


# --- the template ---------------------------------------------------------------------------


def test_template_keeps_usage_plans_with_bearer_keys() -> None:
    from ytcaption_local.template import load_template

    res = load_template()["Resources"]
    api = res["Api"]["Properties"]
    assert api["ApiKeySourceType"] == "AUTHORIZER" and "multipart~1form-data" in api["BinaryMediaTypes"]
    auth = api["Auth"]
    assert auth["ApiKeyRequired"] is True and auth["UsagePlan"]["CreateUsagePlan"] == "PER_API"
    assert auth["Authorizers"][auth["DefaultAuthorizer"]]["FunctionArn"] == {
        "Fn::GetAtt": ["ApiKeyAuthorizerFunction", "Arn"]}
    sync = res["OpenAiAudioFunction"]
    assert sync["Properties"]["PackageType"] == "Image" and sync["Metadata"]["Dockerfile"].endswith("Dockerfile")
    assert (Path(__file__).parents[2] / sync["Metadata"]["Dockerfile"]).exists()
    assert {e["Properties"]["Path"] for e in sync["Properties"]["Events"].values()} == {
        openai_api.TRANSCRIPTIONS, openai_api.TRANSLATIONS}
    # the sync function runs no AWS call: it gets no policy beyond what SAM gives every function
    assert "Policies" not in sync["Properties"]


@pytest.mark.parametrize(("method", "ctype", "body", "b64"), [
    ("POST", CTYPE, None, False),
    ("POST", CTYPE, "%%%not base64%%%", True),
    ("POST", None, "model=whisper-1", False),
    ("POST", "application/json", '{"model": "whisper-1"}', False),
    ("GET", None, None, False),
    ("POST", CTYPE, base64.b64encode(form({"model": "whisper-1"}, ("empty.wav", b""))).decode(), True),
    ("POST", CTYPE, base64.b64encode(form({"model": "whisper-1", "file": "not a file"}, None)).decode(), True),
    ("POST", CTYPE, base64.b64encode(form({"model": "x" * 5000})).decode(), True),
    ("POST", CTYPE, base64.b64encode(b"--" + BOUNDARY.encode() + b"\r\n\r\n\r\n--" + BOUNDARY.encode() + b"--").decode(), True),
])
def test_odd_requests_get_a_4xx_in_openai_shape(method: str, ctype: str | None, body: str | None, b64: bool) -> None:
    event = {"resource": "/v1/audio/transcriptions", "path": "/v1/audio/transcriptions", "httpMethod": method,
             "headers": {"Content-Type": ctype} if ctype else {}, "requestContext": {"stage": "v1"},
             "body": body, "isBase64Encoded": b64}
    resp = openai_api.handle(event, None)
    assert 400 <= resp["statusCode"] < 500, resp
    assert set(json.loads(resp["body"])["error"]) == {"message", "type", "param", "code"}
