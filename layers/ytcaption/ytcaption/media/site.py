"""What yt-dlp knows about a site without downloading media: search, info, caption tracks.

- :func:`search` runs yt-dlp's YouTube search extractor with flat extraction
  (one request per results page, no video pages, no downloads).
- :func:`extract` returns the info dict of one URL (``download=False``).
- :func:`caption_tracks` / :func:`pick_track` read the site's captions
  (``subtitles`` are made by people, ``automatic_captions`` by the site's
  speech recognition), and :func:`parse_caption_file` turns a WebVTT or SRT
  track into our :class:`~ytcaption.domain.captions.Transcript` segments.

yt-dlp is imported inside functions only. Failures become domain errors
through :func:`ytcaption.media.download.classify` (``SOURCE_BLOCKED`` for bot
checks, sign-in walls and geo blocks).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote_plus

from ytcaption.domain.errors import UnsupportedSource

SearchKind = Literal["video", "short"]
#: YouTube's results filter "Type: Shorts" (as the site writes it in its URLs).
SHORTS_FILTER = "EgIQCQ%253D%253D"
#: Track formats we convert, best first (both are plain text with cue times).
CAPTION_EXTS = ("vtt", "srt")


class _Quiet:
    def debug(self, msg: str) -> None:
        pass

    info = warning = error = debug


def _options(base: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    return {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _Quiet(),
        "socket_timeout": timeout_s,
        "retries": 1,
        "cachedir": False,
        "skip_download": True,
        "noplaylist": True,
        **base,
    }


def _run(url: str, opts: dict[str, Any], *, process: bool = True) -> dict[str, Any]:
    import yt_dlp
    import yt_dlp.networking.exceptions

    from ytcaption.media.download import classify, open_ydl

    try:
        with open_ydl(opts) as ydl:
            info = ydl.extract_info(url, download=False, process=process)
            if info is None:
                raise UnsupportedSource("nothing was found at this URL")
            return dict(ydl.sanitize_info(info))
    except (yt_dlp.utils.DownloadError, yt_dlp.networking.exceptions.RequestError) as exc:
        raise classify(exc) from exc


def search(query: str, limit: int, kind: SearchKind, base: dict[str, Any], *,
           timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """Flat search results (yt-dlp ``url`` entries), at most ``limit``."""
    from ytcaption.media.ytdlp import merge_extractor_args

    # a few more than asked: results that are not videos (channels, playlists) are dropped;
    # one results page holds ~20, so this rarely costs another request
    want = limit + 10
    if kind == "short":
        url = f"https://www.youtube.com/results?search_query={quote_plus(query)}&sp={SHORTS_FILTER}"
    else:
        url = f"ytsearch{want}:{query}"
    opts = _options(base, timeout_s)
    opts.update({"extract_flat": "in_playlist", "playlistend": want, "noplaylist": False})
    # search pages carry "3 days ago": yt-dlp turns it into an approximate upload date on request;
    # skipping the web page saves one request per search
    opts = merge_extractor_args(opts, {"youtubetab": {"approximate_date": [""], "skip": ["webpage"]}})
    info = _run(url, opts)
    entries = [e for e in info.get("entries") or [] if isinstance(e, dict) and e.get("id")]
    if kind == "short":
        entries = [e for e in entries if "/shorts/" in str(e.get("url") or "")]
    else:
        entries = [e for e in entries if str(e.get("ie_key") or "Youtube") == "Youtube"]
    return entries[:limit]


def search_item(entry: dict[str, Any]) -> dict[str, Any]:
    """One flat search entry as the API's search item."""
    return {
        "id": str(entry["id"]),
        "url": entry.get("url") or entry.get("webpage_url") or f"https://www.youtube.com/watch?v={entry['id']}",
        "title": entry.get("title"),
        "channel": entry.get("channel") or entry.get("uploader"),
        "duration_s": _num(entry.get("duration")),
        "view_count": int(entry["view_count"]) if isinstance(entry.get("view_count"), int | float) else None,
        "upload_date": iso_date(entry),
        "thumbnail": best_thumbnail(entry),
    }


def extract(url: str, base: dict[str, Any], *, timeout_s: float = 15.0) -> dict[str, Any]:
    """The info dict of the video at ``url`` (the first entry of a playlist), without media."""
    opts = _options(base, timeout_s)
    opts.update({"format": "bestaudio/best", "ignore_no_formats_error": True, "playlist_items": "1"})
    info = _run(url, opts)
    if info.get("_type") == "playlist":
        entries = [e for e in info.get("entries") or [] if e]
        if not entries:
            raise UnsupportedSource("the URL is an empty playlist")
        info = dict(entries[0])
    return info


def fetch_text(url: str, base: dict[str, Any], *, timeout_s: float = 15.0, max_bytes: int = 8 * 1024**2) -> str:
    """GET a caption track through yt-dlp's networking (same proxy, cookies and headers)."""
    import yt_dlp
    import yt_dlp.networking.exceptions

    from ytcaption.media.download import classify, open_ydl

    try:
        with open_ydl(_options(base, timeout_s)) as ydl:
            resp = ydl.urlopen(url)
            data = resp.read(max_bytes + 1)
    except (yt_dlp.utils.DownloadError, yt_dlp.networking.exceptions.RequestError) as exc:
        raise classify(exc) from exc
    if len(data) > max_bytes:
        raise UnsupportedSource("the caption track is larger than 8 MiB")
    return data.decode("utf-8-sig", errors="replace")


