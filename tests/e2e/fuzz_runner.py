"""Run schemathesis against a fresh local runtime; print what the gateway served (JSON).

Its own process: the fuzzer makes hundreds of jobs, and moto's state is per process.
Outbound fetches are denied (``DENIED_URL_HOSTS=*``) so generated URLs start no downloads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def main() -> int:
    examples = sys.argv[1] if len(sys.argv) > 1 else "100"
    st = str(Path(sys.executable).with_name("schemathesis"))
    with LocalRuntime(RuntimeOptions(api_port=0, extra_env={"DENIED_URL_HOSTS": "*"})) as rt:
        out = subprocess.run(
            [st, "run", f"{rt.api_url}/v1/openapi.json", "--url", rt.api_url, "-H", f"X-Api-Key: {rt.api_key}",
             "--checks", CHECKS, "-n", examples, "--seed", "20261122", "--no-color"],
            capture_output=True, text=True, timeout=1200,
        )
        counts = dict(rt._gateway.status_counts) if rt._gateway else {}
    print(json.dumps({"returncode": out.returncode, "status_counts": counts, "tail": out.stdout[-4000:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
