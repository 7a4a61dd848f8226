"""The local gateway under 20 concurrent clients (issue 10): latency percentiles and errors.

Each client reserves an upload and reads the job, 20 rounds: 800 requests. With
``--against FILE`` a second gateway module (e.g. an older ``gateway.py`` taken from
git) is run the same way and the ratio of p99 latencies is printed.

    python -m bench.gateway [--against /tmp/old_gateway.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def run(gateway_file: str | None) -> dict[str, Any]:
    if gateway_file:
        spec = importlib.util.spec_from_file_location("ytcaption_local.gateway", gateway_file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["ytcaption_local.gateway"] = module
    from ytcaption_local.cli import ApiError, Client
    from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

    with LocalRuntime(RuntimeOptions(api_port=0)) as rt:
        client = Client(rt.api_url, api_key=rt.api_key, timeout=60, retries=0)  # count resets, do not retry them
        latencies: list[float] = []
        errors: list[str] = []

        def one_client(n: int) -> None:
            for i in range(20):
                try:
                    t = time.perf_counter()
                    job = client.json("POST", "/v1/uploads", {"filename": f"b{n}-{i}.mp3",
                                                              "content_type": "audio/mpeg", "size_bytes": 10})
                    latencies.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    client.json("GET", f"/v1/transcriptions/{job['job_id']}")
                    latencies.append(time.perf_counter() - t)
                except (OSError, ApiError) as exc:
                    errors.append(type(exc).__name__)

        started = time.perf_counter()
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(one_client, range(20)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "errors": len(errors), "p50_s": round(latencies[len(latencies) // 2], 3),
            "p99_s": round(latencies[int(len(latencies) * 0.99)], 3), "wall_s": round(wall, 2)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", help="another gateway.py to compare with")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run(args.child or None)))
        return 0
    results = {}
    for name, file in (("current", ""), *((("against", args.against),) if args.against else ())):
        out = subprocess.run([sys.executable, "-m", "bench.gateway", "--child", file],  # each in its own process
                             capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name])
    if "against" in results:
        print(f"p99 ratio current/against: {results['current']['p99_s'] / results['against']['p99_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
