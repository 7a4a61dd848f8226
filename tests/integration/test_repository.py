"""The DynamoDB repository against moto, on the table defined in template.yaml."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.conftest import TABLE
from tests.factories import make_job
from ytcaption.adapters.table import Table
from ytcaption.domain.errors import IllegalTransition, InvalidCursor, JobNotFound
from ytcaption.domain.jobs import ErrorInfo, JobStatus

pytestmark = pytest.mark.integration
S = JobStatus


@pytest.fixture
def repo(moto_stack: dict[str, Any]) -> Table:
    return Table(TABLE, moto_stack["dynamodb"])


def walk(repo: Table, job_id: str, *statuses: JobStatus) -> None:
    for s in statuses:
        repo.transition(job_id, s)


def test_transitions_record_history_timings_and_progress(repo: Table) -> None:
    job, created = repo.create(make_job())
    assert created
    walk(repo, job.job_id, S.DOWNLOADING, S.NORMALIZING, S.TRANSCRIBING, S.MERGING, S.COMPLETED)
    done = repo.get(job.job_id)
    assert [e.status for e in done.events] == [
        S.QUEUED, S.DOWNLOADING, S.NORMALIZING, S.TRANSCRIBING, S.MERGING, S.COMPLETED
    ]
    assert done.progress == 100 and done.completed_at is not None
    assert set(done.timings) == {"download", "normalize", "transcribe", "merge"}
    assert all(t.seconds is not None and t.seconds >= 0 for t in done.timings.values())
    assert done.version == 6


def test_illegal_transition_refused_under_two_concurrent_writers(repo: Table) -> None:
    # Given a writer that read the job while it was QUEUED ...
    job, _ = repo.create(make_job())
    stale = repo.get(job.job_id)
    # ... and another writer that then carried it all the way to COMPLETED
    walk(repo, job.job_id, S.DOWNLOADING, S.NORMALIZING, S.TRANSCRIBING, S.MERGING, S.COMPLETED)
    # When the stale writer tries to move it to DOWNLOADING from what it read
    real_get = repo.get
    calls = {"n": 0}

    def stale_first(job_id: str):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return stale if calls["n"] == 1 else real_get(job_id)

    repo.get = stale_first  # type: ignore[method-assign]
    # Then the conditional write fails, the re-read shows COMPLETED, and the move is refused
    with pytest.raises(IllegalTransition):
        repo.transition(job.job_id, S.DOWNLOADING)
    repo.get = real_get  # type: ignore[method-assign]
    final = repo.get(job.job_id)
    assert final.status == S.COMPLETED and final.events[-1].status == S.COMPLETED
    assert calls["n"] == 2


def test_racing_writers_one_terminal_state_wins(repo: Table) -> None:
    job, _ = repo.create(make_job())
    walk(repo, job.job_id, S.DOWNLOADING, S.NORMALIZING, S.TRANSCRIBING, S.MERGING)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def writer(target: JobStatus) -> None:
        barrier.wait()
        try:
            repo.transition(job.job_id, target, error=ErrorInfo(code="X", message="x")
                            if target == S.FAILED else None)
            outcomes.append(f"ok:{target}")
        except IllegalTransition:
            outcomes.append("refused")

    targets = [S.COMPLETED, S.CANCELLED, S.FAILED, S.COMPLETED] * 2
    threads = [threading.Thread(target=writer, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = repo.get(job.job_id)
    assert outcomes.count("refused") == 7, outcomes
    assert final.status.terminal
    terminal_events = [e for e in final.events if e.status.terminal]
    assert len(terminal_events) == 1 and terminal_events[0].status == final.status


def test_get_unknown_job(repo: Table) -> None:
    with pytest.raises(JobNotFound):
        repo.get("0" * 32)


def test_progress_only_rises_and_only_in_its_stage(repo: Table) -> None:
    job, _ = repo.create(make_job())
    repo.transition(job.job_id, S.DOWNLOADING)
    assert repo.set_progress(job.job_id, 5, status=S.DOWNLOADING)
    assert not repo.set_progress(job.job_id, 3, status=S.DOWNLOADING)
    assert not repo.set_progress(job.job_id, 9, status=S.NORMALIZING)
    assert repo.get(job.job_id).progress == 5


def test_chunk_counter_is_atomic_and_drives_progress(repo: Table) -> None:
    job, _ = repo.create(make_job())
    walk(repo, job.job_id, S.DOWNLOADING, S.NORMALIZING)
    repo.transition(job.job_id, S.TRANSCRIBING, fields={"chunks": {"total": 10, "done": 0, "shards": 2}})
    threads = [threading.Thread(target=repo.add_chunks_done, args=(job.job_id, 1)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = repo.get(job.job_id)
    assert final.chunks.done == 10 and final.progress == 95
    repo.transition(job.job_id, S.CANCELLED)
    assert repo.add_chunks_done(job.job_id, 1) is None


def test_list_by_status_and_all_with_cursor(repo: Table) -> None:
    ids = []
    for _ in range(5):
        job, _ = repo.create(make_job())
        ids.append(job.job_id)
    repo.transition(ids[0], S.CANCELLED)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = repo.list(limit=2, cursor=cursor)
        assert len(page) <= 2
        seen += [j.job_id for j in page]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    created = [repo.get(i).created_at for i in seen]
    assert created == sorted(created, reverse=True)
    cancelled, _ = repo.list(status=S.CANCELLED)
    assert [j.job_id for j in cancelled] == [ids[0]]
    with pytest.raises(InvalidCursor):
        repo.list(status=S.QUEUED, cursor="not-a-cursor")


def test_claims_are_once_only(repo: Table) -> None:
    assert repo.claim("evt-1")
    assert not repo.claim("evt-1")
    repo.release("evt-1")
    assert repo.claim("evt-1")
