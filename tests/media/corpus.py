"""Long, varied media made offline from known text, for the benchmarks and the fidelity tests.

Real media are not one clean voice: people take turns (inside one chunk), a
passage is recorded far quieter, music or noise runs under speech or alone,
there are long silences and hard edits. Each :class:`Case` is built from those
pieces with two independent speech generators (espeak-ng's formant voices and
flite's diphone/cluster-unit voices), so a fix that only suits one synthesizer
shows up as a regression on the other. Everything is 16 kHz mono float32 and
deterministic for a given seed; the reference text and the timeline of every
utterance are returned with the audio.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tests.media.speech import PASSAGE, read_audio

RATE = 16000


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak" or "flite"
    name: str
    pitch: int = 50  # espeak only (0-99)
    wpm: int = 165  # espeak only

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}:{self.pitch}:{self.wpm}"


#: Distinct voices: two synthesizers, male and female, several accents, pitches and rates.
VOICES = [
    Voice("espeak", "en-us", pitch=45, wpm=165),
    Voice("flite", "slt"),
    Voice("espeak", "en-gb-scotland", pitch=25, wpm=150),
    Voice("flite", "rms"),
    Voice("espeak", "en-gb-x-rp", pitch=75, wpm=180),
    Voice("flite", "awb"),
]


def flite_available() -> bool:
    return shutil.which("flite") is not None


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return samples.astype(np.float32)
    n = round(len(samples) * RATE / rate)
    x = np.linspace(0, len(samples) - 1, n)
    return np.interp(x, np.arange(len(samples)), samples).astype(np.float32)


def say(text: str, voice: Voice, workdir: Path) -> np.ndarray:
    """``text`` spoken by ``voice``, 16 kHz mono, cached on disk by content."""
    key = hashlib.sha256(f"{voice.label}|{text}".encode()).hexdigest()[:24]
    cached = workdir / f"{key}.npy"
    if cached.exists():
        return np.load(cached)
    wav = workdir / f"{key}.wav"
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.wpm), "-w", str(wav), text]
    elif voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "-t", text, "-o", str(wav)]
    else:
        raise ValueError(voice.engine)
    subprocess.run(cmd, check=True, capture_output=True)
    samples, rate = read_audio(wav)
    out = _resample(samples, rate)
    peak = float(np.abs(out).max()) or 1.0
    out = (out / peak * 0.5).astype(np.float32)  # the two engines differ by ~10 dB: level them
    np.save(cached, out)
    wav.unlink()
    return out


# --- text: the passage plus deterministic, varied sentences ----------------------------

_SUBJECTS = ["the old farmer", "a young pilot", "my neighbor", "the city council", "our teacher", "the small team",
             "a tired traveler", "the museum guide", "her brother", "the night nurse", "a local baker",
             "the river captain", "two students", "the sound engineer", "a careful doctor", "the mayor"]
_VERBS = ["painted", "repaired", "described", "carried", "measured", "planted", "visited", "studied", "ordered",
          "cleaned", "explained", "photographed", "collected", "delivered", "remembered", "borrowed"]
_OBJECTS = ["a wooden bridge", "the broken radio", "seven green bottles", "the northern garden", "an empty barn",
            "the winter schedule", "a heavy suitcase", "the village map", "three silver keys", "the kitchen window",
            "a long letter", "the harbor lights", "a basket of plums", "the concert program", "the stone wall",
            "a box of candles"]
_TAILS = ["before the storm arrived", "after a long and quiet morning", "near the railway station",
          "while the children were asleep", "during the autumn festival", "on the far side of the valley",
          "because nobody else would do it", "with a little help from friends", "at the end of the week",
          "under a cloudy sky", "without saying a single word", "in the middle of the market square"]


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences: the passage first, then generated ones (no sentence twice)."""
    rng = random.Random(seed)  # noqa: S311 - test media, not secrets
    out = list(PASSAGE[: min(n, len(PASSAGE))])
    seen = set(out)
    while len(out) < n:
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
        s = s[0].upper() + s[1:]
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


# --- non-speech -------------------------------------------------------------------------


def pink_noise(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * RATE)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), n)
    return (x / (np.sqrt(np.mean(x**2)) or 1.0) * rms).astype(np.float32)


