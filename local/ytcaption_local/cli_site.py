"""``ytcaption search`` and ``ytcaption info``: the API's search and media info, for people.

    ytcaption search "closed captions" [--kind short] [--limit 10] [--json]
    ytcaption info https://youtu.be/ID [--json]     # exit 1 when the deployment would refuse it
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import click

from ytcaption_local.cli_common import CONTEXT, api_options, client_for, json_option, run_api


def _duration(s: float | None) -> str:
    if s is None:
        return "-"
    total = round(s)
    h, rem = divmod(total, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if n >= limit:
            return f"{n / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


def search_table(items: list[dict[str, Any]], width: int = 120) -> str:
    """Search results as a fixed-width table; titles take the room that is left."""
    head = ("#", "ID", "LENGTH", "VIEWS", "DATE", "CHANNEL", "TITLE")
    rows = [(str(i), it["id"], _duration(it.get("duration_s")), _count(it.get("view_count")),
             it.get("upload_date") or "-", (it.get("channel") or "-")[:24], it.get("title") or "-")
            for i, it in enumerate(items, 1)]
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(6)]
    room = max(20, width - sum(widths) - 2 * 6)
    lines = []
    for r in [head, *rows]:
        title = r[6] if len(r[6]) <= room else r[6][: room - 1] + "…"
        lines.append("  ".join(v.ljust(w) for v, w in zip(r[:6], widths, strict=True)) + "  " + title)
    return "\n".join(lines)


@click.command(context_settings=CONTEXT)
@click.argument("query")
@click.option("--kind", type=click.Choice(["video", "short"]), default="video", show_default=True,
              help="Videos or Shorts.")
@click.option("--limit", type=click.IntRange(1, 50), default=10, show_default=True, help="Results, 1-50.")
@json_option
@api_options
def search(query: str, kind: str, limit: int, as_json: bool, api: str | None, api_key: str | None) -> int:
    """Search YouTube videos or Shorts (prints a table)."""
    client = client_for(api, api_key)

    def run() -> None:
        doc = client.json("GET", "/v1/search", query={"q": query, "limit": str(limit), "kind": kind})
        if as_json:
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        if not doc["items"]:
            click.echo("no results")
            return
        # titles are cut to the terminal's width; piped output keeps them whole
        width = shutil.get_terminal_size((120, 20)).columns if sys.stdout.isatty() else 10_000
        click.echo(search_table(doc["items"], width))
        for it in doc["items"][:1]:
            click.echo(f"\ncaption one:  ytcaption transcribe {it['url']} --api ...")

    return run_api(run)


def info_text(doc: dict[str, Any]) -> str:
    caps = doc.get("captions") or {}
    manual = ", ".join(c["language"] for c in caps.get("manual") or []) or "none"
    auto = ", ".join(c["language"] for c in caps.get("automatic") or []) or "none"
    extra = f" (+{caps['automatic_translations']} machine translations)" if caps.get("automatic_translations") else ""
    lines = [
        f"title:     {doc.get('title') or '-'}",
        f"channel:   {doc.get('channel') or doc.get('uploader') or '-'}",
        f"duration:  {_duration(doc.get('duration_s'))}",
        f"uploaded:  {doc.get('upload_date') or '-'}",
        f"url:       {doc.get('webpage_url') or doc['url']}",
        f"captions:  people-made: {manual}; automatic: {auto}{extra}",
    ]
    if doc["accepted"]:
        lines.append("accepted:  yes")
    else:
        lines.append("accepted:  no")
        lines += [f"           {p['code']}: {p['message']}" for p in doc.get("problems") or []]
    est = doc.get("estimate")
    if est:
        lines.append(f"estimate:  ~{_duration(est['processing_s'])} to captions, {est['gpu_seconds']:.0f} GPU-s, "
                     f"${est['cost_usd']:.4f} with {est['model']} ({est['shards']} shard(s))")
    return "\n".join(lines)


@click.command(context_settings=CONTEXT)
@click.argument("url")
@json_option
@api_options
def info(url: str, as_json: bool, api: str | None, api_key: str | None) -> int:
    """What the site says about a URL, and whether the deployment would take it (exit 1 if not)."""
    client = client_for(api, api_key)

    def run() -> int:
        doc = client.json("GET", "/v1/media", query={"url": url})
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False) if as_json else info_text(doc))
        return 0 if doc["accepted"] else 1

    return run_api(run)
