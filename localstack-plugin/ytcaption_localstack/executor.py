"""A Lambda runtime executor that runs each execution environment as a host process.

LocalStack community only ships a Docker executor. This one starts
``bootstrap.py`` under the function's interpreter:

- zip functions: the interpreter configured for the function's ``Runtime``,
  with the unzipped code (``LAMBDA_TASK_ROOT``) and each layer's ``python/``
  directory on ``PYTHONPATH``, in that order, as in ``/var/task`` and ``/opt``;
- image functions: the interpreter and task root the configuration maps the
  image URI to; the handler is the image's ``ImageConfig.Command``.

The environment is the one LocalStack computes for the function (its variables,
credentials, ``AWS_ENDPOINT_URL``) plus the configuration's ``env``. An
invocation that outlives the function's ``Timeout`` is killed with its process
and answered with ``Sandbox.Timedout``; the next one gets a fresh process, as a
new sandbox on AWS would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from localstack import config as ls_config
from localstack.services.lambda_.invocation.executor_endpoint import NAMESPACE
from localstack.services.lambda_.invocation.lambda_models import (
    FunctionVersion,
    InvocationResult,
    PackageType,
)
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor

from ytcaption_localstack import config

LOG = logging.getLogger(__name__)
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
#: How long a process may take to import its handler before the start fails.
STARTUP_S = 60.0


class HostProcessExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self._env: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._inbound: Any = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._log_path = Path(tempfile.gettempdir()) / f"ytcaption-ls-lambda-{id}.log"
        self._lock = threading.Lock()

    # --- what the process runs ---------------------------------------------------------------

    def _command(self) -> tuple[str, list[str], str]:
        """(interpreter, PYTHONPATH entries, handler) for this function version."""
        cfg = self.function_version.config
        if cfg.package_type == PackageType.Image:
            image = config.image(cfg.image.image_uri if cfg.image else "")
            command = (cfg.image_config.command if cfg.image_config else None) or []
            if not command:
                raise config.PluginConfigError("image function without ImageConfig.Command")
            return image.python, image.path, command[0]
        python = config.runtime_python(str(cfg.runtime))
        paths = [str(cfg.code.get_unzipped_code_location())]
        paths += [str(Path(layer.code.get_unzipped_code_location()) / "python") for layer in cfg.layers]
        return python, paths, cfg.handler

    def _spawn(self) -> None:
        python, paths, handler = self._command()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": tempfile.gettempdir(),
            **self._env,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": paths[0],
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONUNBUFFERED": "1",
        }
        cfg = self.function_version.config
        if cfg.package_type == PackageType.Image:
            env.update(config.image(cfg.image.image_uri if cfg.image else "").env)
        env.update(config.extra_env())
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env["_YTC_IN_FD"], env["_YTC_OUT_FD"] = str(to_child_r), str(from_child_w)
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - the configured interpreter
                [python, str(BOOTSTRAP)], env=env, cwd=paths[0], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, pass_fds=(to_child_r, from_child_w), start_new_session=True,
            )
        finally:
            log.close()
            os.close(to_child_r)
            os.close(from_child_w)
        config.track(self._proc.pid)
        self._inbound = os.fdopen(to_child_w, "w", encoding="utf-8")
        replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._replies = replies
        threading.Thread(target=self._read, args=(from_child_r, replies), daemon=True,
                         name=f"lambda-{self.id[:8]}").start()
        ready = self._next_reply(STARTUP_S)
        if not ready or not ready.get("ready"):
            self._kill()
            raise RuntimeError(f"execution environment did not start; log:\n{self.get_logs()[-2000:]}")

    @staticmethod
    def _read(fd: int, replies: queue.Queue[dict[str, Any] | None]) -> None:
        with os.fdopen(fd, "r", encoding="utf-8") as fh:
            for line in fh:
                replies.put(json.loads(line))
        replies.put(None)  # the process ended

    def _next_reply(self, timeout_s: float) -> dict[str, Any] | None:
        try:
            return self._replies.get(timeout=timeout_s)
        except queue.Empty as exc:
            raise TimeoutError from exc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if self._inbound is not None:
            with contextlib.suppress(OSError):
                self._inbound.close()
            self._inbound = None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc is not None:
            config.untrack(proc.pid)

    # --- RuntimeExecutor ---------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        self._env = {k: str(v) for k, v in env_vars.items()}
        with self._lock:
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._kill()
        with contextlib.suppress(OSError):
            self._log_path.unlink(missing_ok=True)

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{ls_config.GATEWAY_LISTEN[0].port}{NAMESPACE}/{self.id}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout_s = float(self.function_version.config.timeout)
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
            offset = self._log_size()
            started = time.monotonic()
            try:
                self._inbound.write(json.dumps(payload) + "\n")
                self._inbound.flush()
                reply = self._next_reply(timeout_s)
            except TimeoutError:
                self._kill()
                error = {"errorType": "Sandbox.Timedout",
                         "errorMessage": f"{request_id} Task timed out after {timeout_s:.2f} seconds"}
                return InvocationResult(request_id, json.dumps(error).encode(), True, self._logs_since(offset))
            except (BrokenPipeError, OSError):
                reply = None
            if reply is None:  # the process died during the invocation
                code = self._proc.wait() if self._proc is not None else None
                self._kill()
                error = {"errorType": "Runtime.ExitError",
                         "errorMessage": f"RequestId: {request_id} Error: Runtime exited with status {code}"}
                return InvocationResult(request_id, json.dumps(error).encode(), True, self._logs_since(offset))
            LOG.debug("invocation %s took %.0f ms", request_id, (time.monotonic() - started) * 1000)
            return InvocationResult(request_id, reply["payload"].encode(), bool(reply["error"]),
                                    self._logs_since(offset))

    def _log_size(self) -> int:
        try:
            return self._log_path.stat().st_size
        except OSError:
            return 0

    def _logs_since(self, offset: int) -> str:
        try:
            with open(self._log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def get_logs(self) -> str:
        return self._logs_since(0)

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        cfg = function_version.config
        if cfg.package_type == PackageType.Zip:
            cfg.code.prepare_for_execution()
            for layer in cfg.layers:
                layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        return None

    @classmethod
    def validate_environment(cls) -> bool:
        try:
            config.load()
        except (config.PluginConfigError, OSError, ValueError) as exc:
            LOG.error("ytcaption host executor: %s", exc)
            return False
        return sys.version_info >= (3, 11)


class HostExecutorPlugin(RuntimeExecutorPlugin):
    name = "ytcaption-host"

    def load(self, *args: Any, **kwargs: Any) -> type[RuntimeExecutor]:
        return HostProcessExecutor
