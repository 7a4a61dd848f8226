"""Download stage (``DownloadFunction``): fetch a URL job's media into the bucket.

The fetching itself (yt-dlp or a direct link, size and duration limits) is
:func:`ytcaption.media.download.fetch_media`; this stage adds what a job needs
around it: the URL policy, the per-site circuit breaker, progress, and the result
cache keys of what was downloaded.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from ytcaption.adapters import storage as keys
from ytcaption.adapters.circuit_breaker import CircuitBreaker, site_of
from ytcaption.adapters.netsafety import UrlPolicy, check_url, guarded
from ytcaption.adapters.result_cache import cache_key
from ytcaption.domain.errors import DownloadFailed, UnsupportedMedia
from ytcaption.domain.jobs import JobStatus
from ytcaption.media.ytdlp import ytdlp_options
from ytcaption.observability import logger
from ytcaption.stages.base import Stage
from ytcaption.telemetry import BREAKER_OPENED, put, stage_timer

PROGRESS_EVERY_S = 2.0


class DownloadStage(Stage):
    def run(self, job_id: str) -> dict[str, Any]:
        with stage_timer("download"):
            return self._download(job_id)

    def _download(self, job_id: str) -> dict[str, Any]:
        from ytcaption.media.download import fetch_media

        job = self.enter(job_id, JobStatus.DOWNLOADING, "downloading")
        if job.source.url is None:
            raise UnsupportedMedia("this job has no URL to download")
        work = self.workdir(job_id, "download")
        media = self.settings.media
        policy = UrlPolicy.from_settings(self.settings)
        check_url(job.source.url, policy)
        last = [0.0]

        def progress(done: int, total: int | None) -> None:
            now = time.monotonic()
            if total and now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                self.repo.set_progress(job_id, 1 + int(8 * min(1.0, done / total)), status=JobStatus.DOWNLOADING)

        ytdlp_opts = ytdlp_options(self.settings.ytdlp, tmp_dir=self.settings.work_dir)
        site = site_of(job.source.url)
        breaker = CircuitBreaker(self.repo, self.settings.breaker)
        breaker.before_download(site, job.tenant)
        try:
            with guarded(policy):  # every connection, redirects included
                got = fetch_media(
                    job.source.url,
                    work,
                    max_bytes=media.max_download_bytes,
                    max_duration_s=media.max_duration_s,
                    timeout_s=media.download_timeout_s,
                    progress=progress,
                    ytdlp_opts=ytdlp_opts,
                )
            key = keys.source_key(job_id, got.path.suffix)
            self.storage.upload_file(str(got.path), key)
        except DownloadFailed as exc:
            failed = site_of(exc.source_url) if exc.source_url else site
            if exc.site_fault and breaker.record_failure(failed, job.tenant):
                put(BREAKER_OPENED, 1)
                logger.warning("circuit opened for a source site", extra={"site": failed})
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        breaker.record_success(site, job.tenant)
        source = {**job.source.model_dump(mode="json"), "bucket": self.storage.bucket, "key": key,
                  "size_bytes": got.media.size_bytes}
        # the cache is keyed on what yt-dlp downloaded, not on the API's reading of the URL
        cache_keys = [cache_key(got.source_id, job.options)] if got.source_id else []
        self.repo.update_fields(
            job_id, {"media": got.media.model_dump(mode="json"), "source": source, "cache_keys": cache_keys},
            status=JobStatus.DOWNLOADING,
        )
        logger.info("downloaded", extra={"bytes": got.media.size_bytes, "duration_s": got.media.duration_s})
        return {"source_key": key, "duration_s": got.media.duration_s}
