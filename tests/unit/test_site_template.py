"""The state machine's site-captions branches and the template pieces for search, info and yt-dlp secrets."""

from __future__ import annotations

import json
from typing import Any

from ytcaption.domain.errors import RETRYABLE_ERROR_NAMES, SourceBlocked
from ytcaption_local.template import ROOT, load_template

ASL = ROOT / "statemachines" / "transcription.asl.json"


def states() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text())["States"])


def test_a_refused_download_goes_to_the_fallback_choice_and_is_never_retried() -> None:
    s = states()
    download = s["Download"]
    assert download["Catch"][0] == {"ErrorEquals": ["SourceBlocked"], "ResultPath": "$.error",
                                    "Next": "DownloadRefused"}
    assert all("SourceBlocked" not in r["ErrorEquals"] for r in download["Retry"])
    assert not SourceBlocked.retryable and "SourceBlocked" not in RETRYABLE_ERROR_NAMES
    choice = s["DownloadRefused"]
    assert choice["Default"] == "MarkFailed"
    [rule] = choice["Choices"]
    assert rule["Next"] == "SiteCaptionsFallback"
    assert {"Variable": "$.site_captions", "StringEquals": "fallback"} in rule["And"]


def test_prefer_looks_for_site_captions_before_downloading() -> None:
    s = states()
    route = s["Route"]["Choices"]
    assert route[0]["StringEquals"] == "upload"  # uploads never ask a site
    assert route[1]["Next"] == "SiteCaptionsFirst"
    assert {"Variable": "$.site_captions", "StringEquals": "prefer"} in route[1]["And"]
    assert s["SiteCaptionsFirst"]["Next"] == "SiteCaptionsFound"
    found = s["SiteCaptionsFound"]
    assert found["Choices"] == [{"Variable": "$.site.completed", "BooleanEquals": True, "Next": "Notify"}]
    assert found["Default"] == "Download"


def test_both_site_caption_tasks_call_one_function_with_their_mode() -> None:
    s = states()
    first, fallback = s["SiteCaptionsFirst"], s["SiteCaptionsFallback"]
    assert first["Parameters"]["Payload"] == {"job_id.$": "$.job_id", "mode": "prefer"}
    assert fallback["Parameters"]["Payload"] == {"job_id.$": "$.job_id", "mode": "fallback", "error.$": "$.error"}
    for st in (first, fallback):
        assert st["Parameters"]["FunctionName"] == "${SiteCaptionsFunctionArn}"
        assert [c["Next"] for c in st["Catch"]] == ["Cancelled", "MarkFailed"]
        retried = {e for r in st["Retry"] for e in r["ErrorEquals"]}
        assert "DownloadFailed" in retried and "SourceBlocked" not in retried
    assert fallback["Next"] == "Notify"


def test_search_and_info_routes_go_to_the_media_image() -> None:
    from ytcaption_local.apigw import LocalApiGateway
    from ytcaption_local.runtime import transformed_template

    t = load_template()
    transformed, _ = transformed_template()
    rest_api = next(r["Properties"] for r in transformed["Resources"].values()
                    if r["Type"] == "AWS::ApiGateway::RestApi")
    front = LocalApiGateway(rest_api, lambda *a: None, "k" * 20)  # routes as API Gateway will, from the template

    def route(method: str, path: str) -> str | None:
        found = front.match(method, path)
        return found[0].function if found else None

    assert route("GET", "/v1/search") == "MediaApiFunction"
    assert route("GET", "/v1/media") == "MediaApiFunction"
    assert route("GET", "/v1/transcriptions") == "ApiFunction"
    fn = t["Resources"]["MediaApiFunction"]["Properties"]
    assert fn["PackageType"] == "Image" and fn["ImageConfig"]["Command"] == ["media_api.app.lambda_handler"]
    assert fn["Timeout"] < 30  # API Gateway's integration limit
    dockerfile = (ROOT / "containers" / "media" / "Dockerfile").read_text()
    for d in ("site_captions", "media_api"):
        assert f"functions/{d}/app.py" in dockerfile


def test_yt_dlp_secrets_are_parameters_readable_only_by_the_functions_that_run_yt_dlp() -> None:
    t = load_template()
    assert {"YtdlpCookiesSecretArn", "YtdlpProxySecretArn", "YtdlpExtractorArgs",
            "YtdlpSleepRequestsSeconds"} <= set(t["Parameters"])
    env = t["Globals"]["Function"]["Environment"]["Variables"]
    assert env["YTDLP__COOKIES_SECRET_ARN"] == {"Ref": "YtdlpCookiesSecretArn"}
    readers = set()
    for name, r in t["Resources"].items():
        if "secretsmanager:GetSecretValue" in json.dumps(r.get("Properties", {}).get("Policies", [])):
            readers.add(name)
    assert readers == {"DownloadFunction", "SiteCaptionsFunction", "MediaApiFunction"}


def test_the_local_resolver_reads_the_conditional_secret_policies() -> None:
    from ytcaption_local.runtime import Resolver, transformed_template

    template, _ = transformed_template()
    role = template["Resources"]["DownloadFunctionRole"]["Properties"]
    refs: dict[str, Any] = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "1",
                            "AWS::StackName": "s", "JobsTable": "t", "YtdlpCookiesSecretArn": "",
                            "YtdlpProxySecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:proxy-AbCdEf"}
    getatt = {("MediaBucket", "Arn"): "arn:aws:s3:::b", ("JobsTable", "Arn"): "arn:aws:dynamodb:::table/t"}
    policies = Resolver(refs, getatt, template["Conditions"])(role["Policies"])
    text = json.dumps(policies)
    assert "proxy-AbCdEf" in text and text.count("secretsmanager:GetSecretValue") == 1  # no cookies statement
    assert "Fn::If" not in text and "AWS::NoValue" not in text
