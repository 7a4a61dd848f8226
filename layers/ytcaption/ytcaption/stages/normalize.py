"""Normalize stage (``NormalizeFunction``): decode the job's media to 16 kHz mono, even out
its loudness, cut it at silences into chunks, group the chunks into GPU shards, and
write the manifest the transcribe stage reads. Media already transcribed with the same
options (same bytes) completes the job from that result instead.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ytcaption.adapters import storage as keys
from ytcaption.adapters.result_cache import ResultCache, cache_key, file_sha256
from ytcaption.domain.costs import ending_fields
from ytcaption.domain.errors import MediaTooLarge, UnsupportedMedia
from ytcaption.domain.jobs import Job, JobStatus, MediaInfo
from ytcaption.observability import logger
from ytcaption.stages.base import Stage, trace_header
from ytcaption.telemetry import CACHE_HITS, emit_job_end, put, stage_timer


class NormalizeStage(Stage):
    def run(self, job_id: str) -> dict[str, Any]:
        with stage_timer("normalize"):
            return self._normalize(job_id)

    def _normalize(self, job_id: str) -> dict[str, Any]:
        from ytcaption.engine.engine import prepare
        from ytcaption.media.audio import wav_bytes
        from ytcaption.media.chunking import assign_shards, shard_count, slice_audio

        job = self.enter(job_id, JobStatus.NORMALIZING, "normalizing")
        if not job.source.key:
            raise UnsupportedMedia("the job's media is missing")
        media_settings = self.settings.media
        work = self.workdir(job_id, "normalize")
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
        chunks = assign_shards(plan.chunks, media_settings)
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
                "reused": False, "trace_header": trace_header()}

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
        return {"manifest_key": "", "shards": [], "chunks": 0, "reused": True, "trace_header": trace_header()}
