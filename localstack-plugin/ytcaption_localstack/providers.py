"""DynamoDB and Batch for LocalStack community, served from the moto it bundles.

Selected with ``PROVIDER_OVERRIDE_DYNAMODB=ytcaption`` and
``PROVIDER_OVERRIDE_BATCH=ytcaption``. LocalStack's own DynamoDB downloads Java
and DynamoDB Local (not possible offline); Batch is not in the community
edition at all. Every operation goes to moto's backend in-process; for Batch,
each submitted job runs its job definition's command as a host process (the
image is mapped to local code by the plugin configuration), so Step Functions'
``batch:submitJob.sync`` waits on the real worker.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from localstack.aws.spec import load_service
from localstack.services.plugins import Service, aws_provider

from ytcaption_localstack import config

LOG = logging.getLogger(__name__)


class _MotoOnly:
    """A provider with no operations of its own: everything is moto's."""

    def __init__(self, service: str) -> None:
        self.service = service


class _MotoDispatchTable(dict[str, Any]):
    def __init__(self, service: str) -> None:
        from localstack.services.moto import _proxy_moto

        super().__init__({op: _proxy_moto for op in load_service(service).operation_names})


def _moto_service(service: str) -> Service:
    return Service.for_provider(_MotoOnly(service), dispatch_table_factory=lambda p: _MotoDispatchTable(service))


@aws_provider(api="s3", name="ytcaption")
def s3() -> Service:
    """LocalStack's own S3, with its object store under ``YTCAPTION_LS_S3_DIR`` instead of
    the fixed ``/tmp/localstack-s3-storage`` it never removes."""
    from localstack.services.s3.provider import S3Provider
    from localstack.services.s3.storage.ephemeral import EphemeralS3ObjectStore

    root = os.environ.get("YTCAPTION_LS_S3_DIR") or os.path.join(tempfile.gettempdir(), "localstack-s3-storage")
    return Service.for_provider(S3Provider(storage_backend=EphemeralS3ObjectStore(root)))


@aws_provider(api="dynamodb", name="ytcaption")
def dynamodb() -> Service:
    _serialize_dynamodb()
    return _moto_service("dynamodb")


_dynamodb_lock = threading.Lock()


def _serialize_dynamodb() -> None:
    """One DynamoDB request at a time, as the local runtime does (``ytcaption_local.motopatch``).

    moto checks an update's ConditionExpression and then writes, in two steps with no lock:
    two writers conditioned on the same version could both succeed. The endpoint suite saw it
    once: a cancel and the normalize stage's move to TRANSCRIBING both went through, and the
    cancelled job came back as TRANSCRIBING.
    """
    from moto.dynamodb.responses import DynamoHandler

    found = DynamoHandler.call_action
    if getattr(found, "_ytcaption_serialized", False):
        return

    def call_action(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _dynamodb_lock:
            return found(self, *args, **kwargs)

    call_action._ytcaption_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


@aws_provider(api="batch", name="ytcaption")
def batch() -> Service:
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.core.config import default_user_config

    # moto's Docker-free backend; its "finish" step becomes a real run of the job
    default_user_config.setdefault("batch", {})["use_docker"] = False
    BatchSimpleBackend._mark_job_as_finished = _start_job  # type: ignore[method-assign]
    return _moto_service("batch")


# --- Batch jobs as host processes ------------------------------------------------------------

_slots_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(int(config.batch().get("slots", os.cpu_count() or 1)))
        return _slots


def _start_job(self: Any, include_start_attempt: bool, job: Any) -> None:
    """Replaces moto's BatchSimpleBackend._mark_job_as_finished: the job stays RUNNABLE
    until a slot is free, RUNNING while its process runs, then SUCCEEDED or FAILED by
    the exit code."""
    from moto.batch.utils import JobStatus

    self.backend._jobs[job.job_id] = job
    job.status = JobStatus.RUNNABLE
    threading.Thread(target=_run_job, args=(job, include_start_attempt), daemon=True,
                     name=f"batch-{job.job_id[:8]}").start()


def _env_pairs(items: list[dict[str, Any]] | None) -> Iterator[tuple[str, str]]:
    for item in items or []:
        if "name" in item:
            yield str(item["name"]), str(item.get("value", ""))


def job_environment(job: Any) -> dict[str, str]:
    """What the container would see: the job definition's environment, the
    submission's overrides, credentials and the endpoint, the image map's env."""
    props = job.job_definition.container_properties or {}
    overrides = job.container_overrides or {}
    region = job.job_definition._region
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": tempfile.gettempdir(),
        "AWS_BATCH_JOB_ID": job.job_id,
        "AWS_BATCH_JQ_NAME": job.job_queue.name,
        "AWS_BATCH_JOB_ATTEMPT": str(len(job.attempts) or 1),
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": _endpoint(),
        **dict(_env_pairs(props.get("environment"))),
        **dict(_env_pairs(overrides.get("environment"))),
    }
    env.update(config.extra_env())
    env.update({k: str(v) for k, v in config.batch().get("env", {}).items()})
    return env


