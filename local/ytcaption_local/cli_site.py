"""``ytcaption search`` and ``ytcaption info``: the API's search and media info, for people.

    ytcaption search "closed captions" [--kind short] [--limit 10] [--json]
    ytcaption info https://youtu.be/ID [--json]     # exit 1 when the deployment would refuse it
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from typing import Any


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


def cmd_search(args: argparse.Namespace) -> int:
    from ytcaption_local.cli import _client

    doc = _client(args).json("GET", "/v1/search", query={"q": args.query, "limit": str(args.limit),
                                                         "kind": args.kind})
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    if not doc["items"]:
        print("no results")
        return 0
    # titles are cut to the terminal's width; piped output keeps them whole
    width = shutil.get_terminal_size((120, 20)).columns if sys.stdout.isatty() else 10_000
    print(search_table(doc["items"], width))
    for it in doc["items"][:1]:
        print(f"\ncaption one:  ytcaption transcribe {it['url']} --api ...")
    return 0


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


def cmd_info(args: argparse.Namespace) -> int:
    from ytcaption_local.cli import _client

    doc = _client(args).json("GET", "/v1/media", query={"url": args.url})
    print(json.dumps(doc, indent=2, ensure_ascii=False) if args.json else info_text(doc))
    return 0 if doc["accepted"] else 1


def add_commands(sub: Any, api_args: Callable[[argparse.ArgumentParser], None]) -> None:
    s = sub.add_parser("search", help="search YouTube videos or Shorts (prints a table)")
    s.add_argument("query")
    s.add_argument("--kind", choices=["video", "short"], default="video")
    s.add_argument("--limit", type=int, default=10, help="1-50 (default 10)")
    s.add_argument("--json", action="store_true", help="print the API's JSON")
    api_args(s)
    s.set_defaults(func=cmd_search)

    i = sub.add_parser("info", help="what the site says about a URL, and whether the deployment would take it")
    i.add_argument("url")
    i.add_argument("--json", action="store_true", help="print the API's JSON")
    api_args(i)
    i.set_defaults(func=cmd_info)
