"""End-to-end overhead of the local runtime against the engine in-process, one 3+ minute file.

(a) ``ytcaption.engine.engine.transcribe_file`` in this process;
(b) the local runtime: HTTP API -> Step Functions (moto, the real ASL) ->
    download / normalize Lambdas -> Batch workers (one per shard) -> merge ->
    notify, timed from the POST until the job reads COMPLETED.

Same file, same model (tiny.en int8 on the CPU), both warmed up first.
Target: wall(b) <= 1.25 x wall(a).

    python -m bench.pipeline
"""

from __future__ import annotations

import json
import sys
import time

from bench.common import long_speech
from tests.evaluation import wer
from ytcaption.domain.jobs import JobOptions
from ytcaption.engine.engine import transcribe_file


def main() -> int:
    from tests.servers import loopback_server
    from ytcaption_local.cli import Client
    from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

    path, reference = long_speech(".mp3")
    options = JobOptions(model="tiny.en")

    transcribe_file(path, options)  # warm: model, VAD session
    t = time.perf_counter()
    engine = transcribe_file(path, options)
    wall_a = time.perf_counter() - t

    with LocalRuntime(RuntimeOptions(api_port=0)) as rt, loopback_server() as srv:
        url = srv.serve("/speech.mp3", path.read_bytes(), "audio/mpeg")
        client = Client(rt.api_url, api_key=rt.api_key)
        client.wait(client.submit_url(url, {"model": "tiny.en", "fresh": True})["job_id"], poll_s=0.2)  # warm
        t = time.perf_counter()
        job = client.submit_url(url + "?run=2", {"model": "tiny.en", "fresh": True})
        done = client.wait(job["job_id"], poll_s=0.1)
        wall_b = time.perf_counter() - t
        doc = json.loads(client.result(job["job_id"], "json"))
    assert done["status"] == "COMPLETED", done.get("error")
    text_b = " ".join(s["text"] for s in doc["segments"])
    audio = engine.duration or 0.0
    print(f"file: {path.name}, {audio:.1f} s of speech; model tiny.en int8 on CPU")
    print(f"{'':<42}{'WER':>7}{'wall s':>9}")
    print(f"{'(a) engine in-process (transcribe_file)':<42}{wer(reference, engine.text):>7.3f}{wall_a:>9.2f}")
    print(f"{'(b) local runtime, POST -> COMPLETED':<42}{wer(reference, text_b):>7.3f}{wall_b:>9.2f}")
    print("stage timings (b): " + ", ".join(f"{k} {v.get('seconds')}s" for k, v in done["timings"].items())
          + f"; {done['chunks']['total']} chunks in {done['chunks']['shards']} Batch jobs")
    ratio = wall_b / wall_a
    print(f"overhead ratio (b)/(a): {ratio:.2f} (target <= 1.25): {'met' if ratio <= 1.25 else 'NOT met'}")
    return 0 if ratio <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
