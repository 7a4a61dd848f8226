"""Fails loudly if the moto internals the local runtime patches change.

The local runtime replaces private moto methods (see ytcaption_local/motopatch.py).
moto is pinned exactly; on an upgrade this test says what moved.
"""

from __future__ import annotations

import inspect

import moto
import pytest

from ytcaption_local import motopatch

EXPECTED_SIGNATURES = {
    "lambda_invoke": ["self", "event"],
    "sfn_entrypoint": ["self"],
    "dynamodb_result": ["self", "context"],
    "dynamodb_request": ["self"],
    "batch_finish": ["self", "include_start_attempt", "job"],
    "sfn_batch_params": ["self", "parameters", "boto_service_name", "service_action_name"],
    "sfn_batch_response": ["self", "response", "boto_service_name", "service_action_name"],
    "sfn_sync_attempt": ["self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials"],
    "callback_endpoint": ["self"],
    "custom_error_name": ["self", "error_name"],
    "iam_authorize": ["self", "iam_request_cls", "resource"],
    "sfn_service_client": ["region", "service", "state_credentials"],
}


def test_moto_is_the_pinned_version() -> None:
    assert moto.__version__ == motopatch.MOTO_VERSION, (
        f"moto {moto.__version__} installed; the local runtime was written against {motopatch.MOTO_VERSION}"
    )


def test_patched_methods_exist_with_the_expected_signatures() -> None:
    for key, (cls, name) in motopatch.targets().items():
        assert inspect.getattr_static(cls, name, None) is not None, f"{cls.__qualname__}.{name} is gone"
        shipped = motopatch.original(cls, name)
        assert shipped.__module__.startswith("moto."), f"{cls.__qualname__}.{name} is not moto's"
        if key in EXPECTED_SIGNATURES:
            params = list(inspect.signature(shipped).parameters)
            assert params == EXPECTED_SIGNATURES[key], f"{cls.__qualname__}.{name}{params}"


def test_internals_the_patches_read_still_exist() -> None:
    from moto.batch.models import Job
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, CallbackPoolManager

    assert callable(Job._mark_stopped) and callable(Job._start_attempt)
    assert "self._stream_name =" in inspect.getsource(Job.__init__)
    assert "container_overrides" in inspect.signature(Job.__init__).parameters
    for name in ("_to_boto_request", "_from_boto_response", "_get_boto_service_name", "_get_boto_service_action"):
        assert callable(getattr(StateTaskService, name)), name
    endpoint = CallbackEndpoint(callback_id="x")
    assert hasattr(endpoint, "_notify_event") and hasattr(endpoint, "_outcome")
    assert callable(CallbackPoolManager.get)


def test_dynamodb_writes_are_serialized_once_patched() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    motopatch.make_dynamodb_atomic()
    motopatch.make_dynamodb_atomic()  # idempotent: wrapped once
    for cls, name in [(DynamoDBBackend, n) for n in motopatch.DYNAMODB_WRITES] + [(DynamoHandler, "call_action")]:
        fn = getattr(cls, name)
        assert getattr(fn, "_ytcaption_atomic", False), name
        assert not getattr(motopatch.original(cls, name), "_ytcaption_atomic", False)


def test_update_item_still_copies_the_stored_item_outside_the_backend() -> None:
    """Why whole requests are serialized: if moto moves this copy under its own lock, patch 5 can shrink."""
    from moto.dynamodb.responses import DynamoHandler

    source = inspect.getsource(motopatch.original(DynamoHandler, "update_item"))
    assert "copy.deepcopy(self.dynamodb_backend.get_item(" in source


def test_map_iterations_may_fail_with_states_errors_once_patched() -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName

    original = motopatch.original(CustomErrorName, "__init__")
    probe = CustomErrorName.__new__(CustomErrorName)
    try:
        original(probe, "States.TaskFailed")
        raise AssertionError("moto now accepts States.* custom error names: drop patch 6")
    except ValueError:
        pass
    with motopatch.runtime_patches(lambda name, event: event, lambda job: True):
        assert CustomErrorName("States.TaskFailed").error_name == "States.TaskFailed"
        assert CustomErrorName("DownloadFailed").error_name == "DownloadFailed"


