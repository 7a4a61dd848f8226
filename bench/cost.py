"""Dollars per audio hour at the defaults: the arithmetic behind the README's cost table.

GPU throughput cannot be measured on this machine (no GPU), so it is an input:
``--rtf`` values are processing seconds per audio second (0.05 = 20x real time).
What *is* measured here: the normalize stage's speed on this machine's CPU
(``engine.prepare`` on 10 minutes of speech), which prices the 6 GB normalize Lambda.
Everything else comes from the same cost model every job uses (``ytcaption.costs``).

    python -m bench.cost [--rtf 0.05 0.0167] [--load-s 15] [--normalize-x 93]
"""

from __future__ import annotations

import argparse
import time

from ytcaption.costs import Prices, Usage, price, usage_for
from ytcaption.jobs import ChunkCounts, Job, JobOptions, JobStatus, MediaInfo, Source, StageTiming
from ytcaption.telemetry import ShardRecord

HOUR = 3600.0


def measure_normalize_x() -> float:
    """How many times faster than real time ``prepare`` runs here (10 minutes of the sample, tiled)."""
    import tempfile
    from pathlib import Path

    import av
    import numpy as np

    from tests.media.speech import encode
    from ytcaption.engine import prepare
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


def one_hour_job(prices: Prices, *, rtf: float, load_s: float, shard_audio_s: float, normalize_x: float,
                 download_s: float = 10.0, merge_s: float = 2.0) -> tuple[Usage, float]:
    """A 1-hour URL job at the defaults (30 s chunks), priced with the model every job uses."""
    shards = max(1, round(HOUR / shard_audio_s))
    job = Job.new(source=Source(kind="url", url="https://example.test/a"), options=JobOptions(model="large-v3-turbo"),
                  status=JobStatus.MERGING, ttl_days=1)
    job.chunks = ChunkCounts(total=int(HOUR / 30), done=int(HOUR / 30), shards=shards)
    job.media = MediaInfo(duration_s=HOUR)
    # 20 s of chunk uploads per audio hour on top of prepare (measured locally: 120 PUTs, 8 at a time)
    normalize_s = HOUR / normalize_x + 20.0
    job.timings = {"download": StageTiming(started_at="x", seconds=download_s),
                   "normalize": StageTiming(started_at="x", seconds=normalize_s),
                   "merge": StageTiming(started_at="x", seconds=merge_s)}
    per_shard = shard_audio_s * rtf + load_s
    records = [ShardRecord(shard=i, model="large-v3-turbo", started_at="x", ended_at="x", seconds=per_shard,
                           audio_s=shard_audio_s) for i in range(shards)]
    usage = usage_for(job, records, prices, now="x")
    return usage, price(usage, prices, audio_s=HOUR).total_usd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtf", type=float, nargs="+", default=[1 / 20, 1 / 60],
                    help="GPU seconds per audio second (default: 20x and 60x real time)")
    ap.add_argument("--load-s", type=float, default=15.0, help="container start + model load per shard (s)")
    ap.add_argument("--normalize-x", type=float, default=None,
                    help="normalize speed, x real time (default: measure it on this machine)")
    args = ap.parse_args()
    nx = args.normalize_x or measure_normalize_x()
    print(f"normalize stage: {nx:.0f}x real time on this machine's CPU ({HOUR / nx:.0f} s per audio hour)")
    print(f"per shard: {args.load_s:.0f} s container start + model load; 30 s chunks; a 1-hour URL job\n")
    print(f"{'instance':<24} {'GPU x':>6} {'shard':>6} {'GPU s':>6} {'GPU $':>8} {'Lambda $':>9} "
          f"{'other $':>8} {'$/audio h':>10}")
    for label, usd in (("g4dn.xlarge Spot", 0.20), ("g4dn.xlarge On-Demand", 0.526)):
        prices = Prices(gpu_usd_per_hour=usd)
        for rtf in args.rtf:
            for shard_s in (600.0, 3600.0):
                usage, total = one_hour_job(prices, rtf=rtf, load_s=args.load_s, shard_audio_s=shard_s,
                                            normalize_x=nx)
                c = price(usage, prices, audio_s=HOUR)
                other = c.step_functions_usd + c.s3_usd + c.dynamodb_usd
                print(f"{label:<24} {1 / rtf:>5.0f}x {shard_s:>5.0f}s {usage.batch_gpu_s:>6.0f} "
                      f"{c.batch_gpu_usd:>8.4f} {c.lambda_usd:>9.4f} {other:>8.4f} {total:>10.4f}")
    print("\nfor comparison: Amazon Transcribe ~$1.44 per audio hour, OpenAI hosted Whisper ~$0.36")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
