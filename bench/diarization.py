"""Speaker diarization: error rate, speakers found and CPU cost per case, and what diarize adds to a job.

Cases are built with the project's own speech generator (espeak-ng and flite voices,
``tests.media.corpus``), with the truth of who spoke when. Each case is cut into
30 s chunks grouped into shards of ``SHARD_S`` seconds; each shard embeds its chunks on
its own (as the Batch workers do) and one clustering runs over all of them (as the merge
stage does). DER = missed speech + false alarm + confusion over reference speech, 0.25 s
collar. CPU-s per audio minute is this process's CPU time (all threads) for VAD,
features, embeddings and clustering.

Then a 10-minute job through the local runtime (HTTP API -> Step Functions -> Batch
workers -> merge) with and without ``diarize``: the job's own cost estimate (target: ratio
<= 1.25), the CPU-seconds the runtime spent on it, and the wall time from the POST to COMPLETED.

    python -m bench.diarization [--no-runtime]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.diarization_eval import diarization_error
from tests.media.corpus import VOICES, Builder, Case, Voice, music, real_available, sentences
from ytcaption.engine import diarization as d

CHUNK_S = 30.0
SHARD_S = 200.0
TARGET_DER = 0.10


def _turns(b: Builder, voices: list[Voice], n: int, seed: int, gap: tuple[float, float]) -> None:
    rng = random.Random(seed)
    v = 0
    for s in sentences(n, seed):
        b.speak(s, voices[v])
        b.pause(rng.uniform(*gap))
        if len(voices) > 1 and rng.random() < 0.6:  # a turn changes after about every other sentence
            v = (v + 1 + rng.randint(0, len(voices) - 2)) % len(voices)


def _music_bed(voices: list[Voice], seed: int, music_seeds: tuple[int, int]) -> Callable[[Builder], None]:
    """Turns, then turns with music under them, 20 s of music alone, and turns again."""

    def fill(b: Builder) -> None:
        _turns(b, voices, 12, seed, (0.3, 0.8))
        start = b.at
        _turns(b, voices, 14, seed + 1, (0.3, 0.8))
        b.bed(start, b.at, lambda s: music(s, 0.03, music_seeds[0]))
        b.insert(music(20.0, 0.1, music_seeds[1]))
        _turns(b, voices, 8, seed + 2, (0.3, 0.8))

    return fill


def _collector(work: Path, cases: list[tuple[Case, str]]) -> Callable[[str, str, Callable[[Builder], None]], None]:
    """``case(name, what, fill)``: builds one case with ``fill`` and appends it to ``cases``."""

    def case(name: str, what: str, fill: Callable[[Builder], None]) -> None:
        b = Builder(work)
        fill(b)
        cases.append((b.build(name, what), what))

    return case


def build(work: Path) -> list[tuple[Case, str]]:
    cases: list[tuple[Case, str]] = []
    case = _collector(work, cases)

    pitch = [Voice("espeak", "en-us", pitch=30), Voice("espeak", "en-us", pitch=70)]
    three = [VOICES[2], VOICES[3], VOICES[5]]
    case("three", "3 voices (espeak scotland, flite rms, flite awb), turns inside chunks, gaps 0.3-0.8 s",
         lambda b: _turns(b, three, 40, 1, (0.3, 0.8)))
    case("four", "4 voices of corpus.VOICES[0:4] (espeak en-us p45, flite slt, espeak scotland, flite rms)",
         lambda b: _turns(b, VOICES[:4], 40, 2, (0.3, 0.8)))
    case("pitch", "2 voices: espeak-ng en-us at pitch 30 and 70, nothing else differs",
         lambda b: _turns(b, pitch, 30, 3, (0.3, 0.8)))
    case("no-gaps", "3 voices (flite rms, espeak rp p75, flite awb), turns with no pause at all",
         lambda b: _turns(b, [VOICES[3], VOICES[4], VOICES[5]], 40, 4, (0.0, 0.0)))

    case("music-bed", "3 voices, music under the middle part, then 20 s of music alone",
         _music_bed(three, 5, (5, 6)))
    case("one-voice", "1 voice (flite slt), 15 sentences", lambda b: _turns(b, [VOICES[1]], 15, 8, (0.3, 0.8)))
    case("music-only", "60 s of music, no speech", lambda b: b.insert(music(60.0, 0.1, 9)))
    case("ten-min", "over 10 min, 3 voices, shards of 200 s embedded apart, one clustering across them",
         lambda b: _turns(b, three, 150, 10, (0.3, 0.8)))
    return cases


def held_out(work: Path) -> list[tuple[Case, str]]:
    """Cases the clustering's thresholds were NOT chosen on: other seeds, other voice mixes."""
    cases: list[tuple[Case, str]] = []
    case = _collector(work, cases)

    v = VOICES
    case("h-three", "3 voices (espeak en-us p45, espeak rp p75, flite slt)",
         lambda b: _turns(b, [v[0], v[4], v[1]], 40, 101, (0.3, 0.8)))
    case("h-four", "4 voices (flite slt, espeak scotland, espeak rp, flite awb)",
         lambda b: _turns(b, [v[1], v[2], v[4], v[5]], 40, 102, (0.3, 0.8)))
    case("h-five", "5 voices, corpus.VOICES[0:5]", lambda b: _turns(b, v[:5], 50, 103, (0.3, 0.8)))
    case("h-pitch", "2 voices: espeak-ng en-gb-x-rp at pitch 40 and 80",
         lambda b: _turns(b, [Voice("espeak", "en-gb-x-rp", pitch=40), Voice("espeak", "en-gb-x-rp", pitch=80)],
                          30, 104, (0.3, 0.8)))
    case("h-one-espeak", "1 voice (espeak en-us p45), 20 sentences", lambda b: _turns(b, [v[0]], 20, 105, (0.3, 0.8)))

    case("h-music-bed", "3 voices (espeak en-us p45, flite rms, flite awb), music under the middle, 20 s of music",
         _music_bed([v[0], v[3], v[5]], 106, (15, 16)))
    case("h-no-gaps", "3 voices (espeak en-us p45, flite slt, espeak scotland), turns with no pause",
         lambda b: _turns(b, [v[0], v[1], v[2]], 40, 109, (0.0, 0.0)))
    return cases


