"""Strict SRT and WebVTT parsers for tests: they reject anything a player might misread."""

from __future__ import annotations

import re
from dataclasses import dataclass

SRT_TIME = re.compile(r"^(\d{2}):([0-5]\d):([0-5]\d),(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d),(\d{3})$")
VTT_TIME = re.compile(r"^(\d{2}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d)\.(\d{3})$")


@dataclass
class ParsedCue:
    start_ms: int
    end_ms: int
    lines: list[str]


def _ms(h: str, m: str, s: str, f: str) -> int:
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(f)


def _check(cues: list[ParsedCue], max_chars: int, max_lines: int) -> None:
    prev_end = 0
    for i, c in enumerate(cues):
        if c.end_ms <= c.start_ms:
            raise ValueError(f"cue {i + 1} ends before it starts")
        if c.start_ms < prev_end:
            raise ValueError(f"cue {i + 1} overlaps the previous one")
        if not c.lines or len(c.lines) > max_lines:
            raise ValueError(f"cue {i + 1} has {len(c.lines)} lines")
        for line in c.lines:
            if not line.strip() or len(line) > max_chars:
                raise ValueError(f"cue {i + 1} has a bad line {line!r}")
        prev_end = c.end_ms


def parse_srt(text: str, *, max_chars: int = 42, max_lines: int = 2) -> list[ParsedCue]:
    if "\r" in text:
        raise ValueError("line endings must be \\n")
    blocks = [b for b in text.strip("\n").split("\n\n")] if text.strip() else []
    cues = []
    for n, block in enumerate(blocks, 1):
        lines = block.split("\n")
        if lines[0] != str(n):
            raise ValueError(f"block {n} has index {lines[0]!r}")
        m = SRT_TIME.match(lines[1]) if len(lines) > 1 else None
        if not m:
            raise ValueError(f"block {n} has a bad timing line")
        g = m.groups()
        cues.append(ParsedCue(_ms(*g[:4]), _ms(*g[4:]), lines[2:]))
    _check(cues, max_chars, max_lines)
    return cues


def parse_vtt(text: str, *, max_chars: int = 42, max_lines: int = 2) -> list[ParsedCue]:
    if not text.startswith("WEBVTT"):
        raise ValueError("missing WEBVTT header")
    _header, _, body = text.partition("\n\n")
    cues = []
    for block in [b for b in body.strip("\n").split("\n\n") if b]:
        lines = block.split("\n")
        if "-->" not in lines[0]:
            lines = lines[1:]  # optional cue identifier
        m = VTT_TIME.match(lines[0])
        if not m:
            raise ValueError(f"bad timing line {lines[0]!r}")
        if any("-->" in line for line in lines[1:]):
            raise ValueError("cue text must not contain -->")
        g = m.groups()
        cues.append(ParsedCue(_ms(*g[:4]), _ms(*g[4:]), lines[1:]))
    _check(cues, max_chars, max_lines)
    return cues
