"""Shared fixtures: offline AWS (moto) with resources built from template.yaml."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The caller's environment before the offline defaults below replace it: the endpoint
# suite (tests/endpoint) talks to the endpoint and credentials it names.
ORIGINAL_ENV = dict(os.environ)
# Safe, offline defaults before anything imports boto3 or Powertools.
for _k, _v in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "YTCaption",
    "POWERTOOLS_SERVICE_NAME": "ytcaption",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "HF_HUB_OFFLINE": "1",
}.items():
    os.environ[_k] = _v
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

EVENTS = Path(__file__).parent / "events"
TABLE = "ytcaption-test-jobs"
BUCKET = "ytcaption-test-media"
SM_NAME = "ytcaption-test"
REGION = "us-east-1"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from ytcaption import services

    monkeypatch.setenv("ALLOW_LOOPBACK_URLS", "true")  # test servers live on loopback
    monkeypatch.setenv("JOBS_TABLE", TABLE)
    monkeypatch.setenv("BUCKET_NAME", BUCKET)
    monkeypatch.setenv(
        "STATE_MACHINE_ARN", f"arn:aws:states:{REGION}:123456789012:stateMachine:{SM_NAME}"
    )
    services.reset()
    yield
    services.reset()


@pytest.fixture
def moto_stack(aws_env: None) -> Iterator[dict[str, Any]]:
    """Table and bucket from template.yaml, and a state machine, in moto."""
    import boto3
    from moto import mock_aws

    from ytcaption_local.motopatch import make_dynamodb_atomic
    from ytcaption_local.template import create_bucket, create_table

    make_dynamodb_atomic()  # DynamoDB checks a condition and writes in one step; moto needs help
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        create_table(ddb, TABLE)
        create_bucket(s3, BUCKET)
        role = iam.create_role(
            RoleName="sfn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        sm = sfn.create_state_machine(
            name=SM_NAME,
            roleArn=role,
            definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
        )
        with template_iam(sm["stateMachineArn"]) as enforcer:
            # the test itself acts as an operator; handlers and stages as their template role
            yield {"dynamodb": boto3.client("dynamodb", region_name=REGION),
                   "s3": boto3.client("s3", region_name=REGION),
                   "sfn": boto3.client("stepfunctions", region_name=REGION),
                   "state_machine_arn": sm["stateMachineArn"], "iam": enforcer}


@contextmanager
def template_iam(state_machine_arn: str) -> Iterator[Any]:
    """IAM enforced with template.yaml's roles: a handler loaded from a function's code
    runs as that function's role, a pipeline stage as the function (or Batch job) that
    runs it, so a permission missing from the template fails here as on AWS."""
    from ytcaption.stages.download import DownloadStage
    from ytcaption.stages.mark_failed import MarkFailedStage
    from ytcaption.stages.merge import MergeStage
    from ytcaption.stages.normalize import NormalizeStage
    from ytcaption.stages.notify import NotifyStage
    from ytcaption.stages.reconcile import Reconciler
    from ytcaption.stages.transcribe import TranscribeStage
    from ytcaption_local import handlers
    from ytcaption_local.iam import PIPELINE_ROLES, enforce_on_test_stack

    enforcer = enforce_on_test_stack(TABLE, BUCKET, state_machine_arn)
    patch = pytest.MonkeyPatch()

    def as_role(fn: Any, function: str | None) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            with enforcer.as_function(function) if function else enforcer.as_batch_job():
                return fn(*args, **kwargs)
        return run

    stage_classes: dict[str, Any] = {"download": DownloadStage, "normalize": NormalizeStage, "merge": MergeStage,
                                     "notify": NotifyStage, "mark_failed": MarkFailedStage,
                                     "transcribe_shard": TranscribeStage}
    for stage, function in PIPELINE_ROLES.items():
        cls = stage_classes[stage]
        patch.setattr(cls, "run", as_role(cls.run, function))
    patch.setattr(Reconciler, "run", as_role(Reconciler.run, "ReconcilerFunction"))
    patch.setattr(handlers, "role_scope", enforcer.as_role_of)
    try:
        yield enforcer
    finally:
        patch.undo()
        enforcer.uninstall()


class ApiClient:
    """Calls the real API Lambda handler with API Gateway proxy events."""

    def __init__(self) -> None:
        from ytcaption_local.handlers import LambdaContext, load_handler

        self.handler = load_handler("functions/api")
        self.context = LambdaContext(function_name="api")
        self.base = load_event("apigateway_proxy.json")

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        raw_body: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        ev = copy.deepcopy(self.base)
        ev["httpMethod"] = method
        ev["path"] = path
        ev["resource"] = "/{proxy+}"
        ev["pathParameters"] = {"proxy": path.lstrip("/")}
        ev["requestContext"]["httpMethod"] = method
        ev["requestContext"]["path"] = f"/prod{path}"
        hdrs = {"Host": "api.example.test", "X-Forwarded-Proto": "https"}
        if body is not None or raw_body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        ev["headers"] = hdrs
        ev["multiValueHeaders"] = {k: [v] for k, v in hdrs.items()}
        ev["queryStringParameters"] = query or None
        ev["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
        ev["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        ev["isBase64Encoded"] = False
        resp = self.handler(ev, self.context)
        out_headers = dict(resp.get("headers") or {})
        for k, v in (resp.get("multiValueHeaders") or {}).items():
            out_headers.setdefault(k, v[-1] if v else "")
        text = resp.get("body") or ""
        ctype = out_headers.get("Content-Type", "")
        parsed: Any = json.loads(text) if ctype.startswith("application/json") and text else text
        return resp["statusCode"], out_headers, parsed


@pytest.fixture
def api(moto_stack: dict[str, Any]) -> ApiClient:
    return ApiClient()


# --- real speech, made offline ----------------------------------------------------------------


@dataclass
class SpeechClip:
    samples: Any  # numpy float32
    rate: int
    text: str
    sentences: list[str]
    pauses: list[tuple[float, float]]  # where the silence between sentences is (seconds)
    dir: Path

    def encode(self, ext: str, *, gain_db: float = 0.0, name: str | None = None) -> Path:
        from tests.media.speech import encode

        path = self.dir / f"{name or 'clip'}{ext}"
        if not path.exists():
            encode(self.samples, self.rate, path, gain_db=gain_db, video=ext == ".mp4")
        return path


def make_clip(sentences: list[str], directory: Path, pause_s: float = 0.8) -> SpeechClip:
    import numpy as np

    from tests.media.speech import read_audio, synthesize

    parts, pauses, t, rate = [], [], 0.0, 22050
    for i, s in enumerate(sentences):
        x, rate = read_audio(synthesize(s, directory / f"s{i}.wav"))
        parts.append(x)
        t += len(x) / rate
        parts.append(np.zeros(int(pause_s * rate), np.float32))
        pauses.append((t, t + pause_s))
        t += pause_s
    return SpeechClip(np.concatenate(parts), rate, " ".join(sentences), sentences, pauses, directory)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> SpeechClip:
    """About 25 s of speech from known text."""
    from tests.media.speech import PASSAGE, espeak_available

    if not espeak_available():
        pytest.fail("espeak-ng is required for speech tests: apt-get install espeak-ng")
    return make_clip(PASSAGE[:5], tmp_path_factory.mktemp("short"))


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> SpeechClip:
    """About 100 s of speech: at least 4 chunks at a 20 s chunk limit."""
    from tests.media.speech import PASSAGE, espeak_available

    if not espeak_available():
        pytest.fail("espeak-ng is required for speech tests: apt-get install espeak-ng")
    return make_clip(PASSAGE[5:25], tmp_path_factory.mktemp("long"), pause_s=0.9)
