"""The CPU the local runtime's API latency paid for, removed without changing behaviour.

- moto's Step Functions engine: the ASL is parsed once per definition, and every
  execution still gets its own evaluation components (ytcaption_local/speedups.py).
- yt-dlp: ``open_ydl`` registers exactly the extractors ``YoutubeDL(opts)`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ytcaption_local import motopatch, speedups

ASL = (Path(__file__).parents[2] / "statemachines" / "transcription.asl.json").read_text()


def _definition() -> str:
    import re

    return re.sub(r"\$\{(\w+)\}", "arn:aws:lambda:us-east-1:123456789012:function:f", ASL)


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


def _dynamodb_calls(client: Any) -> list[Any]:
    job = {"pk": {"S": "JOB#1"}, "entity": {"S": "job"}, "status": {"S": "COMPLETED"}, "progress": {"N": "100"},
           "ratio": {"N": "0.25"}, "fresh": {"BOOL": False}, "error": {"NULL": True}, "tags": {"SS": ["a", "b"]},
           "events": {"L": [{"M": {"at": {"S": "2026-01-01T00:00:00Z"}, "status": {"S": "QUEUED"},
                                   "detail": {"M": {"n": {"N": "3"}, "empty": {"L": []}}}}}]},
           "text": {"S": "unicode \u2713 \" quotes"}}
    blob = {"pk": {"S": "BLOB#1"}, "entity": {"S": "blob"}, "data": {"B": b"\x00\x01binary"}}
    t = "jobs"
    client.put_item(TableName=t, Item=job)
    client.put_item(TableName=t, Item=blob)
    return [
        client.get_item(TableName=t, Key={"pk": {"S": "JOB#1"}}),
        client.get_item(TableName=t, Key={"pk": {"S": "BLOB#1"}}),
        client.get_item(TableName=t, Key={"pk": {"S": "nothing"}}),
        client.get_item(TableName=t, Key={"pk": {"S": "JOB#1"}}, ReturnConsumedCapacity="TOTAL"),
        client.query(TableName=t, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "JOB#1"}}),
        client.scan(TableName=t, Limit=1),
        client.update_item(TableName=t, Key={"pk": {"S": "JOB#1"}}, UpdateExpression="SET progress = :p",
                           ExpressionAttributeValues={":p": {"N": "7"}}, ReturnValues="ALL_NEW"),
        client.put_item(TableName=t, Item={**job, "progress": {"N": "8"}}, ReturnValues="ALL_OLD"),
        client.batch_get_item(RequestItems={t: {"Keys": [{"pk": {"S": "JOB#1"}}, {"pk": {"S": "BLOB#1"}}]}}),
    ]


def test_dynamodb_responses_read_the_same_through_boto3_with_the_fast_path() -> None:
    import boto3
    from moto import mock_aws
    from moto.dynamodb.responses import DynamoResult

    def run() -> list[Any]:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(TableName="jobs", BillingMode="PAY_PER_REQUEST",
                                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
            out = _dynamodb_calls(client)
        for r in out:
            r.pop("ResponseMetadata", None)
        return out

    with motopatch.runtime_patches(lambda name, event: None, lambda job: True):
        assert DynamoResult.execute_result is speedups.execute_result
        fast = run()
    slow = run()  # moto's own serializer, put back on exit
    assert fast == slow
    assert fast[0]["Item"]["events"]["L"][0]["M"]["detail"]["M"]["n"] == {"N": "3"}
    assert fast[1]["Item"]["data"] == {"B": b"\x00\x01binary"}  # blobs still go through moto's serializer


def test_only_plain_json_takes_the_fast_path() -> None:
    assert speedups.plain_json({"Items": [{"a": {"S": "x"}, "n": {"N": "1"}, "t": {"BOOL": True}}], "Count": 1})
    assert not speedups.plain_json({"Item": {"data": {"B": "AAE="}}})
    assert not speedups.plain_json({"LastEvaluatedKey": None})
