"""ytcaption: transcribe from the command line, against an API or the embedded local runtime.

\b
    ytcaption transcribe talk.mp4                      # local runtime, captions in ./captions
    ytcaption transcribe https://youtu.be/... --api https://abc.execute-api.../v1
    ytcaption status|result|cancel JOB_ID --api URL
    ytcaption list --api URL [--status COMPLETED]
    ytcaption search "QUERY" --api URL [--kind short]
    ytcaption info URL --api URL
    ytcaption stats --api URL --admin-key KEY
    ytcaption models [--api URL] [--json]             # the model catalogue (this machine's without --api)
    ytcaption local serve [--port 3000]

\b
Exit status:
  0  the job completed, or the command succeeded
  1  the job failed or was cancelled, or the API refused the request
     (its error code and message are printed); `info`: the deployment would refuse the URL
  2  a bad invocation (checked before anything starts), an unreachable API,
     an API key the API refuses (INVALID_API_KEY), or a local runtime that could not start
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from ytcaption.domain.speakers import REFERENCES_PREFIX
from ytcaption_local import cli_site, stats_cli
from ytcaption_local.api_client import TERMINAL, ApiError, ApiUnreachable, Client
from ytcaption_local.cli_common import (
    CONTEXT,
    FORMATS,
    Failed,
    Unusable,
    api_options,
    client_for,
    json_option,
    run_api,
)

__all__ = ["TERMINAL", "ApiError", "ApiUnreachable", "Client", "cli", "main", "run"]

class FormatList(click.ParamType):
    """``srt,vtt``: a comma-separated list of caption formats, checked before anything starts."""

    name = "FORMATS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        formats = [f.strip() for f in str(value).split(",") if f.strip()]
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            self.fail(f"takes a comma-separated list of {', '.join(FORMATS)}; got {value!r}", param, ctx)
        return formats


# --- the progress display --------------------------------------------------------------------


class JobProgress:
    """A Rich progress bar on a terminal (stage, percent, chunks, elapsed); plain lines otherwise.

    Off a terminal (a pipe, a CI log) one line is written per stage and per chunk count, so
    logs show transcription moving instead of a single ``transcribing... 20%``.
    """

    def __init__(self, stream: Any = None) -> None:
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.tty = self.console.is_terminal
        self.last: tuple[str, int, int] | None = None
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> JobProgress:
        if self.tty:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description:<13}"), BarColumn(), TaskProgressColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                      console=self.console)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def uploading(self, size: int) -> Callable[[int], None]:
        """A callback counting uploaded bytes (shown on a terminal only)."""
        if self._progress is None:
            return lambda n: None
        task = self._progress.add_task("uploading", total=size, detail="")
        return lambda n: self._progress.advance(task, n)

    @staticmethod
    def detail(job: dict[str, Any]) -> str:
        chunks = job.get("chunks") or {}
        if job["status"] == "TRANSCRIBING" and chunks.get("total"):
            return f"{chunks.get('done', 0)}/{chunks['total']} chunks"
        return ""

    def __call__(self, job: dict[str, Any]) -> None:
        status, pct = job["status"], int(job.get("progress") or 0)
        done = int((job.get("chunks") or {}).get("done") or 0)
        detail = self.detail(job)
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task(status.lower(), total=100, detail=detail)
            self._progress.update(self._task, completed=pct, description=status.lower(), detail=detail)
        elif self.last is None or self.last[0] != status or (detail and self.last[2] != done):
            self.console.print(f"{status.lower()}... {pct}%" + (f" ({detail})" if detail else ""))
        self.last = (status, pct, done)


def check_port(port: int) -> None:
    """A taken port is a usage error at once, not after the runtime's 3-5 s start (0: any free port)."""
    from ytcaption_local.runtime import bind_error

    exc = bind_error(port) if port else None
    if exc is not None:
        raise Unusable("RUNTIME_NOT_STARTED", f"port {port} on 127.0.0.1 is taken ({exc.strerror or exc}); "
                                              "choose another with --port, or 0 for any free one")


def start_runtime(runtime: Any) -> Any:
    try:
        return runtime.start()
    except (OSError, SystemExit) as exc:  # the port was taken meanwhile, most often
        reason = getattr(exc, "strerror", None) or exc
        raise Unusable("RUNTIME_NOT_STARTED", f"the local runtime could not start: {reason}") from None


