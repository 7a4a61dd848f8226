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
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ytcaption import storage as keys
from ytcaption.cache import ResultCache, cache_key, file_sha256
from ytcaption.circuit import CircuitBreaker, site_of
from ytcaption.costs import ending_fields
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
from ytcaption.jobs import ErrorInfo, Job, JobOptions, JobStatus, MediaInfo, now_iso
from ytcaption.media.ytdlp import ytdlp_options
from ytcaption.netsafety import UrlPolicy, check_url, guarded
from ytcaption.notifications import Notifier
from ytcaption.observability import bind_job, logger
from ytcaption.repository import JobRepository
from ytcaption.settings import PipelineSettings
from ytcaption.storage import Storage
from ytcaption.telemetry import (
    BREAKER_OPENED,
    CACHE_HITS,
    ShardRecord,
    emit_job_end,
    put,
    seconds_between,
    stage_timer,
)

PROGRESS_EVERY_S = 2.0


class WorkerError(ErrorInfo):
    """A Batch worker's failure, as it recorded it for the state machine's failure path."""

    shard: int
    retryable: bool
    at: str


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
        with stage_timer("download"):
            return self._download(job_id)

    def _download(self, job_id: str) -> dict[str, Any]:
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

        ytdlp_opts = ytdlp_options(self.settings.ytdlp, tmp_dir=self.settings.work_dir)
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

    # --- normalize and chunk --------------------------------------------------------------

    def normalize(self, job_id: str) -> dict[str, Any]:
        with stage_timer("normalize"):
            return self._normalize(job_id)

    def _normalize(self, job_id: str) -> dict[str, Any]:
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
                "reused": False, "trace_header": _trace_header()}

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
        priced = job.model_copy(update={"media": media})
        done = self.repo.transition(
            job.job_id, JobStatus.COMPLETED,
            message=f"reused the result of job {hit.job_id} (same media and options)",
            fields={"results": results, "language": hit.language, "reused_from": hit.job_id,
                    "media": media.model_dump(mode="json"), "transcript_source": hit.transcript_source,
                    **ending_fields(priced, self.storage, self.settings.cost)},
        )
        put(CACHE_HITS, 1, Kind="content")
        emit_job_end(done)
        logger.info("result reused", extra={"from_job": hit.job_id})
        return {"manifest_key": "", "shards": [], "chunks": 0, "reused": True, "trace_header": _trace_header()}

    # --- one shard (the GPU Batch worker) ------------------------------------------------------

    def transcribe_shard(
        self, job_id: str, shard: int, *, transcriber_factory: Callable[[JobOptions], Any] | None = None,
        submitted_at: str | None = None,
    ) -> dict[str, Any]:
        """One worker attempt; its record (GPU seconds, queue wait, audio) is kept in S3 whatever happens."""
        started, t0 = now_iso(), time.monotonic()
        bind_job(job_id)
        job = self.repo.get(job_id)
        if job.correlation_id:
            bind_job(job_id, job.correlation_id)
        logger.append_keys(shard=shard, stage="transcribe")
        if job.status != JobStatus.TRANSCRIBING:
            logger.info("shard skipped: job is not transcribing", extra={"status": job.status})
            return {"skipped": True, "status": job.status.value}
        rec = ShardRecord(shard=shard, model=job.options.model, started_at=started, ended_at=started, seconds=0.0,
                          queue_wait_s=seconds_between(submitted_at, started))
        try:
            out = self._transcribe_shard(job_id, shard, rec, transcriber_factory)
        except BaseException:
            rec.outcome = "error"
            raise
        finally:
            rec.ended_at, rec.seconds = now_iso(), round(time.monotonic() - t0, 3)
            try:
                self.storage.put_json(keys.shard_record_key(job_id, shard, uuid.uuid4().hex[:12]),
                                      rec.model_dump(mode="json"))
            except YTCaptionError:
                logger.warning("shard record not stored")
            logger.remove_keys(["shard", "stage"])
        return out

    def _transcribe_shard(
        self, job_id: str, shard: int, rec: ShardRecord, transcriber_factory: Callable[[JobOptions], Any] | None
    ) -> dict[str, Any]:
        from ytcaption.engine import transcribe_shard
        from ytcaption.language_id import chunk_languages
        from ytcaption.media.audio import read_wav
        from ytcaption.media.chunking import Chunk
        from ytcaption.merge import ChunkResult
        from ytcaption.transcription import WhisperTranscriber

        manifest = self.storage.get_json(keys.manifest_key(job_id))
        options = JobOptions.model_validate(manifest["options"])
        mine = [c for c in manifest["chunks"] if c["shard"] == shard]
        chunks = [Chunk.from_dict(c) for c in mine]
        speaker_model = None
        if options.diarize:  # the model's hash is checked before any transcription is spent
            from ytcaption.diarize_stage import embedder

            speaker_model = embedder(self.settings.diarization)
            options = options.model_copy(update={"word_timestamps": True})  # to split segments between words
        transcriber = (transcriber_factory or (lambda o: WhisperTranscriber(o.model, self.settings.whisper)))(options)
        stopped = [False]

        def done(c: Chunk) -> ChunkResult | None:
            key = keys.chunk_result_key(job_id, c.index)
            if not self.storage.exists(key):
                return None
            rec.chunks_skipped += 1
            return ChunkResult.model_validate(self.storage.get_json(key))

        def on_result(r: ChunkResult) -> bool:
            rec.chunks += 1
            rec.audio_s = round(rec.audio_s + (r.end - r.start), 3)
            # the fidelity guard marks chunks it decoded a second time
            rec.redecoded += int(bool(getattr(r, "redecoded", False)))
            self.storage.put_json(keys.chunk_result_key(job_id, r.index), r.model_dump(mode="json"))
            if self.repo.add_chunks_done(job_id, 1) is None:
                stopped[0] = True
                return False  # cancelled or failed meanwhile: stop spending GPU time
            return True

        def load(c: Chunk) -> Any:
            return read_wav(self.storage.get_bytes(keys.chunk_audio_key(job_id, c.index)))

        every = [Chunk.from_dict(c) for c in manifest["chunks"]]
        results = transcribe_shard(transcriber, chunks, load, options, done=done, on_result=on_result,
                                   batch_size=self.settings.whisper.batch_size,
                                   context=self.settings.whisper.condition_on_previous_text,
                                   languages=chunk_languages(transcriber, every, load, options))
        if speaker_model is not None and not stopped[0]:
            from ytcaption.diarize_stage import shard_embeddings

            shard_embeddings(self.storage, speaker_model, job_id, options, shard, chunks, load)
        logger.info("shard done", extra={"shard": shard, "chunks": len(results), "stopped": stopped[0]})
        return {"shard": shard, "chunks": len(results), "stopped": stopped[0]}

    def record_worker_error(self, job_id: str, shard: int, exc: YTCaptionError) -> None:
        """Leave a worker's failure where MarkFailed reads it: a failed Batch job reaches the
        state machine as a bare ``States.TaskFailed`` (best effort: the exit code still tells Batch)."""
        info = WorkerError(code=exc.code, message=exc.message, shard=shard, retryable=exc.retryable, at=now_iso())
        try:
            self.storage.put_json(keys.worker_error_key(job_id, shard), info.model_dump(mode="json"))
        except Exception:
            logger.warning("worker error not recorded", extra={"code": exc.code, "shard": shard})

    def worker_error(self, job_id: str, shard: int | None) -> WorkerError | None:
        """What the worker of ``shard`` last reported (the shard comes from the Batch job's description)."""
        if shard is None:
            return None
        try:  # missing (the worker died without a word): NoSuchKey, or AccessDenied without ListBucket
            return WorkerError.model_validate(self.storage.get_json(keys.worker_error_key(job_id, shard)))
        except (YTCaptionError, ValueError):
            return None

    # --- merge ---------------------------------------------------------------------------------

    def merge(self, job_id: str) -> dict[str, Any]:
        with stage_timer("merge"):
            return self._merge(job_id)

    def _merge(self, job_id: str) -> dict[str, Any]:
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
        transcript.source = "transcription"
        if job.options.diarize:
            from ytcaption.diarize_stage import label_speakers

            transcript = label_speakers(self.storage, self.settings.diarization, job_id, job.options,
                                        [c["index"] for c in manifest["chunks"]], transcript)
        written = self.store_results(job_id, transcript, job.options.formats)
        done = self.repo.transition(
            job_id,
            JobStatus.COMPLETED,
            message=f"{len(transcript.segments)} segments",
            fields={"results": written, "language": transcript.language, "transcript_source": "transcription",
                    "chunks": {**job.chunks.model_dump(mode="json"),
                               "redecoded": transcript.redecoded_chunks or 0},
                    **ending_fields(self.repo.get(job_id), self.storage, self.settings.cost)},
        )
        emit_job_end(done)
        cache = ResultCache(self.repo, self.storage)
        for key in done.cache_keys:
            cache.remember(key, done)
        logger.info("completed", extra={"segments": len(transcript.segments), "language": transcript.language})
        return {"results": written, "language": transcript.language}

    def store_results(self, job_id: str, transcript: Any, formats: Sequence[str]) -> dict[str, str]:
        """Write the canonical JSON and every asked-for format; returns format -> key."""
        from ytcaption.captions import render

        written: dict[str, str] = {}
        for fmt in dict.fromkeys(["json", *formats]):
            key = keys.result_key(job_id, fmt)
            self.storage.put_bytes(key, render(transcript, fmt).encode("utf-8"), keys.content_type(fmt))
            written[fmt] = key
        return written

    # --- the site's own captions (site_captions: prefer / fallback) ------------------------------

    def site_captions(self, job_id: str, mode: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        from ytcaption.sitecaptions import SiteCaptionsStage

        return SiteCaptionsStage(self).run(job_id, mode, error)

    # --- notify / fail ---------------------------------------------------------------------------

    def notify(self, job_id: str) -> dict[str, Any]:
        bind_job(job_id)
        return self.notifier.job_finished(self.repo.get(job_id))

    def mark_failed(self, job_id: str, error: dict[str, Any] | None) -> dict[str, Any]:
        bind_job(job_id)
        error = error or {}
        is_batch = error.get("Error") == "States.TaskFailed"
        recorded = self.worker_error(job_id, _batch_shard(_cause(error))) if is_batch else None
        exc = failure_from_step_functions(error, recorded)
        try:
            current = self.repo.get(job_id)
            fields = {} if current.status.terminal else ending_fields(current, self.storage, self.settings.cost)
            job = self.repo.transition(
                job_id, JobStatus.FAILED, message=exc.message, error=ErrorInfo(code=exc.code, message=exc.message),
                fields=fields,
            )
        except JobCancelled:
            return {"status": JobStatus.CANCELLED.value, "notified": False}
        except IllegalTransition:
            job = self.repo.get(job_id)  # already ended: keep what is there
            return {"status": job.status.value, "notified": False}
        logger.warning("job failed", extra={"code": exc.code, "error": exc.message})
        emit_job_end(job)
        return {"status": job.status.value, "code": exc.code, **self.notifier.job_finished(job)}


def _trace_header() -> str:
    """This invocation's X-Ray trace header (the execution's trace): the Batch workers log it."""
    return os.environ.get("_X_AMZN_TRACE_ID", "")


def failure_from_step_functions(error: dict[str, Any], worker_error: WorkerError | None = None) -> YTCaptionError:
    """Turn a Catch's ``{"Error", "Cause"}`` into a domain error with a clear message.

    Lambda errors arrive as our class name plus a JSON cause with
    ``errorMessage``; a failed Batch job arrives as ``States.TaskFailed`` with the
    job description, and the worker's own error is the one it recorded
    (``worker_error``, see :meth:`Pipeline.record_worker_error`); timeouts as
    ``States.Timeout``. No stack trace is kept.
    """
    name = str(error.get("Error") or "")
    cause = _cause(error)
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
    if name in ("States.Timeout", "States.HeartbeatTimeout", "Sandbox.Timedout"):
        # a state's own limit, or a Lambda function's timeout ("Task timed out after ...")
        return StageTimeout(message or "a stage took longer than its time limit")
    if name == "States.TaskFailed":
        if worker_error is not None:
            return error_from_name(worker_error.code, worker_error.message)
        if "exceeded timeout" in message:  # Batch stopped the attempt at attemptDurationSeconds
            return StageTimeout(f"a transcription worker ran past its time limit: {message}")
        if not message and isinstance(cause, dict):
            exit_code = ((cause.get("Container") or {}).get("ExitCode"))
            message = f"it stopped with exit code {exit_code} and reported nothing" if exit_code is not None else ""
        return TranscriptionFailed(
            f"a transcription worker failed: {message or 'it stopped without reporting an error'}")
    known = error_from_name(name, message or name)
    if type(known) is YTCaptionError:
        # not one of ours (States.Runtime, Lambda.Unknown, a bug): keep its text out of
        # the user-facing message, but in the logs
        logger.error("unexpected pipeline error", extra={"error_name": name, "cause": message})
        return YTCaptionError(f"the pipeline failed unexpectedly ({name or 'unknown error'})")
    return known


def _batch_shard(cause: Any) -> int | None:
    """The shard a failed Batch job ran (its SHARD_INDEX), from the job description in the cause."""
    if not isinstance(cause, dict):
        return None
    container = cause.get("Container") or {}
    for env in container.get("Environment") or []:
        if isinstance(env, dict) and env.get("Name") == "SHARD_INDEX":
            with contextlib.suppress(TypeError, ValueError):
                return int(str(env.get("Value")))
    return None


def _cause(error: dict[str, Any]) -> Any:
    """The Catch's ``Cause``: JSON (a Lambda error, a Batch job description) or plain text."""
    raw = error.get("Cause") or ""
    with contextlib.suppress(ValueError):
        return json.loads(raw) if isinstance(raw, str) and raw.startswith("{") else raw
    return raw
