"""The first run of the CLI: usage errors are caught before the local runtime starts, exit 2."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from ytcaption_local import cli


@pytest.fixture
def media(tmp_path: Path) -> Path:
    path = tmp_path / "talk.mp3"
    path.write_bytes(b"ID3")
    return path


def test_the_api_url_works_with_or_without_v1() -> None:
    for url in ("http://127.0.0.1:3791", "http://127.0.0.1:3791/", "http://127.0.0.1:3791/v1",
                "http://127.0.0.1:3791/v1/"):
        assert cli.Client(url).base == "http://127.0.0.1:3791", url
    assert cli.Client("https://abc.execute-api.us-east-1.amazonaws.com/v1").base == \
        "https://abc.execute-api.us-east-1.amazonaws.com"


@pytest.mark.parametrize("argv", [
    ["transcribe", "MEDIA", "--format", "srt,docx"],
    ["transcribe", "MEDIA", "--format", ","],
    ["transcribe", "MEDIA", "--port", "70000"],
    ["transcribe", "/no/such/file.mp3"],
])
def test_bad_options_exit_2_before_the_runtime_starts(argv: list[str], media: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    t = time.perf_counter()
    code = cli.main([str(media) if a == "MEDIA" else a for a in argv])
    assert code == 2 and time.perf_counter() - t < 1.0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "starting the local runtime" not in err


def test_a_command_that_needs_an_api_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("YTCAPTION_API", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["status", "0" * 32])
    assert exit_.value.code == 2 and "--api" in capsys.readouterr().err


def test_argparse_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["transcribe", "x.mp3", "--task", "summarize"])
    assert exit_.value.code == 2


def test_a_taken_port_is_a_usage_error_not_a_traceback(media: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from ytcaption_local import runtime

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        def start(self: object) -> None:  # the gateway's bind, without starting moto for nothing
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))

        monkeypatch.setattr(runtime.LocalRuntime, "start", start)
        monkeypatch.delenv("YTCAPTION_API", raising=False)
        code = cli.main(["transcribe", str(media), "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert "could not start" in err and "Traceback" not in err


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--help"])
    out = capsys.readouterr().out
    for option in ("--api-key", "--output-dir", "--word-timestamps", "--verbose", "YTCAPTION_API_KEY"):
        assert option in out, option
