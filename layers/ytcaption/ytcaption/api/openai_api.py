"""OpenAI-compatible synchronous transcription: ``POST /v1/audio/transcriptions`` and
``POST /v1/audio/translations``, answered within the request, for short media.

The multipart form, the response formats (``json``, ``text``, ``srt``,
``verbose_json``, ``vtt``) and the error body (``{"error": {"message", "type",
"param", "code"}}``, our stable code in ``code``) are OpenAI's, so any OpenAI
client works with ``base_url=<API>/v1``. The work is the engine's own
(:func:`ytcaption.engine.engine.transcribe_file`) in this process: on AWS a CPU
container function with the model baked in, locally the same handler on the
embedded runtime. Media over the size or duration limits (``SYNC__*``) gets
``413`` naming the job API, which has no such limits.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import tempfile
import threading
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ytcaption.domain.captions import Transcript, to_srt, to_vtt
from ytcaption.domain.errors import (
    InvalidRequest,
    LanguageUnsupported,
    MediaTooLong,
    ModelNotServed,
    ModelUnavailable,
    TooLargeForSync,
    TooLongForSync,
    TranslationUnsupported,
    UnsupportedMedia,
    YTCaptionError,
)
from ytcaption.domain.jobs import JobOptions, describe_errors
from ytcaption.domain.languages import WHISPER_LANGUAGES
from ytcaption.observability import logger, metrics
from ytcaption.settings import SyncSettings, get_sync_settings

TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
#: OpenAI's model name; here it means the deployment's synchronous model.
WHISPER_1 = "whisper-1"
ASYNC_HINT = ("; the job API takes media of any length: POST /v1/uploads (a file) or "
              "POST /v1/transcriptions (a URL), then GET /v1/transcriptions/{id}/result")
#: Status codes OpenAI uses where ours differ (an unreadable file is a bad request there).
OPENAI_STATUS = {UnsupportedMedia.code: 400, TranslationUnsupported.code: 400, LanguageUnsupported.code: 400}
FILE_ERRORS = frozenset({UnsupportedMedia.code, TooLongForSync.code, TooLargeForSync.code})

app = APIGatewayRestResolver()


# --- the form ---------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def _header_params(value: str, header: str = "content-disposition") -> Message:
    msg = Message()
    msg[header] = value
    return msg


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """A ``multipart/form-data`` body as its parts (RFC 7578), binary-safe."""
    ctype = _header_params(content_type, "content-type")
    boundary = ctype.get_param("boundary", header="content-type")
    if (ctype.get_content_type() != "multipart/form-data" or not isinstance(boundary, str)
            or not 0 < len(boundary) <= 200 or not boundary.isascii()):
        raise InvalidRequest("send the request as multipart/form-data with a boundary (RFC 2046)")
    delimiter = b"\r\n--" + boundary.encode("ascii")
    pieces = (b"\r\n" + body).split(delimiter)
    parts: list[Part] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            return parts
        head, sep, data = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            break
        headers = dict(line.decode("utf-8", "replace").split(":", 1) for line in head.split(b"\r\n") if b":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
        disposition = _header_params(headers.get("content-disposition", ""))
        name = disposition.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise InvalidRequest("a multipart part has no name")
        parts.append(Part(name, data, disposition.get_filename(), headers.get("content-type")))
    raise InvalidRequest("malformed multipart body (no closing boundary)")


class SyncRequest(BaseModel):
    """The form fields OpenAI defines (others are ignored, as newer clients send more)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    language: str | None = None
    prompt: str | None = Field(None, max_length=1000)
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"] = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0)
    timestamp_granularities: list[Literal["word", "segment"]] = Field(default_factory=list)
    stream: bool = False

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().lower()
        if v not in WHISPER_LANGUAGES:
            raise ValueError(f"unknown language {v!r}: use an ISO-639-1 code Whisper knows")
        return v


