"""Diarization options: checked at the door, carried by S3 metadata, part of the cache key."""

from __future__ import annotations

import pytest

from ytcaption.adapters.result_cache import cache_key
from ytcaption.api.service import options_from_metadata
from ytcaption.domain.errors import InvalidKnownSpeakers, InvalidSpeakerCount
from ytcaption.domain.jobs import JobOptions
from ytcaption.domain.speakers import check_speakers


@pytest.mark.parametrize("fields", [
    {"diarize": True, "num_speakers": 0}, {"diarize": True, "max_speakers": -1}, {"diarize": True, "min_speakers": 33},
    {"diarize": True, "min_speakers": 3, "max_speakers": 2}, {"diarize": True, "num_speakers": 2, "max_speakers": 3},
    {"num_speakers": 2},
])
def test_nonsense_speaker_counts_are_refused_with_their_code(fields: dict) -> None:
    with pytest.raises(InvalidSpeakerCount) as exc:
        check_speakers(JobOptions(**fields))
    assert exc.value.code == "INVALID_SPEAKER_COUNT" and exc.value.http_status == 422


@pytest.mark.parametrize(("known", "why"), [
    ({"SPEAKER_1": "speakers/a.wav"}, "name"), ({"Ann": "/etc/passwd"}, "not an S3 key"),
    ({"Ann": "speakers/../work/b.wav"}, "not an S3 key"), ({f"n{i}": "speakers/a.wav" for i in range(9)}, "at most"),
    ({"": "speakers/a.wav"}, "name"),
    # the workers may read reference clips under speakers/ only: anything else would fail late, on AWS
    ({"Ann": "refs/ann.wav"}, "must be under speakers/"), ({"Ann": "work/job/chunk.wav"}, "must be under speakers/"),
    ({"Ann": "uploads/x/ann.wav"}, "must be under speakers/"), ({"Ann": "speakers/"}, "must be under speakers/"),
])
def test_unusable_known_speakers_are_refused(known: dict, why: str) -> None:
    with pytest.raises(InvalidKnownSpeakers, match=why):
        check_speakers(JobOptions(diarize=True, known_speakers=known))


def test_sensible_options_pass() -> None:
    check_speakers(JobOptions(diarize=True, min_speakers=2, max_speakers=4, known_speakers={"Ann Lee": "speakers/ann.wav"}))
    check_speakers(JobOptions())


def test_s3_metadata_carries_diarize_and_a_count() -> None:
    options = options_from_metadata({"diarize": "true", "num-speakers": "3"})
    assert options.diarize and options.num_speakers == 3


def test_the_cache_keys_on_diarize_and_its_options_but_not_when_off() -> None:
    plain = cache_key("src", JobOptions())
    assert cache_key("src", JobOptions(diarize=False)) == plain
    keyed = {cache_key("src", JobOptions(diarize=True)), cache_key("src", JobOptions(diarize=True, num_speakers=2)),
             cache_key("src", JobOptions(diarize=True, known_speakers={"Ann": "a.wav"})), plain}
    assert len(keyed) == 4
