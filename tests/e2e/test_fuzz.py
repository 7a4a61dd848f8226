"""The API fuzzed from its own OpenAPI document (schemathesis) on the local runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ytcaption_local.template import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_schemathesis_finds_no_server_error_and_no_schema_violation() -> None:
    out = subprocess.run([sys.executable, "-m", "tests.e2e.fuzz_runner", "100"], capture_output=True, text=True,
                         cwd=ROOT, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    counts = {int(k): v for k, v in report["status_counts"].items()}
    total = sum(counts.values())
    assert total >= 1000, counts
    assert not {s for s in counts if s >= 500}, counts
    assert report["returncode"] == 0, report["tail"]