def read_form(parts: list[Part], *, task: str) -> tuple[SyncRequest, Part]:
    files = [p for p in parts if p.name == "file"]
    if len(files) != 1 or files[0].filename is None:
        raise _invalid("send exactly one file in the form field 'file'", "file")
    fields: dict[str, Any] = {}
    for p in parts:
        if p.name == "file":
            continue
        value = p.data.decode("utf-8", "replace")
        name = p.name.removesuffix("[]")
        if name == "timestamp_granularities":
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    if task == "translate":
        for name in ("language", "timestamp_granularities"):
            if name in fields:
                raise _invalid(f"{name} is not a parameter of translations", name)
    try:
        req = SyncRequest.model_validate(fields)
    except ValidationError as exc:
        param = ".".join(str(x) for x in exc.errors()[0]["loc"][:1]) or None
        raise _invalid(describe_errors(exc.errors()), param) from exc
    if req.stream:
        raise _invalid("streaming is not supported; send stream=false", "stream")
    if req.timestamp_granularities and req.response_format != "verbose_json":
        raise _invalid("timestamp_granularities needs response_format=verbose_json", "timestamp_granularities")
    return req, files[0]


def _invalid(message: str, param: str | None, cls: type[YTCaptionError] = InvalidRequest) -> YTCaptionError:
    exc = cls(message)
    exc.param = param  # type: ignore[attr-defined]
    return exc


# --- models -------------------------------------------------------------------------------


def serve_model(requested: str, *, task: str, language: str | None, settings: SyncSettings) -> str:
    """The model a request runs on, or a clear refusal: the one place model names are decided.

    ``whisper-1`` is the deployment's synchronous model; other names must be in the
    deployment's catalogue (:mod:`ytcaption.domain.catalogue`), which also refuses what a
    model cannot do (another language on an English-only model, translation).
    """
    from ytcaption.domain.catalogue import Catalogue

    name = (settings.sync.model or settings.default_model) if requested == WHISPER_1 else requested
    catalogue = Catalogue.build(baked=settings.baked_models, default_model=settings.default_model)
    try:
        catalogue.check(name, language=language or "auto", task=task)
    except ModelUnavailable as exc:
        raise _invalid(f"{exc.message}; {WHISPER_1} is this deployment's model", "model", ModelNotServed) from exc
    except TranslationUnsupported as exc:
        raise _invalid(exc.message, "model", TranslationUnsupported) from exc
    except LanguageUnsupported as exc:
        raise _invalid(exc.message, "language", LanguageUnsupported) from exc
    return name


# --- transcription ------------------------------------------------------------------------

_engines: dict[str, Any] = {}
_engines_lock = threading.Lock()