def quiet_logs(verbose: bool) -> Path | None:
    """The pipeline's JSON log lines go to a file, not between the CLI's own lines (unless --verbose)."""
    if verbose:
        return None
    # the pipeline's Logger adds its stdout handler when first imported: import it now, to reroute it
    import ytcaption.observability  # noqa: F401

    path = Path(tempfile.gettempdir()) / f"ytcaption-local-{os.getpid()}.log"
    for name in ("ytcaption", "moto", "werkzeug", "botocore", "localstack"):
        log = logging.getLogger(name)
        handler = logging.FileHandler(path, encoding="utf-8")
        for old in list(log.handlers):
            if old.formatter is not None:  # Powertools' JSON lines stay JSON in the file
                handler.setFormatter(old.formatter)
            if isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler):
                log.removeHandler(old)
        log.addHandler(handler)
        log.propagate = False
    return path


# --- commands --------------------------------------------------------------------------------


@click.group("ytcaption", context_settings=CONTEXT, help=__doc__)
@click.version_option(package_name="ytcaption", prog_name="ytcaption")
def cli() -> None:
    pass


@cli.command(context_settings=CONTEXT)
@click.argument("source", metavar="FILE|URL")
@api_options
@click.option("--language", metavar="CODE", help="Spoken language (en, es, ...), or auto (default: auto).")
@click.option("--model", metavar="NAME", help="Whisper model, e.g. tiny.en or base (default: the service's; "
                                              "see ytcaption models).")
@click.option("--format", "formats", type=FormatList(), metavar="LIST",
              help="Comma-separated caption formats to write: srt,vtt,json,txt (default: all four).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("captions"),
              show_default=True, help="Directory the caption files are written to, one per format, named after "
                                      "the source (talk.mp4 -> talk.srt). Created if missing.")
@click.option("--webhook", metavar="URL", help="URL the service POSTs to when the job ends (signed).")
@click.option("--word-timestamps", is_flag=True,
              help="Time every word: the JSON result gets per-word start/end, and subtitle cues are laid out "
                   "by word timing.")
@click.option("--diarize", is_flag=True, help="Label who speaks (SPEAKER_1, ...) in every format.")
@click.option("--speakers", type=click.IntRange(min=1), metavar="N",
              help="With --diarize: the number of speakers, if known (otherwise estimated).")
@click.option("--known-speaker", "known_speakers", multiple=True, metavar="NAME=FILE",
              help="With --diarize: a speaker's name and a few seconds of their voice (a local file, uploaded "
                   "first; or a key under speakers/ in the media bucket). A matching speaker is labelled NAME "
                   "instead of SPEAKER_n. Repeat for each (8 at most).")
@click.option("--task", type=click.Choice(["transcribe", "translate"]),
              help="translate: English text from speech in another language (multilingual models only).")
@click.option("--site-captions", type=click.Choice(["never", "fallback", "prefer"]),
              help="Use the video's own captions: prefer (people-made ones, no GPU) or fallback (when the "
                   "download is refused).")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port of the local runtime's API (default: any free port). Only without --api.")
@click.option("--verbose", "-v", is_flag=True,
              help="Show the local runtime's JSON log lines here (otherwise they go to a file, named at start).")
def transcribe(source: str, api: str | None, api_key: str | None, language: str | None, model: str | None,
               formats: list[str] | None, output_dir: Path, webhook: str | None, word_timestamps: bool,
               diarize: bool, speakers: int | None, known_speakers: tuple[str, ...], task: str | None,
               site_captions: str | None, port: int, verbose: bool) -> int:
    """Transcribe a URL or a local media file and save its captions.

    Prints the job's stage and progress (chunks done during transcription) on stderr,
    then the paths of the caption files on stdout.
    """
    is_url = source.startswith(("http://", "https://"))
    # every usage error before the (3-5 s) runtime start
    if not is_url and not Path(source).is_file():
        raise click.BadParameter(f"{source} is neither an http(s) URL nor a file", param_hint="'FILE|URL'")
    options: dict[str, Any] = {k: v for k, v in {
        "language": language, "model": model, "formats": formats, "webhook_url": webhook,
        "word_timestamps": word_timestamps or None, "task": task, "site_captions": site_captions,
    }.items() if v}
    options.update({"diarize": True, "num_speakers": speakers} if diarize else {})
    references = _known_speakers(known_speakers, diarize)
    runtime = None
    if not api:
        from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

        check_port(port)
        click.echo("starting the local runtime (moto, the real template and state machine)...", err=True)
        log_file = quiet_logs(verbose)
        runtime = start_runtime(LocalRuntime(RuntimeOptions(api_port=port)))
        if log_file is not None:
            click.echo(f"(the pipeline's log: {log_file}; --verbose shows it here)", err=True)
        api, api_key = runtime.api_url, runtime.api_key
    try:
        with Client(api, api_key=api_key) as client, JobProgress() as show:
            if references:
                options["known_speakers"] = {name: ref if isinstance(ref, str) else client.upload_speaker_clip(ref)
                                             for name, ref in references.items()}
            if is_url:
                job = client.submit_url(source, options)
            else:
                path = Path(source)
                job = client.submit_file(path, options, on_bytes=show.uploading(path.stat().st_size))
            show.console.print(f"job {job['job_id']}")
            final = client.wait(job["job_id"], show=show)
            written: list[Path] = []
            if final["status"] == "COMPLETED":
                stem = Path(urllib.parse.urlsplit(source).path).stem if is_url else Path(source).stem
                written = _write_results(client, final, output_dir, stem or final["job_id"])
    except ApiError as exc:
        raise Failed.of(exc) from None
    finally:
        if runtime is not None:
            runtime.stop()  # before the last lines: the process ends right after them
    if final["status"] != "COMPLETED":
        err = final.get("error") or {"code": final["status"], "message": "the job did not complete"}
        raise Failed(err["code"], err["message"])
    secs = sum((t.get("seconds") or 0) for t in final.get("timings", {}).values())
    duration = (final.get("media") or {}).get("duration_s")
    click.echo(f"completed: {duration or 0:.1f} s of media, language {final.get('language')}, "
               f"{secs:.1f} s in stages{_cost(final)}", err=True)
    for written_path in written:
        click.echo(str(written_path))
    return 0


