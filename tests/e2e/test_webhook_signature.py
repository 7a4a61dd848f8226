"""Webhooks are signed (issue 11, low): HMAC-SHA256 over the timestamp and the body with the
deployment's key; the verification snippet in README is the one run here."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.servers import loopback_server
from ytcaption_local.cli import Client
from ytcaption_local.runtime import LocalRuntime
from ytcaption_local.template import ROOT

pytestmark = pytest.mark.e2e


def readme_verifier() -> Any:
    """The ``verify`` function README shows receivers."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Webhook signatures"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "README's webhook section has no Python snippet"
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)  # noqa: S102 - our own README's snippet, under test
    return scope["verify"]


def test_webhooks_are_signed_and_the_readme_snippet_verifies_them(runtime: LocalRuntime, client: Client) -> None:
    verify = readme_verifier()
    with loopback_server() as receiver:
        receiver.serve("/hook", b"", "text/plain")
        job = client.json("POST", "/v1/uploads", {"filename": "a.mp3", "content_type": "audio/mpeg",
                                                  "size_bytes": 10, "webhook_url": receiver.url("/hook")})
        client.json("DELETE", f"/v1/transcriptions/{job['job_id']}")  # a cancel is announced at once
        deadline = time.monotonic() + 10
        while not receiver.posts and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    header = post["headers"]["x-ytcaption-signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(runtime.webhook_secret, header, post["raw"]) is True
    # a changed body, another key, or an old timestamp do not verify
    assert verify(runtime.webhook_secret, header, post["raw"] + b" ") is False
    assert verify("another-key", header, post["raw"]) is False
    old = "t=1000000000," + header.split(",", 1)[1]
    assert verify(runtime.webhook_secret, old, post["raw"]) is False
