"""``ytcaption stats``: the admin stats of a running API, as a readable table."""

from __future__ import annotations

import json
from typing import Any

import click

from ytcaption_local.cli_common import CONTEXT, api_options, client_for, json_option, run_api


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


@click.command(context_settings=CONTEXT)
@click.option("--since", default="24h", show_default=True, help="24h, 7d, 30m or an ISO time.")
@click.option("--admin-key", envvar="YTCAPTION_ADMIN_KEY", show_envvar=True, metavar="KEY",
              help="The admin key, sent as X-Admin-Key (ytcaption local serve prints it).")
@json_option
@api_options
def stats(since: str, admin_key: str | None, as_json: bool, api: str | None, api_key: str | None) -> int:
    """Counts, stage percentiles, audio hours and cost (needs the admin key)."""
    client = client_for(api, api_key)

    def run() -> None:
        doc = client.json("GET", "/v1/admin/stats", query={"since": since}, headers={"X-Admin-Key": admin_key or ""})
        click.echo(json.dumps(doc, indent=2) if as_json else format_stats(doc))

    return run_api(run)
