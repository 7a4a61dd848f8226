"""The one DynamoDB table, and every kind of item it holds: :class:`Table` is the only
code that talks to it (the result cache and the circuit breaker keep their items through
:meth:`Table.get_item`, :meth:`Table.put_item`, :meth:`Table.update_item` and
:meth:`Table.delete_item`).

Items:
- ``JOB#<id>``: a job. Top-level attributes are the :class:`~ytcaption.domain.jobs.Job`
  fields, plus ``entity="JOB"`` for the all-jobs index. Which status may follow which is
  decided in :mod:`ytcaption.domain.jobs`; :meth:`Table.transition` enforces it.
- ``IDEMPOTENCY#<sha256>``: which job an ``Idempotency-Key`` created.
- ``CLAIM#<name>``: a once-only marker (e.g. an S3 event already handled).
- ``CACHE#<key>``: a reusable result (:mod:`ytcaption.adapters.result_cache`).
- ``CIRCUIT#<site>[#tenant#<tenant>]``: a download circuit (:mod:`ytcaption.adapters.circuit_breaker`).
- ``SEARCH#<sha256>``: a cached search answer (:mod:`ytcaption.api.discovery`).

Concurrency: status changes are conditional on both the version read and the
status read (optimistic locking), so a writer holding a stale view retries and
then finds the move illegal rather than overwriting a newer state. Counters
(chunks done) use atomic ``ADD`` and a status condition instead, so parallel
Batch workers never contend on the version.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
import re
import time
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ytcaption.adapters import aws
from ytcaption.domain.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidCursor,
    JobNotFound,
)
from ytcaption.domain.jobs import (
    STATUS_PROGRESS,
    TRANSCRIBING_SPAN,
    ErrorInfo,
    Job,
    JobEvent,
    JobStatus,
    StageTiming,
    check_transition,
    now_iso,
    stage_for,
)

JOB_ENTITY = "JOB"
BY_STATUS_INDEX = "ByStatus"
BY_CREATED_INDEX = "ByCreated"
IDEMPOTENCY_TTL_S = 24 * 3600
CONDITION_FAILED = "ConditionalCheckFailedException"


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _to_dynamo(value: Any) -> Any:
    """JSON-compatible data to what boto3's serializer accepts (floats as Decimal)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_from_dynamo(v) for v in value]
    return value