def _engine(model: str, settings: SyncSettings) -> tuple[Any, int, Any]:
    """One loaded model per name for the life of the process, shared by concurrent requests."""
    from ytcaption.engine.engine import default_workers
    from ytcaption.engine.transcription import WhisperTranscriber, choose_device

    whisper = settings.whisper
    # short media is a few chunks: no more workers than chunks can keep busy, and the
    # spare cores go to each worker's threads (6 vCPUs, 35 s: 3 workers x 2 threads)
    most_chunks = math.ceil(settings.sync.max_duration_s / settings.media.chunk_max_s) + 1
    workers = max(1, min(default_workers(whisper), most_chunks))
    if whisper.cpu_threads == 0 and choose_device(whisper)[0] == "cpu":
        whisper = whisper.model_copy(update={"cpu_threads": max(1, (os.cpu_count() or 1) // workers)})
    key = f"{model}|{whisper.model_dump_json()}"
    with _engines_lock:
        if key not in _engines:
            _engines[key] = WhisperTranscriber(model, whisper, num_workers=workers)
        return _engines[key], workers, whisper


def transcribe_bytes(data: bytes, filename: str, options: JobOptions, settings: SyncSettings) -> Transcript:
    """Run the engine on an uploaded file within the synchronous limits."""
    from ytcaption.engine.engine import transcribe_file

    if len(data) > settings.sync.max_bytes:
        raise TooLargeForSync(f"the file is {len(data)} bytes; this route takes up to {settings.sync.max_bytes}"
                              + ASYNC_HINT)
    if not data:
        raise _invalid("the file is empty", "file", UnsupportedMedia)
    transcriber, workers, whisper = _engine(options.model, settings)
    media = settings.media.model_copy(update={"max_duration_s": settings.sync.max_duration_s})
    os.makedirs(settings.work_dir, exist_ok=True)
    # the client's extension, reduced to letters and digits (FFmpeg probes the content anyway)
    ext = re.sub(r"[^A-Za-z0-9]", "", os.path.splitext(filename)[1])[:10]
    suffix = f".{ext}" if ext else ""
    with tempfile.NamedTemporaryFile(dir=settings.work_dir, prefix="sync-", suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        try:
            transcript = transcribe_file(fh.name, options, whisper=whisper, media=media, workers=workers,
                                         transcriber=transcriber)
        except MediaTooLong as exc:
            raise TooLongForSync(f"{exc.message} on this route" + ASYNC_HINT) from exc
        if options.diarize:
            from ytcaption.media.audio import decode
            from ytcaption.stages.speakers import diarize_samples

            transcript = diarize_samples(decode(fh.name)[0], transcript, settings.diarization)
        return transcript


# --- responses -----------------------------------------------------------------------------


def _usage(t: Transcript) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(t.duration or 0.0)}


def verbose_json(t: Transcript, task: str, granularities: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "task": task,
        "language": LANGUAGE_NAMES.get(t.language or "", t.language or ""),
        "duration": t.duration,
        "text": t.text,
    }
    if not granularities or "segment" in granularities:
        # Whisper's figures come from the transcriber; a segment without them (a test
        # fake) shows only what is known rather than made-up numbers
        doc["segments"] = [
            {"id": i, "seek": s.stats.seek if s.stats else None, "start": s.start, "end": s.end, "text": s.text,
             **(s.stats.model_dump(exclude={"seek"}) if s.stats else {})}
            for i, s in enumerate(t.segments)
        ]
    if "word" in granularities:
        doc["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end}
                        for s in t.segments for w in s.words if w.word.strip()]
    doc["usage"] = _usage(t)
    return doc


def render(t: Transcript, req: SyncRequest, task: str) -> Response[Any]:
    fmt = req.response_format
    if fmt == "json":
        return Response(200, "application/json", json.dumps({"text": t.text, "usage": _usage(t)}, ensure_ascii=False))
    if fmt == "diarized_json":
        from ytcaption.stages.speakers import openai_diarized

        doc = {**openai_diarized(t, task), "usage": _usage(t)}
        return Response(200, "application/json", json.dumps(doc, ensure_ascii=False))
    if fmt == "verbose_json":
        return Response(200, "application/json",
                        json.dumps(verbose_json(t, task, list(req.timestamp_granularities)), ensure_ascii=False))
    text = {"text": lambda: t.text + "\n", "srt": lambda: to_srt(t), "vtt": lambda: to_vtt(t)}[fmt]()
    return Response(200, "text/plain; charset=utf-8", text)


def error_response(status: int, code: str, message: str, param: str | None = None) -> Response[Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return Response(status, "application/json", json.dumps(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}))


# --- routes --------------------------------------------------------------------------------


@app.exception_handler(YTCaptionError)
def _domain_error(exc: YTCaptionError) -> Response[Any]:
    status = OPENAI_STATUS.get(exc.code, exc.http_status)
    if status >= 500:
        logger.error("sync request failed", extra={"code": exc.code, "error": exc.message})
    else:
        metrics.add_metric(name="SyncRequestsRejected", unit=MetricUnit.Count, value=1)
    param = getattr(exc, "param", None) or ("file" if exc.code in FILE_ERRORS else None)
    return error_response(status, exc.code, exc.message, param)


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[Any]:
    logger.exception("unhandled error")
    return error_response(500, "INTERNAL_ERROR", "internal error; the request id is in X-Request-ID")


@app.not_found
def _not_found(_exc: Exception) -> Response[Any]:
    return error_response(404, "NOT_FOUND", "no such route")


def _body() -> bytes:
    ev = app.current_event
    raw = ev.body or ""
    try:
        return base64.b64decode(raw, validate=True) if ev.is_base64_encoded else raw.encode("utf-8")
    except ValueError as exc:
        raise InvalidRequest("the request body is not valid base64") from exc


def _serve(task: Literal["transcribe", "translate"]) -> Response[Any]:
    settings = get_sync_settings()
    ctype = app.current_event.headers.get("content-type") or app.current_event.headers.get("Content-Type") or ""
    req, file = read_form(parse_multipart(_body(), ctype), task=task)
    model = serve_model(req.model, task=task, language=req.language, settings=settings)
    diarized = req.response_format == "diarized_json"
    try:
        options = JobOptions(model=model, language=req.language or "auto", task=task, formats=["json"],
                             word_timestamps="word" in req.timestamp_granularities or diarized,
                             initial_prompt=req.prompt, diarize=diarized)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc.errors())) from exc
    transcript = transcribe_bytes(file.data, file.filename or "", options, settings)
    metrics.add_metric(name="SyncAudioSeconds", unit=MetricUnit.Seconds, value=transcript.duration or 0.0)
    logger.info("sync transcription", extra={"model": model, "task": task, "audio_s": transcript.duration,
                                             "format": req.response_format})
    return render(transcript, req, task)


@app.post(TRANSCRIPTIONS)
def transcriptions() -> Response[Any]:
    return _serve("transcribe")


@app.post(TRANSLATIONS)
def translations() -> Response[Any]:
    return _serve("translate")


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Resolve one API Gateway event; the request id comes back as X-Request-ID (OpenAI's header)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    rid = headers.get("x-correlation-id") or ""
    if not rid or len(rid) > 128 or not rid.isprintable():
        rid = str(uuid.uuid4())
    logger.set_correlation_id(rid)
    response = app.resolve(event, context)
    response.setdefault("headers", {}).update({"X-Request-ID": rid, "X-Correlation-ID": rid})
    for name in ("X-Request-ID", "X-Correlation-ID"):
        if "multiValueHeaders" in response:
            response["multiValueHeaders"][name] = [rid]
    return response


#: Whisper's language names, as OpenAI's verbose_json reports the language.
LANGUAGE_NAMES: dict[str, str] = dict(
    pair.split("=") for pair in """
    en=english zh=chinese de=german es=spanish ru=russian ko=korean fr=french ja=japanese pt=portuguese
    tr=turkish pl=polish ca=catalan nl=dutch ar=arabic sv=swedish it=italian id=indonesian hi=hindi
    fi=finnish vi=vietnamese he=hebrew uk=ukrainian el=greek ms=malay cs=czech ro=romanian da=danish
    hu=hungarian ta=tamil no=norwegian th=thai ur=urdu hr=croatian bg=bulgarian lt=lithuanian la=latin
    mi=maori ml=malayalam cy=welsh sk=slovak te=telugu fa=persian lv=latvian bn=bengali sr=serbian
    az=azerbaijani sl=slovenian kn=kannada et=estonian mk=macedonian br=breton eu=basque is=icelandic
    hy=armenian ne=nepali mn=mongolian bs=bosnian kk=kazakh sq=albanian sw=swahili gl=galician
    mr=marathi pa=punjabi si=sinhala km=khmer sn=shona yo=yoruba so=somali af=afrikaans oc=occitan
    ka=georgian be=belarusian tg=tajik sd=sindhi gu=gujarati am=amharic yi=yiddish lo=lao uz=uzbek
    fo=faroese ht=haitian_creole ps=pashto tk=turkmen nn=nynorsk mt=maltese sa=sanskrit
    lb=luxembourgish my=myanmar bo=tibetan tl=tagalog mg=malagasy as=assamese tt=tatar haw=hawaiian
    ln=lingala ha=hausa ba=bashkir jw=javanese su=sundanese yue=cantonese
    """.split()
)
LANGUAGE_NAMES["ht"] = "haitian creole"
