"""Search and media info: GET /v1/search and GET /v1/media.

Both run yt-dlp without downloading media. On AWS they run in the media image
(``MediaApiFunction``: API Gateway maps these two routes to it); the API
function's zip has no yt-dlp and never imports this module's yt-dlp parts.

Search results are cached briefly in the jobs table (item ``SEARCH#<sha256>``
with a TTL): the same query within ``SEARCH_CACHE_TTL_S`` costs no request to
the site. Media info applies the submission's URL policy before any fetch and
says whether a submission would be accepted, and roughly what it would cost.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

from ytcaption.adapters.netsafety import UrlPolicy, check_url, guarded
from ytcaption.adapters.table import Table
from ytcaption.api.discovery_schemas import (
    CaptionLanguage,
    Estimate,
    MediaInfoResponse,
    Problem,
    SearchItem,
    SearchResponse,
    SiteCaptions,
    Thumbnail,
)
from ytcaption.domain.errors import ServiceUnavailable, UnsafeUrl
from ytcaption.domain.jobs import now_iso
from ytcaption.observability import logger
from ytcaption.settings import DiscoverySettings

#: Socket timeouts: both routes answer inside API Gateway's 29 s integration limit.
SEARCH_TIMEOUT_S = 10.0
INFO_TIMEOUT_S = 10.0


def _site() -> Any:
    try:
        import yt_dlp  # noqa: F401  (present in the media image only)

        from ytcaption.media import site
    except ImportError as exc:  # the API function's zip: the route belongs to MediaApiFunction
        raise ServiceUnavailable("search and media info run in the media function; this one has no yt-dlp") from exc
    return site


def search_cache_pk(query: str, limit: int, kind: str) -> str:
    norm = " ".join(query.split()).casefold()
    return "SEARCH#" + hashlib.sha256(json.dumps([kind, limit, norm]).encode()).hexdigest()


class Discovery:
    def __init__(self, settings: DiscoverySettings, repo: Table | None = None) -> None:
        self.settings = settings
        self.repo = repo or Table(settings.jobs_table)

    def _ytdlp(self) -> dict[str, Any]:
        from ytcaption.media.ytdlp import ytdlp_options

        return ytdlp_options(self.settings.ytdlp, tmp_dir=self.settings.work_dir)

    # --- search ---------------------------------------------------------------------------------

    def search(self, query: str, limit: int, kind: str) -> SearchResponse:
        from ytcaption.domain.errors import InvalidRequest

        query = " ".join(query.split())
        if not query or not query.isprintable():
            raise InvalidRequest("q: give 1-200 printable characters")
        pk = search_cache_pk(query, limit, kind)
        cached = self._cached(pk)
        if cached is not None:
            return SearchResponse(query=query, kind=kind, limit=limit, cached=True,
                                  fetched_at=cached["fetched_at"],
                                  items=[SearchItem.model_validate(i) for i in cached["items"]])
        site = _site()
        policy = UrlPolicy.from_settings(self.settings)
        check_url("https://www.youtube.com/results", policy, resolve=False)  # a deny-all policy refuses search too
        with guarded(policy):
            entries = site.search(query, limit, kind, self._ytdlp(), timeout_s=SEARCH_TIMEOUT_S)
        items = [SearchItem.model_validate(site.search_item(e)) for e in entries]
        fetched_at = now_iso()
        self._remember(pk, items, fetched_at)
        logger.info("searched", extra={"kind": kind, "limit": limit, "results": len(items)})
        return SearchResponse(query=query, kind=kind, limit=limit, cached=False,
                              fetched_at=fetched_at, items=items)

    def _cached(self, pk: str) -> dict[str, Any] | None:
        try:
            item = self.repo.get_item(pk, consistent=False)
        except Exception:
            logger.warning("search cache read failed", exc_info=True)
            return None
        if not item or int(item.get("expires_at", {}).get("N", "0")) <= time.time():
            return None  # DynamoDB's TTL deletes late; the expiry is checked here
        try:
            return dict(json.loads(item["doc"]["S"]))
        except (KeyError, ValueError):
            return None

    def _remember(self, pk: str, items: list[SearchItem], fetched_at: str) -> None:
        doc = json.dumps({"fetched_at": fetched_at, "items": [i.model_dump(mode="json") for i in items]})
        expires = int(time.time()) + self.settings.search_cache_ttl_s
        try:
            self.repo.put_item({"pk": {"S": pk}, "doc": {"S": doc}, "expires_at": {"N": str(expires)}})
        except Exception:
            logger.warning("search cache write failed", exc_info=True)

    # --- media info ----------------------------------------------------------------------------

    def media_info(self, url: str) -> MediaInfoResponse:
        policy = UrlPolicy.from_settings(self.settings)
        try:
            check_url(url, policy)  # the same policy as POST /v1/transcriptions, before any fetch
        except UnsafeUrl as exc:
            return MediaInfoResponse(url=url, accepted=False, problems=[Problem(code=exc.code, message=exc.message)])
        site = _site()
        try:
            with guarded(policy):
                info = site.extract(url, self._ytdlp(),
                                    timeout_s=min(INFO_TIMEOUT_S, self.settings.media.download_timeout_s))
        except UnsafeUrl as exc:  # a redirect into private address space
            return MediaInfoResponse(url=url, accepted=False, problems=[Problem(code=exc.code, message=exc.message)])
        return self.describe(url, info)

    def describe(self, url: str, info: dict[str, Any]) -> MediaInfoResponse:
        """What a yt-dlp info dict means for this deployment."""
        from ytcaption.media import site

        media = self.settings.media
        problems: list[Problem] = []
        duration = info.get("duration") if isinstance(info.get("duration"), int | float) else None
        if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
            problems.append(Problem(code="UNSUPPORTED_SOURCE",
                                    message="live streams cannot be transcribed until they end"))
        if duration is not None and duration > media.max_duration_s:
            problems.append(Problem(code="MEDIA_TOO_LONG", message=f"media is {duration:.0f} s long; "
                                                                   f"the maximum is {media.max_duration_s:.0f} s"))
        size = info.get("filesize") or info.get("filesize_approx")
        if isinstance(size, int | float) and size > media.max_download_bytes:
            problems.append(Problem(code="MEDIA_TOO_LARGE",
                                    message=f"media is {int(size)} bytes; the maximum is {media.max_download_bytes}"))
        tracks = site.caption_tracks(info)
        manual = [CaptionLanguage(language=t.language, name=t.name, formats=sorted(t.formats)) for t in tracks
                  if not t.automatic]
        automatic = [CaptionLanguage(language=t.language, name=t.name, formats=sorted(t.formats)) for t in tracks
                     if t.automatic and t.original]
        translations = sum(1 for t in tracks if t.automatic and not t.original)
        view_count = info.get("view_count")
        return MediaInfoResponse(
            url=url,
            accepted=not problems,
            problems=problems,
            id=str(info["id"]) if info.get("id") is not None else None,
            title=info.get("title"),
            duration_s=float(duration) if duration is not None else None,
            channel=info.get("channel"),
            uploader=info.get("uploader"),
            upload_date=site.iso_date(info),
            view_count=int(view_count) if isinstance(view_count, int | float) else None,
            is_live=bool(info.get("is_live")) if info.get("is_live") is not None else None,
            extractor=info.get("extractor_key") or info.get("extractor"),
            webpage_url=info.get("webpage_url"),
            thumbnails=[Thumbnail.model_validate(t) for t in site.thumbnails(info)],
            captions=SiteCaptions(manual=manual, automatic=automatic, automatic_translations=translations),
            estimate=estimate(duration, self.settings) if duration is not None and not problems else None,
        )


def estimate(duration_s: float, settings: DiscoverySettings, model: str | None = None) -> Estimate:
    """Rough wall time and GPU cost of transcribing ``duration_s`` of audio here.

    Shards of ``MEDIA__SHARD_AUDIO_S`` run in parallel (up to the Map's
    concurrency) after Batch starts an instance; each Batch job pays the start
    overhead once in GPU time too.
    """
    e, media = settings.estimate, settings.media
    shards = media.shards_for(duration_s)  # as the normalize stage plans them
    waves = math.ceil(shards / e.max_parallel_shards)
    per_shard = duration_s / shards / e.gpu_speed_x
    processing = duration_s / e.prepare_speed_x + e.startup_s + waves * per_shard
    gpu_seconds = duration_s / e.gpu_speed_x + shards * e.startup_s
    return Estimate(
        model=model or settings.default_model,
        shards=shards,
        processing_s=round(processing, 1),
        gpu_seconds=round(gpu_seconds, 1),
        cost_usd=round(gpu_seconds * e.gpu_usd_per_hour / 3600, 4),
        basis=(f"{e.gpu_speed_x:g}x real time per GPU, {e.startup_s:g} s Batch start per shard, "
               f"${e.gpu_usd_per_hour:g}/GPU-hour (ESTIMATE__* settings)"),
    )
