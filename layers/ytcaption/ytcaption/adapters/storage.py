"""Where things live in the bucket, and the small S3 adapter over it.

- ``uploads/<job_id>/<filename>``   user uploads (the S3 trigger watches ``uploads/``)
- ``work/<job_id>/...``            intermediate files (lifecycle-expired)
- ``results/<job_id>/captions.<fmt>`` caption files
- ``speakers/...``                 known speakers' reference clips (diarize), put there by users
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from ytcaption.adapters import aws
from ytcaption.domain.errors import StorageError

UPLOADS_PREFIX = "uploads/"
WORK_PREFIX = "work/"
RESULTS_PREFIX = "results/"

CONTENT_TYPES = {
    "json": "application/json",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "txt": "text/plain",
}

def content_type(fmt: str) -> str:
    """What a caption file is served and stored as (text formats are UTF-8)."""
    return CONTENT_TYPES[fmt] + ("" if fmt == "json" else "; charset=utf-8")


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str) -> str:
    """A file name that is safe as one S3 key segment (no slashes, no dot-dot)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).strip("._") or "media"
    return base[:200]


def upload_key(job_id: str, filename: str) -> str:
    return f"{UPLOADS_PREFIX}{job_id}/{safe_filename(filename)}"


def speaker_clip_key(clip_id: str, filename: str) -> str:
    """A known speaker's reference clip (``POST /v1/speakers``): never expires, starts no job."""
    from ytcaption.domain.speakers import REFERENCES_PREFIX

    return f"{REFERENCES_PREFIX}{clip_id}/{safe_filename(filename)}"


def source_key(job_id: str, ext: str) -> str:
    return f"{WORK_PREFIX}{job_id}/source.{ext.lstrip('.') or 'bin'}"


def manifest_key(job_id: str) -> str:
    return f"{WORK_PREFIX}{job_id}/manifest.json"


def chunk_audio_key(job_id: str, index: int) -> str:
    return f"{WORK_PREFIX}{job_id}/chunks/{index:05d}.wav"


def chunk_result_key(job_id: str, index: int) -> str:
    return f"{WORK_PREFIX}{job_id}/transcripts/{index:05d}.json"


def speaker_embeddings_key(job_id: str, index: int) -> str:
    """One chunk's speaker windows and embeddings (diarize): a retried shard overwrites it."""
    return f"{WORK_PREFIX}{job_id}/speakers/{index:05d}.npz"


def speaker_references_key(job_id: str) -> str:
    return f"{WORK_PREFIX}{job_id}/speakers/references.json"


def shard_record_key(job_id: str, shard: int, attempt: str) -> str:
    """One Batch attempt's record (see ytcaption.telemetry.ShardRecord)."""
    return f"{WORK_PREFIX}{job_id}/shards/{shard:04d}-{attempt}.json"


def shard_records_prefix(job_id: str) -> str:
    return f"{WORK_PREFIX}{job_id}/shards/"
def worker_error_key(job_id: str, shard: int) -> str:
    """A Batch worker's last failure on a shard, read by MarkFailed (Batch reports only an exit code)."""
    return f"{WORK_PREFIX}{job_id}/errors/shard-{shard:04d}.json"


def result_key(job_id: str, fmt: str) -> str:
    return f"{RESULTS_PREFIX}{job_id}/captions.{fmt}"


#: the error codes S3 answers for a key that holds nothing (HEAD: 404; GET: NoSuchKey)
_MISSING = ("404", "NoSuchKey", "NotFound")


class Storage(aws.Adapter):
    service, label = "s3", "S3"

    def __init__(self, bucket: str, s3_client: Any | None = None) -> None:
        super().__init__(s3_client)
        self.bucket = bucket

    def _wrap(self, op: str, **kwargs: Any) -> Any:
        return self.call(op, Bucket=self.bucket, **kwargs)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._wrap("put_object", Key=key, Body=data, ContentType=content_type)

    def put_json(self, key: str, doc: Any) -> None:
        self.put_bytes(key, json.dumps(doc, ensure_ascii=False).encode(), "application/json")

    def get_bytes(self, key: str) -> bytes:
        return bytes(self._wrap("get_object", Key=key)["Body"].read())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def upload_file(self, path: str, key: str, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        try:
            self.client.upload_file(path, self.bucket, key, ExtraArgs=extra)
        except ClientError as exc:
            raise aws.translate(exc, "S3 upload_file") from exc
        except Exception as exc:  # boto3's transfer wraps errors in S3UploadFailedError
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError):  # e.g. AccessDenied: final, not worth retrying
                raise aws.translate(cause, "S3 upload_file") from exc
            raise StorageError(f"S3 upload of {key} failed: {type(exc).__name__}") from exc

    def download_file(self, key: str, path: str) -> None:
        try:
            self.client.download_file(self.bucket, key, path)
        except ClientError as exc:
            raise aws.translate(exc, "S3 download_file") from exc

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if aws.error_code(exc) in _MISSING:
                return None
            raise aws.translate(exc, "S3 head_object") from exc

    def list_keys(self, prefix: str, limit: int = 10000) -> list[str]:
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Prefix": prefix}
        while len(keys) < limit:
            resp = self._wrap("list_objects_v2", **kwargs)
            keys += [o["Key"] for o in resp.get("Contents", [])]
            if not resp.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]
        return keys[:limit]
    def copy(self, source_key: str, key: str) -> None:
        self._wrap("copy_object", Key=key, CopySource={"Bucket": self.bucket, "Key": source_key})

    def delete(self, key: str) -> None:
        self._wrap("delete_object", Key=key)

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def get_many(self, keys: Sequence[str], *, workers: int = 8) -> list[bytes | None]:
        """The objects at ``keys``, in order, None where there is none: ``workers`` GETs at a time,
        one request per key (no HEAD first). The merge reads every chunk's result (and, diarized,
        its embeddings): one at a time, at tens of ms a request, that was most of a long job's merge.
        The pool's threads call AWS as the caller does (locally, threads inherit the IAM principal
        of the thread that starts them, as the normalize stage's uploads rely on)."""
        from concurrent.futures import ThreadPoolExecutor

        if len(keys) <= 1:
            return [self._get_or_none(k) for k in keys]
        _ = self.client  # built once, before the threads: boto3 clients are thread-safe, building one is not
        with ThreadPoolExecutor(max_workers=min(workers, len(keys))) as pool:
            return list(pool.map(self._get_or_none, keys))

    def _get_or_none(self, key: str) -> bytes | None:
        try:
            return bytes(self._wrap("get_object", Key=key, passthrough=_MISSING)["Body"].read())
        except ClientError:  # only the codes passed through: the key holds nothing
            return None

    def presign_put(self, key: str, *, content_type: str, content_length: int, expires_s: int) -> str:
        return str(
            self.client.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ContentType": content_type,
                    "ContentLength": content_length,
                },
                ExpiresIn=expires_s,
            )
        )

    def presign_get(self, key: str, *, expires_s: int, filename: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))
