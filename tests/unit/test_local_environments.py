"""Several local execution environments of one API function: two requests resolved at the same
moment on one Powertools resolver each see their own event, route and context
(ytcaption_local.environments). Without it the second request's event replaced the first's
(``BaseRouter.current_event`` is a class attribute), which these tests show first, so a
Powertools upgrade that moves this state fails here, not as cross-talk under load."""

from __future__ import annotations

import json
import threading
from abc import ABCMeta
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from ytcaption_local.environments import per_thread
from ytcaption_local.gateway import build_event


def _resolver(at_once: int = 2) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)  # validation reads the route back from app.context
    inside = threading.Barrier(at_once)

    @app.get("/items/<name>")
    def item(name: str) -> dict[str, Any]:
        inside.wait(5)  # every request is being resolved now
        return {"name": name, "path": app.current_event.path, "who": app.context.get("who")}

    return app


def _two_at_once(app: APIGatewayRestResolver) -> dict[str, Any]:
    answers: dict[str, Any] = {}

    def one(name: str) -> None:
        app.append_context(who=name)
        try:
            answers[name] = json.loads(app.resolve(build_event("GET", f"/items/{name}"), {})["body"])
        except Exception as exc:  # the cross-talk shows as any error
            answers[name] = repr(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return answers


def _own(name: str) -> dict[str, str]:
    return {"name": name, "path": f"/items/{name}", "who": name}


def test_without_it_two_requests_at_once_see_each_others_state() -> None:
    app = _resolver()
    answers = _two_at_once(app)
    assert answers != {"a": _own("a"), "b": _own("b")}


def test_each_request_sees_its_own_event_route_and_context() -> None:
    app = _resolver()
    with per_thread():
        for _ in range(3):  # the first round also builds each route's middleware stack, once
            assert _two_at_once(app) == {"a": _own("a"), "b": _own("b")}


def test_nested_uses_install_once_and_the_last_undoes_it() -> None:
    app = _resolver()
    with per_thread():
        with per_thread():
            assert type(BaseRouter) is not ABCMeta
        assert type(BaseRouter) is not ABCMeta
        assert _two_at_once(app) == {"a": _own("a"), "b": _own("b")}
    assert type(BaseRouter) is ABCMeta
    # undone: one request at a time resolves as Powertools does on its own
    alone = _resolver(at_once=1)
    alone.append_context(who="c")
    assert json.loads(alone.resolve(build_event("GET", "/items/c"), {})["body"]) == _own("c")


def test_a_resolver_created_while_installed_works_once_undone() -> None:
    with per_thread():
        app = _resolver(at_once=1)  # its __init__ sets its context while the state is per thread
    app.append_context(who="d")
    assert json.loads(app.resolve(build_event("GET", "/items/d"), {})["body"]) == _own("d")


def _log_from_two_environments(logger: Any, out: Any) -> list[dict[str, Any]]:
    from ytcaption_local.environments import environment

    both = threading.Barrier(2)

    def one(name: str) -> None:
        with environment():
            logger.append_keys(job_id=name)
            both.wait(5)  # both environments have added their key
            logger.info(f"from {name}")
            child = threading.Thread(target=lambda: logger.info(f"from a thread of {name}"))
            child.start()
            child.join()

    threads = [threading.Thread(target=one, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def _logger() -> tuple[Any, Any]:
    import io
    import logging
    import uuid

    from aws_lambda_powertools import Logger

    out = io.StringIO()
    logger = Logger(service=f"env-test-{uuid.uuid4().hex[:6]}", level="INFO", logger_handler=logging.StreamHandler(out))
    return logger, out


def test_without_it_environments_log_each_others_keys() -> None:
    logger, out = _logger()
    lines = _log_from_two_environments(logger, out)
    assert any(not line["message"].endswith(line["job_id"]) for line in lines)


def test_each_environment_logs_its_own_keys_and_its_threads_share_them() -> None:
    from ytcaption_local.environments import log_keys_per_environment

    logger, out = _logger()
    with log_keys_per_environment():
        logger.append_keys(outside="kept")  # keys added outside any environment: every environment starts with them
        lines = _log_from_two_environments(logger, out)
        logger.info("outside again")
    assert len(lines) == 4
    for line in lines:
        assert line["message"].endswith(line["job_id"]) and line["outside"] == "kept", line
    last = json.loads(out.getvalue().splitlines()[-1])
    assert "job_id" not in last and last["outside"] == "kept"  # an environment's keys stay in it
