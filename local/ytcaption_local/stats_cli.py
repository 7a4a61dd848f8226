"""``ytcaption stats``: the admin stats of a running API, as a readable table."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any


def format_stats(doc: dict[str, Any]) -> str:
    lines = [f"jobs since {doc['since']}: {doc['jobs']}" + (" (truncated)" if doc.get("truncated") else "")]
    lines.append("  by status:     " + (", ".join(f"{k} {v}" for k, v in doc["by_status"].items()) or "-"))
    lines.append("  by error code: " + (", ".join(f"{k} {v}" for k, v in doc["by_error_code"].items()) or "-"))
    lines.append(f"  cache hits:    {doc.get('cache_hits', 0)}")
    lines.append(f"  audio hours:   {doc['audio_hours']:.4f}   GPU hours: {doc.get('gpu_hours', 0):.4f}   "
                 f"real-time factor: {doc.get('real_time_factor') if doc.get('real_time_factor') is not None else '-'}")
    lines.append("")
    lines.append(f"  {'stage':<12} {'n':>5} {'p50 s':>9} {'p95 s':>9} {'p99 s':>9} {'max s':>9}")

    def cell(v: Any) -> str:
        return f"{v:9.3f}" if isinstance(v, int | float) else f"{'-':>9}"

    for stage, p in doc["stages"].items():
        cells = " ".join(cell(p[k]) for k in ("p50", "p95", "p99", "max"))
        lines.append(f"  {stage:<12} {p['count']:>5} {cells}")
    c = doc["cost"]
    lines.append("")
    per_h = c.get("usd_per_audio_hour")
    lines.append(f"  cost: ${c['total_usd']:.6f} over {c['jobs_costed']} jobs"
                 + (f"  = ${per_h:.4f} per audio hour" if per_h is not None else ""))
    parts = ("batch_gpu_usd", "lambda_usd", "step_functions_usd", "s3_usd", "dynamodb_usd")
    lines.append("        " + ", ".join(f"{k.removesuffix('_usd')} ${c[k]:.6f}" for k in parts))
    return "\n".join(lines)


def add_parser(sub: Any, api_args: Callable[[argparse.ArgumentParser], None], client: Callable[..., Any]) -> None:
    sp = sub.add_parser("stats", help="counts, stage percentiles, audio hours and cost (admin key)")
    sp.add_argument("--since", default="24h", help="24h, 7d, 30m or an ISO time (default 24h)")
    sp.add_argument("--admin-key", default=os.environ.get("YTCAPTION_ADMIN_KEY"),
                    help="the admin key (default: $YTCAPTION_ADMIN_KEY)")
    sp.add_argument("--json", action="store_true", help="print the raw JSON")
    api_args(sp)

    def run(args: argparse.Namespace) -> int:
        c = client(args)
        doc = c.json("GET", "/v1/admin/stats", query={"since": args.since},
                     headers={"X-Admin-Key": args.admin_key or ""})
        print(json.dumps(doc, indent=2) if args.json else format_stats(doc))
        return 0

    sp.set_defaults(func=run)
