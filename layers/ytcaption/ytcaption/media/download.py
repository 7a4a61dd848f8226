"""Fetch the best audio of a URL with yt-dlp (YouTube, other sites, direct media links).

Limits are checked before downloading where the site says enough (duration,
file size), and always after, on the file itself: its size, whether it decodes
as media, and its measured duration. Every failure becomes a domain error with
a stable code, and a failed download leaves nothing behind in its directory.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytcaption.adapters.result_cache import extracted_source_id
from ytcaption.domain.errors import (
    DownloadFailed,
    MediaTooLarge,
    MediaTooLong,
    SourceBlocked,
    SourceNotFound,
    UnsafeUrl,
    UnsupportedMedia,
    UnsupportedSource,
    YTCaptionError,
)
from ytcaption.domain.jobs import MediaInfo
from ytcaption.media.audio import probe
from ytcaption.media.ytdlp import CLIENT_HINT, COOKIES_HINT, PROXY_HINT

#: HTTP statuses worth retrying (the rest of 4xx are final).
RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
#: How sites word a refusal of this client: bot checks, sign-in and age walls.
_SIGN_IN = re.compile(r"not a bot|sign in|log ?in|login|cookies|authenticat|confirm your age|age[- ]restricted"
                      r"|members[- ]only|join this channel", re.I)
_GEO = re.compile(r"your country|your location|geo[- ]?restrict|not available in your region", re.I)
ProgressFn = Callable[[int, int | None], None]


@dataclass
class Downloaded:
    path: Path
    media: MediaInfo
    #: What yt-dlp says it downloaded (``youtube:<id>``), the result cache's key; None
    #: for sources whose content can change under the same URL.
    source_id: str | None = None


class _Quiet:
    """yt-dlp logger that keeps its chatter out of our structured logs."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = debug

    def error(self, msg: str) -> None:
        pass


