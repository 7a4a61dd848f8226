"""``ytcaption``: transcribe from the command line, against an API or the embedded local runtime.

    ytcaption transcribe talk.mp4                      # local runtime, captions in ./captions
    ytcaption transcribe https://youtu.be/... --api https://abc.execute-api.../v1
    ytcaption status|result|cancel JOB_ID --api URL
    ytcaption list --api URL [--status COMPLETED]
    ytcaption search "QUERY" --api URL [--kind short]
    ytcaption info URL --api URL
    ytcaption models [--api URL] [--json]             # the model catalogue (this machine's without --api)
    ytcaption local serve [--port 3000]

Exit status: 0 when the job completed (or the command succeeded), 1 when the
job failed or was cancelled (the error code and message are printed), 2 for a
bad invocation or an unreachable API.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
FORMATS = ("json", "srt", "vtt", "txt")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class Client:
    """A small HTTP client for the YTCaption API (stdlib only)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        # the stage URL with or without the API's /v1 prefix (local serve prints .../v1)
        self.base = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        url = self.base + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        if self.api_key:
            hdrs["X-Api-Key"] = self.api_key
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)  # noqa: S310 - http(s) API URL
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - user-given API
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                err = json.loads(raw)["error"]
                raise ApiError(exc.code, err["code"], err["message"]) from None
            except (ValueError, KeyError, TypeError):
                raise ApiError(exc.code, f"HTTP_{exc.code}", raw.decode(errors="replace")[:200]) from None

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        _, _, raw = self.request(method, path, body, **kw)
        return json.loads(raw) if raw else None

    def submit_url(self, url: str, options: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", "/v1/transcriptions", {"url": url, **options}))

    def submit_file(self, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if not ctype.startswith(("audio/", "video/")):
            ctype = "application/octet-stream"
        size = path.stat().st_size
        job = dict(self.json("POST", "/v1/uploads",
                             {"filename": path.name, "content_type": ctype, "size_bytes": size, **options}))
        with path.open("rb") as fh:
            req = urllib.request.Request(job["upload_url"], data=fh.read(), method="PUT",  # noqa: S310
                                         headers={**job["upload_headers"], "Content-Length": str(size)})
        with urllib.request.urlopen(req, timeout=max(self.timeout, 300)) as resp:  # noqa: S310 - presigned URL
            if resp.status not in (200, 204):
                raise ApiError(resp.status, "UPLOAD_FAILED", "the upload was not accepted")
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/v1/transcriptions/{job_id}"))

    def result(self, job_id: str, fmt: str) -> bytes:
        _, _, raw = self.request("GET", f"/v1/transcriptions/{job_id}/result", query={"format": fmt})
        return raw

    def wait(self, job_id: str, *, poll_s: float = 0.5, timeout_s: float = 6 * 3600,
             show: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if show:
                show(job)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise ApiError(0, "CLIENT_TIMEOUT", f"job {job_id} did not finish in {timeout_s:.0f} s")
            time.sleep(poll_s)


class Progress:
    """A one-line progress bar on a terminal; one line per stage change otherwise."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last: tuple[str, int] | None = None

    def __call__(self, job: dict[str, Any]) -> None:
        status, pct = job["status"], int(job.get("progress") or 0)
        chunks = job.get("chunks") or {}
        extra = ""
        if status == "TRANSCRIBING" and chunks.get("total"):
            extra = f" {chunks.get('done', 0)}/{chunks['total']} chunks"
        if self.tty:
            bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
            self.stream.write(f"\r[{bar}] {pct:3d}% {status:<13}{extra:<16}")
            if status in TERMINAL:
                self.stream.write("\n")
            self.stream.flush()
        elif self.last is None or self.last[0] != status:
            self.stream.write(f"{status.lower()}... {pct}%{extra}\n")
            self.stream.flush()
        self.last = (status, pct)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.language:
        opts["language"] = args.language
    if args.model:
        opts["model"] = args.model
    if args.format:
        opts["formats"] = [f.strip() for f in args.format.split(",") if f.strip()]
    if args.webhook:
        opts["webhook_url"] = args.webhook
    if args.word_timestamps:
        opts["word_timestamps"] = True
    opts.update({"diarize": True, "num_speakers": args.speakers} if args.diarize else {})
    if args.task:
        opts["task"] = args.task
    if args.site_captions:
        opts["site_captions"] = args.site_captions
    return opts


def _write_results(client: Client, job: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in job["options"]["formats"]:
        path = out_dir / f"{stem}.{fmt}"
        path.write_bytes(client.result(job["job_id"], fmt))
        written.append(path)
    return written


def _usage_error(message: str) -> int:
    print(f"error: {message} (see ytcaption transcribe --help)", file=sys.stderr)
    return 2


def _quiet_logs(verbose: bool) -> Path | None:
    """The pipeline's JSON log lines go to a file, not between the CLI's own lines."""
    import logging
    import tempfile

    if verbose:
        return None
    path = Path(tempfile.gettempdir()) / f"ytcaption-local-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    for name in ("ytcaption", "moto", "werkzeug", "botocore", "localstack"):
        log = logging.getLogger(name)
        for old in list(log.handlers):
            if isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler):
                log.removeHandler(old)
        log.addHandler(handler)
        log.propagate = False
    return path


def cmd_transcribe(args: argparse.Namespace) -> int:
    source = args.source
    is_url = source.startswith(("http://", "https://"))
    # every usage error before the (3-5 s) runtime start
    if not is_url and not Path(source).is_file():
        return _usage_error(f"{source} is neither an http(s) URL nor a file")
    if args.format:
        bad = [f for f in (x.strip() for x in args.format.split(",")) if f and f not in FORMATS]
        if bad or not args.format.strip(", "):
            return _usage_error(f"--format takes a comma-separated list of {', '.join(FORMATS)}; got {args.format!r}")
    if args.port and not 0 < args.port < 65536:
        return _usage_error(f"--port {args.port} is not a TCP port")
    runtime = None
    api = args.api or os.environ.get("YTCAPTION_API")
    if not api:
        from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

        print("starting the local runtime (moto, the real template and state machine)...", file=sys.stderr)
        log_file = _quiet_logs(args.verbose)
        try:
            runtime = LocalRuntime(RuntimeOptions(api_port=args.port)).start()
        except OSError as exc:  # the port is taken, most often
            return _usage_error(f"the local runtime could not start: {exc.strerror or exc}")
        if log_file is not None:
            print(f"(the pipeline's log: {log_file}; --verbose shows it here)", file=sys.stderr)
        api = runtime.api_url
    try:
        client = Client(api, api_key=runtime.api_key if runtime else args.api_key)
        options = _options(args)
        job = client.submit_url(source, options) if is_url else client.submit_file(Path(source), options)
        print(f"job {job['job_id']}", file=sys.stderr)
        final = client.wait(job["job_id"], show=Progress())
        if final["status"] != "COMPLETED":
            err = final.get("error") or {"code": final["status"], "message": "the job did not complete"}
            print(f"error: {err['code']}: {err['message']}", file=sys.stderr)
            return 1
        stem = Path(urllib.parse.urlsplit(source).path).stem if is_url else Path(source).stem
        written = _write_results(client, final, Path(args.output_dir), stem or final["job_id"])
        secs = sum((t.get("seconds") or 0) for t in final.get("timings", {}).values())
        duration = (final.get("media") or {}).get("duration_s")
        print(f"completed: {duration or 0:.1f} s of media, language {final.get('language')}, "
              f"{secs:.1f} s in stages{_cost(final)}", file=sys.stderr)
        for path in written:
            print(path)
        return 0
    except ApiError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2 if exc.status in (0, 401, 403) else 1
    except urllib.error.URLError as exc:
        print(f"error: API_UNREACHABLE: {api}: {exc.reason}", file=sys.stderr)
        return 2
    finally:
        if runtime is not None:
            runtime.stop()


def _cost(job: dict[str, Any]) -> str:
    cost = job.get("cost") or {}
    return f", estimated cost ${cost['total_usd']:.6f}" if cost.get("total_usd") is not None else ""


def _client(args: argparse.Namespace) -> Client:
    api = args.api or os.environ.get("YTCAPTION_API")
    if not api:
        print("error: --api URL (or YTCAPTION_API) is required for this command", file=sys.stderr)
        raise SystemExit(2)
    return Client(api, api_key=args.api_key)


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(_client(args).job(args.job_id), indent=2))
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    data = _client(args).result(args.job_id, args.format)
    if args.output:
        Path(args.output).write_bytes(data)
        print(args.output)
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    job = _client(args).json("DELETE", f"/v1/transcriptions/{args.job_id}")
    print(f"{job['job_id']} {job['status']}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    query = {"limit": str(args.limit)}
    if args.status:
        query["status"] = args.status
    page = _client(args).json("GET", "/v1/transcriptions", query=query)
    for j in page["items"]:
        print(f"{j['job_id']}  {j['status']:<13} {j['progress']:3d}%  {j['created_at']}  "
              f"{j['source'].get('url') or j['source'].get('filename')}")
    if page.get("next_cursor"):
        print(f"# more: --cursor {page['next_cursor']}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if args.api or os.environ.get("YTCAPTION_API"):
        doc = _client(args).json("GET", "/v1/models")
    else:  # what the local runtime offers: the offline model packages installed here
        from ytcaption.domain.catalogue import Catalogue

        doc = Catalogue.build(baked=os.environ.get("BAKED_MODELS", ""),
                              default_model=os.environ.get("DEFAULT_MODEL", "tiny.en")).to_openai()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{'MODEL':<18} {'SOURCE':<8} {'LANGUAGES':<11} {'TASKS':<21} DEFAULT")
    for m in doc["data"]:
        langs = "en" if m["languages"] == ["en"] else f"all ({len(m['languages'])})"
        print(f"{m['id']:<18} {m['source']:<8} {langs:<11} {','.join(m['tasks']):<21} {'yes' if m['default'] else ''}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    from ytcaption_local.runtime import LocalRuntime, RuntimeOptions
    from ytcaption_local.state import default_state_dir

    def stop_on_term(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops cleanly too: the last snapshot is written

    signal.signal(signal.SIGTERM, stop_on_term)

    state_dir = str(args.state_dir or default_state_dir())
    try:
        runtime = LocalRuntime(RuntimeOptions(api_port=args.port, api_key=args.api_key,
                                              reconcile_every_s=60.0, state_dir=state_dir))
    except ValueError as exc:  # a key API Gateway would refuse
        print(f"error: INVALID_API_KEY: {exc}", file=sys.stderr)
        return 2
    runtime.start()
    print(f"YTCaption local runtime\n  API:           {runtime.api_url}/v1\n"
          f"  API key:       {runtime.api_key}   (send it as X-Api-Key or Authorization: Bearer)\n"
          f"  OpenAI audio:  OpenAI(base_url=\"{runtime.api_url}/v1\", api_key=KEY)\n"
          f"  admin key:     {runtime.admin_key}   (X-Admin-Key, for ytcaption stats)\n"
          f"  console:       {runtime.api_url}/console/#key={runtime.api_key}\n"
          f"  webhook key:   {runtime.webhook_secret}   (verifies X-YTCaption-Signature)\n"
          f"  AWS endpoint:  {runtime.endpoint} (moto)\n"
          f"  state machine: {runtime.outputs['StateMachineArn']}\n"
          f"  state:         {state_dir} (jobs, results and keys kept across restarts)\nCtrl-C to stop.",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ytcaption", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def api_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--api", help="API base URL, the stage URL with or without /v1 (default: $YTCAPTION_API; "
                                      "transcribe without it starts the embedded local runtime)")
        sp.add_argument("--api-key", default=os.environ.get("YTCAPTION_API_KEY"),
                        help="the API key, sent as X-Api-Key (default: $YTCAPTION_API_KEY)")

    t = sub.add_parser("transcribe", help="transcribe a URL or a local file and save the captions")
    t.add_argument("source", help="http(s) URL or path to a media file")
    api_args(t)
    t.add_argument("--language", help="language code, or auto (default)")
    t.add_argument("--model", help="Whisper model (default: the service's)")
    t.add_argument("--format", help="comma-separated: srt,vtt,json,txt (default: all)")
    t.add_argument("--output-dir", default="captions", help="where the caption files are written (default: captions)")
    t.add_argument("--webhook", help="URL to POST to when the job ends")
    t.add_argument("--word-timestamps", action="store_true",
                   help="time every word (in the JSON result; cues are laid out by word)")
    t.add_argument("--diarize", action="store_true", help="label who speaks (SPEAKER_1, ...) in every format")
    t.add_argument("--speakers", type=int, help="with --diarize: the number of speakers, if known")
    t.add_argument("--verbose", action="store_true",
                   help="show the local runtime's JSON log lines here (otherwise they go to a file)")
    t.add_argument("--task", choices=["transcribe", "translate"])
    t.add_argument("--site-captions", choices=["never", "fallback", "prefer"],
                   help="use the video's own captions: prefer (people-made, no GPU) or fallback (download refused)")
    t.add_argument("--port", type=int, default=0, help="local runtime API port (default: any free port)")
    t.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("status", help="a job's status document")
    s.add_argument("job_id")
    api_args(s)
    s.set_defaults(func=cmd_status)

    r = sub.add_parser("result", help="download a completed job's captions")
    r.add_argument("job_id")
    r.add_argument("--format", default="srt", choices=FORMATS)
    r.add_argument("--output", "-o")
    api_args(r)
    r.set_defaults(func=cmd_result)

    c = sub.add_parser("cancel", help="cancel a job")
    c.add_argument("job_id")
    api_args(c)
    c.set_defaults(func=cmd_cancel)

    ls = sub.add_parser("list", help="list jobs, newest first")
    ls.add_argument("--status")
    ls.add_argument("--limit", type=int, default=20)
    api_args(ls)
    ls.set_defaults(func=cmd_list)

    from ytcaption_local.cli_site import add_commands

    add_commands(sub, api_args)
    from ytcaption_local.stats_cli import add_parser as add_stats

    add_stats(sub, api_args, _client)
    m = sub.add_parser("models", help="the models a deployment runs (without --api: this machine's)")
    m.add_argument("--json", action="store_true", help="the API's JSON (OpenAI list shape)")
    api_args(m)
    m.set_defaults(func=cmd_models)

    local = sub.add_parser("local", help="the embedded local runtime")
    lsub = local.add_subparsers(dest="local_command", required=True)
    serve = lsub.add_parser("serve", help="serve the API on 127.0.0.1 with moto behind it")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--api-key", default=os.environ.get("YTCAPTION_LOCAL_API_KEY"),
                       help="the key clients must send (default: the stored one, or a random one; printed)")
    serve.add_argument("--state-dir", help="where jobs, results and keys are kept across restarts "
                                           "(default: ~/.local/share/ytcaption/local, or $XDG_DATA_HOME)")
    serve.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApiError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"error: API_UNREACHABLE: {exc.reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
