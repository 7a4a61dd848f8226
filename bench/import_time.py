"""Cold-start import cost of the API and S3 trigger handlers against a baseline.

Each handler module is imported in a fresh interpreter, alternating with the
baseline (bench/baseline_handler.py) so that both see the same machine state;
the median of the runs is compared. Target: ratio <= 1.3, and no heavy media
library (yt-dlp, PyAV, numpy, faster-whisper) imported.

    python bench/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("yt_dlp", "av", "numpy", "faster_whisper", "ctranslate2", "onnxruntime")
PROBE = f"""
import importlib.util, json, sys, time
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler_under_test", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""

TARGETS = {
    "baseline": ROOT / "bench" / "baseline_handler.py",
    "api": ROOT / "functions" / "api" / "app.py",
    "upload_trigger": ROOT / "functions" / "upload_trigger" / "app.py",
    # runs in front of every request since the API's key source is AUTHORIZER
    "authorizer": ROOT / "functions" / "authorizer" / "app.py",
}


def measure(path: Path) -> dict[str, object]:
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_TRACE_DISABLED="0")
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True,
                         check=True, env=env, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--max-ratio", type=float, default=1.3)
    args = parser.parse_args()
    for name in TARGETS:  # warm the OS file cache once for everyone
        measure(TARGETS[name])
    times: dict[str, list[float]] = {n: [] for n in TARGETS}
    heavy: dict[str, set[str]] = {n: set() for n in TARGETS}
    for _ in range(args.runs):
        for name, path in TARGETS.items():
            r = measure(path)
            times[name].append(float(r["seconds"]))  # type: ignore[arg-type]
            heavy[name] |= set(r["heavy"])  # type: ignore[arg-type]
    base = statistics.median(times["baseline"])
    ok = True
    print(f"{'module':<16}{'median ms':>10}{'ratio':>8}  heavy imports")
    for name in TARGETS:
        med = statistics.median(times[name])
        ratio = med / base
        bad = name != "baseline" and (ratio > args.max_ratio or heavy[name])
        ok &= not bad
        print(f"{name:<16}{med * 1000:>10.1f}{ratio:>8.2f}  {', '.join(sorted(heavy[name])) or '-'}"
              + ("  <-- over target" if bad else ""))
    print(f"target: ratio <= {args.max_ratio} and no heavy imports: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
