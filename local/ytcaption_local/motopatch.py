"""Every moto internal the local runtime changes, patched here and only here.

moto 5.2.5 is pinned exactly in pyproject.toml; ``tests/unit/test_moto_internals.py``
fails loudly if any target below moves. The patches come as two contexts, each
installed on entry, every original put back on exit, and refusing a second
install while one is active (two runtimes in one process would route each
other's Lambda invocations and Batch jobs):

``runtime_patches(invoke, batch)``, what the local runtime needs to run the stack:

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
   attempt of a Batch task (``_eval_integration_pattern``) we clear that stale
   interrupt.
5. ``moto.dynamodb.models.DynamoDBBackend`` checks a ``ConditionExpression`` and
   then writes, with no lock: two threads can both pass the same condition,
   which DynamoDB never allows. The job repository's correctness rests on
   conditional writes, so writes are serialized. Whole requests are too
   (``DynamoHandler.call_action``): moto's ``update_item`` response deep-copies
   the stored item before it takes the backend's lock, and its serializer
   walks items after, so a reader racing a writer died with "dictionary
   changed size during iteration". Tests on ``mock_aws`` need this too:
   ``make_dynamodb_atomic()`` applies it alone, for the process.
6. A Map iteration that fails with a ``States.*`` error (a shard whose Batch
   retries are exhausted: ``States.TaskFailed``) is re-raised by moto as
   ``CustomErrorName('States.TaskFailed')``, whose constructor refuses the
   prefix, so the Map's Catch sees ``States.Runtime`` instead of the real
   error. On AWS the iteration's error passes through; ``CustomErrorName``
   accepts it here.

``iam_patches(authorize, sign_state_machine_client)``, IAM enforced with the
template's roles (the policy logic is ``ytcaption_local.iam``'s):

7. ``ActionAuthenticatorMixin._authenticate_and_authorize_action(self,
   iam_request_cls, resource)`` is replaced by ``authorize`` (moto checks
   resources only for S3, SQS, IAM and STS), and
   ``settings.INITIAL_NO_AUTH_ACTION_COUNT`` is 0, so every request is checked.
8. ``moto.stepfunctions.parser.asl.utils.boto_client.boto_client_for(region,
   service, state_credentials)`` builds the clients of Step Functions' service
   integrations with the process's credentials; each client it returns is
   handed to ``sign_state_machine_client`` to sign as the state machine's role.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

MOTO_VERSION = "5.2.5"

InvokeFn = Callable[[str, Any], Any]
"""(function_name, event) -> result; raises to report a function error."""
BatchFn = Callable[[Any], bool]
"""(moto batch Job) -> success."""

DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")

_state: dict[str, Any] = {"invoke": None, "batch": None}
_lock = threading.Lock()
#: The contexts installed now ("runtime", "iam").
_active: set[str] = set()


def targets() -> dict[str, tuple[type, str]]:
    """The (class or module, attribute) pairs patched here: what the guard test checks."""
    from moto.awslambda.models import LambdaFunction
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler, DynamoResult
    from moto.s3 import notifications
    from moto.s3.responses import S3Response
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    return {
        "custom_error_name": (CustomErrorName, "__init__"),
        "lambda_invoke": (LambdaFunction, "_invoke_lambda"),
        **{f"dynamodb_{m}": (DynamoDBBackend, m) for m in DYNAMODB_WRITES},
        "dynamodb_request": (DynamoHandler, "call_action"),
        "sfn_sync_attempt": (StateTaskServiceCallback, "_eval_integration_pattern"),
        "callback_endpoint": (CallbackEndpoint, "interrupt_all"),
        "batch_finish": (BatchSimpleBackend, "_mark_job_as_finished"),
        "sfn_batch_params": (StateTaskServiceBatch, "_normalise_parameters"),
        "sfn_batch_response": (StateTaskServiceBatch, "_normalise_response"),
        "s3_send_event": (notifications, "send_event"),  # type: ignore[dict-item]
        "s3_put_response": (S3Response, "put_object"),
        "sfn_entrypoint": (ExecutionWorker, "_get_evaluation_entrypoint"),
        "dynamodb_result": (DynamoResult, "execute_result"),
        "iam_authorize": (ActionAuthenticatorMixin, "_authenticate_and_authorize_action"),
        "sfn_service_client": (boto_client, "boto_client_for"),  # type: ignore[dict-item]
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
_originals: dict[tuple[Any, str], Any] = {}


def original(cls: Any, name: str) -> Any:
    """The moto method as moto ships it, whether or not it has been patched here."""
    return _originals.get((cls, name), getattr(cls, name))


def _replace(cls: Any, name: str, fn: Any) -> Callable[[], None]:
    """Set ``cls.name`` to ``fn``; returns the undo (what was there before comes back)."""
    found = getattr(cls, name)
    own = name in vars(cls)  # not inherited: put back, else removed again
    _originals.setdefault((cls, name), found)
    setattr(cls, name, fn)
    return (lambda: setattr(cls, name, found)) if own else (lambda: delattr(cls, name))


def _atomic_writes() -> list[Callable[[], None]]:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    undo = []
    serialized = [(DynamoDBBackend, name) for name in DYNAMODB_WRITES] + [(DynamoHandler, "call_action")]
    for cls, name in serialized:
        found = getattr(cls, name)
        if getattr(found, "_ytcaption_atomic", False):
            continue  # serialized already (make_dynamodb_atomic): left as it is

        def atomic(self: Any, *args: Any, __original: Any = found, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(self, *args, **kwargs)

        atomic._ytcaption_atomic = True  # type: ignore[attr-defined]
        undo.append(_replace(cls, name, atomic))
    return undo


def make_dynamodb_atomic() -> None:
    """Patch 5 alone and for good, for tests on ``mock_aws`` (idempotent)."""
    _atomic_writes()


_held = threading.local()


def _held_during_put(original: Callable[..., Any]) -> Callable[..., Any]:
    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        pending = getattr(_held, "events", None)
        if pending is None:
            original(account_id, event_name, bucket, key)
        else:
            pending.append(lambda: original(account_id, event_name, bucket, key))

    return send_event


def _holding_notifications(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = getattr(_held, "events", None)
        _held.events = []
        try:
            return original(self, *args, **kwargs)
        finally:
            pending, _held.events = _held.events, outer
            for send in pending:  # the object now has its metadata, ACL and tags
                send()

    return put_object


def _custom_error_name_init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, error_name: str | None) -> None:
        if error_name is not None and error_name.startswith("States."):
            from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName

            ErrorName.__init__(self, error_name=error_name)  # an iteration's States.* error passes through
            return
        original(self, error_name)

    return __init__


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[list[Callable[[], None]]]:
    """One installation of a group at a time; undoes what it installed, last first."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"the local runtime patches moto {MOTO_VERSION} internals; moto {moto.__version__} is installed"
        )
    with _lock:
        if name in _active:
            raise RuntimeError(f"moto's {name} patches are installed already (one local runtime per process)")
        _active.add(name)
    undo: list[Callable[[], None]] = []
    try:
        yield undo
    finally:
        while undo:
            undo.pop()()
        with _lock:
            _active.discard(name)


