"""Merge stage (``MergeFunction``): stitch every chunk's transcript into the job's one
timeline (:func:`ytcaption.domain.stitching.stitch`), write the caption files, complete
the job and remember its result for the cache. No engine here: the chunks are text.
"""

from __future__ import annotations

import json
from typing import Any

from ytcaption.adapters import storage as keys
from ytcaption.adapters.result_cache import ResultCache
from ytcaption.domain.costs import ending_fields
from ytcaption.domain.errors import TranscriptionFailed
from ytcaption.domain.jobs import JobStatus
from ytcaption.domain.stitching import ChunkResult, stitch
from ytcaption.observability import logger
from ytcaption.stages.base import Stage
from ytcaption.telemetry import emit_job_end, stage_timer


class MergeStage(Stage):
    def run(self, job_id: str) -> dict[str, Any]:
        with stage_timer("merge"):
            return self._merge(job_id)

    def _merge(self, job_id: str) -> dict[str, Any]:
        job = self.enter(job_id, JobStatus.MERGING, "merging")
        manifest = self.storage.get_json(keys.manifest_key(job_id))
        results = []
        stored = self.storage.get_many([keys.chunk_result_key(job_id, c["index"]) for c in manifest["chunks"]])
        for c, data in zip(manifest["chunks"], stored, strict=True):
            if data is None:
                raise TranscriptionFailed(f"chunk {c['index']} has no transcript")
            results.append(ChunkResult.model_validate(json.loads(data)))
        transcript = stitch(results, duration=manifest["duration"], model=job.options.model, task=job.options.task)
        transcript.source = "transcription"
        if job.options.diarize:
            from ytcaption.stages.speakers import label_speakers

            transcript = label_speakers(self.storage, self.settings.diarization, job_id, job.options,
                                        results, transcript)
        written = self.write_results(job_id, transcript, job.options.formats)
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
