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

Powertools' logger keeps the keys it adds to every line (``correlation_id``, ``job_id``,
``shard``) in one dict on its formatter, which every thread of the runtime shared: a line could
carry another request's or another Batch job's ids. :func:`log_keys_per_environment` gives each
:func:`environment` (one function invocation, one Batch job: the runtime opens one around each)
its own keys, which the threads it starts share, as threads of one process do on AWS.

What stays shared between local environments is what a process shares: module-level caches and
the loaded models.
"""

from __future__ import annotations

import threading
from abc import ABCMeta
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_state = threading.local()
_build_lock = threading.Lock()


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


class _Patch:
    """A patch installed by the first of its nested or concurrent users and undone by the last."""

    def __init__(self, install: Callable[[], Callable[[], None]]) -> None:
        self.install = install
        self.users = 0
        self.undo: Callable[[], None] | None = None
        self.lock = threading.Lock()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if self.users == 0:
                self.undo = self.install()
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0 and self.undo is not None:
                    self.undo()
                    self.undo = None


def _install_resolver_state() -> Callable[[], None]:
    from aws_lambda_powertools.event_handler import api_gateway as ag

    classes: tuple[Any, Any, Any] = (ag.BaseRouter, ag.ApiGatewayResolver, ag.Route)  # patched below
    base, resolver, route = classes
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


#: Powertools' per-request resolver state kept per thread while the context is open.
per_thread = _Patch(_install_resolver_state)


# --- the logger's keys, one set per environment ---------------------------------------------------

#: The current environment's log keys: formatter id -> that formatter's keys (None: outside any).
_log_keys: ContextVar[dict[int, dict[str, Any]] | None] = ContextVar("ytcaption_local_log_keys", default=None)


class _LogFormatPerEnvironment:
    """``LambdaPowertoolsFormatter.log_format``: inside an environment, its own copy of the keys
    the formatter had outside any (service name, record order); outside, the formatter's own."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        keys = _log_keys.get()
        if keys is None:
            return obj.__dict__["log_format"]
        mine = keys.get(id(obj))
        if mine is None:
            mine = keys[id(obj)] = dict(obj.__dict__["log_format"])
        return mine

    def __set__(self, obj: Any, value: dict[str, Any]) -> None:
        keys = _log_keys.get()
        if keys is None or "log_format" not in obj.__dict__:  # __init__, or outside any environment
            obj.__dict__["log_format"] = value
        else:
            keys[id(obj)] = value


@contextmanager
def environment() -> Iterator[None]:
    """One execution environment's log keys, fresh, for the block and the threads it starts."""
    token = _log_keys.set({})
    try:
        yield
    finally:
        _log_keys.reset(token)


def _install_log_keys() -> Callable[[], None]:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    if "log_format" in LambdaPowertoolsFormatter.__dict__ or not hasattr(LambdaPowertoolsFormatter, "append_keys"):
        raise RuntimeError("aws_lambda_powertools' log formatter changed: see ytcaption_local.environments")
    LambdaPowertoolsFormatter.log_format = _LogFormatPerEnvironment()  # type: ignore[assignment]

    unhook = inherit_in_threads(_log_keys)

    def undo() -> None:
        unhook()
        delattr(LambdaPowertoolsFormatter, "log_format")

    return undo


#: While open, each :func:`environment` has its own logger keys.
log_keys_per_environment = _Patch(_install_log_keys)


def hook_thread_start(before: Callable[[threading.Thread], None]) -> Callable[[], None]:
    """Call ``before(thread)`` as each thread starts (it may wrap ``thread.run``); returns the undo.

    ``Thread.start`` is a hook other code wraps too (the URL guard, the IAM principal): each hook
    names the one it calls in ``__wrapped__`` and calls it from there, so hooks chain in any
    order and the undo unlinks this one wherever it sits.
    """

    def start(thread: threading.Thread) -> None:
        before(thread)
        start.__wrapped__(thread)  # type: ignore[attr-defined]

    start.__wrapped__ = threading.Thread.start  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign,assignment]

    def undo() -> None:
        if threading.Thread.start is start:
            threading.Thread.start = start.__wrapped__  # type: ignore[attr-defined,method-assign]
            return
        outer: Any = threading.Thread.start  # a hook wrapped this one since: unlink it
        while outer is not None and getattr(outer, "__wrapped__", None) is not start:
            outer = getattr(outer, "__wrapped__", None)
        if outer is not None:
            outer.__wrapped__ = start.__wrapped__  # type: ignore[attr-defined]

    return undo


def inherit_in_threads(var: ContextVar[Any]) -> Callable[[], None]:
    """Threads started while ``var`` holds a value start with that value (what Python 3.14's
    ``thread_inherit_context`` does for every variable); returns the undo."""

    def inherit(thread: threading.Thread) -> None:
        value = var.get(None)
        if value is not None:
            run = thread.run

            def run_inheriting() -> None:
                var.set(value)
                run()

            thread.run = run_inheriting  # type: ignore[method-assign]

    return hook_thread_start(inherit)
