"""The plugin's one configuration file: how this machine stands in for the cloud.

``YTCAPTION_LS_CONFIG`` names a JSON file (``make localstack`` writes it)::

    {
      "runtimes": {"python3.12": "/path/to/python3.12"},   # zip functions, by Runtime
      "images": [                                            # image functions and Batch images
        {"match": "*/ytcaption-media:*",                    # fnmatch on the image URI
         "python": "/path/to/python",                       # interpreter of that "image"
         "path": ["/checkout/functions"],                   # its task root (PYTHONPATH, cwd = first)
         "env": {}}
      ],
      "env": {"WORK_DIR": "..."},                           # added to every function and job
      "batch": {"slots": 2, "env": {"WHISPER__DEVICE": "cpu"}},
      "pid_dir": "/checkout/.localstack/children"          # one file per process started
    }

Read on every use (it is small), so a running LocalStack picks up a rewrite.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from dataclasses import dataclass, field
from typing import Any


class PluginConfigError(RuntimeError):
    """The configuration does not say how to run something."""


@dataclass
class Image:
    match: str
    python: str
    path: list[str]
    env: dict[str, str] = field(default_factory=dict)


def load() -> dict[str, Any]:
    path = os.environ.get("YTCAPTION_LS_CONFIG")
    if not path:
        raise PluginConfigError("YTCAPTION_LS_CONFIG is not set: the plugin does not know how to run code")
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def runtime_python(runtime: str) -> str:
    runtimes = load().get("runtimes", {})
    if runtime not in runtimes:
        raise PluginConfigError(f"no interpreter configured for runtime {runtime!r} (have {sorted(runtimes)})")
    return str(runtimes[runtime])


def image(uri: str) -> Image:
    for entry in load().get("images", []):
        if fnmatch.fnmatch(uri, entry["match"]):
            return Image(entry["match"], entry["python"], list(entry.get("path", [])), dict(entry.get("env", {})))
    raise PluginConfigError(f"no local code mapped for image {uri!r}")


def extra_env() -> dict[str, str]:
    return {k: str(v) for k, v in load().get("env", {}).items()}


def batch() -> dict[str, Any]:
    return dict(load().get("batch", {}))


def track(pid: int) -> None:
    """Record a process the plugin started (``pid_dir``), so a stop can end it by its PID."""
    pid_dir = load().get("pid_dir")
    if pid_dir:
        os.makedirs(pid_dir, exist_ok=True)
        with open(os.path.join(pid_dir, str(pid)), "w", encoding="utf-8"):
            pass


def untrack(pid: int) -> None:
    pid_dir = load().get("pid_dir")
    if pid_dir:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(pid_dir, str(pid)))
