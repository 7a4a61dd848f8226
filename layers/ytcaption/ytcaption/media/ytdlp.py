"""yt-dlp settings for downloads from the cloud: cookies, proxy, extractor arguments, pacing.

From AWS address ranges YouTube often answers anonymous requests with a bot
check or a sign-in wall. These settings are what helps, and every function that
runs yt-dlp (download, site captions, search and media info) uses them:

- ``YTDLP__COOKIES_SECRET_ARN``: a Secrets Manager secret whose string is a
  Netscape ``cookies.txt``. Fetched once per process (the first call in a cold
  Lambda), written to ``/tmp`` with mode 0600, passed to yt-dlp as its cookie
  file, and never logged.
- ``YTDLP__PROXY_SECRET_ARN``: a secret holding the outbound proxy URL
  (``http://user:pass@host:port`` or ``socks5://...``; a JSON ``{"url": ...}``
  works too). ``YTDLP__PROXY_URL`` sets one directly (local use; a URL with a
  password belongs in the secret).
- ``YTDLP__EXTRACTOR_ARGS``: yt-dlp's ``--extractor-args`` syntax, entries
  separated by spaces: ``youtube:player_client=web_safari,android_vr``.
- ``YTDLP__SLEEP_REQUESTS_S`` (between extraction requests),
  ``YTDLP__SLEEP_INTERVAL_S`` / ``YTDLP__MAX_SLEEP_INTERVAL_S`` (a random pause
  before each download): request pacing.

No module here imports yt-dlp; the API function's zip does not carry it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, field_validator

from ytcaption.domain.errors import SettingUnusable

#: What an operator sets for each kind of refusal (named in SOURCE_BLOCKED messages).
COOKIES_HINT = "a cookies file (YTDLP__COOKIES_SECRET_ARN; template parameter YtdlpCookiesSecretArn)"
PROXY_HINT = "an outbound proxy (YTDLP__PROXY_SECRET_ARN; template parameter YtdlpProxySecretArn)"
CLIENT_HINT = "another player client (YTDLP__EXTRACTOR_ARGS, e.g. youtube:player_client=web_safari)"


class YtdlpSettings(BaseModel):
    cookies_secret_arn: str = ""
    proxy_secret_arn: str = ""
    proxy_url: str = ""
    extractor_args: str = ""
    sleep_requests_s: float = 0.0
    sleep_interval_s: float = 0.0
    max_sleep_interval_s: float = 0.0

    @field_validator("extractor_args")
    @classmethod
    def _args(cls, v: str) -> str:
        parse_extractor_args(v)  # raises ValueError with the offending entry
        return v

    @field_validator("sleep_requests_s", "sleep_interval_s", "max_sleep_interval_s")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0 or v > 60:
            raise ValueError("pauses are 0-60 seconds")
        return v


def parse_extractor_args(text: str) -> dict[str, dict[str, list[str]]]:
    """``"youtube:player_client=web,android;lang=en youtubetab:skip=webpage"`` -> yt-dlp's dict."""
    out: dict[str, dict[str, list[str]]] = {}
    for entry in text.split():
        ie, sep, rest = entry.partition(":")
        if not sep or not ie or not rest:
            raise ValueError(f"extractor argument {entry!r}: use IE:KEY=VALUE[,VALUE][;KEY=VALUE]")
        args = out.setdefault(ie.lower(), {})
        for pair in rest.split(";"):
            key, eq, values = pair.partition("=")
            if not key.strip() or not eq:
                raise ValueError(f"extractor argument {entry!r}: {pair!r} is not KEY=VALUE")
            args[key.strip().replace("-", "_")] = [v.strip() for v in values.split(",")]
    return out


_lock = threading.Lock()
_resolved: dict[tuple[str, ...], dict[str, Any]] = {}


def _secret_string(arn: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from ytcaption.adapters import aws

    try:
        value = aws.client("secretsmanager").get_secret_value(SecretId=arn)
    except (ClientError, BotoCoreError) as exc:
        # the name of the setting, never the secret
        raise SettingUnusable(f"could not read the yt-dlp secret named by a YTDLP__*_SECRET_ARN setting "
                                 f"({type(exc).__name__})") from None
    text = value.get("SecretString")
    if text is None:
        text = bytes(value.get("SecretBinary") or b"").decode("utf-8")
    return str(text)


def _proxy_from_secret(text: str) -> str:
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            raise SettingUnusable("the proxy secret is neither a URL nor JSON {\"url\": ...}") from None
        text = str(doc.get("url") or doc.get("proxy") or "")
    if "://" not in text:
        raise SettingUnusable("the proxy secret holds no proxy URL (scheme://host:port)")
    return text


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only (0600, directory 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # also when the file existed with other bits


def secret_options(settings: YtdlpSettings, tmp_dir: str | None = None) -> dict[str, Any]:
    """The secret-backed yt-dlp options (cookie file, proxy), fetched once per process."""
    key = (settings.cookies_secret_arn, settings.proxy_secret_arn, settings.proxy_url, tmp_dir or "")
    with _lock:
        cached = _resolved.get(key)
        if cached is not None:
            return dict(cached)
        opts: dict[str, Any] = {}
        if settings.cookies_secret_arn:
            name = hashlib.sha256(settings.cookies_secret_arn.encode()).hexdigest()[:16]
            path = Path(tmp_dir or tempfile.gettempdir()) / "ytcaption-ytdlp" / f"cookies-{name}.txt"
            write_private(path, _secret_string(settings.cookies_secret_arn))
            opts["cookiefile"] = str(path)
        if settings.proxy_secret_arn:
            opts["proxy"] = _proxy_from_secret(_secret_string(settings.proxy_secret_arn))
        elif settings.proxy_url:
            opts["proxy"] = settings.proxy_url
        _resolved[key] = opts
        return dict(opts)


def forget_secrets() -> None:
    """Drop the per-process copies (tests; a rotated secret is picked up by a new process)."""
    with _lock:
        _resolved.clear()


def ytdlp_options(settings: YtdlpSettings, tmp_dir: str | None = None) -> dict[str, Any]:
    """yt-dlp options common to every use: secrets, extractor arguments, pacing."""
    opts = secret_options(settings, tmp_dir)
    if settings.extractor_args:
        opts["extractor_args"] = parse_extractor_args(settings.extractor_args)
    if settings.sleep_requests_s:
        opts["sleep_interval_requests"] = settings.sleep_requests_s
    if settings.sleep_interval_s:
        opts["sleep_interval"] = settings.sleep_interval_s
        opts["max_sleep_interval"] = max(settings.max_sleep_interval_s, settings.sleep_interval_s)
        opts["sleep_interval_subtitles"] = settings.sleep_interval_s
    return opts


def merge_extractor_args(base: dict[str, Any], extra: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """``base`` options with ``extra`` extractor arguments added (the operator's win on conflicts)."""
    merged: dict[str, dict[str, list[str]]] = {k: dict(v) for k, v in extra.items()}
    for ie, args in (base.get("extractor_args") or {}).items():
        merged.setdefault(ie, {}).update(args)
    return {**base, "extractor_args": merged}