def fresh(work: Path) -> list[tuple[Case, str]]:
    """Cases added after the window spacing (HOP_S 1.5) and the eigenvalue rule (SMALL_EIGEN) were
    chosen, which was done looking at both sets above: first run with the code as it stands."""
    cases: list[tuple[Case, str]] = []
    case = _collector(work, cases)

    v = VOICES
    case("f-three", "3 voices (flite rms, espeak rp p75, espeak en-us p60 140 wpm)",
         lambda b: _turns(b, [v[3], v[4], Voice("espeak", "en-us", pitch=60, wpm=140)], 40, 201, (0.3, 0.8)))
    case("f-one-flite", "1 voice (flite awb), 20 sentences", lambda b: _turns(b, [v[5]], 20, 202, (0.3, 0.8)))
    case("f-one-espeak", "1 voice (espeak rp p75), 20 sentences", lambda b: _turns(b, [v[4]], 20, 203, (0.3, 0.8)))
    case("f-music-bed", "3 voices (flite slt, espeak scotland, espeak rp), music under the middle",
         _music_bed([v[1], v[2], v[4]], 204, (25, 26)))
    case("f-four-long", "4 voices (flite slt, flite rms, espeak rp, flite awb), 80 sentences",
         lambda b: _turns(b, [v[1], v[3], v[4], v[5]], 80, 205, (0.2, 1.0)))
    return cases


def _real_turns(voices: list[Voice], clips: int, seed: int, gap: tuple[float, float]) -> Callable[[Builder], None]:
    """Turns of a real voice actor's recorded prompts (``corpus.real_speech``, Allison) and of ``voices``."""

    def fill(b: Builder) -> None:
        from tests.media.corpus import real_speech

        rng = random.Random(seed)
        prompts = [(a, t) for a, t, who in real_speech() if who == "allison"]
        rng.shuffle(prompts)
        lines = iter(sentences(clips, seed))
        v = 0
        for audio, text in prompts[:clips]:
            if v == 0:
                b.add(audio, text, "allison")
            else:
                b.speak(next(lines), voices[v - 1])
            b.pause(rng.uniform(*gap))
            if voices and rng.random() < 0.6:
                v = (v + 1 + rng.randint(0, len(voices) - 1)) % (len(voices) + 1)

    return fill


