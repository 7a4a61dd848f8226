"""Transcribe stage: one shard of a job's chunks through faster-whisper. This is what runs
in the GPU container (``python -m ytcaption.worker`` calls :class:`TranscribeStage`),
and the only stage that imports the engine.

Each chunk's result is stored as it comes (on the chunk's own timeline; the merge stage
puts it on the media's, :func:`ytcaption.domain.stitching.shift`), so a retried shard
skips chunks already done. A cancelled or failed job stops the shard at the next chunk.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ytcaption.adapters import storage as keys
from ytcaption.domain.errors import YTCaptionError
from ytcaption.domain.jobs import JobOptions, JobStatus, now_iso
from ytcaption.observability import bind_job, logger
from ytcaption.settings import WhisperSettings
from ytcaption.stages.base import Stage, WorkerError
from ytcaption.telemetry import ShardRecord, seconds_between


class Background:
    """Runs ``work`` on a thread of its own, in the caller's context (context variables: who is
    calling AWS, locally), at a lower CPU priority where the OS allows it; :meth:`result` waits
    for it and raises what it raised."""

    def __init__(self, work: Callable[[], Any], *, nice: int = 10) -> None:
        self._work, self._nice, self._context = work, nice, contextvars.copy_context()
        self._out: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shard-background", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):
            # Linux keeps a nice value per thread: this one yields the core to the decoder
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
        try:
            self._out = self._context.run(self._work)
        except BaseException as exc:
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._out


def embeddings_beside_decoder(settings: WhisperSettings) -> bool:
    """Whether a diarized shard computes its speaker embeddings while Whisper decodes, or after.

    Beside it when Whisper runs on a GPU: the embeddings then use CPU cores the decoder leaves
    idle, and the shard (billed by the second) hardly grows. After it on a CPU, where the cores
    are the decoder's: measured on the local runtime (2 cores, 10-minute job, four alternating
    runs), running both at once took more CPU in all (cache contention) and no less time.
    """
    from ytcaption.engine.transcription import choose_device

    return choose_device(settings)[0] == "cuda"


class TranscribeStage(Stage):
    def run(
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
        from ytcaption.domain.stitching import ChunkResult
        from ytcaption.engine.engine import transcribe_shard
        from ytcaption.engine.language_id import chunk_languages
        from ytcaption.engine.transcription import WhisperTranscriber, choose_streams
        from ytcaption.media.audio import read_wav
        from ytcaption.media.chunking import Chunk

        manifest = self.storage.get_json(keys.manifest_key(job_id))
        options = JobOptions.model_validate(manifest["options"])
        mine = [c for c in manifest["chunks"] if c["shard"] == shard]
        chunks = [Chunk.from_dict(c) for c in mine]
        speaker_model = None
        if options.diarize:  # the model's hash is checked before any transcription is spent
            from ytcaption.stages.speakers import embedder

            speaker_model = embedder(self.settings.diarization)
            options = options.model_copy(update={"word_timestamps": True})  # to split segments between words
        transcriber = (transcriber_factory or (lambda o: WhisperTranscriber(o.model, self.settings.whisper)))(options)
        stopped = [False]
        # a CPU worker embeds each chunk when its transcript is ready and stores the windows with it;
        # a GPU worker embeds beside the decoder and stores them apart (embeddings_beside_decoder)
        beside = speaker_model is not None and embeddings_beside_decoder(self.settings.whisper)
        with_result = speaker_model is not None and not beside
        by_index = {c.index: c for c in chunks}

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
            if with_result:
                from ytcaption.stages.speakers import chunk_windows

                c = by_index[r.index]
                r = r.model_copy(update={"speaker_windows": chunk_windows(speaker_model, load_for_speakers(c), c)})
            self.storage.put_json(keys.chunk_result_key(job_id, r.index), r.model_dump(mode="json"))
            if self.repo.add_chunks_done(job_id, 1) is None:
                stopped[0] = True
                return False  # cancelled or failed meanwhile: stop spending GPU time
            return True

        # a diarized shard fetches each of its chunks once: the speaker windows are cut from the bytes
        # the decoder fetched (at most the shard's audio as 16-bit PCM, 115 MB for an hour), not a
        # second GET of every chunk
        fetched: dict[int, bytes] = {}
        keep = {c.index for c in chunks} if speaker_model is not None else set()

        def load(c: Chunk) -> Any:
            data = fetched.get(c.index)
            if data is None:
                data = self.storage.get_bytes(keys.chunk_audio_key(job_id, c.index))
                if c.index in keep:
                    fetched[c.index] = data
            return read_wav(data)

        def load_for_speakers(c: Chunk) -> Any:
            data = fetched.pop(c.index, None)  # the windows are the chunk's last use
            return load(c) if data is None else read_wav(data)

        every = [Chunk.from_dict(c) for c in manifest["chunks"]]
        embeddings: Background | None = None
        if beside:
            from ytcaption.stages.speakers import shard_embeddings

            def embed_apart() -> None:  # the windows apart, then the known speakers' references
                rec.speaker_objects = shard_embeddings(self.storage, speaker_model, job_id, options, shard, chunks,
                                                       load_for_speakers, should_stop=lambda: stopped[0])

            embeddings = Background(embed_apart)
        try:
            results = transcribe_shard(transcriber, chunks, load, options, done=done, on_result=on_result,
                                       batch_size=self.settings.whisper.batch_size,
                                       streams=choose_streams(self.settings.whisper),
                                       context=self.settings.whisper.condition_on_previous_text,
                                       languages=chunk_languages(transcriber, every, load, options))
        except BaseException:
            stopped[0] = True  # the transcription's error is the shard's: the embeddings stop and are not waited on
            raise
        if embeddings is not None:
            embeddings.result()
        elif with_result and not stopped[0]:  # the windows went with the results; the references remain
            from ytcaption.stages.speakers import shard_references

            shard_references(self.storage, speaker_model, job_id, options, shard)
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