def _endpoint() -> str:
    from localstack import config as ls_config

    return f"http://127.0.0.1:{ls_config.GATEWAY_LISTEN[0].port}"


def job_command(job: Any) -> tuple[list[str], str]:
    """The job's command with ``python`` replaced by its image's interpreter, and the cwd."""
    props = job.job_definition.container_properties or {}
    overrides = job.container_overrides or {}
    image_uri = str(props.get("image", ""))
    image = config.image(image_uri)
    command = list(overrides.get("command") or props.get("command") or [])
    if not command:
        raise config.PluginConfigError(f"job definition {job.job_definition.name} has no command")
    if fnmatch.fnmatch(command[0], "python*"):
        command[0] = image.python
    return command, (image.path[0] if image.path else tempfile.gettempdir())


def _timeout_s(job: Any) -> float | None:
    for source in (job.timeout, job.job_definition.timeout):
        if source and source.get("attemptDurationSeconds"):
            return float(source["attemptDurationSeconds"])
    return None


def _glob(pattern: str, value: str | None) -> bool:
    """Batch's evaluateOnExit patterns: exact, or a prefix ending in ``*``."""
    value = value or ""
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def should_retry(strategy: dict[str, Any] | None, attempts_made: int, *, status_reason: str | None,
                 reason: str | None, exit_code: int | None) -> bool:
    """AWS Batch's retry decision: no attempts left -> no; the first ``evaluateOnExit``
    rule whose given conditions all match decides (RETRY or EXIT); none matching -> retry."""
    strategy = strategy or {}
    if attempts_made >= int(strategy.get("attempts", 1)):
        return False
    for rule in strategy.get("evaluateOnExit") or []:
        checks = [("onStatusReason", status_reason), ("onReason", reason),
                  ("onExitCode", None if exit_code is None else str(exit_code))]
        if all(_glob(rule[key], value) for key, value in checks if key in rule):
            return str(rule.get("action", "")).upper() == "RETRY"
    return True


def _run_job(job: Any, include_start_attempt: bool) -> None:
    """Run attempts of the job until one succeeds, it is terminated or timed out (never
    retried, as on AWS), or its retry strategy says stop."""
    import datetime

    strategy = job.job_definition.retry_strategy
    attempts = 0
    while True:
        attempts += 1
        exit_code, reason = _run_attempt(job, include_start_attempt or attempts > 1)
        success = exit_code == 0 and reason is None
        if success or job.stop or (reason or "").startswith("Job attempt duration") or not should_retry(
                strategy, attempts, status_reason=job.job_stopped_reason, reason=reason, exit_code=exit_code):
            job._mark_stopped(success=success)
            return
        LOG.info("batch job %s: attempt %d failed (%s); retrying", job.job_id, attempts, job.job_stopped_reason)
        job.job_stopped_at = datetime.datetime.now()
        job._stop_attempt()


def _run_attempt(job: Any, start_attempt: bool) -> tuple[int | None, str | None]:
    """One attempt as a host process: (exit code, reason it was stopped or could not start)."""
    import datetime

    from moto.batch.utils import JobStatus

    with _semaphore():
        if job.stop:
            return None, job.job_stopped_reason or "Terminated"
        job.job_started_at = datetime.datetime.now()
        job.log_stream_name = job._stream_name
        if start_attempt:
            job._start_attempt()
        job.status = JobStatus.STARTING
        try:
            command, cwd = job_command(job)
            env = job_environment(job)
            image = config.image(str((job.job_definition.container_properties or {}).get("image", "")))
            env.update(image.env)
            if image.path:
                env["PYTHONPATH"] = os.pathsep.join(image.path)
        except Exception as exc:
            LOG.error("batch job %s cannot start: %s", job.job_id, exc)
            job.job_stopped_reason = f"CannotStartContainerError: {exc}"
            return None, job.job_stopped_reason
        log_path = os.path.join(tempfile.gettempdir(), f"ytcaption-ls-batch-{job.job_id}.log")
        deadline = _timeout_s(job)
        started = time.monotonic()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - the job definition's command
                command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        config.track(proc.pid)
        job.status = JobStatus.RUNNING
        reason = None
        while proc.poll() is None:
            if job.stop:
                reason = job.job_stopped_reason or "Terminated"
            elif deadline is not None and time.monotonic() - started > deadline:
                reason = "Job attempt duration exceeded timeout"
            if reason:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.2)
        config.untrack(proc.pid)
        job.exit_code = proc.returncode
        if reason:
            job.job_stopped_reason = reason
        elif proc.returncode != 0:
            job.job_stopped_reason = "Essential container in task exited"
        with open(log_path, "rb") as fh:
            tail = fh.read()[-4000:].decode("utf-8", "replace")
        os.unlink(log_path)
        LOG.info("batch job %s exited %s after %.1fs", job.job_id, proc.returncode, time.monotonic() - started)
        if proc.returncode != 0:
            LOG.warning("batch job %s failed; last output:\n%s", job.job_id, tail)
        return proc.returncode, reason


