"""The local runtime's state directory: jobs, results and keys survive a restart.

moto keeps everything in memory, so the runtime snapshots what a user would miss
(the jobs table and the bucket) into a directory every couple of seconds and on
a clean stop, and restores it on the next start, before the API accepts requests:

    <state dir>/
      api_key, webhook_secret   the keys clients and webhook receivers hold (mode 0600)
      ports.json                the AWS endpoint's port, reused so stored presigned URLs keep working
      table.json                every item of the jobs table (DynamoDB JSON)
      objects.json, objects/    every object of the bucket (body, content type, metadata)
      work/                     temporary files of running stages; emptied at each start

Step Functions executions are not kept: a job that was running when the runtime
stopped (or was killed) has no execution after the restart, and the reconciler,
run at once, fails it ``ORPHANED`` instead of leaving it stuck.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

TEMP_PREFIX = "ytcaption-local-"
PID_FILE = ".owner-pid"


def default_state_dir() -> Path:
    """Where user data lives on this platform (XDG on Linux)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ytcaption" / "local"


def _write_atomic(path: Path, data: bytes | Any, mode: int = 0o644) -> None:
    """Write ``data`` (bytes, or a stream: uploads may be large) so a crash leaves the old file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            shutil.copyfileobj(data, f, 1024 * 1024)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_temp_dir(path: Path) -> None:
    """Mark a temp dir as this process's, so a later start can tell it was left behind."""
    (path / PID_FILE).write_text(str(os.getpid()))


def clean_stale_temp_dirs(root: Path | None = None) -> list[Path]:
    """Remove runtime temp dirs whose process is gone (left by kill -9 or a crash)."""
    removed = []
    for d in Path(root or tempfile.gettempdir()).glob(TEMP_PREFIX + "*"):
        try:
            pid = int((d / PID_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge (an older runtime, or just being created)
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


class StateDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.path / "objects").mkdir(exist_ok=True)
        self.work = self.path / "work"
        shutil.rmtree(self.work, ignore_errors=True)  # a previous run's half-done stage files
        self.work.mkdir()

    # --- keys and ports -----------------------------------------------------------------

    def secret(self, name: str, given: str | None, make: Any) -> str:
        """The stored value of ``name``; ``given`` replaces it; else made once and kept."""
        path = self.path / name
        if given:
            _write_atomic(path, given.encode(), 0o600)
            return given
        if path.exists():
            return path.read_text().strip()
        value = str(make())
        _write_atomic(path, value.encode(), 0o600)
        return value

    def moto_port(self) -> int:
        try:
            return int(json.loads((self.path / "ports.json").read_text())["aws"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def save_moto_port(self, port: int) -> None:
        _write_atomic(self.path / "ports.json", json.dumps({"aws": port}).encode())

    # --- snapshot and restore -------------------------------------------------------------

    def snapshot(self, dynamodb: Any, s3: Any, table: str, bucket: str) -> None:
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(page.get("Items", []))
        manifest_path = self.path / "objects.json"
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            old = {}
        new: dict[str, dict[str, Any]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                key, etag = obj["Key"], obj["ETag"]
                entry = old.get(key)
                if entry is None or entry.get("etag") != etag:
                    try:
                        got = s3.get_object(Bucket=bucket, Key=key)
                    except s3.exceptions.NoSuchKey:
                        continue  # deleted meanwhile
                    name = hashlib.sha256(key.encode()).hexdigest()
                    _write_atomic(self.path / "objects" / name, got["Body"])
                    entry = {"etag": etag, "file": name, "content_type": got.get("ContentType"),
                             "metadata": got.get("Metadata") or {}}
                new[key] = entry
        _write_atomic(self.path / "table.json", json.dumps(items).encode())
        _write_atomic(manifest_path, json.dumps(new).encode())
        for key, entry in old.items():
            if key not in new:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / "objects" / entry["file"]).unlink()

    def restore(self, dynamodb: Any, s3: Any, table: str, bucket: str) -> tuple[int, int]:
        """Put the last snapshot back (S3 notifications must be off meanwhile)."""
        try:
            items = json.loads((self.path / "table.json").read_text())
            objects = json.loads((self.path / "objects.json").read_text())
        except (OSError, ValueError):
            return 0, 0
        for item in items:
            dynamodb.put_item(TableName=table, Item=item)
        restored: dict[str, dict[str, Any]] = {}
        for key, entry in objects.items():
            path = self.path / "objects" / entry["file"]
            if not path.exists():
                continue
            extra = {"ContentType": entry["content_type"]} if entry.get("content_type") else {}
            with open(path, "rb") as body:
                resp = s3.put_object(Bucket=bucket, Key=key, Body=body,
                                     Metadata=entry.get("metadata") or {}, **extra)
            restored[key] = {**entry, "etag": resp["ETag"]}
        _write_atomic(self.path / "objects.json", json.dumps(restored).encode())
        return len(items), len(restored)
