"""moto CPU costs that the local runtime's API latency pays for, removed (moto 5.2.5).

The whole local stack shares one Python process, so one interpreter lock: any pure-Python
work elsewhere delays every API request. Profiled with py-spy (``--gil``) during
``python -m bench.load``'s submit storm, 75% of the samples holding the lock were moto's
Step Functions engine re-parsing the state machine's ASL with antlr4 for every execution
it starts (about 175 ms of CPU each; 20 submits at once queue 3-4 s of parsing in front
of their own responses).

- ``ExecutionWorker._get_evaluation_entrypoint``: the antlr parse tree of a definition is
  kept (keyed by the definition text, bounded); each execution still gets fresh evaluation
  components from moto's own preprocessor, so no state is shared between executions. The
  preprocessor's query-language scope stack is a class attribute in moto (shared by every
  thread); each preprocessor here gets its own.

``tests/unit/test_speedups.py`` fails if the patched method moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

MAX_DEFINITIONS = 32

_trees: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()
_installed: dict[str, Any] = {}


def target() -> tuple[type, str]:
    """The (class, method) patched here: what the guard test checks."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    return ExecutionWorker, "_get_evaluation_entrypoint"


def parse_tree(definition: str) -> Any:
    """The antlr parse tree of an ASL definition, parsed once (syntax errors raise, uncached)."""
    with _lock:
        tree = _trees.get(definition)
        if tree is not None:
            _trees.move_to_end(definition)
            return tree
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    _, tree = AmazonStateLanguageParser.parse(definition)
    with _lock:
        _trees[definition] = tree
        while len(_trees) > MAX_DEFINITIONS:
            _trees.popitem(last=False)
    return tree


def program(definition: str) -> Any:
    """Fresh evaluation components for one execution, built from the cached tree."""
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    preprocessor = Preprocessor()
    preprocessor._query_language_per_scope = []  # moto's is one list shared by every thread
    return preprocessor.visit(parse_tree(definition))


def _get_evaluation_entrypoint(self: Any) -> Any:
    return program(self._evaluation_details.state_machine_details.definition)


def install() -> None:
    """Patch moto in this process (idempotent)."""
    cls, name = target()
    if "entrypoint" not in _installed:
        _installed["entrypoint"] = getattr(cls, name)
        setattr(cls, name, _get_evaluation_entrypoint)
