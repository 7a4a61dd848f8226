"""Decode any common container with PyAV and normalize it for speech recognition.

One decode pass runs a filter graph (mono downmix, high-pass, EBU R128
loudness measurement, resample to 16 kHz); one gain then brings the integrated
loudness to the target, with a soft limiter on the rare peaks it pushes over
full scale. That is loudnorm's *linear* mode: the speech dynamics the model
was trained on are kept, and it costs ~0.1 s per 3 minutes where single-pass
``loudnorm`` (dynamic, upsampling to 192 kHz) costs ~2.5 s.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ytcaption.domain.errors import UnsupportedMedia

SAMPLE_RATE = 16_000
TARGET_LUFS = -20.0
MAX_GAIN_DB = 35.0
LIMIT = 0.97


@dataclass(frozen=True)
class Probe:
    duration_s: float | None
    container: str
    codec: str
    sample_rate: int
    channels: int


@dataclass
class NormalizedAudio:
    samples: np.ndarray  # float32, mono, 16 kHz
    input_lufs: float | None
    gain_db: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


#: FFmpeg reads the file through a Python file object and may open nothing else: no
#: protocol is on its whitelist, so a playlist or reference inside the media (HLS
#: segments, ``concat:``, ``subfile,``, ``file:``, ``http:``, ``data:``) cannot make it
#: read a local file or reach the network. (MP4 external references, ``drefs``, are
#: off by default.) Applies to uploads and downloads alike: both are decoded here.
OPEN_OPTIONS = {"protocol_whitelist": "none"}
_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"<?xml", b"<MPD", b"[playlist]")


@contextlib.contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for decoding with nothing but its own bytes reachable."""
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(_PLAYLIST_MAGIC):
            raise UnsupportedMedia("playlists and manifests are not accepted; send the media file itself")
        fh.seek(0)
        with av.open(fh, mode="r", options=OPEN_OPTIONS) as container:
            yield container


def probe(path: str | Path) -> Probe:
    """What the file is, refusing anything without a decodable audio stream."""
    try:
        with open_media(path) as container:
            if not container.streams.audio:
                raise UnsupportedMedia("the file has no audio stream")
            stream = container.streams.audio[0]
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            # decode one frame: headers alone do not prove the audio is readable
            for _ in container.decode(stream):
                break
            else:
                raise UnsupportedMedia("the audio stream holds no decodable audio")
            return Probe(
                duration_s=duration,
                container=container.format.name,
                codec=stream.codec_context.name,
                sample_rate=int(stream.sample_rate or 0),
                channels=int(stream.channels or 0),
            )
    except UnsupportedMedia:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise UnsupportedMedia(f"not a media file this service can decode ({type(exc).__name__})") from exc


def _drain(graph: av.filter.Graph, out: list[np.ndarray], meta: dict[str, str]) -> None:
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
        out.append(frame.to_ndarray().reshape(-1))
        if frame.metadata:
            meta.update(frame.metadata)


def decode(path: str | Path, *, highpass_hz: int = 60) -> tuple[np.ndarray, float | None]:
    """16 kHz mono float32 samples and the input's integrated loudness (LUFS)."""
    chunks: list[np.ndarray] = []
    meta: dict[str, str] = {}
    try:
        with open_media(path) as container:
            if not container.streams.audio:
                raise UnsupportedMedia("the file has no audio stream")
            stream = container.streams.audio[0]
            graph = av.filter.Graph()
            # aformat first: WAVs with an unspecified channel layout otherwise pass
            # through highpass unchanged (see FACTS.md)
            nodes = [
                graph.add_abuffer(template=stream),
                graph.add("aformat", "sample_fmts=fltp:channel_layouts=mono"),
                graph.add("highpass", f"f={highpass_hz}"),
                graph.add("ebur128", "metadata=1"),
                graph.add("aresample", f"{SAMPLE_RATE}"),
                graph.add("aformat", f"sample_fmts=flt:channel_layouts=mono:sample_rates={SAMPLE_RATE}"),
                graph.add("abuffersink"),
            ]
            for a, b in itertools.pairwise(nodes):
                a.link_to(b)
            graph.configure()
            for frame in container.decode(stream):
                graph.push(frame)
                _drain(graph, chunks, meta)
            graph.push(None)
            _drain(graph, chunks, meta)
    except UnsupportedMedia:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise UnsupportedMedia(f"the audio could not be decoded ({type(exc).__name__})") from exc
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    lufs: float | None = None
    with contextlib.suppress(KeyError, ValueError):
        lufs = float(meta["lavfi.r128.I"])
    if lufs is not None and (math.isnan(lufs) or lufs <= -70.0):
        lufs = None  # silence: nothing to normalize against
    return samples, lufs


def normalize(samples: np.ndarray, lufs: float | None, target_lufs: float = TARGET_LUFS) -> tuple[np.ndarray, float]:
    """One gain to the target loudness, soft-limited above ``LIMIT``."""
    if lufs is None or samples.size == 0:
        return samples, 0.0
    gain_db = float(np.clip(target_lufs - lufs, -MAX_GAIN_DB, MAX_GAIN_DB))
    out = samples * np.float32(10 ** (gain_db / 20))
    over = np.abs(out) > LIMIT
    if over.any():
        mag = np.abs(out[over])
        out[over] = np.sign(out[over]) * (LIMIT + (1 - LIMIT) * np.tanh((mag - LIMIT) / (1 - LIMIT)))
    return out.astype(np.float32, copy=False), gain_db


def load_normalized(path: str | Path, target_lufs: float = TARGET_LUFS) -> NormalizedAudio:
    samples, lufs = decode(path)
    out, gain = normalize(samples, lufs, target_lufs)
    return NormalizedAudio(samples=out, input_lufs=lufs, gain_db=gain)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    Path(path).write_bytes(wav_bytes(samples, rate))


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM mono WAV: what chunks are stored as (half the bytes of float32)."""
    import io

    buf = io.BytesIO()
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def read_wav(data: bytes | str | Path) -> np.ndarray:
    """Float32 samples of a 16-bit mono WAV written by :func:`wav_bytes`."""
    import io

    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else str(data)
    with wave.open(src, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise UnsupportedMedia("chunk is not 16-bit mono PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (pcm.astype(np.float32) / 32767.0).astype(np.float32)
