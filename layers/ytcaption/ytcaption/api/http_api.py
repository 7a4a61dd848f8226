"""The HTTPS API: routes, validation, and the one place errors become responses.

Every error body is ``{"error": {"code", "message"}}`` with a stable code; no
stack trace ever reaches a client.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from ytcaption import services
from ytcaption.api.discovery_schemas import MediaInfoResponse, SearchResponse
from ytcaption.api.request_guard import public_message, screen
from ytcaption.api.schemas import (
    CreateSpeakerClip,
    CreateUpload,
    ErrorResponse,
    Health,
    JobHistory,
    JobList,
    ModelList,
    ModelObject,
    SpeakerClipResponse,
    SubmitResponse,
    SubmitTranscription,
    UploadResponse,
)
from ytcaption.domain.errors import InvalidRequest, ModelNotFound, YTCaptionError
from ytcaption.domain.jobs import Job, JobStatus, describe_errors, require_http_url
from ytcaption.observability import bind_job, logger, metrics

app = APIGatewayRestResolver(enable_validation=True)

CORRELATION_HEADER = "X-Correlation-ID"
_ERR = {"content": {"application/json": {"model": ErrorResponse}}}
ERRORS: dict[int, Any] = {
    400: {"description": "Invalid request", **_ERR},
    404: {"description": "No such job, model or route", **_ERR},
    409: {"description": "The job's state does not allow this", **_ERR},
    413: {"description": "Declared upload too large", **_ERR},
    415: {"description": "Request body is not JSON", **_ERR},
    422: {"description": "Idempotency key reused for another request, or a model this deployment does not "
                         "offer (or cannot do the language or task asked), or speaker options that cannot "
                         "hold (INVALID_SPEAKER_COUNT, INVALID_KNOWN_SPEAKERS)", **_ERR},
    503: {"description": "A dependency is unavailable; retry later", **_ERR},
}


#: Search and media info reach the site: it may refuse (SOURCE_BLOCKED) or fail (DOWNLOAD_FAILED).
SITE_ERRORS: dict[int, Any] = {**ERRORS, 422: {"description": "The site says the media does not exist", **_ERR},
                               502: {"description": "The site refused or failed", **_ERR}}


ADMIN_KEY_ERROR: Any = {"description": "No or wrong X-Admin-Key", **_ERR}


def _ok(model: Any, description: str = "OK") -> dict[int, Any]:
    return {200: {"description": description, "content": {"application/json": {"model": model}}}}


def _error(status: int, code: str, message: str) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"error": {"code": code, "message": message}}),
    )


@app.exception_handler(YTCaptionError)
def _domain_error(exc: YTCaptionError) -> Response[Any]:
    if exc.http_status >= 500 and not exc.public:
        # the message may name an internal operation ("DynamoDB put_item: ..."): logs only
        logger.error("request failed", extra={"code": exc.code, "error": exc.message})
        return _error(exc.http_status, exc.code, public_message(exc))
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    return _error(exc.http_status, exc.code, exc.message)


@app.exception_handler(RequestValidationError)
def _validation_error(exc: RequestValidationError) -> Response[Any]:
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    return _error(400, "INVALID_REQUEST", describe_errors(exc.errors()))


@app.not_found
def _not_found(_exc: Exception) -> Response[Any]:
    return _error(404, "NOT_FOUND", "no such route")


@app.exception_handler(UnicodeDecodeError)
def _undecodable(exc: UnicodeDecodeError) -> Response[Any]:
    return _error(400, "INVALID_REQUEST", "request body is not UTF-8 JSON")


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[Any]:
    logger.exception("unhandled error")
    return _error(500, "INTERNAL_ERROR", "internal error; the request id is in X-Correlation-ID")


def _base_url() -> str:
    ev = app.current_event
    host = ev.headers.get("host") or ev.request_context.domain_name or ""
    proto = ev.headers.get("x-forwarded-proto") or "https"
    stage = ev.request_context.stage
    prefix = f"/{stage}" if host.endswith(".amazonaws.com") and stage else ""
    return f"{proto}://{host}{prefix}" if host else prefix


def _links(job: Job) -> dict[str, str]:
    base = f"{_base_url()}/v1/transcriptions/{job.job_id}"
    return {"status_url": base, "result_url": f"{base}/result"}


def _header(name: str, max_len: int = 255) -> str | None:
    value = app.current_event.headers.get(name)
    if value is not None and (not value.strip() or len(value) > max_len):
        raise InvalidRequest(f"header {name} must be 1-{max_len} characters")
    return value


def _correlation_id() -> str | None:
    return app.context.get("correlation_id")


def _tenant() -> str | None:
    """Who is asking: API Gateway's API key id, else the client address (local runs)."""
    identity = (app.current_event.get("requestContext") or {}).get("identity") or {}
    if identity.get("apiKeyId"):
        return f"key:{identity['apiKeyId']}"
    return f"ip:{identity['sourceIp']}" if identity.get("sourceIp") else None