class Table(aws.Adapter):
    service, label = "dynamodb", "DynamoDB"

    def __init__(self, table_name: str, dynamodb_client: Any | None = None) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        super().__init__(dynamodb_client)
        self.table_name = table_name
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    # --- any item, by key (the cache's and the circuit breaker's) ---------------------------

    def get_item(self, pk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        """The item (DynamoDB-typed attributes); None if absent."""
        item = self.call("get_item", TableName=self.table_name, Key={"pk": {"S": pk}},
                         ConsistentRead=consistent).get("Item")
        return dict(item) if item else None

    def put_item(self, item: dict[str, Any], **condition: Any) -> bool:
        """Write ``item``; False if its ``ConditionExpression`` failed."""
        try:
            self.call("put_item", passthrough=(CONDITION_FAILED,), TableName=self.table_name, Item=item,
                      **condition)
            return True
        except ClientError:  # only a failed condition passes through
            return False

    def update_item(self, pk: str, **update: Any) -> dict[str, Any] | None:
        """Update and return the new item; None if its ``ConditionExpression`` failed."""
        try:
            resp = self.call("update_item", passthrough=(CONDITION_FAILED,), TableName=self.table_name,
                             Key={"pk": {"S": pk}}, ReturnValues="ALL_NEW", **update)
        except ClientError:
            return None
        return dict(resp.get("Attributes") or {})

    def delete_item(self, pk: str) -> None:
        self.call("delete_item", TableName=self.table_name, Key={"pk": {"S": pk}})

    # --- (de)serialization ----------------------------------------------------

    def _item(self, data: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in _to_dynamo(data).items() if v is not None}

    def _val(self, value: Any) -> Any:
        return self._ser.serialize(_to_dynamo(value))

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _from_dynamo(self._de.deserialize(v)) for k, v in item.items()}

    def _job(self, item: dict[str, Any]) -> Job:
        data = self._plain(item)
        for k in ("pk", "entity"):
            data.pop(k, None)
        return Job.model_validate(data)

    def _call(self, op: str, **kwargs: Any) -> Any:
        return self.call(op, passthrough=(CONDITION_FAILED, "TransactionCanceledException"), **kwargs)

    # --- create / read ----------------------------------------------------------

    def create(
        self,
        job: Job,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> tuple[Job, bool]:
        """Store a new job. Returns ``(job, created)``.

        With an idempotency key, the job and the key are written in one
        transaction: a retried request gets the job the first one created, and
        a different request under the same key is refused.
        """
        item = self._item({"pk": job_pk(job.job_id), "entity": JOB_ENTITY, **job.model_dump(mode="json")})
        put_job = {
            "TableName": self.table_name,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if idempotency_key is None:
            try:
                self._call("put_item", **put_job)
            except ClientError as exc:
                if aws.error_code(exc) == "ConditionalCheckFailedException":
                    return self.get(job.job_id), False
                raise aws.translate(exc, "DynamoDB put_item") from exc
            return job, True

        now = int(time.time())
        idem_pk = "IDEMPOTENCY#" + hashlib.sha256(idempotency_key.encode()).hexdigest()
        put_key = {
            "TableName": self.table_name,
            "Item": self._item(
                {
                    "pk": idem_pk,
                    "job_id": job.job_id,
                    "fingerprint": request_fingerprint or "",
                    "expires_at": now + IDEMPOTENCY_TTL_S,
                }
            ),
            # TTL deletion lags: an expired key counts as free.
            "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
        }
        try:
            self._call("transact_write_items", TransactItems=[{"Put": put_key}, {"Put": put_job}])
            return job, True
        except ClientError as exc:
            if aws.error_code(exc) != "TransactionCanceledException":
                raise aws.translate(exc, "DynamoDB transact_write_items") from exc
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" not in reasons:
                raise aws.translate(exc, "DynamoDB transact_write_items") from exc
        existing = self._get_item(idem_pk, consistent=True)
        if existing is None:  # the other request's key expired in between
            raise Conflict("idempotency key is being used concurrently; retry")
        if request_fingerprint and existing.get("fingerprint") != request_fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for a different request"
            )
        return self.get(str(existing["job_id"])), False

    def _get_item(self, pk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        resp = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": pk}},
            ConsistentRead=consistent,
        )
        item = resp.get("Item")
        return self._plain(item) if item else None

    def get(self, job_id: str) -> Job:
        resp = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": job_pk(job_id)}},
            ConsistentRead=True,
        )
        if "Item" not in resp:
            raise JobNotFound(f"no job {job_id}")
        return self._job(resp["Item"])

    def find(self, job_id: str) -> Job | None:
        try:
            return self.get(job_id)
        except JobNotFound:
            return None

    # --- status transitions -------------------------------------------------------

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        message: str | None = None,
        error: ErrorInfo | None = None,
        fields: dict[str, Any] | None = None,
        max_attempts: int = 8,
    ) -> Job:
        """Move a job to ``target``, recording history and stage timings.

        Raises IllegalTransition / JobCancelled when the job model forbids the
        move (including when another writer got there first).
        """
        for _ in range(max_attempts):
            job = self.get(job_id)
            changed = check_transition(job.status, target)
            if not changed and not fields:
                return job
            now = now_iso()
            values: dict[str, Any] = {
                ":now": now,
                ":v": job.version,
                ":v1": job.version + 1,
                ":from": job.status.value,
            }
            sets = ["updated_at = :now", "version = :v1"]
            if changed:
                timings = _advance_timings(job, target, now)
                values.update(
                    {
                        ":to": target.value,
                        ":timings": {k: t.model_dump(mode="json") for k, t in timings.items()},
                        ":ev": [
                            JobEvent(at=now, status=target, message=message, error=error).model_dump(
                                mode="json", exclude_none=True
                            )
                        ],
                    }
                )
                sets += ["#status = :to", "timings = :timings", "events = list_append(events, :ev)"]
                progress = STATUS_PROGRESS.get(target)
                if progress is not None:
                    values[":p"] = max(progress, job.progress) if target != JobStatus.COMPLETED else 100
                    sets.append("progress = :p")
                if target.terminal:
                    values[":done"] = now
                    sets.append("completed_at = :done")
                if error is not None:
                    values[":err"] = error.model_dump(mode="json")
                    sets.append("#error = :err")
            names = {"#status": "status"}
            if error is not None and changed:
                names["#error"] = "error"
            for i, (k, v) in enumerate((fields or {}).items()):
                names[f"#f{i}"] = k
                values[f":f{i}"] = v
                sets.append(f"#f{i} = :f{i}")
            try:
                resp = self._call(
                    "update_item",
                    TableName=self.table_name,
                    Key={"pk": {"S": job_pk(job_id)}},
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression="version = :v AND #status = :from",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={k: self._val(v) for k, v in values.items()},
                    ReturnValues="ALL_NEW",
                )
                return self._job(resp["Attributes"])
            except ClientError as exc:
                if aws.error_code(exc) != "ConditionalCheckFailedException":
                    raise aws.translate(exc, "DynamoDB update_item") from exc
                # someone else wrote first: re-read and re-decide
        raise Conflict(f"job {job_id} is being updated by too many writers; try again")

    def update_fields(self, job_id: str, fields: dict[str, Any], *, status: JobStatus) -> Job:
        """Set fields on a job that is (still) in ``status``, without moving it."""
        return self.transition(job_id, status, fields=fields)

    # --- progress ------------------------------------------------------------------

    def set_progress(self, job_id: str, progress: int, *, status: JobStatus) -> bool:
        """Raise progress (never lower it) while the job is in ``status``."""
        try:
            self._call(
                "update_item",
                TableName=self.table_name,
                Key={"pk": {"S": job_pk(job_id)}},
                UpdateExpression="SET progress = :p, updated_at = :now",
                ConditionExpression="#status = :s AND progress < :p",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":p": {"N": str(int(progress))},
                    ":s": {"S": status.value},
                    ":now": {"S": now_iso()},
                },
            )
            return True
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise aws.translate(exc, "DynamoDB update_item") from exc

    def add_chunks_done(self, job_id: str, n: int) -> Job | None:
        """Count finished chunks; returns the job, or None if it is no longer transcribing."""
        try:
            resp = self._call(
                "update_item",
                TableName=self.table_name,
                Key={"pk": {"S": job_pk(job_id)}},
                UpdateExpression="ADD chunks.done :n SET updated_at = :now",
                ConditionExpression="#status = :s",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":n": {"N": str(int(n))},
                    ":s": {"S": JobStatus.TRANSCRIBING.value},
                    ":now": {"S": now_iso()},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise aws.translate(exc, "DynamoDB update_item") from exc
        job = self._job(resp["Attributes"])
        if job.chunks.total:
            lo, hi = TRANSCRIBING_SPAN
            frac = min(1.0, job.chunks.done / job.chunks.total)
            self.set_progress(job_id, lo + int((hi - lo) * frac), status=JobStatus.TRANSCRIBING)
        return job

    # --- listing ---------------------------------------------------------------------

    def list(
        self, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Newest first, by status or across all jobs, with an opaque cursor."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Limit": limit,
            "ScanIndexForward": False,
        }
        if status is None:
            kwargs.update(
                IndexName=BY_CREATED_INDEX,
                KeyConditionExpression="entity = :e",
                ExpressionAttributeValues={":e": {"S": JOB_ENTITY}},
            )
        else:
            kwargs.update(
                IndexName=BY_STATUS_INDEX,
                KeyConditionExpression="#status = :s",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":s": {"S": status.value}},
            )
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor, status)
        resp = self._call("query", **kwargs)
        jobs = [self._job(i) for i in resp.get("Items", [])]
        lek = resp.get("LastEvaluatedKey")
        return jobs, encode_cursor(lek, status) if lek else None

    def created_since(self, since: str, *, limit: int = 5000) -> tuple[builtins.list[Job], bool]:
        """Jobs created at or after ``since`` (ISO time), newest first; True if more were left out."""
        jobs: builtins.list[Job] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name, "IndexName": BY_CREATED_INDEX, "ScanIndexForward": False,
            "KeyConditionExpression": "entity = :e AND created_at >= :since",
            "ExpressionAttributeValues": {":e": {"S": JOB_ENTITY}, ":since": {"S": since}},
        }
        while True:
            resp = self._call("query", Limit=min(500, limit - len(jobs) + 1), **kwargs)
            jobs += [self._job(i) for i in resp.get("Items", [])]
            if len(jobs) > limit:
                return jobs[:limit], True
            if not resp.get("LastEvaluatedKey"):
                return jobs, False
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # --- once-only claims ---------------------------------------------------------------

    def claim(self, name: str, *, ttl_s: int = 7 * 86400, owner: str = "") -> bool:
        """Record that ``name`` happened; False if it was already recorded."""
        now = int(time.time())
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=self._item({"pk": f"CLAIM#{name}", "owner": owner, "expires_at": now + ttl_s}),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
            return True
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise aws.translate(exc, "DynamoDB put_item") from exc

    def release(self, name: str) -> None:
        self._call("delete_item", TableName=self.table_name, Key={"pk": {"S": f"CLAIM#{name}"}})


