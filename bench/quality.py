"""Accuracy and speed of the engine against faster-whisper, on long and varied media.

Every case (tests.media.corpus) is transcribed three ways, in this one run,
with the same model (tiny.en int8 on this CPU unless told otherwise):

(a) faster-whisper's plain ``transcribe`` on the whole file (beam 5);
(b) faster-whisper's ``BatchedInferencePipeline`` (batch 8, its own Silero VAD),
    what a user picks when they want speed;
(c) the engine: PyAV normalize + silence chunks + decode with the fidelity
    guard, one worker per core, each decoding its shard as one stream
    (every chunk conditioned on the text before it; the CPU default);
(c8) the engine with 8 streams per worker batched side by side (the GPU
    default), to show what batching the first pass trades on a CPU.

(a) and (b) get every core for CTranslate2 (cpu_threads = cores); the engine
splits the same cores between its workers. Targets, on every case, not on the
average: WER(c) <= WER(a), and wall(c) / wall(b) <= 1.0.

    python -m bench.quality [--cases voices,levels,beds,gaps,real,clean] [--model tiny.en]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.evaluation import word_ops
from tests.media import corpus
from tests.media.speech import encode
from ytcaption.domain.jobs import JobOptions
from ytcaption.engine.engine import transcribe_file
from ytcaption.engine.transcription import choose_device, load_model
from ytcaption.settings import WhisperSettings


@dataclass
class Run:
    text: str
    wall: float
    cpu: float
    note: str = ""

    def ops(self, reference: str) -> tuple[int, int, int, int]:
        return word_ops(reference, self.text)


def timed(fn: Callable[[], tuple[str, str]]) -> Run:
    t, c = time.perf_counter(), time.process_time()
    text, note = fn()
    return Run(text, time.perf_counter() - t, time.process_time() - c, note)


def media(name: str, root: Path) -> tuple[Path, corpus.Case]:
    case = corpus.CASES[name](root / "tts")
    path = root / f"{name}.mp3"
    if not path.exists():
        encode(case.samples, corpus.RATE, path)
    corpus.write_truth(case, root / f"{name}.json")
    return path, case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="voices,levels,beds,gaps,real,clean")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ytcaption-bench"),
                        help="where the generated media are kept between runs")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    from faster_whisper import BatchedInferencePipeline

    root = Path(args.work)
    (root / "tts").mkdir(parents=True, exist_ok=True)
    names = [n for n in args.cases.split(",") if n]
    if "real" in names and not corpus.real_available():
        print("real recordings missing: run scripts/ensure-system-deps", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    whisper = WhisperSettings()
    plain = load_model(args.model, whisper.model_copy(update={"cpu_threads": cores}))
    batched = BatchedInferencePipeline(plain)
    device, compute = choose_device(whisper)
    options = JobOptions(model=args.model, language="en")
    lang = "en"

    def run_a(path: Path) -> tuple[str, str]:
        segments, _ = plain.transcribe(str(path), beam_size=whisper.beam_size, language=lang)
        return " ".join(s.text.strip() for s in segments), ""

    def run_b(path: Path) -> tuple[str, str]:
        segments, _ = batched.transcribe(str(path), batch_size=8, beam_size=whisper.beam_size, language=lang)
        return " ".join(s.text.strip() for s in segments), ""

    def run_c(path: Path, streams: int = 0) -> tuple[str, str]:
        t = transcribe_file(path, options, whisper=whisper.model_copy(update={"streams": streams}))
        return t.text, f"{t.redecoded_chunks}/{t.chunks} re-decoded"

    # warm every path (model loads, VAD session, first-call allocations) on a short clip
    warm, _ = media("clean", root)
    for fn in (run_a, run_b, run_c):
        fn(warm)

    print(f"model {args.model} on {device}/{compute}, {cores} cores; (a) plain transcribe, "
          f"(b) BatchedInferencePipeline batch 8, (c) engine, (c8) engine with 8 streams per worker")
    header = f"{'case':<8}{'min':>6}  {'system':<4}{'WER':>7}{'sub':>6}{'del':>6}{'ins':>6}{'wall s':>9}{'cpu s':>8}"
    print(header)
    rows, ok = [], True
    for name in names:
        path, case = media(name, root)
        runs = {"a": timed(lambda p=path: run_a(p)), "b": timed(lambda p=path: run_b(p)),
                "c": timed(lambda p=path: run_c(p)), "c8": timed(lambda p=path: run_c(p, 8))}
        figures = {}
        for system, r in runs.items():
            sub, dele, ins, n = r.ops(case.reference)
            figures[system] = {"wer": (sub + dele + ins) / max(1, n), "sub": sub, "del": dele, "ins": ins,
                               "wall": r.wall, "cpu": r.cpu, "note": r.note}
            print(f"{name:<8}{case.duration / 60:>6.1f}  {system:<4}{figures[system]['wer']:>7.3f}{sub:>6}{dele:>6}"
                  f"{ins:>6}{r.wall:>9.1f}{r.cpu:>8.1f}  {r.note}")
        ca, cb = runs["c"].wall / runs["a"].wall, runs["c"].wall / runs["b"].wall
        c8b = runs["c8"].wall / runs["b"].wall
        good = figures["c"]["wer"] <= figures["a"]["wer"] and cb <= 1.0
        ok &= good
        print(f"{name:<8}  wall (c)/(a) {ca:.2f}, (c)/(b) {cb:.2f}; WER (c)-(a) "
              f"{figures['c']['wer'] - figures['a']['wer']:+.3f}; (c8)/(b) {c8b:.2f}, WER (c8)-(a) "
              f"{figures['c8']['wer'] - figures['a']['wer']:+.3f}  -> {'met' if good else 'NOT met'}: {case.what}")
        rows.append({"case": name, "minutes": round(case.duration / 60, 2), "what": case.what, **figures,
                     "ratio_c_a": ca, "ratio_c_b": cb, "ratio_c8_b": c8b})
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"targets (WER(c) <= WER(a) and wall (c)/(b) <= 1.0 on every case): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