def music(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    """A chord progression with harmonics, a bass line and a hi-hat: tonal, rhythmic, not speech."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros(n, np.float64)
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    beat = 0.5
    for k in range(int(seconds / 2) + 1):
        a, b = int(k * 2 * RATE), min(n, int((k + 1) * 2 * RATE))
        if a >= n:
            break
        tt = t[a:b] - t[a]
        env = np.minimum(1.0, tt * 20) * np.exp(-tt * 0.8)
        for f0 in chords[k % 4]:
            for h, amp in ((1, 1.0), (2, 0.4), (3, 0.2)):
                out[a:b] += amp * env * np.sin(2 * np.pi * f0 * h * tt)
        out[a:b] += 0.8 * env * np.sin(2 * np.pi * chords[k % 4][0] / 2 * tt)
    for k in range(int(seconds / beat)):
        a = int(k * beat * RATE)
        m = min(n - a, int(0.05 * RATE))
        if m > 0:
            out[a : a + m] += 0.6 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.01 * RATE))
    return (out / (np.sqrt(np.mean(out**2)) or 1.0) * rms).astype(np.float32)


# --- a case -----------------------------------------------------------------------------


@dataclass
class Utterance:
    start: float
    end: float
    text: str
    voice: str


@dataclass
class Case:
    name: str
    what: str
    samples: np.ndarray
    utterances: list[Utterance] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE

    @property
    def reference(self) -> str:
        return " ".join(u.text for u in self.utterances)

    def speech_regions(self) -> list[tuple[float, float]]:
        return [(u.start, u.end) for u in self.utterances]


class Builder:
    """Appends speech and non-speech on one timeline, recording what was said when."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.parts: list[np.ndarray] = []
        self.at = 0.0
        self.utterances: list[Utterance] = []
        self.beds: list[tuple[float, float, np.ndarray]] = []

    def speak(self, text: str, voice: Voice, *, gain_db: float = 0.0, cut_at_word: int | None = None) -> None:
        audio = say(text, voice, self.workdir)
        spoken = text
        if cut_at_word is not None:
            # a hard edit in the middle of word ``cut_at_word``: keep what came before it
            words = text.split()
            before = say(" ".join(words[:cut_at_word]), voice, self.workdir) if cut_at_word else np.zeros(0)
            through = say(" ".join(words[: cut_at_word + 1]), voice, self.workdir)
            cut = (len(before) + len(through)) // 2
            audio = through[:cut]
            spoken = " ".join(words[:cut_at_word])
        audio = audio * np.float32(10 ** (gain_db / 20))
        # trim the synthesizers' own leading/trailing silence so the timeline is exact
        active = np.flatnonzero(np.abs(audio) > 1e-3 * 10 ** (gain_db / 20))
        if active.size:
            audio = audio[max(0, active[0] - 160) : active[-1] + 160]
        start = self.at
        self.parts.append(audio.astype(np.float32))
        self.at += len(audio) / RATE
        if spoken:
            self.utterances.append(Utterance(round(start, 3), round(self.at, 3), spoken, voice.label))

    def add(self, audio: np.ndarray, text: str, speaker: str, *, gain_db: float = 0.0) -> None:
        """A recording whose transcript is known."""
        start = self.at
        self.parts.append((audio * np.float32(10 ** (gain_db / 20))).astype(np.float32))
        self.at += len(audio) / RATE
        self.utterances.append(Utterance(round(start, 3), round(self.at, 3), text, speaker))

    def pause(self, seconds: float) -> None:
        self.parts.append(np.zeros(int(seconds * RATE), np.float32))
        self.at += int(seconds * RATE) / RATE

    def insert(self, audio: np.ndarray) -> None:
        """Non-speech alone on the timeline (music, noise)."""
        self.parts.append(audio.astype(np.float32))
        self.at += len(audio) / RATE

    def bed(self, start: float, end: float, make: Callable[[float], np.ndarray]) -> None:
        """Something under the speech from ``start`` to ``end`` (seconds)."""
        self.beds.append((start, end, make(end - start)))

    def build(self, name: str, what: str) -> Case:
        samples = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        for start, _end, audio in self.beds:
            a = int(start * RATE)
            b = min(len(samples), a + len(audio))
            samples[a:b] += audio[: b - a]
        peak = float(np.abs(samples).max()) or 1.0
        if peak > 0.99:
            samples = samples / peak * 0.99
        return Case(name, what, samples.astype(np.float32), self.utterances)


def _turns(b: Builder, text: list[str], voices: list[Voice], rng: random.Random, *, gap: tuple[float, float],
           gain: Callable[[int], float] = lambda i: 0.0, turn: tuple[int, int] = (1, 3)) -> None:
    i, v = 0, 0
    while i < len(text):
        k = rng.randint(*turn)
        for sentence in text[i : i + k]:
            b.speak(sentence, voices[v % len(voices)], gain_db=gain(i))
            b.pause(rng.uniform(*gap))
            i += 1
        v += 1 + rng.randint(0, len(voices) - 2) if len(voices) > 2 else 1


def case_voices(workdir: Path, minutes: float = 10.0, seed: int = 1) -> Case:
    """Four voices of two synthesizers taking turns with short gaps: voice changes inside chunks."""
    rng = random.Random(seed)  # noqa: S311 - test media, not secrets
    b = Builder(workdir)
    text = sentences(int(minutes * 60 / 3.6), seed)
    _turns(b, text, VOICES[:4], rng, gap=(0.25, 0.7))
    return b.build("voices", f"{len(VOICES[:4])} voices (espeak-ng + flite) alternating, gaps 0.25-0.7 s")


def case_levels(workdir: Path, minutes: float = 10.0, seed: int = 2) -> Case:
    """Two voices; the middle third 20 dB quieter, a stretch 6 dB hotter."""
    rng = random.Random(seed)  # noqa: S311 - test media, not secrets
    b = Builder(workdir)
    text = sentences(int(minutes * 60 / 3.6), seed)
    third = len(text) // 3

    def gain(i: int) -> float:
        return -20.0 if third <= i < 2 * third else (6.0 if i >= len(text) - 10 else 0.0)

    _turns(b, text, [VOICES[1], VOICES[2]], rng, gap=(0.4, 1.2), gain=gain, turn=(2, 4))
    return b.build("levels", "2 voices; middle third 20 dB quieter, last 10 sentences +6 dB")


def case_beds(workdir: Path, minutes: float = 10.0, seed: int = 3) -> Case:
    """30 s of noise then speech; music under speech; 40 s of music alone; noise under speech."""
    rng = random.Random(seed)  # noqa: S311 - test media, not secrets
    b = Builder(workdir)
    text = sentences(int(minutes * 60 / 4.2), seed)
    q = len(text) // 4
    b.insert(pink_noise(30.0, 0.03, seed))  # the intro that makes Silero drop the first sentence
    _turns(b, text[:q], [VOICES[0], VOICES[3]], rng, gap=(0.4, 1.0))
    m0 = b.at
    _turns(b, text[q : 2 * q], [VOICES[1], VOICES[4]], rng, gap=(0.4, 1.0))
    b.bed(m0, b.at, lambda s: music(s, 0.03, seed))
    b.insert(music(40.0, 0.1, seed + 1))  # music alone: no caption may come from it
    n0 = b.at
    _turns(b, text[2 * q : 3 * q], [VOICES[2], VOICES[5]], rng, gap=(0.4, 1.0))
    b.bed(n0, b.at, lambda s: pink_noise(s, 0.02, seed + 2))
    _turns(b, text[3 * q :], [VOICES[0], VOICES[1]], rng, gap=(0.4, 1.0))
    return b.build("beds", "30 s noise intro, music under speech, 40 s music alone, noise under speech")


def case_gaps(workdir: Path, minutes: float = 10.0, seed: int = 4) -> Case:
    """Long silences (45 s, 31 s), hard cuts mid-word into another voice, rapid turns."""
    rng = random.Random(seed)  # noqa: S311 - test media, not secrets
    b = Builder(workdir)
    text = sentences(int(minutes * 60 / 4.0), seed)
    third = len(text) // 3
    _turns(b, text[:third], [VOICES[0], VOICES[1], VOICES[2]], rng, gap=(0.1, 0.5))
    b.pause(45.0)
    for k, sentence in enumerate(text[third : 2 * third]):
        words = sentence.split()
        if k % 4 == 3 and len(words) > 4:
            b.speak(sentence, VOICES[k % 6], cut_at_word=rng.randint(2, len(words) - 2))  # hard edit
        else:
            b.speak(sentence, VOICES[k % 6])
            b.pause(rng.uniform(0.2, 0.8))
    b.pause(31.0)
    _turns(b, text[2 * third :], [VOICES[3], VOICES[4], VOICES[5]], rng, gap=(0.1, 0.5))
    return b.build("gaps", "silences of 45 s and 31 s, hard cuts mid-word into another voice, fast turns")


def case_clean(workdir: Path, seed: int = 0) -> Case:
    """The 3.4-minute single-voice passage the first bench measured (for continuity)."""
    b = Builder(workdir)
    for s in PASSAGE:
        b.speak(s, VOICES[0])
        b.pause(0.9)
    return b.build("clean", "one espeak-ng voice, 40 sentences, 0.9 s pauses")


#: Real recordings from Debian packages (installed by scripts/ensure-system-deps):
#: LibriVox readings with transcripts (public domain; pocketsphinx-testdata),
#: a voice actor's prompts with transcripts (Allison Smith, CC-BY-SA-3.0;
#: asterisk-core-sounds-en-wav) and music (CC-BY-SA-3.0; asterisk-moh-opsound-wav).
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
PROMPT_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
MUSIC = Path("/usr/share/asterisk/moh")


def real_available() -> bool:
    return LIBRIVOX.is_dir() and PROMPTS.is_dir() and PROMPT_TEXT.exists() and MUSIC.is_dir()


def _load(path: Path) -> np.ndarray:
    samples, rate = read_audio(path)
    return _resample(samples, rate)


def real_speech() -> list[tuple[np.ndarray, str, str]]:
    """(audio, transcript, speaker) of every real recording usable for WER (no digits or markup)."""
    import gzip
    import re

    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"^(.*)\s+\((\S+)\)$", line.strip())
        if m and (LIBRIVOX / f"{m.group(2)}.wav").exists():
            text = m.group(1).replace("<s>", "").replace("</s>", "").strip()
            out.append((_load(LIBRIVOX / f"{m.group(2)}.wav"), text, "librivox"))
    with gzip.open(PROMPT_TEXT, "rt", errors="replace") as fh:
        for line in fh:
            if ":" not in line or line.startswith(";"):
                continue
            name, text = (p.strip() for p in line.split(":", 1))
            wav = PROMPTS / f"{name}.wav"
            if not wav.exists() or re.search(r"[\[\]<>()*#/]|\d", text):
                continue
            audio = _load(wav)
            if len(audio) >= 2 * RATE:
                out.append((audio, text, "allison"))
    return out


