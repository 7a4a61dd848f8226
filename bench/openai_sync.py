"""The synchronous OpenAI-compatible route against the engine in-process, on a 30 s clip.

(a) ``ytcaption.engine.engine.transcribe_file`` in this process;
(b) ``openai.OpenAI(base_url=<local runtime>/v1).audio.transcriptions.create(...)``:
    HTTP -> the local API Gateway front (authorizer, base64 multipart) -> the
    sync handler -> the same engine, timed by the client.

Same file, same model, both warm; runs alternate and the medians are compared.
Target: (b)/(a) <= 1.3. Then, for the README's sizing of the AWS function, the
CPU real-time factor and model load time of every model this machine has
(``--models tiny.en base``; base needs ``WHISPER__MODEL_DIR`` holding it).

    python -m bench.openai_sync [--runs 5] [--models tiny.en base]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def clip_30s() -> tuple[Path, str]:
    from tests.media.speech import PASSAGE, encode, speech_track

    work = Path(tempfile.mkdtemp(prefix="ytcaption-bench-"))
    sentences = PASSAGE[:5]
    samples, rate = speech_track(sentences, work, pause_s=0.8)
    return encode(samples, rate, work / "clip30.mp3"), " ".join(sentences)


def model_figures(path: Path, model: str, runs: int) -> tuple[float, float, float] | None:
    """(model load s, median wall s, audio s) of the engine in-process, or None if absent."""
    from ytcaption.domain.errors import ModelUnavailable
    from ytcaption.domain.jobs import JobOptions
    from ytcaption.engine.engine import transcribe_file
    from ytcaption.engine.transcription import _models, load_model
    from ytcaption.settings import WhisperSettings

    whisper = WhisperSettings(model_dir=os.environ.get("WHISPER__MODEL_DIR"))
    _models.clear()
    t = time.perf_counter()
    try:
        load_model(model, whisper.model_copy(update={"cpu_threads": 1}), num_workers=os.cpu_count() or 1)
    except ModelUnavailable:
        return None
    load_s = time.perf_counter() - t
    options = JobOptions(model=model)
    transcribe_file(path, options, whisper=whisper)  # warm
    walls, audio = [], 0.0
    for _ in range(runs):
        t = time.perf_counter()
        audio = transcribe_file(path, options, whisper=whisper).duration or 0.0
        walls.append(time.perf_counter() - t)
    return load_s, statistics.median(walls), audio


def _cold_probe(path: str, model: str) -> None:
    """Run in a fresh interpreter by :func:`cold_start`: what a new Lambda environment does."""
    import base64
    import importlib.util
    import json

    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("sync_handler", "functions/openai_audio/app.py")
    assert spec is not None and spec.loader is not None
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    t1 = time.perf_counter()
    from ytcaption_local.handlers import LambdaContext

    head = (f'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
            '--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n').encode()
    body = head + Path(path).read_bytes() + b"\r\n--b--\r\n"
    event = {"resource": "/v1/audio/transcriptions", "path": "/v1/audio/transcriptions", "httpMethod": "POST",
             "headers": {"Content-Type": "multipart/form-data; boundary=b"}, "requestContext": {"stage": "v1"},
             "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    walls = []
    for _ in range(2):
        t = time.perf_counter()
        resp = handler.lambda_handler(event, LambdaContext())
        assert resp["statusCode"] == 200, resp
        walls.append(time.perf_counter() - t)
    print(json.dumps({"import": t1 - t0, "first": walls[0], "warm": walls[1]}))


def cold_start(path: Path, model: str) -> dict[str, float] | None:
    """A fresh interpreter: handler import, then the first (model load) and a warm request."""
    import json
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, POWERTOOLS_TRACE_DISABLED="1", AWS_DEFAULT_REGION="us-east-1", HF_HUB_OFFLINE="1",
               POWERTOOLS_LOG_LEVEL="ERROR", SYNC__MODEL=model, WORK_DIR=tempfile.mkdtemp())
    probe = f"from bench.openai_sync import _cold_probe; _cold_probe({str(path)!r}, {model!r})"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, cwd=root, check=False)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    import openai

    from tests.evaluation import wer
    from ytcaption.domain.jobs import JobOptions
    from ytcaption.engine.engine import transcribe_file
    from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=["tiny.en", "base"])
    args = parser.parse_args()
    path, reference = clip_30s()
    options = JobOptions(model="tiny.en")
    engine_walls, route_walls = [], []
    with LocalRuntime(RuntimeOptions(api_port=0)) as rt:
        client = openai.OpenAI(base_url=rt.api_url + "/v1", api_key=rt.api_key, max_retries=0, timeout=120)

        def route() -> str:
            with path.open("rb") as fh:
                return client.audio.transcriptions.create(file=fh, model="tiny.en", response_format="text")

        engine = transcribe_file(path, options)  # warm both
        text = route()
        for _ in range(args.runs):
            t = time.perf_counter()
            transcribe_file(path, options)
            engine_walls.append(time.perf_counter() - t)
            t = time.perf_counter()
            text = route()
            route_walls.append(time.perf_counter() - t)
    a, b = statistics.median(engine_walls), statistics.median(route_walls)
    audio = engine.duration or 0.0
    print(f"file: {path.name}, {audio:.1f} s of speech, {path.stat().st_size} bytes; tiny.en int8 on "
          f"{os.cpu_count()} CPU cores; median of {args.runs} alternating runs")
    print(f"{'':<46}{'WER':>7}{'wall s':>9}")
    print(f"{'(a) engine in-process (transcribe_file)':<46}{wer(reference, engine.text):>7.3f}{a:>9.2f}")
    print(f"{'(b) openai client -> local sync route':<46}{wer(reference, text):>7.3f}{b:>9.2f}")
    ratio = b / a
    print(f"ratio (b)/(a): {ratio:.2f} (target <= 1.3): {'met' if ratio <= 1.3 else 'NOT met'}")

    print(f"\nCPU figures for sizing ({os.cpu_count()} cores, int8, engine in-process, warm):")
    print(f"{'model':<10}{'load s':>8}{'wall s':>9}{'x real time':>13}"
          f"{'cold: import s':>16}{'1st request s':>15}{'warm request s':>16}")
    for model in args.models:
        figures = model_figures(path, model, max(1, args.runs // 2))
        if figures is None:
            print(f"{model:<10}  not available on this machine")
            continue
        load_s, wall, audio_s = figures
        cold = cold_start(path, model) or {"import": float("nan"), "first": float("nan"), "warm": float("nan")}
        print(f"{model:<10}{load_s:>8.2f}{wall:>9.2f}{audio_s / wall:>13.1f}"
              f"{cold['import']:>16.2f}{cold['first']:>15.2f}{cold['warm']:>16.2f}")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