def _known_speakers(values: tuple[str, ...], diarize: bool) -> dict[str, str | Path]:
    """``NAME=FILE`` (a local clip) or ``NAME=speakers/KEY`` (one already in the bucket), checked before
    anything starts; the service checks the names themselves."""
    if values and not diarize:
        raise click.BadParameter("needs --diarize", param_hint="'--known-speaker'")
    out: dict[str, str | Path] = {}
    for value in values:
        name, sep, ref = value.partition("=")
        if not sep or not name.strip() or not ref:
            raise click.BadParameter(f"{value!r} is not NAME=FILE", param_hint="'--known-speaker'")
        if ref.startswith(REFERENCES_PREFIX):
            out[name.strip()] = ref
        elif Path(ref).is_file():
            out[name.strip()] = Path(ref)
        else:
            raise click.BadParameter(f"{ref} is not a file (nor a speakers/ key)", param_hint="'--known-speaker'")
    return out


def _write_results(client: Client, job: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in job["options"]["formats"]:
        path = out_dir / f"{stem}.{fmt}"
        path.write_bytes(client.result(job["job_id"], fmt))
        written.append(path)
    return written


def _cost(job: dict[str, Any]) -> str:
    cost = job.get("cost") or {}
    return f", estimated cost ${cost['total_usd']:.6f}" if cost.get("total_usd") is not None else ""


@cli.command(context_settings=CONTEXT)
@click.argument("job_id")
@api_options
def status(job_id: str, api: str | None, api_key: str | None) -> int:
    """Print a job's status document (JSON): stage, progress, chunks, timings, cost, error."""
    client = client_for(api, api_key)
    return run_api(lambda: click.echo(json.dumps(client.job(job_id), indent=2)))


@cli.command(context_settings=CONTEXT)
@click.argument("job_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="srt", show_default=True,
              help="Caption format to download.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (and print its path) instead of stdout.")
@api_options
def result(job_id: str, fmt: str, output: Path | None, api: str | None, api_key: str | None) -> int:
    """Download a completed job's captions."""
    client = client_for(api, api_key)

    def fetch() -> None:
        data = client.result(job_id, fmt)
        if output:
            output.write_bytes(data)
            click.echo(str(output))
        else:
            click.echo(data.decode("utf-8"), nl=False)

    return run_api(fetch)


@cli.command(context_settings=CONTEXT)
@click.argument("job_id")
@api_options
def cancel(job_id: str, api: str | None, api_key: str | None) -> int:
    """Cancel a job (exit 1 with JOB_ALREADY_FINISHED if it had ended)."""
    client = client_for(api, api_key)

    def run() -> None:
        job = client.json("DELETE", f"/v1/transcriptions/{job_id}")
        click.echo(f"{job['job_id']} {job['status']}")

    return run_api(run)


@cli.command("list", context_settings=CONTEXT)
@click.option("--status", "status_", metavar="STATUS",
              help="Only jobs in this status (QUEUED, TRANSCRIBING, COMPLETED, FAILED, ...).")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Jobs per page.")
@click.option("--cursor", metavar="CURSOR", help="The next page, as printed after the last one.")
@api_options
def list_jobs(status_: str | None, limit: int, cursor: str | None, api: str | None, api_key: str | None) -> int:
    """List jobs, newest first."""
    client = client_for(api, api_key)
    query = {k: v for k, v in {"limit": str(limit), "status": status_, "cursor": cursor}.items() if v}

    def run() -> None:
        page = client.json("GET", "/v1/transcriptions", query=query)
        for j in page["items"]:
            click.echo(f"{j['job_id']}  {j['status']:<13} {j['progress']:3d}%  {j['created_at']}  "
                       f"{j['source'].get('url') or j['source'].get('filename')}")
        if page.get("next_cursor"):
            click.echo(f"# more: --cursor {page['next_cursor']}", err=True)

    return run_api(run)


@cli.command(context_settings=CONTEXT)
@json_option
@api_options
def models(as_json: bool, api: str | None, api_key: str | None) -> int:
    """The models a deployment runs (without --api: the offline ones installed on this machine)."""

    def run() -> None:
        if api:
            doc = client_for(api, api_key).json("GET", "/v1/models")
        else:
            from ytcaption.domain.catalogue import Catalogue

            doc = Catalogue.build(baked=os.environ.get("BAKED_MODELS", ""),
                                  default_model=os.environ.get("DEFAULT_MODEL", "tiny.en")).to_openai()
        if as_json:
            click.echo(json.dumps(doc, indent=2))
            return
        click.echo(f"{'MODEL':<18} {'SOURCE':<8} {'LANGUAGES':<11} {'TASKS':<21} DEFAULT")
        for m in doc["data"]:
            langs = "en" if m["languages"] == ["en"] else f"all ({len(m['languages'])})"
            click.echo(f"{m['id']:<18} {m['source']:<8} {langs:<11} {','.join(m['tasks']):<21} "
                       f"{'yes' if m['default'] else ''}")

    return run_api(run)


@cli.group(context_settings=CONTEXT)
def local() -> None:
    """The embedded local runtime (moto behind the real template and state machine)."""


@local.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True,
              help="Port of the API on 127.0.0.1.")
