"""Load on the local runtime: N jobs submitted at once and M clients polling while they run.

Prints submit latency p50/p95/p99, poll latency, connection errors (refused, reset,
timed out: anything that is not an HTTP answer), job outcomes, and per-stage
percentiles (from the stage metrics and the admin stats). The target from the issue:
zero connection errors and submit p99 under 150 ms at 20 concurrent clients.

Then it measures the floor the emulator sets, in the same run: a bare moto server in a process
of its own, nothing else running, and N clients at once doing only what every submit must do
(PutItem of a job record; then StartExecution of a one-state machine). No API, no Lambda, no
pipeline: if that alone takes longer than the target, no submit on moto can meet it.

    python -m bench.load [--jobs 20] [--pollers 20] [--clip-s 8] [--api URL --api-key K --admin-key A]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def _rank(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    return sorted_values[max(0, math.ceil(len(sorted_values) * p / 100) - 1)]


def pct(values: list[float], unit: str = "ms") -> str:
    if not values:
        return "n=0"
    vs, k = sorted(values), (1000.0 if unit == "ms" else 1.0)
    return f"n={len(vs):<5} " + "  ".join(
        f"{name} {_rank(vs, p) * k:7.{1 if unit == 'ms' else 2}f} {unit}"
        for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)))


class Http:
    """One request per call, a new connection each time (what many independent clients do)."""

    def __init__(self, base: str, api_key: str, timeout: float = 30.0) -> None:
        self.base, self.api_key, self.timeout = base.rstrip("/"), api_key, timeout
        self.lock = threading.Lock()
        self.conn_errors: list[str] = []

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
             ) -> tuple[int, Any, float]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"X-Api-Key": self.api_key, "Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)  # noqa: S310
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - loopback
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None, time.perf_counter() - t0
        except urllib.error.HTTPError as exc:
            exc.read()
            return exc.code, None, time.perf_counter() - t0
        except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError) as exc:
            with self.lock:
                self.conn_errors.append(f"{method} {path.split('?')[0][:40]}: {type(exc).__name__}: {exc}"[:160])
            return 0, None, time.perf_counter() - t0


def clip_bytes(seconds: float) -> bytes:
    """The first seconds of samples/sample.mp3 (real speech), re-encoded."""
    import tempfile

    import av
    import numpy as np

    from tests.media.speech import encode

    with av.open("samples/sample.mp3") as c:
        rate = c.streams.audio[0].rate
        x = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)]).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.mp3"
        encode(x[: int(seconds * rate)], rate, path)
        return path.read_bytes()


def emulator_floor(clients: int, rounds: int = 8) -> dict[str, list[float]]:
    """Latency of the AWS calls a submit makes, ``clients`` at once, against a bare moto server."""
    import subprocess
    import sys

    import boto3

    from ytcaption_local.runtime import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kw = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1",
          "aws_access_key_id": "floor", "aws_secret_access_key": "floor"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("dynamodb", **kw).list_tables()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        boto3.client("dynamodb", **kw).create_table(
            TableName="jobs", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        role = boto3.client("iam", **kw).create_role(RoleName="floor", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        machine = boto3.client("stepfunctions", **kw).create_state_machine(
            name="floor", roleArn=role,
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        clients_of = [(boto3.client("dynamodb", **kw), boto3.client("stepfunctions", **kw))
                      for _ in range(clients)]
        record = {"status": {"S": "QUEUED"}, "source": {"M": {"url": {"S": "https://example.com/a.mp3"}}},
                  "options": {"M": {"model": {"S": "tiny.en"}, "formats": {"L": [{"S": "json"}, {"S": "srt"}]}}}}

        def submit(barrier: threading.Barrier, key: str, start: bool, i: int) -> float:
            ddb, sfn = clients_of[i]
            barrier.wait()  # every client sends at the same moment
            t = time.perf_counter()
            ddb.put_item(TableName="jobs", Item={**record, "pk": {"S": f"{key}-{i}"}},
                         ConditionExpression="attribute_not_exists(pk)")
            if start:
                sfn.start_execution(stateMachineArn=machine, name=f"{key}-{i}", input="{}")
            return time.perf_counter() - t

        out: dict[str, list[float]] = {}
        for what, start in (("PutItem", False), ("PutItem + StartExecution", True)):
            out[what] = []
            for r in range(rounds + 1):
                with ThreadPoolExecutor(max_workers=clients) as ex:
                    got = list(ex.map(partial(submit, threading.Barrier(clients), f"{int(start)}r{r}", start),
                                      range(clients)))
                if r:  # round 0 warms up
                    out[what] += got
                time.sleep(0.5)
        return out
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20, help="jobs submitted at the same moment (N)")
    ap.add_argument("--pollers", type=int, default=20, help="clients polling while they run (M)")
    ap.add_argument("--clip-s", type=float, default=8.0, help="seconds of speech per job")
    ap.add_argument("--poll-s", type=float, default=0.2, help="pause between one poller's requests")
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--api"), ap.add_argument("--api-key"), ap.add_argument("--admin-key")
    ap.add_argument("--no-floor", action="store_true", help="skip the emulator's floor")
    args = ap.parse_args()

    from tests.servers import loopback_server

    runtime = None
    failures: dict[str, str] = {}
    if not args.api:
        from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

        runtime = LocalRuntime(RuntimeOptions(api_port=0)).start()
    api = args.api or runtime.api_url  # type: ignore[union-attr]
    client = Http(api, args.api_key or runtime.api_key)  # type: ignore[union-attr]
    admin_key = args.admin_key or (runtime.admin_key if runtime else None)
    try:
        with loopback_server() as media:
            media.serve("/clip.mp3", clip_bytes(args.clip_s), "audio/mpeg")
            url = media.url("/clip.mp3")
            # warm up: one job end to end (model load, imports), not measured
            status, doc, _ = client.call("POST", "/v1/transcriptions", {"url": url, "fresh": True})
            assert status == 202, (status, doc)
            while client.call("GET", f"/v1/transcriptions/{doc['job_id']}")[1]["status"] not in TERMINAL:
                time.sleep(0.3)
            client.conn_errors.clear()

            start = threading.Barrier(args.jobs + args.pollers)
            submit_lat: list[float] = []
            poll_lat: list[float] = []
            statuses: dict[int, int] = {}
            job_ids: list[str] = []
            lock = threading.Lock()
            done = threading.Event()

            def submit() -> None:
                start.wait()
                code, body, dt = client.call("POST", "/v1/transcriptions", {"url": url, "fresh": True})
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    if code == 202:
                        submit_lat.append(dt)
                        job_ids.append(body["job_id"])

            def poll(i: int) -> None:
                start.wait()
                while not done.is_set():
                    with lock:
                        target = job_ids[i % len(job_ids)] if job_ids else None
                    path = f"/v1/transcriptions/{target}" if target else "/v1/transcriptions?limit=20"
                    code, _, dt = client.call("GET", path)
                    if code == 200:
                        with lock:
                            poll_lat.append(dt)
                    time.sleep(args.poll_s)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=submit) for _ in range(args.jobs)]
            threads += [threading.Thread(target=poll, args=(i,)) for i in range(args.pollers)]
            for t in threads:
                t.start()
            for t in threads[: args.jobs]:
                t.join()
            outcomes: dict[str, int] = {}
            deadline = time.monotonic() + args.timeout_s
            failures.clear()
            while time.monotonic() < deadline:
                outcomes = {}
                for jid in job_ids:
                    _, doc, _ = client.call("GET", f"/v1/transcriptions/{jid}")
                    s = doc["status"] if doc else "UNKNOWN"
                    outcomes[s] = outcomes.get(s, 0) + 1
                    if doc and doc.get("error"):
                        failures[jid] = f"{doc['error'].get('code')}: {doc['error'].get('message', '')[:120]}"
                if set(outcomes) <= TERMINAL:
                    break
                time.sleep(1.0)
            wall = time.perf_counter() - t0
            done.set()
            for t in threads[args.jobs:]:
                t.join()
    finally:
        stats = None
        if admin_key:
            _code, stats, _ = client.call("GET", "/v1/admin/stats?since=1h", headers={"X-Admin-Key": admin_key})
        metrics = runtime.metrics if runtime else None
        if runtime is not None:
            runtime.stop()

    print(f"load: {args.jobs} jobs submitted at once ({args.clip_s:.0f} s of speech each), "
          f"{args.pollers} clients polling every {args.poll_s} s; on {api}")
    print(f"  submit      {pct(submit_lat)}   statuses {statuses}")
    print(f"  poll        {pct(poll_lat)}")
    print(f"  connection errors: {len(client.conn_errors)}")
    for e in client.conn_errors[:5]:
        print(f"    {e}")
    print(f"  jobs: {outcomes} in {wall:.1f} s")
    for jid, why in failures.items():
        print(f"    {jid} {why}")
    if metrics is not None:
        print("  stage seconds (StageSeconds metrics, this run and the warm-up):")
        for stage in ("download", "normalize", "queue_wait", "transcribe_shard", "merge", "end_to_end"):
            print(f"    {stage:<17}" + pct(metrics.values("StageSeconds", Stage=stage), "s"))
    if stats:
        print("  admin stats, p50/p95/p99 (s): " + ", ".join(
            f"{k} {v['p50']}/{v['p95']}/{v['p99']}" for k, v in stats["stages"].items() if v["count"]))
    ok = not client.conn_errors and bool(submit_lat) and _rank(sorted(submit_lat), 99) < 0.150
    print(f"  target (no connection errors, submit p99 < 150 ms): {'met' if ok else 'NOT met'}")
    if not args.no_floor:
        print(f"the emulator's floor: a bare moto server in its own process, nothing else running, "
              f"{args.jobs} clients at once, each doing only what a submit must:")
        for what, lat in emulator_floor(args.jobs).items():
            below = _rank(sorted(lat), 99) >= 0.150
            print(f"  {what:<25}{pct(lat)}" + ("   (p99 at or above the 150 ms target)" if below else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
