"""One source of truth for what is retried: errors.py's ``retryable`` flags.

The state machine's Retry lists, the worker's exit codes and the Batch job
definition's EvaluateOnExit rules are all checked against it, so a change in
one place that the others do not follow fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ytcaption import worker
from ytcaption.domain.errors import ALL_ERRORS, RETRYABLE_ERROR_NAMES, YTCaptionError
from ytcaption_local.runtime import evaluate_on_exit
from ytcaption_local.template import ROOT, load_template

OURS = {cls.__name__ for cls in ALL_ERRORS}


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, Map iterations included."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        found[name] = state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(_states(processor))
    return found


ASL = json.loads((ROOT / "statemachines" / "transcription.asl.json").read_text())
STATES = _states(ASL)
LAMBDA_STAGES = [n for n, s in STATES.items()
                 if s.get("Resource") == "arn:aws:states:::lambda:invoke" and n not in ("Notify", "MarkFailed")]


def _retried(state: dict[str, Any]) -> set[str]:
    return {name for r in state.get("Retry", []) for name in r["ErrorEquals"]}


def test_the_stages_are_found() -> None:
    assert LAMBDA_STAGES == ["CreateJob", "SiteCaptionsFirst", "Download", "SiteCaptionsFallback", "Normalize", "Merge"]


@pytest.mark.parametrize("stage", LAMBDA_STAGES)
def test_each_stage_retries_exactly_the_retryable_errors(stage: str) -> None:
    ours = _retried(STATES[stage]) & OURS
    assert ours == set(RETRYABLE_ERROR_NAMES), f"{stage}: retries {sorted(ours)}"
    assert not _retried(STATES[stage]) - OURS - {"Lambda.ServiceException", "Lambda.AWSLambdaException",
                                                 "Lambda.SdkClientException", "Lambda.TooManyRequestsException"}


def test_no_state_retries_an_error_name_errors_py_does_not_know() -> None:
    for name, state in STATES.items():
        for err in _retried(state):
            assert err in OURS or err.startswith(("States.ALL", "Lambda.", "Batch.")), (name, err)


def test_a_failed_shard_is_not_retried_by_the_state_machine() -> None:
    # Batch retries a shard (by exit code); a second layer of retries here would rerun
    # permanent failures, which Step Functions cannot tell apart (all are States.TaskFailed)
    shard = STATES["TranscribeShard"]
    assert shard["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    assert not _retried(shard) & {"States.TaskFailed", "States.ALL"}


RULES = load_template()["Resources"]["TranscriberJobDefinition"]["Properties"]["RetryStrategy"]["EvaluateOnExit"]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_worker_exit_code_makes_batch_retry_exactly_the_retryable_errors(cls: type[YTCaptionError]) -> None:
    code = worker.exit_code(cls())
    assert evaluate_on_exit(RULES, exit_code=code) == ("RETRY" if cls.retryable else "EXIT")


def test_other_exits_and_host_failures() -> None:
    assert evaluate_on_exit(RULES, exit_code=1) == "EXIT"  # an uncaught exception: a bug
    assert evaluate_on_exit(RULES, exit_code=137) == "EXIT"  # killed (out of memory)
    assert evaluate_on_exit(RULES, exit_code=worker.EXIT_USAGE) == "EXIT"
    assert evaluate_on_exit(RULES, status_reason="Host EC2 (instance i-0abc) terminated.") == "RETRY"
    assert evaluate_on_exit(RULES, reason="CannotPullContainerError: timeout") == "RETRY"
    assert {worker.EXIT_RETRYABLE, worker.EXIT_PERMANENT} & {0, 1, 2} == set()


def test_worker_exits_by_errors_py_and_records_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ytcaption import services
    from ytcaption.domain.errors import ModelUnavailable, StorageError

    recorded: list[tuple[str, int, str]] = []

    class FakeStage:
        def run(self, job_id: str, shard: int, **kw: Any) -> dict[str, Any]:
            raise raising[0]

        def record_worker_error(self, job_id: str, shard: int, exc: YTCaptionError) -> None:
            recorded.append((job_id, shard, exc.code))

    monkeypatch.setattr(services, "transcribe_stage", lambda: FakeStage())
    raising: list[Exception] = [ModelUnavailable("gone")]
    assert worker.main(["--job-id", "j", "--shard", "3"]) == worker.EXIT_PERMANENT
    raising[0] = StorageError("blip")
    assert worker.main(["--job-id", "j", "--shard", "3"]) == worker.EXIT_RETRYABLE
    raising[0] = KeyError("bug")
    assert worker.main(["--job-id", "j", "--shard", "3"]) == worker.EXIT_PERMANENT
    assert recorded == [("j", 3, "MODEL_UNAVAILABLE"), ("j", 3, "STORAGE_ERROR"), ("j", 3, "INTERNAL_ERROR")]
    assert worker.main([]) == worker.EXIT_USAGE
