"""The plugin against the pinned LocalStack: the internals it relies on still exist,
and its pure parts (property casing, image mapping, gateway responses, the runtime
loop) behave. Runs in LocalStack's virtualenv (`make localstack-test` runs it first)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from ytcaption_localstack import cfn_batch, config, executor, providers

BOOTSTRAP = Path(executor.__file__).with_name("bootstrap.py")


def test_pinned_localstack() -> None:
    assert version("localstack-core") == "4.9.2"


def test_internals_the_plugin_uses_still_exist() -> None:
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import get_gateway_response_or_default
    from localstack.services.apigateway.next_gen.execute_api.handlers.gateway_exception import (
        GatewayExceptionHandler,
    )
    from localstack.services.apigateway.next_gen.execute_api.template_mapping import ApiGatewayVtlTemplate
    from localstack.services.apigateway.next_gen.provider import ApigatewayNextGenProvider
    from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor
    from localstack.services.s3.provider import S3Provider
    from moto.batch.models import Job
    from moto.batch_simple.models import BatchSimpleBackend

    assert list(inspect.signature(GatewayExceptionHandler.create_exception_response).parameters) == [
        "self", "exception", "context"]
    assert list(inspect.signature(get_gateway_response_or_default).parameters) == [
        "response_type", "gateway_responses"]
    assert hasattr(ApiGatewayVtlTemplate, "render_vtl")
    assert "put_rest_api" in ApigatewayNextGenProvider.__dict__ or hasattr(ApigatewayNextGenProvider, "put_rest_api")
    assert "status_code" in inspect.signature(ApigatewayNextGenProvider.put_gateway_response).parameters
    assert list(inspect.signature(BatchSimpleBackend._mark_job_as_finished).parameters) == [
        "self", "include_start_attempt", "job"]
    assert all(hasattr(Job, m) for m in ("_mark_stopped", "_start_attempt", "terminate"))
    assert "storage_backend" in inspect.signature(S3Provider.__init__).parameters
    # the executor implements every abstract method LocalStack declares
    assert RuntimeExecutor.__abstractmethods__ <= set(executor.HostProcessExecutor.__dict__)
    assert not executor.HostProcessExecutor.__abstractmethods__


def test_entry_points_are_registered() -> None:
    from importlib.metadata import entry_points

    assert "ytcaption-host" in {e.name for e in entry_points(group="localstack.lambda.runtime_executor")}
    providers_ = {e.name for e in entry_points(group="localstack.aws.provider")}
    assert {"dynamodb:ytcaption", "batch:ytcaption", "s3:ytcaption", "apigateway:ytcaption"} <= providers_
    cfn = {e.name for e in entry_points(group="localstack.cloudformation.resource_providers")}
    assert {"AWS::Batch::ComputeEnvironment", "AWS::Batch::JobQueue", "AWS::Batch::JobDefinition"} <= cfn


def test_template_properties_become_batch_api_shapes() -> None:
    props = {"RetryStrategy": {"Attempts": 3, "EvaluateOnExit": [{"OnStatusReason": "Host EC2*", "Action": "RETRY"}]},
             "ContainerProperties": {"Command": ["python", "-m", "ytcaption.worker"],
                                     "Environment": [{"Name": "JOBS_TABLE", "Value": "t"}],
                                     "ResourceRequirements": [{"Type": "GPU", "Value": "1"}]}}
    assert cfn_batch.camel(props) == {
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}]},
        "containerProperties": {"command": ["python", "-m", "ytcaption.worker"],
                                "environment": [{"name": "JOBS_TABLE", "value": "t"}],
                                "resourceRequirements": [{"type": "GPU", "value": "1"}]}}
    for schema in cfn_batch.SCHEMAS.values():
        assert schema["primaryIdentifier"]


def test_images_map_by_pattern_and_unknown_ones_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"images": [{"match": "*/ytcaption-media:*", "python": "/p", "path": ["/f"]}],
                               "runtimes": {"python3.12": "/py312"}}))
    monkeypatch.setenv("YTCAPTION_LS_CONFIG", str(cfg))
    assert config.image("1.dkr.ecr.x/ytcaption-media:localstack").path == ["/f"]
    assert config.runtime_python("python3.12") == "/py312"
    with pytest.raises(config.PluginConfigError, match="no local code mapped"):
        config.image("docker.io/other:1")
    with pytest.raises(config.PluginConfigError, match=r"python3\.13"):
        config.runtime_python("python3.13")


def test_gateway_responses_are_read_from_the_openapi_body() -> None:
    body = json.dumps({"swagger": "2.0", "x-amazon-apigateway-gateway-responses": {
        "INVALID_API_KEY": {"statusCode": 403, "responseTemplates": {"application/json": "{}"}}}}).encode()
    assert providers.gateway_responses_of(body) == {
        "INVALID_API_KEY": {"statusCode": 403, "responseTemplates": {"application/json": "{}"}}}
    assert providers.gateway_responses_of(b"openapi: 3.0.1\ninfo: {}\n") == {}


def test_runtime_loop_answers_results_errors_and_import_failures(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "def lambda_handler(event, context):\n"
        "    if event.get('fail'):\n        raise KeyError('x')\n"
        "    print('to the log')\n"
        "    return {'got': event, 'left': context.get_remaining_time_in_millis() > 0,\n"
        "            'id': context.aws_request_id}\n")

    def run(handler: str, events: list[dict[str, object]]) -> list[dict[str, object]]:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path), "_HANDLER": handler,
               "_YTC_IN_FD": str(to_r), "_YTC_OUT_FD": str(from_w), "AWS_LAMBDA_FUNCTION_TIMEOUT": "3"}
        proc = subprocess.Popen([sys.executable, str(BOOTSTRAP)], env=env, cwd=tmp_path, pass_fds=(to_r, from_w),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.close(to_r)
        os.close(from_w)
        with os.fdopen(to_w, "w") as out, os.fdopen(from_r) as back:
            replies = [json.loads(back.readline())]
            for n, event in enumerate(events):
                out.write(json.dumps({"invoke-id": f"r{n}", "invoked-function-arn": "arn",
                                      "payload": json.dumps(event)}) + "\n")
                out.flush()
                replies.append(json.loads(back.readline()))
        proc.wait(timeout=10)
        assert proc.stdout is not None
        assert b"START RequestId" in proc.stdout.read() or not events
        return replies

    ready, ok, failed = run("app.lambda_handler", [{"a": 1}, {"fail": True}])
    assert ready == {"ready": True}
    assert ok["error"] is False and json.loads(str(ok["payload"])) == {"got": {"a": 1}, "left": True, "id": "r0"}
    error = json.loads(str(failed["payload"]))
    assert failed["error"] is True and error["errorType"] == "KeyError" and error["requestId"] == "r1"
    _, broken = run("missing.lambda_handler", [{}])
    assert json.loads(str(broken["payload"]))["errorType"] == "Runtime.ImportModuleError"


def test_batch_retry_strategy_follows_evaluate_on_exit() -> None:
    # the template's TranscriberJobDefinition
    strategy = {"attempts": 3, "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onReason": "CannotPullContainerError*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"}]}
    crashed = {"status_reason": "Essential container in task exited", "reason": None, "exit_code": 1}
    assert providers.should_retry(strategy, 1, **crashed) is False  # an application error exits
    spot = {"status_reason": "Host EC2 (instance i-0abc) terminated.", "reason": None, "exit_code": None}
    assert providers.should_retry(strategy, 1, **spot) is True
    assert providers.should_retry(strategy, 3, **spot) is False  # attempts used up
    assert providers.should_retry({"attempts": 2}, 1, **crashed) is True  # no rules: retry while attempts remain
    assert providers.should_retry(None, 1, **crashed) is False
    assert providers.should_retry({"attempts": 2, "evaluateOnExit": [{"onExitCode": "1", "action": "EXIT"}]}, 1,
                                  **crashed) is False


def test_dynamodb_requests_run_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto checks a ConditionExpression, then writes: two requests at once could both pass one
    # condition. The provider serializes whole requests; wrapping twice must not nest the lock.
    import threading
    import time

    from moto.dynamodb.responses import DynamoHandler

    inside, most = [0], [0]
    guard = threading.Lock()

    def call_action(self: object) -> str:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)
        with guard:
            inside[0] -= 1
        return "ok"

    monkeypatch.setattr(DynamoHandler, "call_action", call_action)
    providers._serialize_dynamodb()
    wrapped = DynamoHandler.call_action
    providers._serialize_dynamodb()
    assert DynamoHandler.call_action is wrapped  # not wrapped a second time
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(wrapped(object()))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 8
    assert most[0] == 1
