"""What the ``ytcaption`` commands share: the API options, the error display and the exit codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ytcaption_local.api_client import ApiError, Client

FORMATS = ("json", "srt", "vtt", "txt")
EXIT_FAILED, EXIT_USAGE = 1, 2
F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Failed(click.ClickException):
    """The API or the job said no: ``error: CODE: message``, exit 1."""

    exit_code = EXIT_FAILED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)

    @staticmethod
    def of(exc: ApiError) -> Failed:
        # no answer, or an API key the gateway refuses: the invocation is wrong, not the request
        unusable = exc.status == 0 or exc.code == "INVALID_API_KEY"
        return (Unusable if unusable else Failed)(exc.code, exc.message)


class Unusable(Failed):
    """The API cannot be used as given (unreachable, key refused) or the local runtime did not start: exit 2."""

    exit_code = EXIT_USAGE


# --- options shared by the commands --------------------------------------------------------


def api_options(f: F) -> F:
    f = click.option("--api-key", envvar="YTCAPTION_API_KEY", show_envvar=True, metavar="KEY",
                     help="The API key, sent as X-Api-Key. Not needed when transcribe starts the local runtime "
                          "(it makes its own).")(f)
    return click.option("--api", "api", envvar="YTCAPTION_API", show_envvar=True, metavar="URL",
                        help="The API's base URL: the stage URL, with or without /v1 (both work). "
                             "Without it, transcribe starts the embedded local runtime; other commands need it.")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")(f)


def client_for(api: str | None, api_key: str | None) -> Client:
    if not api:
        raise click.UsageError("--api URL (or YTCAPTION_API) is required for this command")
    return Client(api, api_key=api_key)


def run_api(fn: Callable[..., int | None]) -> int:
    """Run an API call, turning its refusal into ``error: CODE: message`` and the exit code."""
    try:
        return int(fn() or 0)
    except ApiError as exc:
        raise Failed.of(exc) from None
