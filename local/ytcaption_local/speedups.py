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

- ``DynamoResult.execute_result``: moto renders every DynamoDB response through its generic,
  shape-walking serializer (about 5 ms of CPU per job record; 100 ms for a list of 20), though
  DynamoDB's wire format is the JSON moto already holds. Item operations whose result holds
  only JSON types (no blobs, no None) are written with ``json.dumps``; anything else still
  goes through moto's serializer. ``tests/unit/test_speedups.py`` compares the two through
  boto3 on job-shaped items.

The two replacements are installed and undone with the other moto patches, by
``motopatch.runtime_patches`` (patches 10 and 11 there); ``tests/unit/test_moto_internals.py``
fails if a patched method moves.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from ytcaption_local import motopatch

MAX_DEFINITIONS = 32

_trees: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()


#: DynamoDB operations whose results are items (and counts, keys, capacity): plain JSON.
FAST_DYNAMODB_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem",
                                      "BatchGetItem", "TransactGetItems"})


def plain_json(value: Any) -> bool:
    """Only dicts, lists, strings, numbers and booleans; no blob attribute (``B``/``BS``, which
    moto's serializer base64-encodes) and no None (which it drops)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if "B" in v or "BS" in v:
                return False
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif not isinstance(v, str | bool | int | float):
            return False
    return True


def execute_result(self: Any, context: Any) -> Any:
    """``DynamoResult.execute_result``: plain-JSON item results written with ``json.dumps``."""
    op = context.operation_model
    if op.name in FAST_DYNAMODB_OPERATIONS and op.service_model.protocol == "json" and plain_json(self.result):
        version = op.service_model.metadata.get("jsonVersion", "1.0")
        return (op.http.get("responseCode", 200), {"Content-Type": f"application/x-amz-json-{version}"},
                json.dumps(self.result))
    from moto.dynamodb.responses import DynamoResult

    return motopatch.original(DynamoResult, "execute_result")(self, context)


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


def evaluation_entrypoint(self: Any) -> Any:
    """``ExecutionWorker._get_evaluation_entrypoint``: the definition's cached parse tree."""
    return program(self._evaluation_details.state_machine_details.definition)
