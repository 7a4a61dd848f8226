"""Accuracy and speed of the engine against plain faster-whisper, on one 3+ minute file.

(a) faster-whisper's plain ``transcribe`` on the whole file (beam 5, its
    default decoding of the file, all cores to CTranslate2);
(b) the engine: PyAV normalize + Silero silence chunks + shards in parallel.

Both use the same model (tiny.en int8 on CPU by default), loaded before timing.
Targets: WER(b) <= WER(a), and wall(b) <= 1.2 x wall(a).

    python bench/quality.py [--model tiny.en] [--repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.common import long_speech
from ytcaption.engine import transcribe_file
from ytcaption.evaluation import wer
from ytcaption.jobs import JobOptions
from ytcaption.settings import WhisperSettings
from ytcaption.transcription import choose_device, load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    path, reference = long_speech(".mp3", repeats=args.repeats)
    whisper = WhisperSettings()
    options = JobOptions(model=args.model)
    plain = load_model(args.model, whisper)
    device, compute = choose_device(whisper)

    # warm both paths (model load, VAD session, first-call allocations)
    list(plain.transcribe(str(path), beam_size=5, language="en")[0])
    transcribe_file(path, options)

    t = time.perf_counter()
    segments, info = plain.transcribe(str(path), beam_size=whisper.beam_size, language="en")
    text_a = " ".join(s.text.strip() for s in segments)
    wall_a = time.perf_counter() - t

    report: dict[str, float] = {}
    t = time.perf_counter()
    transcript = transcribe_file(path, options, report=report)
    wall_b = time.perf_counter() - t

    audio = info.duration
    wer_a, wer_b = wer(reference, text_a), wer(reference, transcript.text)
    print(f"file: {path.name}, {audio:.1f} s of speech; model {args.model} on {device}/{compute}")
    print(f"{'':<34}{'WER':>7}{'wall s':>9}{'x realtime':>12}")
    print(f"{'(a) faster-whisper, whole file':<34}{wer_a:>7.3f}{wall_a:>9.2f}{audio / wall_a:>12.1f}")
    print(f"{'(b) engine (normalize+chunks+shards)':<34}{wer_b:>7.3f}{wall_b:>9.2f}{audio / wall_b:>12.1f}")
    ratio = wall_b / wall_a
    print(f"wall ratio (b)/(a): {ratio:.2f} (target <= 1.20); WER (b) - (a): {wer_b - wer_a:+.3f} (target <= 0)")
    print(f"engine stages (s): {report}")
    ok = ratio <= 1.2 and wer_b <= wer_a
    print(f"targets {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