def _advance_timings(job: Job, target: JobStatus, now: str) -> dict[str, StageTiming]:
    from datetime import datetime

    timings = dict(job.timings)
    leaving = stage_for(job.status)
    if leaving and leaving in timings and timings[leaving].ended_at is None:
        t = timings[leaving]
        start = datetime.fromisoformat(t.started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(now.replace("Z", "+00:00"))
        timings[leaving] = StageTiming(
            started_at=t.started_at, ended_at=now, seconds=round((end - start).total_seconds(), 3)
        )
    entering = stage_for(target)
    if entering:
        timings[entering] = StageTiming(started_at=now)
    return timings


def encode_cursor(key: dict[str, Any], status: JobStatus | None) -> str:
    raw = json.dumps({"k": key, "s": status.value if status else None}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_CURSOR_PK = re.compile(r"^JOB#[0-9a-f]{32}$")


def decode_cursor(cursor: str, status: JobStatus | None) -> dict[str, Any]:
    """The index position a cursor names, validated strictly: exactly the key attributes
    of the listing's index, a job's key, and the listing's own partition. A forged cursor
    is refused here instead of reaching DynamoDB (where a bad key is a 500)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = data["k"]
        listed = data.get("s")
        ok = isinstance(key, dict) and all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values()
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not ok or listed != (status.value if status else None):
        raise InvalidCursor("cursor does not belong to this listing")
    partition = ("status", status.value) if status else ("entity", JOB_ENTITY)
    if set(key) != {"pk", "created_at", partition[0]} or key[partition[0]]["S"] != partition[1]:
        raise InvalidCursor("cursor does not belong to this listing")
    if not _CURSOR_PK.match(key["pk"]["S"]) or not _is_timestamp(key["created_at"]["S"]):
        raise InvalidCursor("cursor is not valid")
    return dict(key)


def _is_timestamp(value: str) -> bool:
    from datetime import datetime

    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return len(value) <= 40
