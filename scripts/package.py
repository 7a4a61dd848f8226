#!/usr/bin/env python3
"""Build the Lambda layer and function zips as they ship, without Docker.

Reads template.yaml for each zip function's ``CodeUri``, ``Runtime``,
``Architectures`` and layers; installs the layer's requirements with pip for
that Python version and architecture (``--platform``, ``--python-version``,
``--only-binary``), pinned by requirements.lock; leaves out what the Lambda
Python runtime already ships (boto3, botocore, s3transfer); checks AWS's
limits (250 MB unzipped per function with its layers, 50 MB per zip for a
direct upload); writes ``build/package/<LogicalId>.zip`` and ``manifest.json``.
Image functions and the Batch image are built by Docker and are not packaged
here (their requirements are checked with ``--check-images``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "package"
UNZIPPED_LIMIT = 262_144_000  # 250 MB: function code and all its layers, unzipped
ZIP_LIMIT = 52_428_800  # 50 MB: a zip uploaded directly (larger ones go through S3)
#: What the Lambda Python runtimes ship: a layer must not shadow them.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
PLATFORMS = {"x86_64": ["manylinux2014_x86_64", "manylinux_2_28_x86_64"],
             "arm64": ["manylinux2014_aarch64", "manylinux_2_28_aarch64"]}
IMAGE_PYTHON = {"containers/media/requirements.txt": "3.12",  # public.ecr.aws/lambda/python:3.12
                "containers/transcriber/requirements.txt": "3.12"}  # ubuntu24.04's python3


def load_template() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "local"))
    from ytcaption_local.template import load_template as load

    return load()


def pip_target(requirements: Path, target: Path, python_version: str, arch: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--requirement", str(requirements), "--constraint", str(ROOT / "requirements.lock"),
           "--target", str(target), "--implementation", "cp", "--python-version", python_version,
           "--only-binary=:all:", "--upgrade"]
    for platform in PLATFORMS[arch]:
        cmd += ["--platform", platform]
    subprocess.run(cmd, check=True)  # noqa: S603 - pip of this interpreter


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_zip(source: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(source.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                info = zipfile.ZipInfo(str(f.relative_to(source)), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, f.read_bytes())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(args: argparse.Namespace) -> dict[str, Any]:
    template = load_template()
    resources = template["Resources"]
    globals_fn = template.get("Globals", {}).get("Function", {})
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    manifest: dict[str, Any] = {"layers": {}, "functions": {}}
    unzipped: dict[str, int] = {}
    work = Path(tempfile.mkdtemp(prefix="ytcaption-package-"))
    try:
        for lid, res in resources.items():
            if res["Type"] != "AWS::Serverless::LayerVersion":
                continue
            props, meta = res["Properties"], res.get("Metadata", {})
            runtime = str(meta.get("BuildMethod") or props["CompatibleRuntimes"][0])
            arch = str(meta.get("BuildArchitecture") or props.get("CompatibleArchitectures", ["x86_64"])[0])
            content = ROOT / props["ContentUri"]
            site = work / lid / "python"
            pip_target(content / "requirements.txt", site, runtime.removeprefix("python"), arch)
            for name in RUNTIME_PROVIDED:
                for p in site.glob(f"{name}*"):
                    shutil.rmtree(p, ignore_errors=True)
            for pkg in content.iterdir():
                if pkg.is_dir() and (pkg / "__init__.py").exists():
                    shutil.copytree(pkg, site / pkg.name, ignore=shutil.ignore_patterns("__pycache__"))
            dest = OUT / f"{lid}.zip"
            write_zip(work / lid, dest)
            unzipped[lid] = tree_size(work / lid)
            manifest["layers"][lid] = {"zip": dest.name, "runtime": runtime, "architecture": arch,
                                       "unzipped_bytes": unzipped[lid], "zip_bytes": dest.stat().st_size,
                                       "sha256": sha256(dest)}
        for lid, res in resources.items():
            props = res.get("Properties", {})
            if res["Type"] != "AWS::Serverless::Function" or props.get("PackageType") == "Image":
                continue
            code = ROOT / props["CodeUri"]
            dest = OUT / f"{lid}.zip"
            write_zip(code, dest)
            layers = [lay["Ref"] for lay in props.get("Layers", []) if isinstance(lay, dict) and "Ref" in lay]
            size = tree_size(code) + sum(unzipped.get(lay, 0) for lay in layers)
            manifest["functions"][lid] = {
                "zip": dest.name, "runtime": props.get("Runtime", globals_fn.get("Runtime")),
                "architecture": (props.get("Architectures") or globals_fn.get("Architectures") or ["x86_64"])[0],
                "layers": layers, "unzipped_bytes_with_layers": size, "zip_bytes": dest.stat().st_size,
                "sha256": sha256(dest),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_limits(manifest: dict[str, Any]) -> list[str]:
    problems = []
    for lid, f in manifest["functions"].items():
        if f["unzipped_bytes_with_layers"] > UNZIPPED_LIMIT:
            problems.append(f"{lid}: {f['unzipped_bytes_with_layers'] / 1e6:.1f} MB unzipped with layers > 250 MB")
    for kind in ("functions", "layers"):
        for lid, f in manifest[kind].items():
            if f["zip_bytes"] > ZIP_LIMIT:
                problems.append(f"{lid}: zip {f['zip_bytes'] / 1e6:.1f} MB > 50 MB (upload through S3)")
    return problems


def check_images() -> None:
    """Each image's requirements resolve for the image's Python on Linux x86_64 (pip --dry-run)."""
    for req, version in IMAGE_PYTHON.items():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--dry-run",
               "--ignore-installed", "--requirement", str(ROOT / req), "--target", tempfile.gettempdir(),
               "--implementation", "cp", "--python-version", version, "--only-binary=:all:"]
        for platform in PLATFORMS["x86_64"]:
            cmd += ["--platform", platform]
        subprocess.run(cmd, check=True)  # noqa: S603
        print(f"{req}: resolves for CPython {version} manylinux x86_64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-images", action="store_true", help="also resolve the Dockerfiles' requirements")
    args = parser.parse_args()
    manifest = build(args)
    for lid, lay in manifest["layers"].items():
        print(f"layer    {lid:28s} {lay['runtime']} {lay['architecture']:7s} "
              f"zip {lay['zip_bytes'] / 1e6:6.1f} MB  unzipped {lay['unzipped_bytes'] / 1e6:6.1f} MB")
    for lid, f in manifest["functions"].items():
        print(f"function {lid:28s} {f['runtime']} {f['architecture']:7s} "
              f"zip {f['zip_bytes'] / 1e3:6.1f} kB  with layers {f['unzipped_bytes_with_layers'] / 1e6:6.1f} MB"
              " of 250 MB")
    problems = check_limits(manifest)
    if args.check_images:
        check_images()
    if problems:
        sys.exit("over AWS Lambda limits:\n  " + "\n  ".join(problems))
    print(f"artifacts in {OUT.relative_to(ROOT)}/ (manifest.json); all within AWS Lambda's size limits")


if __name__ == "__main__":
    main()
