"""The bundled sample the endpoint suite transcribes, and its known text."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SAMPLE = SAMPLES / "sample.mp3"
SAMPLE_TEXT = (SAMPLES / "sample.txt").read_text()
