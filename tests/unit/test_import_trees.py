"""Each Lambda, and the GPU worker, loads only what it uses.

Every handler is imported in a fresh interpreter, the service it calls is built (as its
first invocation would), and the modules then loaded are checked: the merge Lambda
carries no speech engine, the API carries no engine and no stage, the worker no API and
no other stage. A new import that drags a heavy or unrelated tree into a Lambda (cold
start, package size, IAM surface) fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ("faster_whisper", "ctranslate2", "onnxruntime", "ytcaption.engine.engine", "ytcaption.engine.transcription",
          "ytcaption.engine.guard")
MEDIA = ("av", "yt_dlp")
OTHER_STAGES = tuple(f"ytcaption.stages.{s}" for s in
                     ("download", "normalize", "transcribe", "merge", "notify", "mark_failed", "site_captions",
                      "intake", "reconcile"))


def other_stages(*mine: str) -> tuple[str, ...]:
    return tuple(s for s in OTHER_STAGES if s.rsplit(".", 1)[1] not in mine)


# function -> (the services builder its handler calls, module prefixes it must not load)
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "api": ("job_service", (*ENGINE, *MEDIA, "ytcaption.stages", "ytcaption.api.openai_api")),
    "media_api": ("discovery", (*ENGINE, "av", "ytcaption.stages")),
    "upload_trigger": ("job_service", (*ENGINE, *MEDIA, "ytcaption.stages", "ytcaption.api.http_api")),
    "authorizer": ("", (*ENGINE, *MEDIA, "aws_lambda_powertools", "ytcaption.stages", "ytcaption.domain",
                        "ytcaption.api.http_api")),
    "download": ("download_stage", (*ENGINE, "ytcaption.api", *other_stages("download"))),
    "normalize": ("normalize_stage", (*ENGINE, "yt_dlp", "ytcaption.api", *other_stages("normalize"))),
    "merge": ("merge_stage", (*ENGINE, *MEDIA, "ytcaption.api", *other_stages("merge"))),
    "notify": ("notify_stage", (*ENGINE, *MEDIA, "ytcaption.api", *other_stages("notify"))),
    "mark_failed": ("mark_failed_stage", (*ENGINE, *MEDIA, "ytcaption.api", *other_stages("mark_failed"))),
    "site_captions": ("site_captions_stage", (*ENGINE, "av", "ytcaption.api",
                                              *other_stages("site_captions", "mark_failed"))),
    "intake": ("intake", (*ENGINE, *MEDIA, "ytcaption.api.http_api", *other_stages("intake"))),
    "reconciler": ("reconciler", (*ENGINE, *MEDIA, "ytcaption.api", *other_stages("reconcile"))),
    "openai_audio": ("", ("ytcaption.stages", "ytcaption.adapters.table", "ytcaption.api.http_api", "yt_dlp")),
}

PROBE = """
import importlib.util, json, sys
target, builder = sys.argv[1], sys.argv[2]
if target.endswith('.py'):
    spec = importlib.util.spec_from_file_location('app', target)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
else:
    importlib.import_module(target)
if builder:
    from ytcaption import services
    getattr(services, builder)()
print(json.dumps(sorted(sys.modules)))
"""


def loaded(target: str, builder: str) -> list[str]:
    env = {**os.environ, "JOBS_TABLE": "jobs", "BUCKET_NAME": "media", "AWS_DEFAULT_REGION": "us-east-1",
           "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sm"}
    out = subprocess.run([sys.executable, "-c", PROBE, target, builder], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return list(json.loads(out.stdout))


def offending(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("function", sorted(CASES))
def test_a_lambda_loads_only_what_it_uses(function: str) -> None:
    builder, forbidden = CASES[function]
    modules = loaded(str(ROOT / "functions" / function / "app.py"), builder)
    assert offending(modules, forbidden) == []


def test_the_gpu_worker_loads_its_own_stage_and_no_api() -> None:
    modules = loaded("ytcaption.worker", "transcribe_stage")
    assert "ytcaption.stages.transcribe" in modules
    assert offending(modules, ("ytcaption.api", "yt_dlp", *other_stages("transcribe"))) == []


def test_the_engine_and_settings_load_without_aws() -> None:
    modules = loaded("ytcaption.engine.engine", "")
    modules += loaded("ytcaption.engine.transcription", "")
    modules += loaded("ytcaption.settings", "")
    assert offending(modules, ("boto3", "botocore", "aws_lambda_powertools", "ytcaption.adapters")) == []


def test_the_probe_sees_a_forbidden_import() -> None:
    # the check itself: normalize really does load the engine once it runs
    modules = loaded("ytcaption.engine.engine", "")
    assert offending(modules, ("ytcaption.engine.engine",)) == ["ytcaption.engine.engine"]


def test_the_domain_loads_no_engine_no_aws_and_no_stage() -> None:
    modules: list[str] = []
    for name in ("jobs", "captions", "errors", "languages", "stitching", "catalogue", "costs", "speakers"):
        modules += loaded(f"ytcaption.domain.{name}", "")
    assert offending(modules, ("ytcaption.engine", "ytcaption.adapters", "ytcaption.stages", "ytcaption.api",
                               "boto3", "botocore", "numpy")) == []