def newest(work: Path) -> list[tuple[Case, str]]:
    """Cases added after a first use of pitch (one more coordinate of each segment's embedding) was
    chosen on every case above: new voices, seeds and mixes, a real voice among them. The rule that
    replaced it (a cluster split where its pitch falls in two groups) was chosen seeing these too."""
    cases: list[tuple[Case, str]] = []
    case = _collector(work, cases)

    gbclan, caribbean = Voice("espeak", "en-gb-x-gbclan", pitch=50), Voice("espeak", "en-029", pitch=70)
    case("g-no-gaps", "3 voices (espeak gbclan p50, espeak en-029 p70, flite kal16), turns with no pause",
         lambda b: _turns(b, [gbclan, caribbean, Voice("flite", "kal16")], 40, 301, (0.0, 0.0)))
    case("g-three-espeak", "3 espeak-ng voices (en-us p40, gbcwmd p60, scotland p80)",
         lambda b: _turns(b, [Voice("espeak", "en-us", pitch=40), Voice("espeak", "en-gb-x-gbcwmd", pitch=60),
                              Voice("espeak", "en-gb-scotland", pitch=80)], 40, 302, (0.3, 0.8)))
    case("g-one-espeak", "1 voice (espeak en-029 p55), 20 sentences",
         lambda b: _turns(b, [Voice("espeak", "en-029", pitch=55)], 20, 303, (0.3, 0.8)))
    if real_available():
        case("g-real-mix", "3 voices: a real voice actor (Allison), flite rms, espeak rp p75",
             _real_turns([VOICES[3], VOICES[4]], 50, 304, (0.3, 0.8)))
        case("g-one-real", "1 real voice (Allison's prompts), 60 of them", _real_turns([], 60, 305, (0.3, 0.8)))
    case("g-four-no-gaps", "4 voices (flite slt, espeak en-us p45, flite awb, espeak gbclan p35), no pause",
         lambda b: _turns(b, [VOICES[1], VOICES[0], VOICES[5], Voice("espeak", "en-gb-x-gbclan", pitch=35)],
                          40, 306, (0.0, 0.0)))
    return cases


def last(work: Path) -> list[tuple[Case, str]]:
    """Cases added after the pitch split (PITCH_SPLIT_*, PITCH_JUMP_ST) was chosen: first run with it."""
    cases: list[tuple[Case, str]] = []
    case = _collector(work, cases)

    case("k-close", "3 voices (espeak rp p60, espeak en-us p80 150 wpm, flite slt)",
         lambda b: _turns(b, [Voice("espeak", "en-gb-x-rp", pitch=60), Voice("espeak", "en-us", pitch=80, wpm=150),
                              VOICES[1]], 40, 401, (0.3, 0.8)))
    case("k-no-gaps", "3 voices (flite rms, espeak en-029 p40, espeak gbclan p75), turns with no pause",
         lambda b: _turns(b, [VOICES[3], Voice("espeak", "en-029", pitch=40),
                              Voice("espeak", "en-gb-x-gbclan", pitch=75)], 40, 403, (0.0, 0.0)))
    case("k-one-slow", "1 voice (espeak rp p50 at 120 wpm), 30 sentences",
         lambda b: _turns(b, [Voice("espeak", "en-gb-x-rp", pitch=50, wpm=120)], 30, 404, (0.3, 0.8)))
    if real_available():
        case("k-one-real", "1 real voice (Allison's prompts), 90 of them", _real_turns([], 90, 402, (0.2, 1.0)))
    return cases