# --- API Gateway: gateway responses from the imported OpenAPI body ----------------------------


def gateway_responses_of(body: bytes) -> dict[str, dict[str, Any]]:
    """``x-amazon-apigateway-gateway-responses`` of an OpenAPI document (JSON or YAML)."""
    from localstack.services.apigateway.helpers import parse_json_or_yaml

    doc = parse_json_or_yaml(body.decode("utf-8"))
    return dict(doc.get("x-amazon-apigateway-gateway-responses") or {}) if isinstance(doc, dict) else {}


def _render_gateway_response_templates() -> None:
    """LocalStack 4.9.2 answers a gateway error with the response's status code but a
    fixed ``{"message": ...}`` body (a TODO in its source); AWS renders the response's
    ``application/json`` template. Render it with LocalStack's own VTL engine, with
    ``$context.error.messageString`` quoted as AWS quotes it."""
    import json

    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
        get_gateway_response_or_default,
    )
    from localstack.services.apigateway.next_gen.execute_api.handlers import gateway_exception
    from localstack.services.apigateway.next_gen.execute_api.template_mapping import ApiGatewayVtlTemplate

    handler = gateway_exception.GatewayExceptionHandler
    if getattr(handler, "_ytcaption_patched", False):
        return
    original = handler.create_exception_response

    def create_exception_response(self: Any, exception: Any, context: Any) -> Any:
        response = original(self, exception, context)
        spec = get_gateway_response_or_default(exception.type, context.deployment.rest_api.gateway_responses)
        template = (spec.get("responseTemplates") or {}).get("application/json")
        if response is not None and template and not spec.get("defaultResponse"):
            error = dict(context.context_variables.get("error") or {})
            error["messageString"] = json.dumps(exception.message)
            variables = {"context": {**context.context_variables, "error": error}}
            response.set_data(ApiGatewayVtlTemplate().render_vtl(template, variables=variables))
        return response

    handler.create_exception_response = create_exception_response  # type: ignore[method-assign]
    handler._ytcaption_patched = True


@aws_provider(api="apigateway", name="ytcaption")
def apigateway() -> Service:
    """LocalStack's API Gateway, plus the gateway-response steps 4.9.2 skips: SAM puts a
    template's ``GatewayResponses`` into the API's OpenAPI body
    (``x-amazon-apigateway-gateway-responses``) and LocalStack's importer ignores
    that extension (AWS applies it): here each entry becomes a ``PutGatewayResponse``;
    and their templates are rendered (see ``_render_gateway_response_templates``)."""
    import io

    _render_gateway_response_templates()

    from localstack.services.apigateway.next_gen.provider import ApigatewayNextGenProvider
    from localstack.services.moto import MotoFallbackDispatcher

    class Provider(ApigatewayNextGenProvider):
        # LocalStack declares it with expand=False: it is called with the whole request
        def put_rest_api(self, context: Any, request: Any) -> Any:  # type: ignore[override]
            body = request["body"].read()
            request["body"] = io.BytesIO(body)
            result = super().put_rest_api(context, request)
            put: Any = self.put_gateway_response
            for response_type, spec in gateway_responses_of(body).items():
                status = spec.get("statusCode")
                put(
                    context, request["restApiId"], response_type,
                    status_code=str(status) if status is not None else None,
                    response_parameters=spec.get("responseParameters"),
                    response_templates=spec.get("responseTemplates"),
                )
            return result

    return Service.for_provider(Provider(), dispatch_table_factory=MotoFallbackDispatcher)
