"""Operator views: stats across jobs (``GET /v1/admin/stats``) and readiness (``GET /v1/health/ready``).

Stats are computed from the job records themselves (timings, usage, cost), so
they need no metrics store and agree with what each job's JSON says.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ytcaption.domain.errors import AdminKeyRequired, InvalidRequest
from ytcaption.domain.jobs import Job, JobStatus
from ytcaption.telemetry import seconds_between

STAT_LIMIT = 5000
COST_PARTS = ("lambda_usd", "step_functions_usd", "batch_gpu_usd", "s3_usd", "dynamodb_usd")


def check_admin_key(presented: str | None, key_sha256: str) -> None:
    if not key_sha256:
        raise AdminKeyRequired("admin routes are off: no admin key is configured (ADMIN_KEY_SHA256)")
    digest = hashlib.sha256((presented or "").encode()).hexdigest()
    if not presented or not hmac.compare_digest(digest, key_sha256.strip().lower()):
        raise AdminKeyRequired("a valid X-Admin-Key header is required")


def parse_since(since: str | None, *, now: datetime | None = None) -> str:
    """``24h``, ``7d``, ``30m`` or an ISO time (default: the last 24 hours) -> ISO UTC."""
    now = now or datetime.now(UTC)
    text = (since or "24h").strip()
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        start = now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    else:
        try:
            start = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidRequest("since must be like 24h, 7d, 30m or an ISO 8601 time") from exc
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    return start.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """Nearest-rank p50/p95/p99 (no interpolation: every figure is one job's real value)."""
    vs = sorted(values)
    if not vs:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        return round(vs[max(0, math.ceil(p / 100 * len(vs)) - 1)], 3)

    return {"count": len(vs), "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": round(vs[-1], 3)}


def stage_samples(jobs: list[Job]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {s: [] for s in ("download", "normalize", "queue_wait", "transcribe",
                                                         "merge", "end_to_end")}
    for job in jobs:
        for stage, t in job.timings.items():
            if t.seconds is not None and stage in samples:
                samples[stage].append(t.seconds)
        if job.usage is not None and job.usage.queue_wait_s is not None:
            samples["queue_wait"].append(job.usage.queue_wait_s)
        if job.status == JobStatus.COMPLETED and job.reused_from is None:
            e2e = seconds_between(job.created_at, job.completed_at)
            if e2e is not None:
                samples["end_to_end"].append(e2e)
    return samples


def stats(jobs: list[Job], *, since: str, truncated: bool) -> dict[str, Any]:
    by_status = Counter(j.status.value for j in jobs)
    by_code = Counter(j.error.code for j in jobs if j.error is not None)
    completed = [j for j in jobs if j.status == JobStatus.COMPLETED]
    audio_s = sum((j.media.duration_s or 0.0) for j in completed if j.media)
    costed = [j for j in jobs if j.cost is not None]
    total = sum(j.cost.total_usd for j in costed if j.cost)
    parts = {p: round(sum(getattr(j.cost, p) for j in costed if j.cost), 6) for p in COST_PARTS}
    gpu_s = sum(j.usage.batch_gpu_s for j in jobs if j.usage)
    transcribed = sum(j.usage.transcribed_audio_s for j in jobs if j.usage)
    return {
        "since": since,
        "jobs": len(jobs),
        "truncated": truncated,
        "by_status": dict(sorted(by_status.items())),
        "by_error_code": dict(by_code.most_common()),
        "cache_hits": sum(1 for j in completed if j.reused_from),
        "stages": {k: percentiles(v) for k, v in stage_samples(jobs).items()},
        "audio_hours": round(audio_s / 3600, 4),
        "gpu_hours": round(gpu_s / 3600, 4),
        "real_time_factor": round(gpu_s / transcribed, 4) if transcribed else None,
        "cost": {
            "total_usd": round(total, 6),
            **parts,
            "jobs_costed": len(costed),
            "usd_per_audio_hour": round(total / (audio_s / 3600), 6) if audio_s else None,
        },
    }


def readiness(*, dynamodb: Any, table: str, s3: Any, bucket: str, sfn: Any, state_machine_arn: str) -> dict[str, Any]:
    """Each dependency checked with one cheap read; not ready if any fails."""
    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, call: Any) -> None:
        t0 = time.monotonic()
        try:
            call()
            checks[name] = {"ok": True}
        except ClientError as exc:
            checks[name] = {"ok": False, "error": str(exc.response.get("Error", {}).get("Code") or "error")}
        except Exception as exc:
            checks[name] = {"ok": False, "error": type(exc).__name__}
        checks[name]["ms"] = round((time.monotonic() - t0) * 1000, 1)

    check("table", lambda: dynamodb.describe_table(TableName=table))
    check("bucket", lambda: s3.head_bucket(Bucket=bucket))
    check("state_machine", lambda: sfn.describe_state_machine(stateMachineArn=state_machine_arn))
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ready" if ok else "not_ready", "checks": checks}
