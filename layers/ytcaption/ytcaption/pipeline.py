"""The pipeline stages the state machine runs: download, normalize, transcribe a
shard (the Batch worker), merge, notify, mark failed.

Each stage moves the job's status first, so a cancelled job stops at the next
stage boundary (the move raises ``JobCancelled``), and a retried stage
re-entering its own status is a no-op. Stages are idempotent: a retry redoes
or skips work, never duplicates it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ytcaption import storage as keys
from ytcaption.cache import ResultCache, cache_key, file_sha256
from ytcaption.circuit import CircuitBreaker, site_of
from ytcaption.errors import (
    DownloadFailed,
    IllegalTransition,
    JobCancelled,
    MediaTooLarge,
    StageTimeout,
    TranscriptionFailed,
    UnsupportedMedia,
    YTCaptionError,
    error_from_name,
)
from ytcaption.jobs import ErrorInfo, Job, JobOptions, JobStatus, MediaInfo
from ytcaption.netsafety import UrlPolicy, check_url, guarded
from ytcaption.notifications import Notifier
from ytcaption.observability import bind_job, logger
from ytcaption.repository import JobRepository
from ytcaption.settings import PipelineSettings
from ytcaption.storage import Storage

PROGRESS_EVERY_S = 2.0


class Pipeline:
    def __init__(
        self,
        settings: PipelineSettings,
        repo: JobRepository | None = None,
        storage: Storage | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo or JobRepository(settings.jobs_table)
        self.storage = storage or Storage(settings.bucket_name)
        self.notifier = notifier or Notifier(settings, self.repo)

    def _workdir(self, job_id: str, stage: str) -> Path:
        return Path(self.settings.work_dir) / job_id / stage

    def _enter(self, job_id: str, status: JobStatus, message: str) -> Job:
        bind_job(job_id)
        job = self.repo.transition(job_id, status, message=message)
        if job.correlation_id:
            bind_job(job_id, job.correlation_id)
        return job

    # --- download ------------------------------------------------------------------------

    def download(self, job_id: str) -> dict[str, Any]:
        from ytcaption.media.download import download

        job = self._enter(job_id, JobStatus.DOWNLOADING, "downloading")
        if job.source.url is None:
            raise UnsupportedMedia("this job has no URL to download")
        work = self._workdir(job_id, "download")
        media = self.settings.media
        policy = UrlPolicy.from_settings(self.settings)
        check_url(job.source.url, policy)
        last = [0.0]

        def progress(done: int, total: int | None) -> None:
            now = time.monotonic()
            if total and now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                self.repo.set_progress(job_id, 1 + int(8 * min(1.0, done / total)), status=JobStatus.DOWNLOADING)

        site = site_of(job.source.url)
        breaker = CircuitBreaker(self.settings.jobs_table, self.settings.breaker, self.repo.client)
        breaker.before_download(site, job.tenant)
        try:
            with guarded(policy):  # every connection, redirects included
                got = download(
                    job.source.url,
                    work,
                    max_bytes=media.max_download_bytes,
                    max_duration_s=media.max_duration_s,
                    timeout_s=media.download_timeout_s,
                    progress=progress,
                )
            key = keys.source_key(job_id, got.path.suffix)
            self.storage.upload_file(str(got.path), key)
        except DownloadFailed as exc:
            failed = site_of(exc.source_url) if exc.source_url else site
            if exc.site_fault and breaker.record_failure(failed, job.tenant):
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

    # --- normalize and chunk --------------------------------------------------------------

    def normalize(self, job_id: str) -> dict[str, Any]:
        from ytcaption.engine import prepare
        from ytcaption.media.audio import wav_bytes
        from ytcaption.media.chunking import assign_shards, shard_count, slice_audio

        job = self._enter(job_id, JobStatus.NORMALIZING, "normalizing")
        if not job.source.key:
            raise UnsupportedMedia("the job's media is missing")
        media_settings = self.settings.media
        work = self._workdir(job_id, "normalize")
        work.mkdir(parents=True, exist_ok=True)
        try:
            head = self.storage.head(job.source.key)
            if head is None:
                raise UnsupportedMedia("the uploaded file is missing")
            size = int(head.get("ContentLength", 0))
            if size > media_settings.max_download_bytes:
                raise MediaTooLarge(f"media is {size} bytes; the maximum is {media_settings.max_download_bytes}")
            if size == 0:
                raise UnsupportedMedia("the file is empty")
            local = work / ("source" + Path(job.source.key).suffix)
            self.storage.download_file(job.source.key, str(local))
            reused = self._reuse_by_content(job, file_sha256(str(local)), size)
            if reused is not None:
                return reused
            plan = prepare(local, media_settings)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        chunks = assign_shards(plan.chunks, shard_audio_s=media_settings.shard_audio_s)
        shards = shard_count(chunks)

        def put_chunk(c: Any) -> None:
            self.storage.put_bytes(keys.chunk_audio_key(job_id, c.index),
                                   wav_bytes(slice_audio(plan.samples, c)), "audio/wav")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put_chunk, chunks))
        manifest = {
            "job_id": job_id,
            "duration": plan.duration,
            "sample_rate": 16000,
            "input_lufs": plan.input_lufs,
            "gain_db": plan.gain_db,
            "options": job.options.model_dump(mode="json"),
            "shards": shards,
            "chunks": [
                {**c.to_dict(), "key": keys.chunk_audio_key(job_id, c.index),
                 "result_key": keys.chunk_result_key(job_id, c.index)}
                for c in chunks
            ],
        }
        self.storage.put_json(keys.manifest_key(job_id), manifest)
        media = (job.media or MediaInfo()).model_copy(
            update={
                "duration_s": job.media.duration_s if job.media and job.media.duration_s else plan.duration,
                "title": (job.media.title if job.media else None) or job.source.filename,
                "size_bytes": size,
                "container": plan.container,
            }
        )
        self.repo.transition(
            job_id,
            JobStatus.TRANSCRIBING,
            message=f"{len(chunks)} chunks in {shards} shards",
            fields={"chunks": {"total": len(chunks), "done": 0, "shards": shards},
                    "media": media.model_dump(mode="json")},
        )
        logger.info("chunked", extra={"chunks": len(chunks), "shards": shards, **plan.seconds})
        return {"manifest_key": keys.manifest_key(job_id), "shards": list(range(shards)), "chunks": len(chunks),
                "reused": False}

    def _reuse_by_content(self, job: Job, digest: str, size: int) -> dict[str, Any] | None:
        """Same bytes, same options as a completed job: complete this one from its result."""
        key = cache_key(f"sha256:{digest}", job.options)
        job = self.repo.update_fields(job.job_id, {"cache_keys": [*job.cache_keys, key]},
                                      status=JobStatus.NORMALIZING)
        if job.options.fresh:
            return None
        cache = ResultCache(self.repo, self.storage)
        hit = cache.lookup(key)
        if hit is None:
            return None
        results = cache.copy_results(hit, job.job_id)
        media = (hit.media or MediaInfo()).model_copy(update={"size_bytes": size})
        self.repo.transition(
            job.job_id, JobStatus.COMPLETED,
            message=f"reused the result of job {hit.job_id} (same media and options)",
            fields={"results": results, "language": hit.language, "reused_from": hit.job_id,
                    "media": media.model_dump(mode="json")},
        )
        logger.info("result reused", extra={"from_job": hit.job_id})
        return {"manifest_key": "", "shards": [], "chunks": 0, "reused": True}

    # --- one shard (the GPU Batch worker) ------------------------------------------------------

    def transcribe_shard(
        self, job_id: str, shard: int, *, transcriber_factory: Callable[[JobOptions], Any] | None = None
    ) -> dict[str, Any]:
        from ytcaption.engine import transcribe_shard
        from ytcaption.media.audio import read_wav
        from ytcaption.media.chunking import Chunk
        from ytcaption.merge import ChunkResult
        from ytcaption.transcription import WhisperTranscriber

        bind_job(job_id)
        job = self.repo.get(job_id)
        if job.status != JobStatus.TRANSCRIBING:
            logger.info("shard skipped: job is not transcribing", extra={"status": job.status})
            return {"skipped": True, "status": job.status.value}
        manifest = self.storage.get_json(keys.manifest_key(job_id))
        options = JobOptions.model_validate(manifest["options"])
        mine = [c for c in manifest["chunks"] if c["shard"] == shard]
        chunks = [Chunk(c["index"], c["start"], c["end"], c["shard"]) for c in mine]
        transcriber = (transcriber_factory or (lambda o: WhisperTranscriber(o.model, self.settings.whisper)))(options)
        stopped = [False]

        def done(c: Chunk) -> ChunkResult | None:
            key = keys.chunk_result_key(job_id, c.index)
            if not self.storage.exists(key):
                return None
            return ChunkResult.model_validate(self.storage.get_json(key))

        def on_result(r: ChunkResult) -> bool:
            self.storage.put_json(keys.chunk_result_key(job_id, r.index), r.model_dump(mode="json"))
            if self.repo.add_chunks_done(job_id, 1) is None:
                stopped[0] = True
                return False  # cancelled or failed meanwhile: stop spending GPU time
            return True

        results = transcribe_shard(
            transcriber, chunks, lambda c: read_wav(self.storage.get_bytes(keys.chunk_audio_key(job_id, c.index))),
            options, done=done, on_result=on_result,
        )
        logger.info("shard done", extra={"shard": shard, "chunks": len(results), "stopped": stopped[0]})
        return {"shard": shard, "chunks": len(results), "stopped": stopped[0]}

    # --- merge ---------------------------------------------------------------------------------

    def merge(self, job_id: str) -> dict[str, Any]:
        from ytcaption.captions import render
        from ytcaption.merge import ChunkResult, merge

        job = self._enter(job_id, JobStatus.MERGING, "merging")
        manifest = self.storage.get_json(keys.manifest_key(job_id))
        results = []
        for c in manifest["chunks"]:
            key = keys.chunk_result_key(job_id, c["index"])
            if not self.storage.exists(key):
                raise TranscriptionFailed(f"chunk {c['index']} has no transcript")
            results.append(ChunkResult.model_validate(self.storage.get_json(key)))
        transcript = merge(results, duration=manifest["duration"], model=job.options.model, task=job.options.task)
        written: dict[str, str] = {}
        for fmt in dict.fromkeys(["json", *job.options.formats]):
            key = keys.result_key(job_id, fmt)
            self.storage.put_bytes(key, render(transcript, fmt).encode("utf-8"),
                                   keys.content_type(fmt))
            written[fmt] = key
        done = self.repo.transition(
            job_id,
            JobStatus.COMPLETED,
            message=f"{len(transcript.segments)} segments",
            fields={"results": written, "language": transcript.language},
        )
        cache = ResultCache(self.repo, self.storage)
        for key in done.cache_keys:
            cache.remember(key, done)
        logger.info("completed", extra={"segments": len(transcript.segments), "language": transcript.language})
        return {"results": written, "language": transcript.language}

    # --- notify / fail ---------------------------------------------------------------------------

    def notify(self, job_id: str) -> dict[str, Any]:
        bind_job(job_id)
        return self.notifier.job_finished(self.repo.get(job_id))

    def mark_failed(self, job_id: str, error: dict[str, Any] | None) -> dict[str, Any]:
        bind_job(job_id)
        exc = failure_from_step_functions(error or {})
        try:
            job = self.repo.transition(
                job_id, JobStatus.FAILED, message=exc.message, error=ErrorInfo(code=exc.code, message=exc.message)
            )
        except JobCancelled:
            return {"status": JobStatus.CANCELLED.value, "notified": False}
        except IllegalTransition:
            job = self.repo.get(job_id)  # already ended: keep what is there
            return {"status": job.status.value, "notified": False}
        logger.warning("job failed", extra={"code": exc.code, "error": exc.message})
        return {"status": job.status.value, "code": exc.code, **self.notifier.job_finished(job)}


def failure_from_step_functions(error: dict[str, Any]) -> YTCaptionError:
    """Turn a Catch's ``{"Error", "Cause"}`` into a domain error with a clear message.

    Lambda errors arrive as our class name plus a JSON cause with
    ``errorMessage``; a failed Batch job arrives as ``States.TaskFailed`` with the
    job description; timeouts as ``States.Timeout``. No stack trace is kept.
    """
    name = str(error.get("Error") or "")
    cause_raw = error.get("Cause") or ""
    cause: Any = cause_raw
    with contextlib.suppress(ValueError):
        cause = json.loads(cause_raw) if isinstance(cause_raw, str) and cause_raw.startswith("{") else cause_raw
    message = ""
    if isinstance(cause, dict):
        message = str(cause.get("errorMessage") or cause.get("StatusReason") or "")
        if not message:
            attempts = cause.get("Attempts") or []
            if attempts:
                last = attempts[-1]
                message = str((last.get("Container") or {}).get("Reason") or last.get("StatusReason") or "")
    elif isinstance(cause, str):
        message = cause
    message = " ".join(message.split())[:500]
    if name in ("States.Timeout", "States.HeartbeatTimeout"):
        return StageTimeout(message or "a stage took longer than its time limit")
    if name == "States.TaskFailed":
        return TranscriptionFailed(f"a transcription worker failed: {message or 'no reason given'}")
    known = error_from_name(name, message or name)
    if type(known) is YTCaptionError:
        # not one of ours (States.Runtime, Lambda.Unknown, a bug): keep its text out of
        # the user-facing message, but in the logs
        logger.error("unexpected pipeline error", extra={"error_name": name, "cause": message})
        return YTCaptionError(f"the pipeline failed unexpectedly ({name or 'unknown error'})")
    return known
