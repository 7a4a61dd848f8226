"""The local web console at ``/console``: static files plus a few read-only views the
public API does not give (the state machine definition, an execution's per-state
history, the chunk grid, the source audio) and an upload helper.

Plain static files, no build step. The gateway hands it every ``/console`` path.
Static files need no key; the ``/console/api/*`` views want the same
``X-Api-Key`` as the API (the console keeps the key the user pasted, or the
one in the URL fragment that ``ytcaption local serve`` prints).
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import re
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "console_static"
Reply = tuple[int, dict[str, str], bytes]
_JOB = re.compile(r"^/console/api/jobs/([0-9a-f]{32})/(execution|chunks|audio)$")
_UPLOAD = re.compile(r"^/console/api/upload/([0-9a-f]{32})$")
MAX_UPLOAD = 512 * 1024 * 1024


def _json(status: int, doc: Any) -> Reply:
    return status, {"Content-Type": "application/json", "Cache-Control": "no-store"}, json.dumps(doc).encode()


def _error(status: int, code: str, message: str) -> Reply:
    return _json(status, {"error": {"code": code, "message": message}})


def state_colours(events: list[dict[str, Any]], execution_status: str) -> dict[str, str]:
    """Each state's status from an execution's history, as the Step Functions console colours it.

    succeeded (entered and left), running (entered, not left, execution running),
    failed (a Fail state, or entered and not left when the execution ended),
    caught (its task failed and a Catch moved on). States never entered are absent.
    """
    status: dict[str, str] = {}
    current: list[str] = []  # states entered and not yet left, in order
    for e in events:
        etype = str(e.get("type", ""))
        name = None
        for k, v in e.items():
            if k.endswith("EventDetails") and isinstance(v, dict) and "name" in v:
                name = str(v["name"])
        if etype.endswith("StateEntered") and name:
            current.append(name)
            status[name] = "failed" if etype == "FailStateEntered" else "running"
        elif etype.endswith("StateExited") and name:
            if status.get(name) == "running":
                status[name] = "succeeded"
            if name in current:
                current.remove(name)
        elif etype in ("TaskFailed", "TaskTimedOut", "MapStateFailed", "LambdaFunctionFailed") and current:
            status[current[-1]] = "caught"
    if execution_status != "RUNNING":
        for name in current:
            if status.get(name) == "running":
                status[name] = "failed"
    return status


class Console:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Reply:
        path = path.split("?", 1)[0]
        if path == "/console":  # relative links need the slash; the browser keeps the #fragment
            return 301, {"Location": "/console/", "Content-Type": "text/plain"}, b""
        if path == "/console/":
            path = "/console/index.html"
        if not path.startswith("/console/api/"):
            return self._static(path)
        key = {k.lower(): v for k, v in headers.items()}.get("x-api-key") or ""
        if not hmac.compare_digest(key.encode(), str(self.runtime.api_key).encode()):
            return _error(403, "INVALID_API_KEY", "a valid X-Api-Key header is required")
        try:
            if path == "/console/api/asl" and method == "GET":
                return _json(200, self._asl())
            m = _JOB.match(path)
            if m and method == "GET":
                return {"execution": self._execution, "chunks": self._chunks, "audio": self._audio}[m.group(2)](
                    m.group(1))
            m = _UPLOAD.match(path)
            if m and method == "PUT":
                return self._upload(m.group(1), headers, body or b"")
        except LookupError as exc:
            return _error(404, "NOT_FOUND", str(exc))
        return _error(404, "NOT_FOUND", "no such console route")

    # --- static files ------------------------------------------------------------------------

    def _static(self, path: str) -> Reply:
        name = path.removeprefix("/console/")
        target = (STATIC / name).resolve()
        if not name or STATIC.resolve() not in target.parents or not target.is_file():
            return _error(404, "NOT_FOUND", "no such console file")
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        return 200, {"Content-Type": ctype, "Cache-Control": "no-cache"}, target.read_bytes()

    # --- views ---------------------------------------------------------------------------------

    def _job(self, job_id: str) -> Any:
        from ytcaption.adapters.table import Table
        from ytcaption.domain.errors import JobNotFound

        try:
            return Table(self.runtime.outputs["JobsTableName"], self.runtime.client("dynamodb")).get(job_id)
        except JobNotFound as exc:
            raise LookupError(f"no job {job_id}") from exc

    def _asl(self) -> dict[str, Any]:
        sfn = self.runtime.client("stepfunctions")
        desc = sfn.describe_state_machine(stateMachineArn=self.runtime.outputs["StateMachineArn"])
        return dict(json.loads(desc["definition"]))

    def _execution(self, job_id: str) -> Reply:
        job = self._job(job_id)
        if not job.execution_arn:
            return _json(200, {"status": None, "states": {}, "events": []})
        sfn = self.runtime.client("stepfunctions")
        try:
            ex = sfn.describe_execution(executionArn=job.execution_arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            return _json(200, {"status": None, "states": {}, "events": []})
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": job.execution_arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        brief = [{"id": e["id"], "type": e["type"], "at": e["timestamp"].isoformat()} for e in events]
        return _json(200, {"status": ex["status"], "states": state_colours(events, ex["status"]), "events": brief})

    def _chunks(self, job_id: str) -> Reply:
        from ytcaption.adapters import storage as keys
        from ytcaption.adapters.storage import Storage

        job = self._job(job_id)
        store = Storage(self.runtime.outputs["BucketName"], self.runtime.client("s3"))
        if store.head(keys.manifest_key(job_id)) is None:
            return _json(200, {"chunks": []})
        manifest = store.get_json(keys.manifest_key(job_id))
        have = set(store.list_keys(f"{keys.WORK_PREFIX}{job_id}/transcripts/"))
        out = []
        for c in manifest["chunks"]:
            key = keys.chunk_result_key(job_id, c["index"])
            state = "pending"
            if key in have:
                doc = store.get_json(key)
                state = "redecoded" if doc.get("redecoded") else "done"
            elif job.status.value in ("FAILED", "CANCELLED"):
                state = "failed"
            out.append({"index": c["index"], "start": c["start"], "end": c["end"], "shard": c["shard"],
                        "state": state})
        return _json(200, {"chunks": out})

    def _audio(self, job_id: str) -> Reply:
        job = self._job(job_id)
        if not job.source.key:
            raise LookupError("this job's media is not stored yet")
        obj = self.runtime.client("s3").get_object(Bucket=self.runtime.outputs["BucketName"], Key=job.source.key)
        ctype = obj.get("ContentType") or mimetypes.guess_type(job.source.key)[0] or "application/octet-stream"
        return 200, {"Content-Type": ctype, "Cache-Control": "no-store"}, obj["Body"].read()

    def _upload(self, job_id: str, headers: dict[str, str], body: bytes) -> Reply:
        """What the browser's presigned PUT would do (moto's S3 is another origin, without CORS)."""
        job = self._job(job_id)
        if job.status.value != "AWAITING_UPLOAD" or not job.source.key:
            return _error(409, "JOB_NOT_AWAITING_UPLOAD", "this job does not wait for an upload")
        if len(body) != (job.source.size_bytes or -1) or len(body) > MAX_UPLOAD:
            return _error(400, "INVALID_REQUEST", "the body must be exactly the declared file")
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type") or "application/octet-stream"
        self.runtime.client("s3").put_object(Bucket=self.runtime.outputs["BucketName"], Key=job.source.key,
                                             Body=body, ContentType=job.source.content_type or ctype)
        return _json(200, {"job_id": job_id, "uploaded": len(body)})
