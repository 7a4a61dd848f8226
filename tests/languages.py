"""Speech in other languages than English, generated offline (espeak-ng) from known text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEXT = {
    "es": ["El tren llegó a la estación cuando el sol se ponía detrás de las montañas.",
           "Los viajeros bajaron despacio y caminaron hacia el centro del pueblo.",
           "En la plaza, los niños jugaban alrededor de una fuente antigua."],
    "de": ["Der Zug kam am Bahnhof an, als die Sonne hinter den Bergen unterging.",
           "Die Reisenden stiegen langsam aus und gingen in die Mitte des Dorfes.",
           "Auf dem Marktplatz spielten die Kinder um einen alten Brunnen."],
    "fr": ["Le train est arrivé à la gare au moment où le soleil se couchait derrière les montagnes.",
           "Les voyageurs sont descendus lentement et ont marché vers le centre du village.",
           "Sur la place, les enfants jouaient autour d'une vieille fontaine.",
           "Le soir, toute la famille a dîné ensemble dans la petite maison près de la rivière."],
}


def speak(sentences: list[str], voice: str, directory: Path, name: str, *, pause_s: float = 0.8) -> tuple[Any, int]:
    import numpy as np

    from tests.media.speech import read_audio, silence, synthesize

    parts, rate = [], 22050
    for i, s in enumerate(sentences):
        x, rate = read_audio(synthesize(s, directory / f"{name}{i}.wav", voice=voice))
        parts += [x, silence(pause_s, rate)]
    return np.concatenate(parts), rate
