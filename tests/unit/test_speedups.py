"""The CPU the local runtime's API latency paid for, removed without changing behaviour.

- moto's Step Functions engine: the ASL is parsed once per definition, and every
  execution still gets its own evaluation components (ytcaption_local/speedups.py).
- yt-dlp: ``open_ydl`` registers exactly the extractors ``YoutubeDL(opts)`` does.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from ytcaption_local import speedups

ASL = (Path(__file__).parents[2] / "statemachines" / "transcription.asl.json").read_text()


def _definition() -> str:
    import re

    return re.sub(r"\$\{(\w+)\}", "arn:aws:lambda:us-east-1:123456789012:function:f", ASL)


def test_the_patched_moto_method_is_where_it_was() -> None:
    cls, name = speedups.target()
    assert list(inspect.signature(getattr(cls, name)).parameters) == ["self"]


def test_an_asl_definition_is_parsed_once_and_each_execution_gets_its_own_components(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    # Given a definition no execution has used yet
    definition = _definition().replace('"Comment": "', '"Comment": "unit test: ', 1)
    parses = []
    real = AmazonStateLanguageParser.parse
    monkeypatch.setattr(AmazonStateLanguageParser, "parse",
                        staticmethod(lambda d: parses.append(d) or real(d)))
    # When three executions start
    programs = [speedups.program(definition) for _ in range(3)]
    # Then antlr ran once, and no two executions share a component
    assert len(parses) == 1
    assert len({id(p) for p in programs}) == 3
    states = [p.states.states for p in programs]
    assert list(states[0]) == list(states[1]) == list(json.loads(definition)["States"])
    assert all(states[0][k] is not states[1][k] for k in states[0])


def test_a_definition_with_a_syntax_error_still_fails_and_is_not_kept() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import ASLParserException

    bad = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": tru}}}'
    with pytest.raises(ASLParserException):
        speedups.program(bad)
    assert bad not in speedups._trees


def test_open_ydl_registers_the_extractors_youtubedl_does() -> None:
    import yt_dlp

    from ytcaption.media.download import open_ydl

    opts = {"quiet": True, "cachedir": False}
    with yt_dlp.YoutubeDL(dict(opts)) as plain, open_ydl(dict(opts)) as fast:
        assert list(fast._ies) == list(plain._ies)
        assert [type(v) for v in fast._ies.values()] == [type(v) for v in plain._ies.values()]
        assert fast.params["quiet"] is True