def test_the_patches_come_off_on_exit_and_install_once() -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    shipped = {key: inspect.getattr_static(cls, name, None) for key, (cls, name) in motopatch.targets().items()}
    batch_own = "_eval_integration_pattern" in vars(StateTaskServiceBatch)
    with motopatch.runtime_patches(lambda name, event: event, lambda job: True):
        assert LambdaFunction._invoke_lambda is not motopatch.original(LambdaFunction, "_invoke_lambda")
        # Then a second runtime in the same process is refused, not wired over the first
        with pytest.raises(RuntimeError, match="installed already"), \
                motopatch.runtime_patches(lambda name, event: None, lambda job: False):
            pass
        assert motopatch._state["batch"] is not None
    assert {key: inspect.getattr_static(cls, name, None) for key, (cls, name) in motopatch.targets().items()} == shipped
    assert ("_eval_integration_pattern" in vars(StateTaskServiceBatch)) == batch_own
    # and once off, the patches install again
    with motopatch.runtime_patches(lambda name, event: event, lambda job: True):
        pass


def test_iam_patches_check_every_request_while_installed() -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    shipped_for = motopatch.original(*motopatch.targets()["sfn_service_client"])

    def authorize(self: object, iam_request_cls: type, resource: str = "*") -> None:
        raise AssertionError("not called here")

    with motopatch.iam_patches(authorize, lambda client, creds: None):
        assert ActionAuthenticatorMixin._authenticate_and_authorize_action is authorize
        assert settings.INITIAL_NO_AUTH_ACTION_COUNT == 0
        assert lambda_eval_utils.boto_client_for is not shipped_for  # imported there by name
        with pytest.raises(RuntimeError, match="installed already"), motopatch.iam_patches(authorize, print):
            pass
    assert ActionAuthenticatorMixin._authenticate_and_authorize_action is \
        motopatch.original(ActionAuthenticatorMixin, "_authenticate_and_authorize_action")
    assert before == settings.INITIAL_NO_AUTH_ACTION_COUNT
    assert lambda_eval_utils.boto_client_for is shipped_for


def test_the_lambda_simple_backend_still_echoes() -> None:
    # why the runtime keeps lambda use_docker at its default: the simple backend
    # never reaches _invoke_lambda
    from moto.awslambda_simple.models import LambdaSimpleBackend

    assert "_invoke_lambda" not in inspect.getsource(LambdaSimpleBackend.invoke)


def test_batch_parameters_normalise_to_botocore_casing() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    svc = StateTaskServiceBatch.__new__(StateTaskServiceBatch)
    svc.resource = type("R", (), {"api_name": "batch", "api_action": "submitJob"})()
    params = {"JobName": "j", "JobQueue": "q", "JobDefinition": "d",
              "ContainerOverrides": {"Environment": [{"Name": "A", "Value": "1"}]}}
    with motopatch.runtime_patches(lambda name, event: event, lambda job: True):
        svc._normalise_parameters(params)
    assert params == {"jobName": "j", "jobQueue": "q", "jobDefinition": "d",
                      "containerOverrides": {"environment": [{"name": "A", "value": "1"}]}}


def test_botocore_send_path_the_lockdown_hooks_exists() -> None:
    """ytcaption_local.lockdown adds its secret header in ``Endpoint._send(self, request)``."""
    from botocore.endpoint import Endpoint

    from ytcaption_local import lockdown

    assert list(inspect.signature(inspect.getattr_static(Endpoint, "_send")).parameters) == ["self", "request"]
    endpoint = "http://127.0.0.1:9"
    lockdown.install(endpoint, "s3cret")
    try:
        assert Endpoint._send.__module__ == "ytcaption_local.lockdown"
    finally:
        lockdown.uninstall(endpoint)
    assert Endpoint._send.__module__ == "botocore.endpoint"
def test_internals_the_iam_enforcement_uses_still_exist() -> None:
    """ytcaption_local.iam replaces moto's authorization step and reads its IAM request."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMRequest, IAMRequestBase, S3IAMRequest
    from moto.stepfunctions.parser.asl.utils import boto_client

    shipped = inspect.signature(ActionAuthenticatorMixin._authenticate_and_authorize_action)
    assert list(shipped.parameters) == ["self", "iam_request_cls", "resource"]
    assert hasattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT") and hasattr(ActionAuthenticatorMixin, "request_count")
    assert list(inspect.signature(boto_client.boto_client_for).parameters) == [
        "region", "service", "state_credentials"]
    assert issubclass(IAMRequest, IAMRequestBase) and issubclass(S3IAMRequest, IAMRequestBase)
    source = inspect.getsource(IAMRequestBase.__init__)
    assert "self._service =" in source and "self._action =" in source and "self._access_key =" in source
    assert callable(IAMRequestBase.check_signature) and callable(IAMRequestBase.check_action_permitted)