def diarize(samples: np.ndarray, emb: d.SpeakerEmbedder) -> tuple[list[tuple[float, float, str]], int]:
    shards: dict[int, list[d.ChunkEmbeddings]] = {}
    step = int(CHUNK_S * d.RATE)
    for i in range(0, len(samples), step):
        shards.setdefault(int(i / d.RATE // SHARD_S), []).append(emb.embed_chunk(samples[i: i + step], i / d.RATE))
    stored = [d.ChunkEmbeddings.from_bytes(p.to_bytes()) for parts in shards.values() for p in parts]
    e = d.ChunkEmbeddings.concat(stored)
    labels = d.cluster(e.vectors, starts=e.starts, ends=e.ends, pitch=e.pitch)
    return [(t.start, t.end, d.label_name(t.speaker)) for t in d.turns(e, labels)], len(shards)


def runtime_cost(case: Case, work: Path, pairs: int = 5) -> None:
    """Two warm-up jobs (one each way), then ``pairs`` jobs without and with diarize, alternating (the machine's
    speed drifts by 20% between runs, so one pair alone says little); prints, per pair and as medians, the
    ratio of what the job cost by the job's own estimate (``cost.total_usd``: Lambda GB-seconds, Batch
    seconds, requests; the issue's "costs"), of the CPU-seconds the runtime spent, and of the wall time."""
    import statistics

    from tests.media.speech import encode
    from tests.servers import loopback_server
    from ytcaption_local.cli import Client
    from ytcaption_local.runtime import LocalRuntime, RuntimeOptions

    path = encode(case.samples, d.RATE, work / "ten.mp3")
    with LocalRuntime(RuntimeOptions(api_port=0)) as rt, loopback_server() as srv:
        url = srv.serve("/ten.mp3", path.read_bytes(), "audio/mpeg")
        client = Client(rt.api_url, api_key=rt.api_key)

        def run_job(run: int, diarize: bool) -> tuple[float, float, float]:
            t, cpu = time.perf_counter(), time.process_time()  # the runtime runs every stage in this process
            job = client.submit_url(f"{url}?run={run}", {"model": "tiny.en", "fresh": True, "diarize": diarize})
            done = client.wait(job["job_id"], poll_s=0.2)
            assert done["status"] == "COMPLETED", done.get("error")
            return float(done["cost"]["total_usd"]), time.process_time() - cpu, time.perf_counter() - t

        # one warm-up job each way: each side's models (Whisper; the speaker model) are loaded
        # once per process, and the first diarized pair paid the speaker model's load alone
        run_job(0, False)
        run_job(100, True)
        ratios: list[tuple[float, float, float]] = []
        for p in range(pairs):
            plain, diarized = run_job(2 * p + 1, False), run_job(2 * p + 2, True)
            ratios.append((diarized[0] / plain[0], diarized[1] / plain[1], diarized[2] / plain[2]))
            print(f"  pair {p + 1}: without diarize ${plain[0]:.6f}, {plain[1]:.1f} CPU-s, {plain[2]:.1f} s; "
                  f"with ${diarized[0]:.6f}, {diarized[1]:.1f} CPU-s, {diarized[2]:.1f} s; "
                  f"ratios {ratios[-1][0]:.2f} / {ratios[-1][1]:.2f} / {ratios[-1][2]:.2f}")
    medians = [statistics.median(r[i] for r in ratios) for i in range(3)]
    # the issue's words are "costs no more than 1.25x": shown against each measure, not one alone
    print(f"\n10-minute job on the local runtime (tiny.en, CPU), medians of {pairs} pairs, with diarize / without "
          "(target <= 1.25): " + "; ".join(f"{name} {m:.2f} {'met' if m <= 1.25 else 'NOT met'}" for name, m in
                                             zip(("cost estimate", "CPU-seconds", "wall time"), medians, strict=True)))


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ytcaption-diar-"))
    emb = d.SpeakerEmbedder()
    cases = build(work)
    extra = held_out(work)
    newer = fresh(work)
    latest = newest(work)
    final = last(work)
    print(f"{'case':<13}{'audio s':>8}{'DER':>7}{'miss':>7}{'FA':>7}{'conf':>7}{'spk':>6}{'truth':>6}"
          f"{'shards':>7}{'CPU-s/min':>10}  target")
    met = 0
    for case, what in cases + extra + newer + latest + final:
        if extra and case is extra[0][0]:
            print("held out (thresholds not chosen on these):")
        if newer and case is newer[0][0]:
            print("fresh (added after the current window spacing and count rule were chosen):")
        if latest and case is latest[0][0]:
            print("newest (added after a first use of pitch was chosen; the pitch split was chosen seeing them):")
        if final and case is final[0][0]:
            print("last (added after the pitch split was chosen):")
        t = time.process_time()
        hyp, shards = diarize(case.samples, emb)
        cpu = time.process_time() - t
        ref = [(u.start, u.end, u.voice) for u in case.utterances]
        r = diarization_error(ref, hyp, collar=0.25, duration=case.duration)
        scored = r.scored_s or 1.0
        ok = r.der <= TARGET_DER and r.speakers_hyp == r.speakers_ref
        print(f"{case.name:<13}{case.duration:>8.0f}{r.der:>7.3f}{r.missed_s / scored:>7.3f}"
              f"{r.false_alarm_s / scored:>7.3f}{r.confusion_s / scored:>7.3f}{r.speakers_hyp:>6}{r.speakers_ref:>6}"
              f"{shards:>7}{cpu / case.duration * 60:>10.2f}  {'met' if ok else 'MISSED'}   {what}")
        met += ok
    total = len(cases + extra + newer + latest + final)
    print(f"target (DER <= {TARGET_DER}, right speaker count) met on {met} of {total} cases")
    if "--no-runtime" not in sys.argv:
        runtime_cost(cases[-1][0], work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
