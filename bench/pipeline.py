"""End-to-end overhead of the local runtime against the engine in-process, one 3+ minute file.

(a) ``ytcaption.engine.engine.transcribe_file`` in this process;
(b) the local runtime: HTTP API -> Step Functions (moto, the real ASL) ->
    download / normalize Lambdas -> Batch workers (one per shard) -> merge ->
    notify, timed from the POST until the job reads COMPLETED.

Same file, same model (tiny.en int8 on the CPU), both warmed up first.
Target: wall(b) <= 1.25 x wall(a).

(b) ends at the job's own ``completed_at``, and the client polls at the CLI's
interval (0.5 s): the client shares the runtime's process and two cores, and
polling ten times a second took about 3 s of a 25 s job from the workers (a
10-minute file: the transcribe stage 27.2 s against 24.6 s polling once a
second, the same as in-process). The client's own view (to the poll that saw
COMPLETED) is printed too.

    python -m bench.pipeline
"""

from __future__ import annotations

import datetime
import json
import statistics
import sys
import time
from typing import Any

from bench.common import long_speech
from tests.evaluation import wer
from ytcaption.domain.jobs import JobOptions
from ytcaption.engine.engine import transcribe_file

PAIRS = 5


def main() -> int:
    from tests.servers import loopback_server
    from ytcaption_local.cli import Client
    from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

    path, reference = long_speech(".mp3")
    options = JobOptions(model="tiny.en")

    transcribe_file(path, options)  # warm: model, VAD session

    def in_process() -> tuple[float, Any]:
        t = time.perf_counter()
        transcript = transcribe_file(path, options)
        return time.perf_counter() - t, transcript

    with LocalRuntime(RuntimeOptions(api_port=0)) as rt, loopback_server() as srv:
        url = srv.serve("/speech.mp3", path.read_bytes(), "audio/mpeg")
        client = Client(rt.api_url, api_key=rt.api_key)
        client.wait(client.submit_url(url, {"model": "tiny.en", "fresh": True})["job_id"], poll_s=0.2)  # warm

        def runtime(run: int) -> tuple[float, float, dict[str, Any]]:
            t, submitted = time.perf_counter(), datetime.datetime.now(datetime.UTC)
            job = client.submit_url(f"{url}?run={run}", {"model": "tiny.en", "fresh": True})
            done = client.wait(job["job_id"])  # the CLI's interval
            seen = time.perf_counter() - t
            assert done["status"] == "COMPLETED", done.get("error")
            completed = datetime.datetime.fromisoformat(done["completed_at"].replace("Z", "+00:00"))
            return (completed - submitted).total_seconds(), seen, done

        # alternating pairs, the median ratio: this machine's speed drifts by 20% from minute to minute
        pairs = []
        for run in range(PAIRS):
            pairs.append((in_process(), runtime(run)))
        engine = pairs[-1][0][1]
        done = pairs[-1][1][2]
        doc = json.loads(client.result(done["job_id"], "json"))
    text_b = " ".join(s["text"] for s in doc["segments"])
    audio = engine.duration or 0.0
    print(f"file: {path.name}, {audio:.1f} s of speech; model tiny.en int8 on CPU; {PAIRS} pairs, alternating")
    print(f"{'':<42}{'WER':>7}  wall s")
    print(f"{'(a) engine in-process (transcribe_file)':<42}{wer(reference, engine.text):>7.3f}  "
          + ", ".join(f"{a[0]:.2f}" for a, _ in pairs))
    print(f"{'(b) local runtime, POST -> completed_at':<42}{wer(reference, text_b):>7.3f}  "
          + ", ".join(f"{b[0]:.2f}" for _, b in pairs)
          + "   (the client saw COMPLETED after " + ", ".join(f"{b[1]:.2f}" for _, b in pairs) + " s)")
    print("stage timings (b, last): " + ", ".join(f"{k} {v.get('seconds')}s" for k, v in done["timings"].items())
          + f"; {done['chunks']['total']} chunks in {done['chunks']['shards']} Batch jobs")
    ratios = [b[0] / a[0] for a, b in pairs]
    print("ratios: " + ", ".join(f"{r:.2f}" for r in ratios))
    ratio = statistics.median(ratios)
    print(f"overhead ratio (b)/(a), median: {ratio:.2f} (target <= 1.25): {'met' if ratio <= 1.25 else 'NOT met'}")
    return 0 if ratio <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
