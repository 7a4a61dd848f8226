"""A loopback video site (pages yt-dlp's generic extractor reads, caption tracks) and a
loopback HTTP proxy that counts the requests routed through it."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.servers import LoopbackServer

EN_VTT = """WEBVTT

00:00:00.500 --> 00:00:03.000
Captions made by people.

00:00:03.200 --> 00:00:06.000
They say what the speaker <i>means</i>.
"""

DE_VTT = """WEBVTT

00:00:00.500 --> 00:00:03.000
Untertitel von Menschen.
"""


def video_page(title: str, media: str, tracks: dict[str, str]) -> bytes:
    """An HTML5 page: yt-dlp's generic extractor reads the <video> and its <track>s."""
    rows = "".join(f'<track kind="captions" srclang="{lang}" label="{lang}" src="{src}">'
                   for lang, src in tracks.items())
    return (f'<html><head><meta property="og:title" content="{title}"></head><body>'
            f'<video controls><source src="{media}" type="audio/mpeg">{rows}</video></body></html>').encode()


def json_ld_page(title: str, media: str, duration_iso: str, thumbnail: str) -> bytes:
    """A page with a schema.org VideoObject: the generic extractor gives duration and thumbnail."""
    doc = {"@context": "https://schema.org", "@type": "VideoObject", "name": title, "description": "a talk",
           "duration": duration_iso, "contentUrl": media, "thumbnailUrl": [thumbnail],
           "uploadDate": "2024-03-05", "author": {"@type": "Person", "name": "Ada"}}
    return (f'<html><head><title>{title}</title><script type="application/ld+json">{json.dumps(doc)}</script>'
            f"</head><body></body></html>").encode()


def add_site(server: LoopbackServer, audio: bytes, *, audio_status: int = 200) -> dict[str, str]:
    """Pages on ``server``: ``captioned`` (en + de tracks), ``english`` (en only), ``bare`` (no tracks)."""
    server.serve("/site/talk.mp3", audio, "audio/mpeg", status=audio_status)
    server.serve("/site/en.vtt", EN_VTT.encode(), "text/vtt")
    server.serve("/site/de.vtt", DE_VTT.encode(), "text/vtt")
    pages = {
        "captioned": video_page("Captioned talk", "talk.mp3", {"en": "en.vtt", "de": "de.vtt"}),
        "english": video_page("English talk", "talk.mp3", {"en": "en.vtt"}),
        "bare": video_page("Bare talk", "talk.mp3", {}),
    }
    return {name: server.serve(f"/site/{name}.html", body, "text/html") for name, body in pages.items()}


@dataclass
class CountingProxy:
    port: int = 0
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def counting_proxy() -> Iterator[CountingProxy]:
    """A forward proxy for http:// URLs (absolute-form requests); records each URL it forwards."""
    state = CountingProxy()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            target = urlsplit(self.path)
            if target.scheme != "http" or not target.hostname:
                self.send_error(400, "absolute http:// URLs only")
                return
            with lock:
                state.requests.append(self.path)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("proxy-connection", "proxy-authorization", "connection")}
            headers["Via"] = "1.1 counting-proxy"
            conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
            try:
                conn.request(self.command, target.path + (f"?{target.query}" if target.query else ""),
                             headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            finally:
                conn.close()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
