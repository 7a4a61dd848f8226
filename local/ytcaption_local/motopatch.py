"""The three moto internals the local runtime relies on, patched in one place.

moto 5.2.5 (pinned exactly in pyproject.toml; ``tests/unit/test_moto_internals.py``
fails loudly if any of these change):

1. ``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)`` ->
   ``(payload_str, errored, logs)``: every invocation path (boto3 ``invoke``,
   Step Functions ``lambda:invoke``, S3 notifications) goes through it. Without
   Docker moto returns a canned payload; we call the real handler in-process.
2. ``moto.batch_simple.models.BatchSimpleBackend._mark_job_as_finished(self,
   include_start_attempt, job)``: without Docker moto marks every job
   SUCCEEDED at once; we run the worker entrypoint in a thread and then call
   ``job._mark_stopped(success=...)``. Step Functions' ``.sync`` polls
   ``describe_jobs`` until then.
3. ``StateTaskServiceBatch._normalise_parameters`` / ``_normalise_response``
   are empty in moto's ASL engine, so ``batch:submitJob`` sent PascalCase
   parameters to botocore (``KeyError: 'JobName'``). We convert them with the
   botocore operation model, as LocalStack's engine does.
4. A retried ``.sync`` task reuses its state's task-token ``CallbackEndpoint``,
   which the failed attempt left interrupted (``_notify_event`` set, no
   ``_outcome``), so every retry "times out" at once (``States.Timeout``) and a
   Map iteration then dies on ``CustomErrorName('States.Timeout')``. Before each
   attempt of a Batch task we clear that stale interrupt.
5. ``moto.dynamodb.models.DynamoDBBackend`` checks a ``ConditionExpression`` and
   then writes, with no lock: two threads can both pass the same condition,
   which DynamoDB never allows. The job repository's correctness rests on
   conditional writes, so writes are serialized (``make_dynamodb_atomic``).
6. A Map iteration that fails with a ``States.*`` error (a shard whose Batch
   retries are exhausted: ``States.TaskFailed``) is re-raised by moto as
   ``CustomErrorName('States.TaskFailed')``, whose constructor refuses the
   prefix, so the Map's Catch sees ``States.Runtime`` instead of the real
   error. On AWS the iteration's error passes through; ``CustomErrorName``
   accepts it here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

MOTO_VERSION = "5.2.5"

InvokeFn = Callable[[str, Any], Any]
"""(function_name, event) -> result; raises to report a function error."""
BatchFn = Callable[[Any], bool]
"""(moto batch Job) -> success."""

DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")

_state: dict[str, Any] = {"invoke": None, "batch": None, "installed": False}
_lock = threading.Lock()


def targets() -> dict[str, tuple[type, str]]:
    """The (class, method) pairs patched here: what the guard test checks."""
    from moto.awslambda.models import LambdaFunction
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.dynamodb.models import DynamoDBBackend
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    return {
        "custom_error_name": (CustomErrorName, "__init__"),
        "lambda_invoke": (LambdaFunction, "_invoke_lambda"),
        **{f"dynamodb_{m}": (DynamoDBBackend, m) for m in DYNAMODB_WRITES},
        "sfn_sync_attempt": (StateTaskServiceCallback, "_eval_integration_pattern"),
        "callback_endpoint": (CallbackEndpoint, "interrupt_all"),
        "batch_finish": (BatchSimpleBackend, "_mark_job_as_finished"),
        "sfn_batch_params": (StateTaskServiceBatch, "_normalise_parameters"),
        "sfn_batch_response": (StateTaskServiceBatch, "_normalise_response"),
    }


@lru_cache(maxsize=8)
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def _operation(service: str, snake_action: str) -> Any:
    from botocore import xform_name

    model = _service_model(service)
    for name in model.operation_names:
        if xform_name(name) == snake_action:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {snake_action}")


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    invoke: InvokeFn | None = _state["invoke"]
    if invoke is None:
        raise RuntimeError("the local runtime's Lambda dispatcher is not set")
    if isinstance(event, bytes | bytearray):
        event = event.decode()
    payload = json.loads(event) if isinstance(event, str) and event else (event or {})
    try:
        result = invoke(self.function_name, payload)
    except Exception as exc:  # reported like Lambda reports an unhandled error
        return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}), True, ""
    return json.dumps(result), False, ""


def _mark_job_as_finished(self: Any, include_start_attempt: bool, job: Any) -> None:
    import datetime

    run: BatchFn | None = _state["batch"]
    self.backend._jobs[job.job_id] = job
    job.job_started_at = datetime.datetime.now()
    job.log_stream_name = job._stream_name
    if include_start_attempt:
        job._start_attempt()

    def target() -> None:
        try:
            ok = bool(run(job)) if run is not None else True
        except Exception:
            ok = False
        job._mark_stopped(success=ok)

    threading.Thread(target=target, name=f"batch-{job.job_id[:8]}", daemon=True).start()


def _normalise_parameters(
    self: Any, parameters: dict[str, Any], boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    service = self._get_boto_service_name(boto_service_name)
    action = self._get_boto_service_action(service_action_name)
    self._to_boto_request(parameters, _operation(service, action).input_shape)


def _normalise_response(
    self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    service = self._get_boto_service_name(boto_service_name)
    action = self._get_boto_service_action(service_action_name)
    self._from_boto_response(response, _operation(service, action).output_shape)


def _make_fresh_attempt(original: Callable[..., Any]) -> Callable[..., Any]:
    def _eval_integration_pattern(self: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
        task = env.states.context_object.context_object_data.get("Task") or {}
        endpoint = env.callback_pool_manager.get(task.get("Token")) if task.get("Token") else None
        if endpoint is not None and endpoint._outcome is None:
            endpoint._notify_event.clear()  # the previous attempt's interrupt must not end this one
        return original(self, env, *args, **kwargs)

    return _eval_integration_pattern


_dynamodb_lock = threading.RLock()
_originals: dict[tuple[type, str], Any] = {}


def original(cls: type, name: str) -> Any:
    """The moto method as moto ships it, whether or not it has been patched here."""
    return _originals.get((cls, name), getattr(cls, name))


def _replace(cls: type, name: str, fn: Any) -> None:
    _originals.setdefault((cls, name), getattr(cls, name))
    setattr(cls, name, fn)


def make_dynamodb_atomic() -> None:
    """Serialize moto's DynamoDB writes so a condition and its write are one step (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in DYNAMODB_WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_ytcaption_atomic", False):
            continue

        def atomic(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(self, *args, **kwargs)

        atomic._ytcaption_atomic = True  # type: ignore[attr-defined]
        _replace(DynamoDBBackend, name, atomic)


def _custom_error_name_init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, error_name: str | None) -> None:
        if error_name is not None and error_name.startswith("States."):
            from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName

            ErrorName.__init__(self, error_name=error_name)  # an iteration's States.* error passes through
            return
        original(self, error_name)

    return __init__


def install(invoke: InvokeFn, batch: BatchFn) -> None:
    """Route Lambda invocations and Batch jobs to the given callables (idempotent)."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"the local runtime patches moto {MOTO_VERSION} internals; moto {moto.__version__} is installed"
        )
    make_dynamodb_atomic()
    with _lock:
        _state["invoke"], _state["batch"] = invoke, batch
        if _state["installed"]:
            return
        t = targets()
        for key, fn in (("lambda_invoke", _invoke_lambda), ("batch_finish", _mark_job_as_finished),
                        ("sfn_batch_params", _normalise_parameters),
                        ("sfn_batch_response", _normalise_response)):
            cls, name = t[key]
            _replace(cls, name, fn)
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
            StateTaskServiceBatch,
        )

        cls, name = t["custom_error_name"]
        _replace(cls, name, _custom_error_name_init(getattr(cls, name)))
        base, name = t["sfn_sync_attempt"]
        _replace(StateTaskServiceBatch, name, _make_fresh_attempt(getattr(base, name)))
        _state["installed"] = True