@click.option("--api-key", envvar="YTCAPTION_LOCAL_API_KEY", show_envvar=True, metavar="KEY",
              help="The key clients must send (default: the stored one, or a random one; printed).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where jobs, results and keys are kept across restarts "
                   "(default: ~/.local/share/ytcaption/local, or under $XDG_DATA_HOME).")
def serve(port: int, api_key: str | None, state_dir: Path | None) -> int:
    """Serve the API on 127.0.0.1 with moto behind it, until Ctrl-C or SIGTERM."""
    import signal

    from ytcaption_local.runtime import LocalRuntime, RuntimeOptions
    from ytcaption_local.state import default_state_dir

    def stop_on_term(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops cleanly too: the last snapshot is written

    check_port(port)
    signal.signal(signal.SIGTERM, stop_on_term)
    state = str(state_dir or default_state_dir())
    try:
        runtime = LocalRuntime(RuntimeOptions(api_port=port, api_key=api_key, reconcile_every_s=60.0,
                                              state_dir=state))
    except ValueError as exc:  # a key API Gateway would refuse
        raise Unusable("INVALID_API_KEY", str(exc)) from None
    start_runtime(runtime)
    click.echo(f"YTCaption local runtime\n  API:           {runtime.api_url}/v1\n"
               f"  API key:       {runtime.api_key}   (send it as X-Api-Key or Authorization: Bearer)\n"
               f"  OpenAI audio:  OpenAI(base_url=\"{runtime.api_url}/v1\", api_key=KEY)\n"
               f"  admin key:     {runtime.admin_key}   (X-Admin-Key, for ytcaption stats)\n"
               f"  console:       {runtime.api_url}/console/#key={runtime.api_key}\n"
               f"  webhook key:   {runtime.webhook_secret}   (verifies X-YTCaption-Signature)\n"
               f"  AWS endpoint:  {runtime.endpoint} (moto)\n"
               f"  state machine: {runtime.outputs['StateMachineArn']}\n"
               f"  state:         {state} (jobs, results and keys kept across restarts)\nCtrl-C to stop.")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
    return 0


for _command in (cli_site.search, cli_site.info, stats_cli.stats):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """The ``ytcaption`` entry point: Click's parsing and messages, the exit codes above."""
    try:
        rv = cli.main(args=argv, prog_name="ytcaption", standalone_mode=False)
    except click.ClickException as exc:  # usage errors (2), refusals (1 or 2)
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:  # --help, --version
        return int(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    return int(rv or 0)


def run() -> NoReturn:
    """The console script: :func:`main`, then an exit without the interpreter's teardown.

    After a local run, moto, botocore and the model's native objects are left for the
    interpreter to take apart: 2-4 s between the last line printed and the shell prompt.
    The work is done (the runtime stopped, files written and closed), so the exit handlers
    run, the streams are flushed and the process ends at once.
    """
    code = main()
    atexit._run_exitfuncs()  # logging's flush, weakref finalizers: what a normal exit runs
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
