"""The cost model's arithmetic and the stats helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.factories import make_job
from ytcaption.api.admin import parse_since, percentiles
from ytcaption.domain.costs import Prices, Usage, per_audio_hour, price, usage_for
from ytcaption.domain.errors import InvalidRequest
from ytcaption.domain.jobs import ChunkCounts, StageTiming
from ytcaption.telemetry import ShardRecord
from ytcaption_local.stats_cli import format_stats


def test_price_multiplies_usage_by_list_prices() -> None:
    usage = Usage(lambda_gb_s=100.0, lambda_requests=10, sfn_transitions=1000, batch_gpu_s=3600.0,
                  s3_puts=1000, s3_gets=10000, ddb_write_units=1_000_000, ddb_read_units=1_000_000)
    cost = price(usage, Prices(gpu_usd_per_hour=0.526), audio_s=7200.0)
    assert cost.batch_gpu_usd == pytest.approx(0.526)
    assert cost.step_functions_usd == pytest.approx(0.025)
    assert cost.lambda_usd == pytest.approx(100 * 0.0000166667 + 10 * 0.2e-6)
    assert cost.s3_usd == pytest.approx(0.005 + 0.004)
    assert cost.dynamodb_usd == pytest.approx(0.625 + 0.125)
    assert cost.usd_per_audio_hour == pytest.approx(cost.total_usd / 2)


def test_usage_counts_every_gpu_attempt_and_the_lambda_stages_by_memory() -> None:
    job = make_job()
    job.chunks = ChunkCounts(total=20, done=20, shards=2)
    job.timings = {"download": StageTiming(started_at="2026-01-01T00:00:00Z", seconds=10.0),
                   "normalize": StageTiming(started_at="2026-01-01T00:00:10Z", seconds=4.0)}
    shards = [ShardRecord(shard=s, model="tiny.en", started_at="x", ended_at="x", seconds=30.0, queue_wait_s=q)
              for s, q in ((0, 12.0), (1, 50.0), (1, 3.0))]  # shard 1 ran twice
    u = usage_for(job, shards, Prices(), now="2026-01-01T00:01:00Z")
    assert u.batch_gpu_s == 90.0 and u.batch_attempts == 3 and u.queue_wait_s == 50.0
    assert u.lambda_gb_s == pytest.approx(10 * 2 + 4 * 6 + 0.4, abs=0.01)
    assert u.sfn_transitions == 8 + 1 + 2  # a URL job, two shards
    # diarize: windows in the chunks' results cost no request; windows stored apart (a GPU worker's)
    # cost a check and a PUT each in the shard, and a GET at the merge
    job.options = job.options.model_copy(update={"diarize": True})
    d = usage_for(job, shards, Prices(), now="2026-01-01T00:01:00Z")
    assert (d.s3_puts, d.s3_gets) == (u.s3_puts, u.s3_gets)
    shards[0].speaker_objects = 12
    d = usage_for(job, shards, Prices(), now="2026-01-01T00:01:00Z")
    assert (d.s3_puts - u.s3_puts, d.s3_gets - u.s3_gets) == (12, 24)


def test_readme_arithmetic_per_audio_hour() -> None:
    # 50x real time, 600 s shards, 20 s to start a container and load the model per shard
    spot = per_audio_hour(Prices(gpu_usd_per_hour=0.20), real_time_factor=0.02, shard_audio_s=600, load_s=20)
    assert spot == pytest.approx((72 + 6 * 20) / 3600 * 0.20)


def test_percentiles_are_nearest_rank() -> None:
    assert percentiles([float(v) for v in range(1, 101)]) == {"count": 100, "p50": 50.0, "p95": 95.0,
                                                              "p99": 99.0, "max": 100.0}
    assert percentiles([])["p50"] is None


def test_since_accepts_durations_and_iso_times() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_since("24h", now=now) == "2026-01-01T00:00:00.000Z"
    assert parse_since("2025-12-31T12:00:00Z", now=now) == "2025-12-31T12:00:00.000Z"
    with pytest.raises(InvalidRequest):
        parse_since("last tuesday", now=now)


def test_stats_table_shows_percentiles_and_cost_per_audio_hour() -> None:
    doc = {"since": "2026-01-01T00:00:00.000Z", "jobs": 2, "truncated": False, "by_status": {"COMPLETED": 2},
           "by_error_code": {}, "cache_hits": 0, "audio_hours": 0.5, "gpu_hours": 0.01, "real_time_factor": 0.02,
           "stages": {"transcribe": {"count": 2, "p50": 1.5, "p95": 2.0, "p99": 2.0, "max": 2.0}},
           "cost": {"total_usd": 0.002, "lambda_usd": 0.001, "step_functions_usd": 0.0005, "batch_gpu_usd": 0.0004,
                    "s3_usd": 0.00005, "dynamodb_usd": 0.00005, "jobs_costed": 2, "usd_per_audio_hour": 0.004}}
    text = format_stats(doc)
    assert "transcribe" in text and "1.500" in text and "$0.0040 per audio hour" in text


def test_the_estimate_charges_one_container_start_and_model_load_per_shard() -> None:
    from ytcaption.domain.costs import Throughput, hour_estimate

    prices = Prices(gpu_usd_per_hour=0.20, throughput=Throughput(gpu_x=20.0, shard_start_s=10.0))
    small, small_cost = hour_estimate(prices, shard_audio_s=600)
    big, big_cost = hour_estimate(prices, shard_audio_s=3600)
    assert small.batch_gpu_s == pytest.approx(3600 / 20 + 6 * 10)
    assert big.batch_gpu_s == pytest.approx(3600 / 20 + 10)
    assert big_cost.batch_gpu_usd == pytest.approx(190 / 3600 * 0.20)
    assert big_cost.usd_per_audio_hour < small_cost.usd_per_audio_hour


def test_the_template_defaults_are_the_cost_models_defaults() -> None:
    # the README's per-audio-hour figures are computed from the code defaults: the stack must deploy the same
    from ytcaption.settings import MediaSettings
    from ytcaption_local.template import load_template

    t = load_template()
    params = t["Parameters"]
    assert float(params["ShardAudioSeconds"]["Default"]) == MediaSettings().shard_audio_s
    assert float(params["GpuUsdPerHour"]["Default"]) == Prices().gpu_usd_per_hour
    env = t["Globals"]["Function"]["Environment"]["Variables"]
    assert env["MEDIA__SHARD_AUDIO_S"] == {"Ref": "ShardAudioSeconds"}
    # Spot first: the On-Demand environment only takes what Spot cannot place
    order = t["Resources"]["TranscriberJobQueue"]["Properties"]["ComputeEnvironmentOrder"]
    first = min(order, key=lambda o: o["Order"])["ComputeEnvironment"]["Ref"]
    assert t["Resources"][first]["Properties"]["ComputeResources"]["Type"] == "SPOT"