def classify(exc: BaseException) -> YTCaptionError:
    """Map a yt-dlp failure to a domain error (retryable or final)."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError, UnsupportedRequest
    from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError

    unsafe = _find(exc, UnsafeUrl)
    if unsafe is not None:
        return UnsafeUrl(unsafe.message)
    blocked = blocked_error(exc)
    if blocked is not None:
        return blocked
    if _find(exc, UnsupportedRequest) is not None:
        # e.g. a playlist whose segments are file: URLs: final, and not the site's fault
        return UnsupportedSource("the media refers to resources this service does not fetch "
                                 "(only http and https)")
    cause: BaseException | None = exc
    if isinstance(exc, DownloadError) and exc.exc_info and exc.exc_info[1] is not None:
        cause = exc.exc_info[1]
    if isinstance(cause, ExtractorError) and cause.exc_info and cause.exc_info[1] is not None:
        inner = cause.exc_info[1]
        if isinstance(inner, HTTPError | TransportError):
            cause = inner
    if isinstance(cause, HTTPError):
        status = cause.status
        if status in RETRYABLE_HTTP:
            return DownloadFailed(f"the source answered HTTP {status}; it may work later", site_fault=True,
                                  source_url=getattr(cause.response, "url", None))
        if status in (404, 410):
            return SourceNotFound(f"the source was not found (HTTP {status})")
        if status == 403:
            return SourceBlocked(f"the site refused the download (HTTP 403); if it blocks this deployment's "
                                 f"address, set {PROXY_HINT} or {COOKIES_HINT}")
        return SourceNotFound(f"the source refused the download (HTTP {status})")
    if isinstance(cause, TransportError):
        return DownloadFailed(f"could not reach the source ({type(cause).__name__})", site_fault=True)
    if isinstance(cause, UnsupportedError):
        return UnsupportedSource("no video or audio was found at this URL")
    if isinstance(cause, ExtractorError) and cause.expected:
        # the site says so itself: private, removed, region-locked, ...
        return SourceNotFound(f"the source is not available: {_short(cause.orig_msg or str(cause))}")
    return DownloadFailed(f"download failed: {_short(str(cause))}")


def blocked_error(exc: BaseException) -> SourceBlocked | None:
    """A refusal of this client by the site (bot check, sign-in, geo block), or None."""
    from yt_dlp.utils import ExtractorError, GeoRestrictedError

    geo = _find(exc, GeoRestrictedError)
    if geo is not None:
        return SourceBlocked(f"the site does not serve this video where the deployment runs (geo block); "
                             f"set {PROXY_HINT} in a country it is available in")
    extractor = _find(exc, ExtractorError)
    text = str(getattr(extractor, "orig_msg", None) or extractor or "")
    if extractor is not None and getattr(extractor, "expected", False):
        if _GEO.search(text):
            return SourceBlocked(f"the site does not serve this video where the deployment runs (geo block); "
                                 f"set {PROXY_HINT} in a country it is available in")
        if _SIGN_IN.search(text):
            return SourceBlocked(f"the site asks for a sign-in or bot check ({_short(text, 160)}); "
                                 f"set {COOKIES_HINT}, or try {CLIENT_HINT} or {PROXY_HINT}")
    return None


def _find(exc: BaseException, kind: type[BaseException]) -> Any:
    """The first ``kind`` in an exception's causes (yt-dlp wraps what sockets raise)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
        todo += [x for x in getattr(e, "unexpected_errors", None) or [] if isinstance(x, BaseException)]
        todo += [x for x in getattr(e, "unsupported_errors", None) or [] if isinstance(x, BaseException)]
        info = getattr(e, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1 and isinstance(info[1], BaseException):
            todo.append(info[1])
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return None


def _short(msg: str, limit: int = 300) -> str:
    msg = " ".join(str(msg).replace("ERROR:", "").split())
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def open_ydl(opts: dict[str, Any]) -> Any:
    """``yt_dlp.YoutubeDL(opts)`` with the same default extractors, built without the
    constructor's quadratic de-duplication of ~1,800 extractor names (``orderedSet``),
    which cost about 120 ms of CPU per instance: per download, per site lookup. The
    extractor list is the one ``add_default_info_extractors`` builds (a unit test compares
    them), and the verbose debug header, which the constructor would print, is never
    wanted here (yt-dlp runs quiet)."""
    import yt_dlp
    from yt_dlp.extractor import gen_extractor_classes
    from yt_dlp.extractor.common import UnsupportedURLIE

    if opts.get("allowed_extractors") is not None or opts.get("verbose"):
        return yt_dlp.YoutubeDL(opts)
    ydl = yt_dlp.YoutubeDL(opts, auto_init=False)
    every: dict[str, Any] = {ie.IE_NAME.lower(): ie for ie in gen_extractor_classes()}
    every["end"] = UnsupportedURLIE()
    for ie in every.values():  # dict keys are unique already: nothing to de-duplicate
        if ie._ENABLED:
            ydl.add_info_extractor(ie)
    return ydl


def fetch_media(
    url: str,
    work_dir: str | Path,
    *,
    max_bytes: int,
    max_duration_s: float,
    timeout_s: float = 30.0,
    progress: ProgressFn | None = None,
    ytdlp_opts: dict[str, Any] | None = None,
) -> Downloaded:
    """Download the best audio of ``url`` into ``work_dir`` (created, and removed on failure)."""
    import yt_dlp
    import yt_dlp.networking.exceptions

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)

    def hook(d: dict[str, Any]) -> None:
        if progress and d.get("status") == "downloading":
            progress(int(d.get("downloaded_bytes") or 0), d.get("total_bytes") or d.get("total_bytes_estimate"))

    opts: dict[str, Any] = {
        "format": "bestaudio/best",
        "outtmpl": str(work / "source.%(ext)s"),
        "noplaylist": True,
        "playlist_items": "1",
        "max_filesize": max_bytes,
        "socket_timeout": timeout_s,
        "retries": 2,
        "fragment_retries": 2,
        "noprogress": True,
        "quiet": True,
        "no_warnings": True,
        "logger": _Quiet(),
        "progress_hooks": [hook],
        "overwrites": True,
        "cachedir": False,
        **(ytdlp_opts or {}),  # cookies, proxy, extractor args, pacing (ytcaption.media.ytdlp)
        "enable_file_urls": False,  # the default; a playlist must not read this machine's files
    }
    try:
        with open_ydl(opts) as ydl:
            try:
                info = ydl.extract_info(url, download=False)
            except (yt_dlp.utils.DownloadError, yt_dlp.networking.exceptions.RequestError) as exc:
                raise classify(exc) from exc
            if info is None:
                raise UnsupportedSource("no video or audio was found at this URL")
            if info.get("_type") == "playlist":
                entries = [e for e in (info.get("entries") or []) if e]
                if not entries:
                    raise UnsupportedSource("the URL is an empty playlist")
                info = entries[0]
            if info.get("is_live"):
                raise UnsupportedSource("live streams cannot be transcribed until they end")
            declared = info.get("duration")
            if declared and float(declared) > max_duration_s:
                raise MediaTooLong(f"media is {float(declared):.0f} s long; the maximum is {max_duration_s:.0f} s")
            size = info.get("filesize") or info.get("filesize_approx")
            if size and int(size) > max_bytes:
                raise MediaTooLarge(f"media is {int(size)} bytes; the maximum is {max_bytes}")
            try:
                info = ydl.process_ie_result(info, download=True)
            except (yt_dlp.utils.DownloadError, yt_dlp.networking.exceptions.RequestError) as exc:
                raise classify(exc) from exc
        path = _downloaded_file(info, work)
        if path is None:
            # yt-dlp skips files over max_filesize without raising
            raise MediaTooLarge(f"media is larger than the maximum of {max_bytes} bytes")
        size = path.stat().st_size
        if size > max_bytes:
            raise MediaTooLarge(f"media is {size} bytes; the maximum is {max_bytes}")
        if size == 0:
            raise UnsupportedMedia("the source is empty")
        media = probe(path)
        if media.duration_s is not None and media.duration_s > max_duration_s:
            raise MediaTooLong(f"media is {media.duration_s:.0f} s long; the maximum is {max_duration_s:.0f} s")
        return Downloaded(
            path=path,
            media=MediaInfo(
                title=info.get("title"),
                uploader=info.get("uploader") or info.get("channel"),
                duration_s=round(media.duration_s, 3) if media.duration_s is not None else declared,
                source_url=info.get("webpage_url") or url,
                extractor=info.get("extractor_key") or info.get("extractor"),
                size_bytes=size,
                container=media.container,
            ),
            source_id=extracted_source_id(info),
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _downloaded_file(info: dict[str, Any], work: Path) -> Path | None:
    for d in info.get("requested_downloads") or []:
        fp = d.get("filepath")
        if fp and Path(fp).exists():
            return Path(fp)
    found = [p for p in work.glob("source.*") if not p.name.endswith((".part", ".ytdl"))]
    return found[0] if found else None
