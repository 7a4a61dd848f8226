"""Speech made offline from known text (espeak-ng), encoded into common containers by PyAV.

Tests, benchmarks and the bundled sample use it to measure accuracy against
the exact words spoken.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

PASSAGE = [
    "Captions make a video useful to people who cannot hear it, and to people who simply keep the sound off.",
    "A good caption appears when the words are spoken and leaves when the speaker moves on.",
    "The river runs past the old mill, where the children used to gather on summer evenings.",
    "Every morning the baker opens the shop before the sun rises over the hills.",
    "Scientists measure the temperature of the ocean at many places and many depths.",
    "The committee agreed to publish the report after a long and careful discussion.",
    "When the train arrived at the station, the passengers stepped onto the quiet platform.",
    "Music drifted from an open window while the neighbors watered their gardens.",
    "The library keeps its rarest books in a cool room with very little light.",
    "She wrote a letter to her brother describing the mountains she had crossed.",
    "Good software is tested often, and every failure teaches the team something new.",
    "The storm passed during the night, leaving the streets wet and shining.",
    "Farmers in the valley grow apples, pears and cherries on gentle slopes.",
    "A small boat carried the travelers across the lake to the island.",
    "The museum opened a new hall that tells the history of flight.",
    "Teachers asked the students to read the story aloud in small groups.",
    "The engineer checked every bridge on the road before the winter came.",
    "Clouds gathered above the harbor, and the fishing boats returned early.",
    "The garden was full of roses, tulips and tall yellow sunflowers.",
    "He opened the window and listened to the birds singing in the trees.",
    "The city council voted to build a park beside the river.",
    "Her grandmother told wonderful stories about the village where she grew up.",
    "The astronomer pointed the telescope at a distant and faint galaxy.",
    "Volunteers cleaned the beach and collected many bags of plastic.",
    "The orchestra practiced for weeks before the concert in the great hall.",
    "A gentle wind moved across the fields of golden wheat.",
    "The doctor explained the treatment slowly so that everyone could understand.",
    "They walked along the coast until the lighthouse came into view.",
    "The chef prepared a simple meal of bread, soup and fresh vegetables.",
    "Snow covered the mountains, and the valley below was silent and white.",
    "The pilot greeted the passengers and announced a smooth and pleasant flight.",
    "Children laughed as they chased each other around the playground.",
    "The painter mixed blue and green to capture the color of the sea.",
    "Our neighbors planted a row of young oak trees along the lane.",
    "The writer finished the final chapter late one rainy evening.",
    "A long line of people waited patiently outside the theater.",
    "The scientist recorded her observations carefully in a notebook.",
    "Bright lanterns lit the narrow streets during the autumn festival.",
    "The old clock in the tower still rings every hour of the day.",
    "Thank you for listening, and good luck with your captions.",
]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, path: Path, *, voice: str = "en-us", wpm: int = 165, gap_ms: int = 0) -> Path:
    """Speak ``text`` to a WAV file with espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    args = [exe, "-v", voice, "-s", str(wpm), "-w", str(path)]
    if gap_ms:
        args += ["-g", str(max(1, gap_ms // 10))]
    subprocess.run([*args, text], check=True, capture_output=True)
    return path


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        rate = s.sample_rate
        frames = [f.to_ndarray() for f in c.decode(s)]
    data = np.concatenate(frames, axis=1) if frames else np.zeros((1, 0))
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    return data.reshape(-1).astype(np.float32), int(rate)


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.float32)


def speech_track(
    sentences: list[str], workdir: Path, *, pause_s: float = 0.8, wpm: int = 165
) -> tuple[np.ndarray, int]:
    """Sentences spoken one after another with pauses between them."""
    parts: list[np.ndarray] = []
    rate = 22050
    for i, sentence in enumerate(sentences):
        wav = synthesize(sentence, workdir / f"s{i}.wav", wpm=wpm)
        samples, rate = read_audio(wav)
        parts += [samples, silence(pause_s, rate)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32), rate


def encode(samples: np.ndarray, rate: int, path: Path, *, gain_db: float = 0.0, video: bool = False) -> Path:
    """Encode mono float samples by the file's extension: wav, mp3, m4a, webm, ogg, flac, mp4."""
    codecs = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".m4a": "aac", ".webm": "libopus",
              ".ogg": "libopus", ".flac": "flac", ".mp4": "aac"}
    codec = codecs[path.suffix]
    out_rate = 48000 if codec in ("libopus",) else rate
    x = samples * np.float32(10 ** (gain_db / 20))
    with av.open(str(path), "w") as c:
        vstream: Any = None
        if video:
            vstream = c.add_stream("libx264", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream: Any = c.add_stream(codec, rate=out_rate)
        astream.layout = "mono"
        resampler = av.AudioResampler(format=astream.format.name if astream.format else "s16",
                                      layout="mono", rate=out_rate)
        block = 1024
        for i in range(0, len(x), block):
            frame = av.AudioFrame.from_ndarray(x[None, i : i + block].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            for rf in resampler.resample(frame):
                for packet in astream.encode(rf):
                    c.mux(packet)
        for rf in resampler.resample(None):
            for packet in astream.encode(rf):
                c.mux(packet)
        for packet in astream.encode(None):
            c.mux(packet)
        if vstream is not None:
            frames = int(len(x) / rate * 10) + 1
            img = np.zeros((48, 64, 3), np.uint8)
            for k in range(frames):
                img[:] = (k * 7) % 255
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = k
                for packet in vstream.encode(vf):
                    c.mux(packet)
            for packet in vstream.encode(None):
                c.mux(packet)
    return path
