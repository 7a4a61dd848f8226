"""Result cache: the same source with the same options reuses a completed result.

Sources are identified by what stays the same between requests: a YouTube
video id (from any of its URL forms), or the SHA-256 of an uploaded file's
bytes. Other URLs are not cached: what a URL serves can change. Options that
change the transcript (model, language, task, word timestamps, prompt) are part
of the key; output formats are not (every format is rendered from the JSON).
A request with ``"fresh": true`` always runs.

What yt-dlp downloads decides what an entry holds: the download stage keys a
YouTube job on the id yt-dlp extracted, not on our reading of the URL (the two
can disagree on URLs with several or encoded ``v`` parameters). The API only
looks up URLs whose id is unambiguous, and an entry is written only if there is
no good one: a later job (``fresh`` or not) never replaces a good result.

Item ``CACHE#<sha256>``: the job whose results are reused, with the job's TTL.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ytcaption.adapters.storage import Storage, result_key
from ytcaption.adapters.table import Table
from ytcaption.domain.jobs import Job, JobOptions, JobStatus

_YT_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YT_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtube-nocookie.com",
             "www.youtube-nocookie.com"}


def youtube_id(url: str) -> str | None:
    """The video id of a YouTube URL, or None unless the URL names exactly one video
    in a form yt-dlp reads the same way (one plain ``v`` parameter, nothing encoded,
    no ``v`` in the fragment): a wrong guess here would serve another video's result."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if "%" in parts.path or ";" in parts.query or "v=" in parts.fragment:
        return None
    candidate: str | None = None
    if host in ("youtu.be", "www.youtu.be"):
        candidate = parts.path.strip("/").split("/")[0]
    elif host in _YT_HOSTS:
        if parts.path == "/watch":
            raw = parts.query.split("&")
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            values = [v for k, v in pairs if k.lower() == "v"]
            if len(values) != 1 or sum(1 for r in raw if r.startswith("v=")) != 1:
                return None  # several, encoded or upper-case ``v`` parameters: ambiguous
            candidate = values[0]
        else:
            segs = parts.path.strip("/").split("/")
            if len(segs) >= 2 and segs[0] in ("shorts", "embed", "live", "v"):
                candidate = segs[1]
    return candidate if candidate and _YT_ID.match(candidate) else None


def extracted_source_id(info: dict[str, Any]) -> str | None:
    """The cache identity of what yt-dlp extracted: its own id for YouTube videos."""
    vid = str(info.get("id") or "")
    if info.get("extractor_key") == "Youtube" and _YT_ID.match(vid):
        return f"youtube:{vid}"
    return None


def cache_key(source_id: str, options: JobOptions) -> str:
    material = [source_id, options.model, options.language, options.task, options.word_timestamps,
                options.initial_prompt or ""]
    if options.site_captions != "never":
        material.append(options.site_captions)  # a result from the site's captions is not a transcription
    if options.diarize:
        material.append(["diarize", options.num_speakers, options.min_speakers, options.max_speakers,
                         sorted((options.known_speakers or {}).items())])
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ResultCache:
    def __init__(self, repo: Table, storage: Storage) -> None:
        self.repo, self.storage = repo, storage

    @staticmethod
    def _pk(key: str) -> str:
        return f"CACHE#{key}"

    def _entry(self, key: str) -> dict[str, Any] | None:
        return self.repo.get_item(self._pk(key))

    def lookup(self, key: str) -> Job | None:
        """A completed job with this key whose results are still stored."""
        return self._good(self._entry(key))

    def _good(self, item: dict[str, Any] | None) -> Job | None:
        if not item or int(item.get("expires_at", {}).get("N", "0")) < time.time():
            return None
        job = self.repo.find(item["job_id"]["S"])
        if job is None or job.status != JobStatus.COMPLETED or "json" not in job.results:
            return None
        if not self.storage.exists(job.results["json"]):
            return None
        return job

    def remember(self, key: str, job: Job) -> bool:
        """Point ``key`` at ``job`` unless a good entry is there; True if written.

        Conditional, so that neither a race nor a ``fresh`` rerun replaces a result
        others already reuse; an entry whose job or result is gone is replaced, but
        only if it still names that job (no lost update against a concurrent writer).
        """
        item = {"pk": {"S": self._pk(key)}, "job_id": {"S": job.job_id}, "expires_at": {"N": str(job.expires_at)}}
        current = self._entry(key)
        if current is not None:
            if current["job_id"]["S"] == job.job_id or self._good(current) is not None:
                return False
            condition: dict[str, Any] = {"ConditionExpression": "job_id = :old",
                                         "ExpressionAttributeValues": {":old": current["job_id"]}}
        else:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        # False: another job got there first, and its entry stands
        return self.repo.put_item(item, **condition)

    def copy_results(self, source: Job, job_id: str) -> dict[str, str]:
        copied = {}
        for fmt, key in source.results.items():
            target = result_key(job_id, fmt)
            self.storage.copy(key, target)
            copied[fmt] = target
        return copied
