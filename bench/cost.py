"""Dollars per audio hour at the defaults: the arithmetic behind the README's cost table.

The defaults are the code's (``MediaSettings.shard_audio_s``, ``Prices``, ``Throughput``),
which a unit test holds equal to template.yaml's. GPU throughput cannot be measured on
this machine (no GPU): ``Throughput.gpu_x`` is a published faster-whisper figure scaled to
the instance (see ``ytcaption.domain.costs.Throughput``); ``--gpu-x`` tries others. What *is*
measured here: the normalize stage's speed on this machine's CPU (``engine.prepare`` on 10
minutes of speech), which prices the 6 GB normalize Lambda. Everything is priced by the
same cost model every job uses (``ytcaption.domain.costs``).

    python -m bench.cost [--gpu-x 23 46 92] [--shard-s 600 3600] [--normalize-x 95]
"""

from __future__ import annotations

import argparse
import time

from ytcaption.domain.costs import Prices, Throughput, hour_estimate
from ytcaption.settings import MediaSettings

HOUR = 3600.0


def measure_normalize_x() -> float:
    """How many times faster than real time ``prepare`` runs here (10 minutes of the sample, tiled)."""
    import tempfile
    from pathlib import Path

    import av
    import numpy as np

    from tests.media.speech import encode
    from ytcaption.engine.engine import prepare
    from ytcaption.settings import MediaSettings

    with av.open("samples/sample.mp3") as c:
        rate = c.streams.audio[0].rate
        x = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)]).astype(np.float32)
    x = np.tile(x, int(600 / (len(x) / rate)) + 1)[: 600 * rate]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ten-minutes.mp3"
        encode(x, rate, path)
        t0 = time.perf_counter()
        plan = prepare(path, MediaSettings())
        return plan.duration / (time.perf_counter() - t0)


def main() -> int:
    defaults = Prices()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gpu_x = defaults.throughput.gpu_x
    ap.add_argument("--gpu-x", type=float, nargs="+", default=[gpu_x, 2 * gpu_x],
                    help="GPU speed, x real time (default: the assumption and twice it)")
    ap.add_argument("--shard-s", type=float, nargs="+", default=[600.0, MediaSettings().shard_audio_s],
                    help="audio per Batch job (default: the old 600 s and the current default)")
    ap.add_argument("--start-s", type=float, default=defaults.throughput.shard_start_s,
                    help="container start + model load per shard (s)")
    ap.add_argument("--normalize-x", type=float, default=None,
                    help="normalize speed, x real time (default: measure it on this machine)")
    args = ap.parse_args()
    nx = args.normalize_x or measure_normalize_x()
    print(f"normalize stage: {nx:.0f}x real time on this machine's CPU ({HOUR / nx:.0f} s per audio hour)")
    print(f"per shard: {args.start_s:.0f} s container start + model load (baked in); 30 s chunks; "
          f"a 1-hour URL job; default shard {MediaSettings().shard_audio_s:.0f} s\n")
    print(f"{'instance':<24} {'GPU x':>6} {'shard':>6} {'GPU s':>6} {'GPU $':>8} {'Lambda $':>9} "
          f"{'S3 $':>7} {'SFN+DDB $':>9} {'$/audio h':>10}")
    for label, usd in (("g4dn.xlarge Spot", defaults.gpu_usd_per_hour), ("g4dn.xlarge On-Demand", 0.526)):
        for gpu_x in args.gpu_x:
            for shard_s in args.shard_s:
                t = Throughput(gpu_x=gpu_x, shard_start_s=args.start_s, normalize_x=nx)
                prices = defaults.model_copy(update={"gpu_usd_per_hour": usd, "throughput": t})
                usage, c = hour_estimate(prices, shard_audio_s=shard_s)
                print(f"{label:<24} {gpu_x:>5.0f}x {shard_s:>5.0f}s {usage.batch_gpu_s:>6.0f} "
                      f"{c.batch_gpu_usd:>8.4f} {c.lambda_usd:>9.4f} {c.s3_usd:>7.4f} "
                      f"{c.step_functions_usd + c.dynamodb_usd:>9.4f} {c.total_usd:>10.4f}")
    # what $0.005 would need: everything but the GPU as it is, the rest of the budget for GPU seconds
    t = Throughput(normalize_x=nx, shard_start_s=args.start_s)
    _, c = hour_estimate(defaults.model_copy(update={"throughput": t}), shard_audio_s=MediaSettings().shard_audio_s)
    rest = c.total_usd - c.batch_gpu_usd
    print(f"\nat the defaults everything but the GPU costs ${rest:.4f} per audio hour "
          f"(Lambda ${c.lambda_usd:.4f}, S3 ${c.s3_usd:.4f})", end="")
    if rest >= 0.005:
        print(": $0.005 is out of reach whatever the GPU speed")
    else:
        gpu_s = (0.005 - rest) / defaults.gpu_usd_per_hour * 3600 - args.start_s
        print(f"; $0.005 needs the GPU at {HOUR / gpu_s:.0f}x real time on Spot")
    print("for comparison: Amazon Transcribe ~$1.44 per audio hour, OpenAI hosted Whisper ~$0.36")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