# --- routes -------------------------------------------------------------------------------


@app.post(
    "/v1/transcriptions",
    summary="Transcribe a URL",
    responses={202: {"description": "Accepted", "content": {"application/json": {"model": SubmitResponse}}},
               **ERRORS},
)
def submit(body: SubmitTranscription) -> Response[Any]:
    job, created = services.job_service().submit_url(
        body, idempotency_key=_header("Idempotency-Key"), correlation_id=_correlation_id(), tenant=_tenant()
    )
    bind_job(job.job_id)
    if created:
        metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
        logger.info("job submitted", extra={"source": "url"})
    doc = SubmitResponse(job_id=job.job_id, status=job.status, created_at=job.created_at, **_links(job))
    return Response(202, "application/json", doc.model_dump_json(),
                    headers={"Location": doc.status_url})


@app.post(
    "/v1/uploads",
    summary="Reserve a job for a file upload",
    responses={201: {"description": "Created", "content": {"application/json": {"model": UploadResponse}}},
               **ERRORS},
)
def create_upload(body: CreateUpload) -> Response[Any]:
    job, url, expires = services.job_service().create_upload(
        body, idempotency_key=_header("Idempotency-Key"), correlation_id=_correlation_id()
    )
    bind_job(job.job_id)
    metrics.add_metric(name="UploadsReserved", unit=MetricUnit.Count, value=1)
    doc = UploadResponse(
        job_id=job.job_id,
        status=job.status,
        created_at=job.created_at,
        upload_url=url,
        upload_headers={"Content-Type": body.content_type},
        upload_expires_at=_utc(expires),
        **_links(job),
    )
    return Response(201, "application/json", doc.model_dump_json())


def _utc(t: Any) -> str:
    """A presigned URL's expiry as the API writes times: ISO 8601, seconds, ``Z``."""
    return str(t.isoformat(timespec="seconds").replace("+00:00", "Z"))


@app.post(
    "/v1/speakers",
    summary="Get a presigned URL for a known speaker's reference clip",
    responses={201: {"description": "Created", "content": {"application/json": {"model": SpeakerClipResponse}}},
               **ERRORS},
)
def create_speaker_clip(body: CreateSpeakerClip) -> Response[Any]:
    key, url, expires = services.job_service().create_speaker_clip(body)
    doc = SpeakerClipResponse(
        key=key,
        upload_url=url,
        upload_headers={"Content-Type": body.content_type},
        upload_expires_at=_utc(expires),
    )
    return Response(201, "application/json", doc.model_dump_json())


