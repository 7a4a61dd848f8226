"""make package's limits and zips (the pip build itself runs in `make package` and CI)."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("package_script", ROOT / "scripts" / "package.py")
assert spec and spec.loader
package: Any = importlib.util.module_from_spec(spec)
spec.loader.exec_module(package)


def manifest(unzipped_mb: float, zip_mb: float = 1) -> dict[str, Any]:
    return {"layers": {"SharedLayer": {"zip_bytes": int(zip_mb * 1e6)}},
            "functions": {"ApiFunction": {"unzipped_bytes_with_layers": int(unzipped_mb * 2**20),
                                          "zip_bytes": 1000}}}


def test_limits_are_awss() -> None:
    assert package.check_limits(manifest(249.9)) == []
    over = package.check_limits(manifest(250.1))
    assert len(over) == 1 and over[0].startswith("ApiFunction:") and "> 250 MB" in over[0]
    assert "upload through S3" in package.check_limits(manifest(10, zip_mb=53))[0]


def test_zips_are_reproducible_and_leave_out_bytecode(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "app.py").write_text("def lambda_handler(e, c):\n    return 1\n")
    (src / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"x")
    package.write_zip(src, tmp_path / "a.zip")
    (src / "app.py").touch()  # a newer mtime must not change the artifact
    package.write_zip(src, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert zipfile.ZipFile(tmp_path / "a.zip").namelist() == ["app.py"]


def test_zip_functions_and_their_layer_target_the_same_python() -> None:
    """The layer is built for one Python (its BuildMethod); every zip function using it
    must run on that runtime, and its CodeUri must hold the handler's file."""
    template = package.load_template()
    layer = template["Resources"]["SharedLayer"]
    built_for = layer["Metadata"]["BuildMethod"]
    zips = {lid: r["Properties"] for lid, r in template["Resources"].items()
            if r["Type"] == "AWS::Serverless::Function" and r["Properties"].get("PackageType") != "Image"}
    assert zips
    for lid, props in zips.items():
        assert props["Runtime"] == built_for, lid
        module = props["Handler"].rpartition(".")[0].replace(".", "/") + ".py"
        assert (ROOT / props["CodeUri"] / module).is_file(), lid
