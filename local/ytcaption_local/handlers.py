"""Load a Lambda handler from its ``CodeUri`` (or image command) the way Lambda would.

Every function's entry file is called ``app.py``; each is loaded under a unique
module name so that several can live in one process.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytcaption_local.template import ROOT

FUNCTIONS_DIR = ROOT / "functions"
_lock = threading.Lock()
#: Set by tests that enforce IAM (ytcaption_local.iam): the role a handler from a code
#: directory runs as. The local runtime sets roles itself, around every invocation.
role_scope: Callable[[Path], AbstractContextManager[None]] | None = None


def load_handler(code_dir: str | Path, handler: str = "app.lambda_handler") -> Callable[..., Any]:
    """``code_dir`` is a CodeUri (``functions/api/``) or, for image functions, the
    directory named by the command (``download.app.lambda_handler`` ->
    ``functions/download``)."""
    module_path, _, func = handler.rpartition(".")
    directory = Path(code_dir)
    if not directory.is_absolute():
        directory = ROOT / directory
    parts = module_path.split(".")
    file = directory.joinpath(*parts).with_suffix(".py")
    name = "ytcaption_fn_" + "_".join([directory.name, *parts])
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load handler {handler} from {directory}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    fn: Callable[..., Any] = getattr(module, func)
    scope = role_scope
    if scope is None:
        return fn

    def as_its_role(*args: Any, **kwargs: Any) -> Any:
        with scope(directory):
            return fn(*args, **kwargs)

    return as_its_role


def image_handler(command: str) -> Callable[..., Any]:
    """Handler of an image function whose command is ``<dir>.app.lambda_handler``."""
    directory, _, rest = command.partition(".")
    return load_handler(FUNCTIONS_DIR / directory, rest)


@dataclass
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str = "local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local"
    aws_request_id: str = field(default_factory=lambda: __import__("uuid").uuid4().hex)
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    deadline_ms: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        import time

        if not self.deadline_ms:
            return 900_000
        return max(0, int(self.deadline_ms - time.time() * 1000))
