#!/usr/bin/env python3
"""Start, stop and deploy to a LocalStack running as a host process (no Docker).

    python scripts/localstack_ctl.py start     # free loopback port, state under .localstack/
    python scripts/localstack_ctl.py deploy    # make package's artifacts + template.yaml via CloudFormation
    python scripts/localstack_ctl.py env       # shell exports for the endpoint suite
    python scripts/localstack_ctl.py stop      # by PID; removes what it left in the temp dir

Everything LocalStack writes lives under ``.localstack/`` in the checkout: its
filesystem root, its temp dir, the S3 object store (the plugin moves it there),
the plugin configuration, the log, the PID and the deployed stack's outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".localstack"
VENV = ROOT / ".venv-localstack"
PID_FILE = STATE / "localstack.pid"
INFO_FILE = STATE / "localstack.json"
OUTPUTS_FILE = STATE / "outputs.json"
CHILDREN = STATE / "children"  # the plugin's function and Batch processes, one file per PID
SERVICES = ("s3,sqs,sns,events,apigateway,cloudwatch,logs,iam,sts,cloudformation,stepfunctions,lambda,dynamodb,"
            "batch,ec2,ecr,ssm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def info() -> dict[str, str]:
    if not INFO_FILE.exists():
        sys.exit("LocalStack is not running here (no .localstack/localstack.json): run `make localstack`")
    return dict(json.loads(INFO_FILE.read_text()))


def plugin_config(python312: str) -> dict[str, object]:
    """How this machine stands in for the cloud (see localstack-plugin/ytcaption_localstack/config.py)."""
    project_python = str(ROOT / ".venv" / "bin" / "python")
    work = STATE / "work"
    return {
        # zip functions: the Lambda runtime's Python, with only what that runtime ships (boto3)
        "runtimes": {"python3.12": python312},
        "images": [
            # download/normalize: containers/media/Dockerfile copies functions/<name>/app.py and ytcaption
            {"match": "*/ytcaption-media:*", "python": project_python, "path": [str(ROOT / "functions")]},
            # the Batch transcriber (containers/transcriber): `python -m ytcaption.worker`
            {"match": "*.dkr.ecr.*:localstack", "python": project_python, "path": [str(ROOT)],
             "env": {"WHISPER__DEVICE": "cpu", "WHISPER__COMPUTE_TYPE": "int8", "WHISPER__CPU_THREADS": "1"}},
        ],
        "env": {
            "WORK_DIR": str(work),
            "HF_HUB_OFFLINE": "1",
            # no X-Ray daemon here
            "POWERTOOLS_TRACE_DISABLED": "1",
            # the endpoint suite serves its media from this machine
            "ALLOW_LOOPBACK_URLS": "true",
            "MEDIA__SHARD_AUDIO_S": "60",
        },
        "batch": {"slots": max(1, (os.cpu_count() or 2))},
        "pid_dir": str(CHILDREN),
    }


def start(args: argparse.Namespace) -> None:
    if PID_FILE.exists():
        pid = int(PID_FILE.read_text())
        if _alive(pid):
            print(f"LocalStack already running (pid {pid}) at {info()['endpoint']}")
            return
        PID_FILE.unlink()
    for sub in ("fs", "tmp", "s3", "work"):
        (STATE / sub).mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    cfg = STATE / "plugin-config.json"
    cfg.write_text(json.dumps(plugin_config(args.python312), indent=2))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_"))},
        "OVERRIDE_IN_DOCKER": "0",  # this machine has /.dockerenv: without it LocalStack writes to /var/lib, /etc
        "FILESYSTEM_ROOT": str(STATE / "fs"),
        "TMPDIR": str(STATE / "tmp"),
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        "DNS_ADDRESS": "0",
        "SERVICES": SERVICES,
        "EAGER_SERVICE_LOADING": "0",
        "LAMBDA_RUNTIME_EXECUTOR": "ytcaption-host",
        "PROVIDER_OVERRIDE_DYNAMODB": "ytcaption",
        "PROVIDER_OVERRIDE_BATCH": "ytcaption",
        "PROVIDER_OVERRIDE_S3": "ytcaption",
        "PROVIDER_OVERRIDE_APIGATEWAY": "ytcaption",
        # the v2 engine fails on the transformed template ("Unsupported type NoneType")
        "PROVIDER_OVERRIDE_CLOUDFORMATION": "engine-legacy",
        "YTCAPTION_LS_CONFIG": str(cfg),
        "YTCAPTION_LS_S3_DIR": str(STATE / "s3"),
        "LS_LOG": os.environ.get("LS_LOG", "info"),
    }
    log = open(STATE / "localstack.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(  # noqa: S603 - our own venv's interpreter
        [str(VENV / "bin" / "python"), "-m", "localstack.runtime.main"], env=env, cwd=STATE,
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    log.close()
    PID_FILE.write_text(str(proc.pid))
    endpoint = f"http://127.0.0.1:{port}"
    INFO_FILE.write_text(json.dumps({"endpoint": endpoint, "port": port, "pid": proc.pid}))
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"LocalStack exited with {proc.returncode}; see .localstack/localstack.log")
        try:
            with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    took = args.wait - (deadline - time.monotonic())
                    print(f"LocalStack 4.9.2 ready at {endpoint} (pid {proc.pid}, {took:.1f}s)")
                    return
        except OSError:
            pass
        time.sleep(0.5)
    stop(args)
    sys.exit(f"LocalStack did not become healthy in {args.wait}s; see .localstack/localstack.log")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(args: argparse.Namespace) -> None:
    if not PID_FILE.exists():
        print("LocalStack is not running (no PID file)")
    else:
        pid = int(PID_FILE.read_text())
        if _alive(pid):
            # its process group: LocalStack and the function/job processes it started
            os.killpg(pid, signal.SIGTERM)
            for _ in range(60):
                if not _alive(pid):
                    break
                time.sleep(0.5)
            else:
                os.killpg(pid, signal.SIGKILL)
        PID_FILE.unlink(missing_ok=True)
        print(f"LocalStack stopped (pid {pid})")
    # function and Batch processes run in their own sessions: end any LocalStack left, by PID
    for entry in CHILDREN.glob("*") if CHILDREN.exists() else []:
        child = int(entry.name)
        if _alive(child):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
        entry.unlink(missing_ok=True)
    INFO_FILE.unlink(missing_ok=True)
    OUTPUTS_FILE.unlink(missing_ok=True)
    for sub in ("tmp", "s3", "work", "fs", "children"):
        shutil.rmtree(STATE / sub, ignore_errors=True)


def env_exports(args: argparse.Namespace) -> None:
    outputs = json.loads(OUTPUTS_FILE.read_text()) if OUTPUTS_FILE.exists() else {}
    values = {"AWS_ENDPOINT_URL": info()["endpoint"], "AWS_ACCESS_KEY_ID": "test",
              "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
              "YTCAPTION_API_URL": outputs.get("ApiUrl", ""), "YTCAPTION_API_KEY": outputs.get("ApiKey", ""),
              "YTCAPTION_STACK_NAME": outputs.get("StackName", "")}
    for k, v in values.items():
        print(f"export {k}={v}")


def report(args: argparse.Namespace) -> None:
    """How many endpoint tests ran; fails when any was skipped (the suite must run in full)."""
    import xml.etree.ElementTree as ET

    suites = ET.parse(args.junit).getroot()  # noqa: S314
    suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
    if suite is None:
        sys.exit(f"{args.junit}: no test suite in it")
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    ran = total - skipped
    print(f"endpoint suite on LocalStack: {ran} tests ran ({ran - failed} passed, {failed} failed), "
          f"{skipped} skipped, in {float(suite.get('time', 0)):.0f}s")
    if skipped or failed or not ran:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--wait", type=float, default=90.0)
    p.add_argument("--python312", required=True, help="interpreter standing in for the python3.12 Lambda runtime")
    p.set_defaults(fn=start)
    sub.add_parser("stop").set_defaults(fn=stop)
    sub.add_parser("env").set_defaults(fn=env_exports)
    p = sub.add_parser("report")
    p.add_argument("junit")
    p.set_defaults(fn=report)
    p = sub.add_parser("deploy")
    p.set_defaults(fn=lambda a: __import__("localstack_deploy").main())  # scripts/localstack_deploy.py
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