@contextlib.contextmanager
def runtime_patches(invoke: InvokeFn, batch: BatchFn) -> Iterator[None]:
    """Patches 1-6 and 9-11: Lambda invocations and Batch jobs go to the given callables."""
    with _exclusive("runtime") as undo:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
            StateTaskServiceBatch,
        )

        from ytcaption_local import speedups  # imports this module: imported here, not at the top

        _state["invoke"], _state["batch"] = invoke, batch
        undo.append(lambda: _state.update(invoke=None, batch=None))
        undo.extend(_atomic_writes())
        t = targets()
        for key, fn in (("lambda_invoke", _invoke_lambda), ("batch_finish", _mark_job_as_finished),
                        ("sfn_batch_params", _normalise_parameters),
                        ("sfn_batch_response", _normalise_response),
                        ("sfn_entrypoint", speedups.evaluation_entrypoint),
                        ("dynamodb_result", speedups.execute_result)):
            cls, name = t[key]
            undo.append(_replace(cls, name, fn))
        cls, name = t["custom_error_name"]
        undo.append(_replace(cls, name, _custom_error_name_init(getattr(cls, name))))
        base, name = t["sfn_sync_attempt"]
        # on the Batch task class only: the callback base class serves other services too
        undo.append(_replace(StateTaskServiceBatch, name, _make_fresh_attempt(getattr(base, name))))
        module, name = t["s3_send_event"]
        undo.append(_replace(module, name, _held_during_put(getattr(module, name))))
        cls, name = t["s3_put_response"]
        undo.append(_replace(cls, name, _holding_notifications(getattr(cls, name))))
        yield


@contextlib.contextmanager
def iam_patches(authorize: Callable[..., None], sign_state_machine_client: Callable[[Any, Any], None],
                ) -> Iterator[None]:
    """Patches 7 and 8: every request is authorized by ``authorize``; Step Functions'
    service clients are signed by ``sign_state_machine_client(client, state_credentials)``."""
    with _exclusive("iam") as undo:
        from moto import settings

        t = targets()
        cls, name = t["iam_authorize"]
        undo.append(_replace(cls, name, authorize))
        previous = settings.INITIAL_NO_AUTH_ACTION_COUNT
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        undo.append(lambda: setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", previous))
        cls.request_count = 0  # type: ignore[attr-defined]

        module, name = t["sfn_service_client"]
        shipped = getattr(module, name)

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            client = shipped(region, service, state_credentials)
            sign_state_machine_client(client, state_credentials)
            return client

        # the engine's modules import the function by name: each keeps its own reference
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("moto.stepfunctions") and getattr(mod, name, None) is shipped:
                undo.append(_replace(mod, name, boto_client_for))
        yield