@app.get("/v1/transcriptions", summary="List jobs, newest first", responses={**_ok(JobList), **ERRORS})
def list_jobs(
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> JobList:
    jobs, next_cursor = services.job_service().list(status, limit, cursor)
    return JobList(items=[j.public() for j in jobs], next_cursor=next_cursor)


@app.get("/v1/transcriptions/<job_id>", summary="A job's status and details",
         responses={**_ok(Job), **ERRORS})
def get_job(job_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    bind_job(job_id)
    return dict(services.job_service().get(job_id).public())


@app.get("/v1/transcriptions/<job_id>/events", summary="A job's history",
         responses={**_ok(JobHistory), **ERRORS})
def get_events(job_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    job = services.job_service().get(job_id)
    return {"job_id": job.job_id, "events": [e.model_dump(mode="json", exclude_none=True) for e in job.events]}


@app.get(
    "/v1/transcriptions/<job_id>/result",
    summary="The captions of a completed job",
    responses={
        200: {"description": "The caption file", "content": {
            "application/json": {}, "application/x-subrip": {}, "text/vtt": {}, "text/plain": {}}},
        302: {"description": "Redirect to a presigned download URL (large results)"},
        **ERRORS,
    },
)
def get_result(
    job_id: Annotated[str, Path(max_length=64)],
    format: Annotated[Literal["json", "srt", "vtt", "txt"], Query()] = "json",
) -> Response[Any]:
    res = services.job_service().result(job_id, format)
    if res.redirect_url:
        return Response(302, res.content_type, "", headers={"Location": res.redirect_url})
    return Response(200, res.content_type, res.body,
                    headers={"Content-Disposition": f'inline; filename="{res.filename}"'})


@app.delete("/v1/transcriptions/<job_id>", summary="Cancel a job", responses={**_ok(Job), **ERRORS})
def cancel(job_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    bind_job(job_id)
    job = services.job_service().cancel(job_id)
    logger.info("job cancelled")
    return dict(job.public())


@app.get("/v1/search", summary="Search YouTube videos or Shorts (no downloads; cached briefly)",
         responses={**_ok(SearchResponse), **SITE_ERRORS})
def search(
    q: Annotated[str, Query(min_length=1, max_length=200, description="what to search for")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    kind: Annotated[Literal["video", "short"], Query()] = "video",
) -> dict[str, Any]:
    return dict(services.discovery().search(q, limit, kind).model_dump(mode="json"))


@app.get("/v1/media", summary="What the site says about a URL, and whether this deployment would take it",
         responses={**_ok(MediaInfoResponse), **SITE_ERRORS})
def media_info(url: Annotated[str, Query(min_length=1, max_length=2048)]) -> dict[str, Any]:
    try:
        require_http_url(url.strip(), "url")
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return dict(services.discovery().media_info(url.strip()).model_dump(mode="json"))
@app.get("/v1/models", summary="The models this deployment runs", responses={**_ok(ModelList), **ERRORS})
def list_models() -> dict[str, Any]:
    return services.job_service().catalogue.to_openai()


@app.get("/v1/models/<model_id>", summary="One model of the catalogue", responses={**_ok(ModelObject), **ERRORS})
def get_model(model_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    catalogue = services.job_service().catalogue
    entry = catalogue.get(model_id)
    if entry is None:
        raise ModelNotFound(f"no model {model_id!r} here; available: {', '.join(catalogue.names)}")
    return entry.to_openai()


@app.get("/v1/health", summary="Liveness", responses=_ok(Health))
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/health/ready", summary="Readiness: the table, the bucket and the state machine answer",
         responses={**_ok(dict), 503: {"description": "A dependency does not answer"}})
def ready() -> Response[Any]:
    from ytcaption.api.admin import readiness

    svc = services.job_service()
    doc = readiness(dynamodb=svc.repo.client, table=svc.settings.jobs_table, s3=svc.storage.client,
                    bucket=svc.settings.bucket_name, sfn=svc.executions.client,
                    state_machine_arn=svc.settings.state_machine_arn)
    return Response(200 if doc["status"] == "ready" else 503, "application/json", json.dumps(doc))


@app.get("/v1/admin/stats", summary="Counts, stage percentiles, audio hours and cost since a time (admin key)",
         responses={**_ok(dict), **ERRORS, 403: ADMIN_KEY_ERROR})
def admin_stats(since: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    from ytcaption.api import admin

    svc = services.job_service()
    admin.check_admin_key(app.current_event.headers.get("X-Admin-Key"), svc.settings.admin_key_sha256)
    start = admin.parse_since(since)
    jobs, truncated = svc.repo.created_since(start, limit=admin.STAT_LIMIT)
    return admin.stats(jobs, since=start, truncated=truncated)


@app.get("/v1/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi() -> Response[Any]:
    return Response(200, "application/json", app.get_openapi_json_schema(title="YTCaption API",
                                                                          version="1.0.0"))


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Resolve one API Gateway event, carrying the correlation id in and out."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    cid = headers.get(CORRELATION_HEADER.lower())
    if not cid or len(cid) > 128 or not cid.isprintable():
        cid = str(uuid.uuid4())
    app.append_context(correlation_id=cid)
    logger.set_correlation_id(cid)
    response: dict[str, Any]
    try:
        screen(event)
    except YTCaptionError as exc:
        metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
        response = {"statusCode": exc.http_status, "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"error": exc.to_dict()}), "isBase64Encoded": False}
    else:
        response = app.resolve(event, context)
    response.setdefault("headers", {})[CORRELATION_HEADER] = cid
    if "multiValueHeaders" in response:
        response["multiValueHeaders"][CORRELATION_HEADER] = [cid]
    return response
