"""The first run of the CLI: usage errors are caught before the local runtime starts, exit 2."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytcaption_local import cli


@pytest.fixture
def media(tmp_path: Path) -> Path:
    path = tmp_path / "talk.mp3"
    path.write_bytes(b"ID3")
    return path


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("YTCAPTION_API", "YTCAPTION_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_the_api_url_works_with_or_without_v1() -> None:
    for url in ("http://127.0.0.1:3791", "http://127.0.0.1:3791/", "http://127.0.0.1:3791/v1",
                "http://127.0.0.1:3791/v1/"):
        assert cli.Client(url).base == "http://127.0.0.1:3791", url
    assert cli.Client("https://abc.execute-api.us-east-1.amazonaws.com/v1").base == \
        "https://abc.execute-api.us-east-1.amazonaws.com"


@pytest.mark.parametrize(("argv", "says"), [
    (["transcribe", "MEDIA", "--format", "srt,docx"], "--format"),
    (["transcribe", "MEDIA", "--format", ","], "--format"),
    (["transcribe", "MEDIA", "--port", "70000"], "--port"),
    (["transcribe", "/no/such/file.mp3"], "neither an http(s) URL nor a file"),
    (["transcribe", "MEDIA", "--task", "summarize"], "--task"),
    (["transcribe", "MEDIA", "--site-captions", "always"], "--site-captions"),
    (["transcribe", "MEDIA", "--no-such-option"], "No such option"),
    (["transcribe", "MEDIA", "--diarize", "--speakers", "0"], "--speakers"),
    (["transcribe", "MEDIA", "--known-speaker", "Ann=MEDIA"], "needs --diarize"),
    (["transcribe", "MEDIA", "--diarize", "--known-speaker", "Ann"], "is not NAME=FILE"),
    (["transcribe", "MEDIA", "--diarize", "--known-speaker", "Ann=/no/such/clip.wav"], "is not a file"),
    (["transcribe"], "Missing argument"),
    (["result", "0" * 32, "--format", "docx"], "--format"),
    (["search", "talks", "--limit", "0"], "--limit"),
    (["frobnicate"], "No such command"),
])
def test_bad_options_exit_2_before_the_runtime_starts(argv: list[str], says: str, media: Path,
                                                      runner: CliRunner) -> None:
    t = time.perf_counter()
    out = runner.invoke(cli.cli, [a.replace("MEDIA", str(media)) for a in argv])
    assert out.exit_code == 2 and time.perf_counter() - t < 1.0
    assert says in out.stderr and "Usage: ytcaption" in out.stderr
    assert "starting the local runtime" not in out.output and "Traceback" not in out.output


@pytest.mark.parametrize("command", [["status", "0" * 32], ["list"], ["cancel", "0" * 32], ["search", "x"],
                                     ["info", "https://example.com/v"], ["stats"]])
def test_a_command_that_needs_an_api_says_so_and_exits_2(command: list[str], runner: CliRunner) -> None:
    out = runner.invoke(cli.cli, command)
    assert out.exit_code == 2 and "--api URL (or YTCAPTION_API) is required" in out.stderr


def test_main_returns_the_exit_codes_without_raising(media: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("YTCAPTION_API", raising=False)
    assert cli.main(["transcribe", str(media), "--format", "docx"]) == 2
    assert "Invalid value for '--format'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "Exit status" in capsys.readouterr().out


def test_an_unreachable_api_exits_2_with_its_code(media: Path, runner: CliRunner) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    out = runner.invoke(cli.cli, ["status", "0" * 32, "--api", f"http://127.0.0.1:{port}/v1"])
    assert out.exit_code == 2 and "error: API_UNREACHABLE" in out.stderr
    assert time.perf_counter() - t < 10  # three retries with backoff, not a hang


def test_a_taken_port_is_a_usage_error_not_a_traceback(media: Path, monkeypatch: pytest.MonkeyPatch,
                                                       runner: CliRunner, logging_restored: None) -> None:
    from ytcaption_local import runtime

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        def start(self: object) -> None:  # the gateway's bind, without starting moto for nothing
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))

        monkeypatch.setattr(runtime.LocalRuntime, "start", start)
        t = time.perf_counter()
        taken_now = runner.invoke(cli.cli, ["transcribe", str(media), "--port", str(port)])
        serve = runner.invoke(cli.cli, ["local", "serve", "--port", str(port)])
        monkeypatch.setattr(cli, "check_port", lambda port: None)  # taken between the check and the start
        taken_later = runner.invoke(cli.cli, ["transcribe", str(media), "--port", str(port)])
    assert time.perf_counter() - t < 3.0
    for out in (taken_now, serve, taken_later):
        assert out.exit_code == 2, out.output
        assert "error: RUNTIME_NOT_STARTED" in out.stderr and "Traceback" not in out.output
    assert "is taken" in taken_now.stderr and "starting the local runtime" not in taken_now.stderr
    assert "could not start" in taken_later.stderr


def test_help_explains_every_option(runner: CliRunner) -> None:
    out = runner.invoke(cli.cli, ["transcribe", "--help"])
    assert out.exit_code == 0
    text = " ".join(out.stdout.split())  # help is wrapped to the terminal's width
    for option in ("--api-key", "--output-dir", "--word-timestamps", "--verbose", "YTCAPTION_API_KEY",
                   "YTCAPTION_API", "with or without /v1", "--site-captions", "--task", "--port", "--webhook", "--diarize", "--speakers"):
        assert option in text, option
    # every option of every command has a line of help
    for name, command in {**cli.cli.commands, "local serve": cli.local.commands["serve"]}.items():
        for param in command.params:
            if param.param_type_name == "option":
                assert getattr(param, "help", None), f"{name} {param.opts}"


def test_the_top_level_help_lists_every_command_and_the_exit_codes(runner: CliRunner) -> None:
    out = runner.invoke(cli.cli, ["--help"])
    for command in ("transcribe", "status", "result", "cancel", "list", "models", "search", "info", "stats",
                    "local"):
        assert f"\n  {command} " in out.stdout, command
    assert "Exit status" in out.stdout and "2  a bad invocation" in out.stdout


def test_progress_off_a_terminal_is_one_line_per_stage_and_chunk_count() -> None:
    import io

    stream = io.StringIO()
    show = cli.JobProgress(stream)
    with show:
        for status, pct, done in [("QUEUED", 0, 0), ("NORMALIZING", 10, 0), ("NORMALIZING", 10, 0),
                                  ("TRANSCRIBING", 20, 0), ("TRANSCRIBING", 20, 0), ("TRANSCRIBING", 57, 4),
                                  ("TRANSCRIBING", 95, 8), ("COMPLETED", 100, 8)]:
            show({"status": status, "progress": pct, "chunks": {"total": 8 if pct >= 20 else 0, "done": done}})
    assert stream.getvalue().splitlines() == [
        "queued... 0%", "normalizing... 10%", "transcribing... 20% (0/8 chunks)",
        "transcribing... 57% (4/8 chunks)", "transcribing... 95% (8/8 chunks)", "completed... 100%"]


@pytest.fixture
def logging_restored() -> Iterator[None]:
    import logging

    import ytcaption.observability  # noqa: F401 - its Logger's handler is part of what is restored

    names = ("ytcaption", "moto", "werkzeug", "botocore", "localstack")
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate) for n in names}
    yield
    for n, (handlers, propagate) in saved.items():
        log = logging.getLogger(n)
        for h in log.handlers:
            if h not in handlers:
                h.close()
        log.handlers[:] = handlers
        log.propagate = propagate


def test_the_pipelines_json_warnings_go_to_a_file_unless_verbose(logging_restored: None,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    import json

    from aws_lambda_powertools import Logger

    from ytcaption.observability import logger

    assert cli.quiet_logs(verbose=True) is None
    path = cli.quiet_logs(verbose=False)
    assert path is not None
    logger.warning("chunk re-decoded", extra={"chunk": 3})
    Logger(service="ytcaption").warning("from a Lambda's own logger")  # as a handler module makes one
    for h in logger.handlers:
        h.flush()
    assert capfd.readouterr().err == ""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [x["message"] for x in lines] == ["chunk re-decoded", "from a Lambda's own logger"]
    path.unlink()


def test_a_port_its_last_run_left_in_time_wait_is_free() -> None:
    """The server binds with SO_REUSEADDR, so a port whose last run's connections linger in
    TIME_WAIT is free to it; the check said "taken" for a minute after a restart (the crash test
    failed so once in CI)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.sendall(b"x")
            accepted.close()  # the server closes first, as the gateway does after each answer: TIME_WAIT
            client.recv(1)
    cli.check_port(port)  # no error: nothing listens there
    from ytcaption_local.runtime import _port_if_free

    assert _port_if_free(port) == port
