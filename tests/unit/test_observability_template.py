"""Dashboard, alarms and state comments in the template: wired to the metrics the code emits."""

from __future__ import annotations

import json
import re
from typing import Any

from ytcaption import telemetry
from ytcaption_local.template import ROOT, load_template, resources_of_type

EMITTED = {v for k, v in vars(telemetry).items() if k.isupper() and isinstance(v, str) and k != "NAMESPACE"}


def _dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    (dash,) = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    sub = dash["Properties"]["DashboardBody"]["Fn::Sub"]
    return dict(json.loads(re.sub(r"\$\{[^}]+\}", "X", sub)))


def test_every_alarm_the_issue_asks_for_notifies_the_topic_parameter() -> None:
    template = load_template()
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) >= {"FailedExecutionsAlarm", "BatchShardFailuresAlarm", "Api5xxAlarm", "LambdaErrorsAlarm",
                           "LambdaThrottlesAlarm", "UploadTriggerDeadLetterAlarm", "ReconcilerFailedJobsAlarm",
                           "EndToEndP95Alarm"}
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}],
                                                                  {"Ref": "AWS::NoValue"}]}, name
    # the Lambda alarms cover every function of the stack
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))
    for name in ("LambdaErrorsAlarm", "LambdaThrottlesAlarm"):
        covered = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
                   for m in alarms[name]["Properties"]["Metrics"] if "MetricStat" in m}
        assert covered == functions, name


def test_dashboard_and_alarms_only_use_metrics_the_stages_emit() -> None:
    template = load_template()
    body = _dashboard_body(template)
    used: set[str] = set()
    for w in body["widgets"]:
        for row in w.get("properties", {}).get("metrics", []):
            if row and row[0] == telemetry.NAMESPACE:
                used.add(row[1])
            for item in row:
                if isinstance(item, dict) and "expression" in item:
                    used.update(re.findall(r'MetricName="(\w+)"', item["expression"]))
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        if alarm["Properties"].get("Namespace") == telemetry.NAMESPACE:
            used.add(alarm["Properties"]["MetricName"])
    assert used - EMITTED == set()
    assert {"StageSeconds", "JobsFinished", "JobsFailed", "JobCostUSD", "JobAudioSeconds",
            "BatchQueueDepth"} <= used
    stages = {row[3] for w in body["widgets"] for row in w.get("properties", {}).get("metrics", [])
              if row and row[0] == telemetry.NAMESPACE and row[1] == "StageSeconds"}
    assert stages == {"download", "normalize", "queue_wait", "transcribe_shard", "merge", "end_to_end"}


def test_every_state_says_what_it_does() -> None:
    asl = json.loads((ROOT / "statemachines" / "transcription.asl.json").read_text())

    def states(d: dict[str, Any]) -> Any:
        for name, st in d["States"].items():
            yield name, st
            if st["Type"] == "Map":
                yield from states(st["ItemProcessor"])

    missing = [name for name, st in states(asl) if not st.get("Comment")]
    assert missing == []
