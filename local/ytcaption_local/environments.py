"""Several execution environments of one API function, locally (aws-lambda-powertools 3.37.0).

On AWS one Lambda execution environment answers one request at a time, and concurrency comes
from more environments. Locally every function lives in the runtime's process and an
environment is a gateway thread, but Powertools' event handler keeps the request it is
resolving where every thread sees it:

- on the class: ``BaseRouter.current_event`` and ``BaseRouter.lambda_context`` are assigned
  as class attributes by ``ApiGatewayResolver.resolve``;
- on the resolver: ``app.context`` holds the matched route (``_route``) and its arguments,
  which the OpenAPI validation middleware reads back;
- on each route: its middleware stack is built on the route's first call, unguarded (two first
  calls at once would wrap the stack twice).

Two threads resolving at once answered each other's requests (``KeyError: '_route'`` under 20
clients), so the runtime served one request at a time per function, and requests queued behind
each other's AWS calls (submit p99 about 10 s in ``python -m bench.load``). :func:`per_thread`
gives each thread its own copy of that state, as each environment has on AWS, and builds a
route's stack once under a lock. ``tests/unit/test_local_environments.py`` resolves two requests
at once on a resolver and fails if these internals move.

What stays shared between local environments is what a process shares: module-level caches,
the loaded models, and Powertools' logger keys (a log line may carry another request's
``correlation_id`` under concurrency; AWS's logs do not).
"""

from __future__ import annotations

import threading
from abc import ABCMeta
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_state = threading.local()
_build_lock = threading.Lock()
_install_lock = threading.Lock()
_installed = 0
_undo: Callable[[], None] | None = None


class _PerThread:
    """An attribute whose value belongs to the thread that set it (None until it does)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return getattr(_state, self.name, None)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(_state, self.name, value)


class _ContextPerThread:
    """``resolver.context``: one dict per resolver and thread (a new thread starts from the
    resolver's own dict as it was, e.g. keys added before any request)."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        contexts: dict[int, dict[str, Any]] = _state.__dict__.setdefault("contexts", {})
        ctx = contexts.get(id(obj))
        if ctx is None:
            ctx = contexts[id(obj)] = dict(obj.__dict__.get("context") or {})
        return ctx

    def __set__(self, obj: Any, value: dict[str, Any]) -> None:
        _state.__dict__.setdefault("contexts", {})[id(obj)] = value
        # a resolver created while installed still has a context of its own once undone
        obj.__dict__.setdefault("context", {})


class _RouterMeta(ABCMeta):
    """``BaseRouter``'s metaclass while installed: class-level assignments of the current
    event and context land in the assigning thread's state."""

    current_event = _PerThread("current_event")
    lambda_context = _PerThread("lambda_context")


@contextmanager
def per_thread() -> Iterator[None]:
    """Powertools' per-request resolver state kept per thread while the context is open
    (nested and concurrent uses install it once; the last to leave undoes it)."""
    global _installed, _undo
    from aws_lambda_powertools.event_handler import api_gateway as ag

    with _install_lock:
        if _installed == 0:
            _undo = _install(ag)
        _installed += 1
    try:
        yield
    finally:
        with _install_lock:
            _installed -= 1
            if _installed == 0 and _undo is not None:
                _undo()
                _undo = None


def _install(ag: Any) -> Callable[[], None]:
    base, resolver, route = ag.BaseRouter, ag.ApiGatewayResolver, ag.Route
    if type(base) is not ABCMeta or "_build_middleware_stack" not in route.__dict__:
        raise RuntimeError("aws_lambda_powertools' event handler changed: see ytcaption_local.environments")
    saved = {name: base.__dict__[name] for name in ("current_event", "lambda_context") if name in base.__dict__}
    original_build = route.__dict__["_build_middleware_stack"]

    def build_once(self: Any, router_middlewares: list[Any], app: Any) -> None:
        with _build_lock:
            if not self._middleware_stack_built:
                original_build(self, router_middlewares=router_middlewares, app=app)

    for name in saved:  # a value a request left on the class: the metaclass's attribute answers now
        delattr(base, name)
    base.__class__ = _RouterMeta
    resolver.current_event = _PerThread("current_event")
    resolver.lambda_context = _PerThread("lambda_context")
    resolver.context = _ContextPerThread()
    route._build_middleware_stack = build_once

    def undo() -> None:
        route._build_middleware_stack = original_build
        for name in ("current_event", "lambda_context", "context"):
            delattr(resolver, name)
        base.__class__ = ABCMeta
        for name, value in saved.items():
            setattr(base, name, value)

    return undo
