"""Threads started inside a function call AWS as that function, whatever else hooks
``Thread.start``.

The local runtime's IAM enforcement and the URL guard (``ytcaption.adapters.netsafety``) both
make threads inherit something from the thread that starts them. The guard used to
install its hook over whatever was there, calling the ``Thread.start`` it saw when it
was imported: once a download had run, threads started by any function (boto3's S3
upload threads) carried no principal and signed as the administrator, so a role
without ``s3:PutObject`` uploaded anyway (issue 11's intermittent "denied IAM call":
it happened whenever the guard's module was imported before the runtime started).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ytcaption.adapters import netsafety
from ytcaption_local import iam

DOWNLOAD = iam.Principal("DownloadRole", "ASIADOWNLOAD", "secret", "token")


def _seen_in_a_thread() -> tuple[iam.Principal | None, object]:
    seen: list[tuple[iam.Principal | None, object]] = []
    worker = threading.Thread(target=lambda: seen.append((iam._current.get(),
                                                          getattr(netsafety._local, "policy", None))))
    worker.start()
    worker.join(5)
    return seen[0]


@pytest.fixture
def enforcing() -> Iterator[None]:
    undo = iam.inherit_principal_in_threads()
    try:
        yield
    finally:
        undo()


def test_a_thread_keeps_its_function_role_after_the_url_guard_ran(enforcing: None) -> None:
    # Given the URL guard's module was loaded before enforcement began (imported above)
    # When a download runs a guarded fetch, as the Download function does
    with netsafety.guarded(netsafety.UrlPolicy()):
        pass
    # Then a thread the function starts afterwards (an S3 upload) still signs as the function
    token = iam._current.set(DOWNLOAD)
    try:
        principal, policy = _seen_in_a_thread()
    finally:
        iam._current.reset(token)
    assert principal == DOWNLOAD
    assert policy is None


def test_a_thread_started_inside_the_guard_inherits_both(enforcing: None) -> None:
    policy = netsafety.UrlPolicy(allow_loopback=True)
    token = iam._current.set(DOWNLOAD)
    try:
        with netsafety.guarded(policy):
            assert _seen_in_a_thread() == (DOWNLOAD, policy)
    finally:
        iam._current.reset(token)


def test_undoing_enforcement_keeps_the_guard_hook() -> None:
    # Given the guard hooked Thread.start on top of enforcement
    undo = iam.inherit_principal_in_threads()
    with netsafety.guarded(netsafety.UrlPolicy()):
        pass
    # When enforcement ends (the runtime stops)
    undo()
    # Then threads inherit the guard still, and no longer any principal
    token = iam._current.set(DOWNLOAD)
    policy = netsafety.UrlPolicy(allow_private=True)
    try:
        with netsafety.guarded(policy):
            assert _seen_in_a_thread() == (None, policy)
    finally:
        iam._current.reset(token)
