"""The job model: legal transitions and option validation."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from tests.factories import make_job
from ytcaption.domain.errors import IllegalTransition, JobCancelled
from ytcaption.domain.jobs import TERMINAL_STATUSES, TRANSITIONS, JobOptions, JobStatus, check_transition

S = JobStatus
HAPPY_URL_PATH = [S.QUEUED, S.DOWNLOADING, S.NORMALIZING, S.TRANSCRIBING, S.MERGING, S.COMPLETED]


def test_happy_path_of_a_url_job_is_legal() -> None:
    for current, target in itertools.pairwise(HAPPY_URL_PATH):
        assert check_transition(current, target) is True


def test_uploads_skip_download() -> None:
    assert check_transition(S.AWAITING_UPLOAD, S.QUEUED)
    assert check_transition(S.QUEUED, S.NORMALIZING)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
@pytest.mark.parametrize("target", list(S))
def test_terminal_states_never_change(terminal: JobStatus, target: JobStatus) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(terminal, target)


def test_cancelled_job_says_so() -> None:
    with pytest.raises(JobCancelled) as exc:
        check_transition(S.CANCELLED, S.MERGING)
    assert exc.value.code == "JOB_CANCELLED"


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.COMPLETED, S.DOWNLOADING), (S.TRANSCRIBING, S.DOWNLOADING), (S.MERGING, S.NORMALIZING),
     (S.QUEUED, S.COMPLETED), (S.AWAITING_UPLOAD, S.TRANSCRIBING), (S.DOWNLOADING, S.QUEUED)],
)
def test_backwards_or_skipping_moves_are_refused(current: JobStatus, target: JobStatus) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(current, target)


def test_every_live_status_can_fail_or_be_cancelled() -> None:
    for status, targets in TRANSITIONS.items():
        if not status.terminal:
            assert {S.FAILED, S.CANCELLED} <= targets


def test_re_entering_a_live_status_is_a_no_op() -> None:
    assert check_transition(S.DOWNLOADING, S.DOWNLOADING) is False


def test_new_job_has_history_and_ttl() -> None:
    job = make_job()
    assert job.events[0].status == S.QUEUED
    assert job.expires_at > 0 and len(job.job_id) == 32


@pytest.mark.parametrize(
    "bad",
    [
        {"language": "klingon"},
        {"model": "../../etc/passwd"},
        {"model": "x" * 65},
        {"formats": ["docx"]},
        {"formats": []},
        {"task": "summarize"},
        {"webhook_url": "file:///etc/passwd"},
        {"unknown": 1},
    ],
)
def test_bad_options_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        JobOptions(**bad)  # type: ignore[arg-type]


def test_options_normalise() -> None:
    opts = JobOptions(language="EN", formats=["srt", "srt", "vtt"], model="base")
    assert opts.language == "en" and opts.formats == ["srt", "vtt"]


def test_json_depth_counts_only_structure_not_brackets_in_strings() -> None:
    from ytcaption.api.request_guard import MAX_DEPTH, is_json_type, json_depth

    assert json_depth('{"a": [1, {"b": []}]}') == 4
    assert json_depth('{"prompt": "' + "[" * 100 + '\\"{{{{"}') == 1
    assert json_depth("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
    assert is_json_type("Application/JSON; charset=utf-8") and is_json_type("application/problem+json")
    assert not is_json_type("text/json") and not is_json_type("application/+json")
    assert not is_json_type("application/jsonp")