# --- fields ------------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def iso_date(info: dict[str, Any]) -> str | None:
    """``upload_date`` (yt-dlp's YYYYMMDD) or ``timestamp`` as YYYY-MM-DD."""
    d = info.get("upload_date")
    if isinstance(d, str) and re.fullmatch(r"\d{8}", d):
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    ts = info.get("timestamp")
    if ts is None:
        ts = info.get("release_timestamp")
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
    return None


def best_thumbnail(info: dict[str, Any]) -> str | None:
    """yt-dlp sorts ``thumbnails`` worst to best; ``thumbnail`` is its pick when set."""
    if info.get("thumbnail"):
        return str(info["thumbnail"])
    thumbs = [t for t in info.get("thumbnails") or [] if isinstance(t, dict) and t.get("url")]
    if not thumbs:
        return None
    ranked = sorted(enumerate(thumbs), key=lambda it: (it[1].get("preference") or 0,
                                                       (it[1].get("width") or 0) * (it[1].get("height") or 0), it[0]))
    return str(ranked[-1][1]["url"])


def thumbnails(info: dict[str, Any], limit: int = 5) -> list[dict[str, Any]]:
    """The largest few thumbnails, biggest first."""
    thumbs = [t for t in info.get("thumbnails") or [] if isinstance(t, dict) and t.get("url")]
    thumbs.sort(key=lambda t: ((t.get("width") or 0) * (t.get("height") or 0), t.get("preference") or 0),
                reverse=True)
    out = [{"url": t["url"], "width": t.get("width"), "height": t.get("height")} for t in thumbs[:limit]]
    if not out and info.get("thumbnail"):
        out = [{"url": info["thumbnail"], "width": None, "height": None}]
    return out


# --- caption tracks ----------------------------------------------------------------------------


@dataclass
class CaptionTrack:
    language: str
    automatic: bool
    name: str | None = None
    formats: dict[str, str] = field(default_factory=dict)  # ext -> url
    original: bool = False  # automatic: the site's recognition of the spoken language, not a translation

    def best(self) -> tuple[str, str] | None:
        for ext in CAPTION_EXTS:
            if ext in self.formats:
                return ext, self.formats[ext]
        return None


def caption_tracks(info: dict[str, Any]) -> list[CaptionTrack]:
    """Every caption track the site lists. YouTube's automatic captions name the spoken
    language ``<lang>-orig`` and list machine translations under plain codes."""
    tracks: list[CaptionTrack] = []
    for key, automatic in (("subtitles", False), ("automatic_captions", True)):
        table = info.get(key) or {}
        has_orig = automatic and any(str(k).endswith("-orig") for k in table)
        for lang, fmts in table.items():
            if lang == "live_chat" or not isinstance(fmts, list):
                continue
            formats = {str(f.get("ext")): str(f["url"]) for f in fmts if isinstance(f, dict) and f.get("url")}
            name = next((f.get("name") for f in fmts if isinstance(f, dict) and f.get("name")), None)
            code = str(lang)
            original = False
            if automatic:
                original = code.endswith("-orig") or not has_orig
                code = code.removesuffix("-orig")
            tracks.append(CaptionTrack(code, automatic, name, formats, original))
    return tracks


def _lang_matches(code: str, wanted: str) -> bool:
    code, wanted = code.lower(), wanted.lower()
    return code == wanted or code.split("-")[0] == wanted


def pick_track(info: dict[str, Any], language: str, *, automatic: bool) -> CaptionTrack | None:
    """The track to use: people's captions in ``language`` first, then (if ``automatic``)
    the site's recognition of the spoken language, never a machine translation of it.
    ``language`` ``auto`` means the video's own language (as the site reports it)."""
    tracks = [t for t in caption_tracks(info) if t.best() is not None]
    spoken = str(info.get("language") or "")
    manual = [t for t in tracks if not t.automatic]
    only = manual[0].language if len(manual) == 1 else ""
    wanted = (spoken or only) if language == "auto" else language
    for t in manual:
        if wanted and _lang_matches(t.language, wanted):
            return t
    if not automatic:
        return None
    autos = [t for t in tracks if t.automatic and t.original]
    for t in autos:
        if not wanted or _lang_matches(t.language, wanted):
            return t
    return None


# --- WebVTT / SRT -> segments --------------------------------------------------------------------

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_CUE_TIME = re.compile(_TIME + r"\s*-->\s*" + _TIME)
_TAG = re.compile(r"<[^>]*>")


def _seconds(h: str | None, m: str, s: str, frac: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def parse_caption_file(text: str) -> list[tuple[float, float, str]]:
    """Cues of a WebVTT or SRT file as ``(start, end, text)``.

    Markup is dropped (``<c>``, karaoke timestamps, ``<i>``), entities decoded.
    YouTube's automatic captions roll: each cue repeats the line before it, so a
    line already shown in the previous cue is not repeated.
    """
    cues: list[tuple[float, float, str]] = []
    previous: list[str] = []
    # a cue ends at an empty line; YouTube puts lines of one space inside cues
    for block in re.split(r"\r?\n\r?\n", text.replace("\ufeff", "").replace("\r\n", "\n")):
        lines = block.strip().splitlines()
        idx = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if idx is None:
            continue  # header, NOTE, STYLE, REGION blocks
        m = _CUE_TIME.search(lines[idx])
        if m is None:
            continue
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        body = [" ".join(html.unescape(_TAG.sub("", line)).split()) for line in lines[idx + 1:]]
        body = [b for b in body if b]
        new = [b for b in body if b not in previous]
        previous = body
        if not new or end <= start:
            continue
        cues.append((start, end, " ".join(new)))
    return cues
