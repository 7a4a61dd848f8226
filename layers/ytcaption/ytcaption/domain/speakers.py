"""The diarization options checked at the door (API and S3 uploads), each refusal with its own code.

Pure Python: the API Lambda imports it without numpy or the model.
"""

from __future__ import annotations

import re
from typing import Any

from ytcaption.domain.errors import InvalidKnownSpeakers, InvalidSpeakerCount

#: what the clustering separates at most (ytcaption.engine.diarization.MAX_SPEAKERS)
MAX_SPEAKERS = 32
MAX_KNOWN_SPEAKERS = 8
#: where known speakers' reference clips live in the media bucket: the one prefix outside ``work/``
#: that the Batch worker's role may read (the template grants it), and that starts no job
REFERENCES_PREFIX = "speakers/"
_NAME = re.compile(r"^[\w .'-]{1,64}$")
_KEY = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,1024}$")


def check_speakers(options: Any) -> None:
    """``num_speakers`` / ``min_speakers`` / ``max_speakers`` and ``known_speakers`` make sense."""
    counts = {f: getattr(options, f) for f in ("num_speakers", "min_speakers", "max_speakers")}
    given = {f: v for f, v in counts.items() if v is not None}
    if (given or options.known_speakers) and not options.diarize:
        raise InvalidSpeakerCount("speaker options need diarize: true")
    for field, v in given.items():
        if v < 1 or v > MAX_SPEAKERS:
            raise InvalidSpeakerCount(f"{field} must be between 1 and {MAX_SPEAKERS}, not {v}")
    lo, hi = counts["min_speakers"], counts["max_speakers"]
    if lo is not None and hi is not None and lo > hi:
        raise InvalidSpeakerCount(f"min_speakers ({lo}) is above max_speakers ({hi})")
    if counts["num_speakers"] is not None and (lo is not None or hi is not None):
        raise InvalidSpeakerCount("give num_speakers, or min_speakers/max_speakers, not both")
    known = options.known_speakers or {}
    if len(known) > MAX_KNOWN_SPEAKERS:
        raise InvalidKnownSpeakers(f"at most {MAX_KNOWN_SPEAKERS} known speakers")
    for name, key in known.items():
        if not _NAME.match(name) or name.startswith("SPEAKER_"):
            raise InvalidKnownSpeakers(f"known speaker name {name!r} is not usable (1-64 letters, digits, "
                                       "spaces, . ' -; not SPEAKER_n)")
        if not _KEY.match(key) or ".." in key or key.startswith("/"):
            raise InvalidKnownSpeakers(f"reference clip of {name!r}: {key!r} is not an S3 key in this bucket")
        if not key.startswith(REFERENCES_PREFIX) or key == REFERENCES_PREFIX:
            raise InvalidKnownSpeakers(f"reference clip of {name!r}: {key!r} must be under {REFERENCES_PREFIX} "
                                       "in the media bucket (the only place the transcription workers may read)")