def case_real(workdir: Path, seed: int = 5) -> Case:
    """Real recordings: a voice actor and a LibriVox reader, real music between and under them."""
    rng = random.Random(seed)  # noqa: S311 - test media, not secrets
    b = Builder(workdir)
    clips = real_speech()
    rng.shuffle(clips)
    tracks = sorted(MUSIC.glob("*.wav"))
    b.insert(pink_noise(30.0, 0.03, seed))
    for k, (audio, text, speaker) in enumerate(clips):
        b.add(audio, text, speaker, gain_db=-20.0 if 40 <= k < 55 else 0.0)
        b.pause(rng.uniform(0.3, 1.0))
        if k == 30:
            b.insert(0.3 * _load(tracks[0])[: 40 * RATE])
        if k == 70:
            b.pause(32.0)
        if k == 90:
            start = b.at
        if k == 110:
            bed = 0.08 * _load(tracks[1])

            def under(seconds: float, bed: np.ndarray = bed) -> np.ndarray:
                return bed[: int(seconds * RATE)]

            b.bed(start, b.at, under)
    return b.build("real", "real speech (voice actor, 8 kHz prompts; LibriVox reader), noise intro, "
                           "40 s of real music, 20 dB quieter stretch, 32 s silence, real music under speech")


CASES: dict[str, Callable[[Path], Case]] = {
    "voices": case_voices,
    "levels": case_levels,
    "beds": case_beds,
    "gaps": case_gaps,
    "clean": case_clean,
    "real": case_real,
}


def write_truth(case: Case, path: Path) -> Path:
    path.write_text(json.dumps({"name": case.name, "what": case.what,
                                "utterances": [asdict(u) for u in case.utterances]}, indent=1))
    return path
