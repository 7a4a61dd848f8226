"""Diarization's two halves in the pipeline: embeddings in each Batch shard, labels in the merge.

A CPU worker embeds each chunk as its transcript is ready and stores the windows in
the chunk's result (``ChunkResult.speaker_windows``): no request of their own. A GPU
worker embeds on a thread beside the decoder and stores one object per chunk
(``storage.speaker_embeddings_key``). Either way a retried shard finds the chunk done
and skips it, or writes the same key again, so windows are never counted twice. The
merge stage clusters the windows of every chunk at once, so ``SPEAKER_1`` is the same
voice in the first shard and the last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ytcaption.adapters import storage as keys
from ytcaption.adapters.storage import Storage
from ytcaption.domain.errors import TranscriptionFailed, YTCaptionError
from ytcaption.observability import logger
from ytcaption.settings import DiarizationSettings


def embedder(settings: DiarizationSettings) -> Any:
    """The model, hash checked: a worker calls this before it loads Whisper (no GPU time on a bad file)."""
    from ytcaption.engine.diarization import SpeakerEmbedder

    return SpeakerEmbedder(settings.model_path, threads=settings.threads)


def chunk_windows(emb: Any, samples: Any, chunk: Any) -> str:
    """One chunk's speaker windows as its result stores them (``ChunkResult.speaker_windows``)."""
    import base64

    return base64.b64encode(emb.embed_chunk(samples, chunk.start).to_bytes()).decode()


def shard_embeddings(storage: Storage, emb: Any, job_id: str, options: Any, shard: int,
                     chunks: Sequence[Any], load: Callable[[Any], Any],
                     should_stop: Callable[[], bool] = lambda: False) -> int:
    """Embeddings stored apart for this shard's chunks that have none yet (a GPU worker's, beside
    its decoder), then the references. Returns how many chunks it embedded; stops at the next
    chunk once ``should_stop()`` (the job was cancelled, or the shard's transcription failed)."""
    done = 0
    for c in chunks:
        if should_stop():
            return done
        key = keys.speaker_embeddings_key(job_id, c.index)
        if storage.exists(key):
            continue
        storage.put_bytes(key, emb.embed_chunk(load(c), c.start).to_bytes(), "application/octet-stream")
        done += 1
    shard_references(storage, emb, job_id, options, shard)
    return done


def shard_references(storage: Storage, emb: Any, job_id: str, options: Any, shard: int) -> None:
    """Shard 0 embeds the known speakers' reference clips, once per job."""
    import json

    if shard == 0 and options.known_speakers and not storage.exists(keys.speaker_references_key(job_id)):
        refs: dict[str, list[float] | None] = {}
        for name, key in options.known_speakers.items():
            refs[name] = _reference(storage, emb, name, key)
        storage.put_bytes(keys.speaker_references_key(job_id), json.dumps(refs).encode(), "application/json")


def _reference(storage: Storage, emb: Any, name: str, key: str) -> list[float] | None:
    import tempfile
    from pathlib import Path

    from ytcaption.media.audio import decode

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference"
        try:
            storage.download_file(key, str(path))
            samples, _ = decode(path)
            return [float(v) for v in emb.reference(samples[: 30 * 16000])]
        except (YTCaptionError, ValueError, OSError) as exc:
            # reported as unmatched, with the reason in the logs: the job's captions still stand
            logger.warning("known speaker reference unusable", extra={"speaker": name, "error": str(exc)})
            return None


def label_speakers(storage: Storage, settings: DiarizationSettings, job_id: str, options: Any,
                   results: Sequence[Any], transcript: Any) -> Any:
    """``transcript`` with a speaker on every segment (split at speaker changes) and its speakers.
    ``results``: every chunk's ``ChunkResult``; windows not stored in one are read from their own object."""
    import base64
    import json

    import numpy as np

    from ytcaption.domain.captions import Speaker
    from ytcaption.engine import diarization as d

    apart = [r.index for r in results if r.speaker_windows is None]
    stored = dict(zip(apart, storage.get_many([keys.speaker_embeddings_key(job_id, i) for i in apart]), strict=True))
    parts = []
    for r in results:
        data = base64.b64decode(r.speaker_windows) if r.speaker_windows is not None else stored[r.index]
        if data is None:
            raise TranscriptionFailed(f"chunk {r.index} has no speaker embeddings")
        parts.append(d.ChunkEmbeddings.from_bytes(data))
    emb = d.ChunkEmbeddings.concat(parts)
    labels = d.cluster(emb.vectors, starts=emb.starts, ends=emb.ends, pitch=emb.pitch,
                       num_speakers=options.num_speakers,
                       min_speakers=options.min_speakers,
                       max_speakers=options.max_speakers)
    turn_list = d.turns(emb, labels)
    names: dict[int, str] = {}
    unmatched: list[str] | None = None
    if options.known_speakers:
        raw = json.loads(storage.get_bytes(keys.speaker_references_key(job_id)))
        refs = {n: np.array(v, np.float32) for n, v in raw.items() if v}
        names, unmatched = d.match_known(d.centroids(emb.vectors, labels), refs, settings.known_speaker_cosine)
        unmatched = [n for n in options.known_speakers if n in unmatched or not raw.get(n)]
    segments = d.assign(transcript.segments, turn_list, names=names)
    if not options.word_timestamps:  # words were asked of Whisper only to place speaker changes
        segments = [s.model_copy(update={"words": []}) for s in segments]
    time = d.speaking_time(turn_list)
    speakers = [Speaker(label=names.get(k, d.label_name(k)), speaking_time=t) for k, t in sorted(time.items())]
    logger.info("diarized", extra={"windows": len(emb), "speakers": len(speakers)})
    return transcript.model_copy(update={"segments": segments, "speakers": speakers,
                                         "unmatched_speakers": unmatched})



def diarize_samples(samples: Any, transcript: Any, settings: DiarizationSettings) -> Any:
    """The synchronous route's diarization: one process, the whole (short) file at once."""
    from ytcaption.domain.captions import Speaker
    from ytcaption.engine import diarization as d

    emb = embedder(settings)
    step = 30 * d.RATE
    e = d.ChunkEmbeddings.concat([emb.embed_chunk(samples[i: i + step], i / d.RATE)
                                  for i in range(0, len(samples), step)])
    turn_list = d.turns(e, d.cluster(e.vectors, starts=e.starts, ends=e.ends, pitch=e.pitch))
    speakers = [Speaker(label=d.label_name(k), speaking_time=t) for k, t in sorted(d.speaking_time(turn_list).items())]
    return transcript.model_copy(update={"segments": d.assign(transcript.segments, turn_list), "speakers": speakers})


def openai_diarized(transcript: Any, task: str) -> dict[str, Any]:
    """OpenAI's ``diarized_json`` (its diarizing model's shape): segments with speakers ``A``, ``B``, ..."""
    def letter(label: str | None) -> str | None:
        if not label or not label.startswith("SPEAKER_"):
            return label
        n = int(label.removeprefix("SPEAKER_")) - 1
        return chr(ord("A") + n) if n < 26 else label

    return {
        "task": task,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [{"type": "transcript.text.segment", "id": f"seg_{i}", "start": s.start, "end": s.end,
                      "text": s.text, "speaker": letter(s.speaker)} for i, s in enumerate(transcript.segments)],
    }
