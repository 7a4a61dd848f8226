"""The SAM template and the state machine definition: lint clean and wired consistently."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ytcaption_local.template import ROOT, load_template, resources_of_type

ASL = ROOT / "statemachines" / "transcription.asl.json"


def test_cfn_lint_passes() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    out = subprocess.run([cfn_lint, str(ROOT / "template.yaml")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def _sam() -> str | None:
    local = ROOT / ".venv-sam" / "bin" / "sam"
    return str(local) if local.exists() else shutil.which("sam")


@pytest.mark.skipif(_sam() is None, reason="AWS SAM CLI not installed (.ci/run installs it)")
def test_sam_validate_lint_passes() -> None:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    out = subprocess.run([_sam(), "validate", "--lint"], capture_output=True, text=True, cwd=ROOT,  # type: ignore[list-item]
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is a valid SAM Template" in out.stdout


def test_state_machine_is_a_file_with_every_substitution_defined() -> None:
    sm = load_template()["Resources"]["TranscriptionStateMachine"]["Properties"]
    assert "Definition" not in sm and sm["DefinitionUri"] == "statemachines/transcription.asl.json"
    used = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert used == set(sm["DefinitionSubstitutions"])


def _tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, st in states.items():
        if st["Type"] in ("Task", "Map"):
            found[name] = st
        if st["Type"] == "Map":
            found.update(_tasks(st["ItemProcessor"]["States"]))
    return found


def test_every_task_retries_with_backoff_and_has_a_failure_path() -> None:
    definition = json.loads(ASL.read_text())
    assert definition["TimeoutSeconds"] > 0
    top = definition["States"]
    for name, st in _tasks(top).items():
        if st["Type"] == "Task":
            assert st.get("TimeoutSeconds"), name
            assert st.get("Retry"), name
            for r in st["Retry"]:
                assert r["BackoffRate"] >= 2 and r.get("JitterStrategy") == "FULL", name
            assert "States.ALL" not in {e for r in st["Retry"] for e in r["ErrorEquals"]} or \
                name in ("Notify", "MarkFailed"), f"{name} retries errors that are not worth it"
        if name in top:  # tasks inside the Map fail through the Map's Catch
            assert any("States.ALL" in c["ErrorEquals"] for c in st.get("Catch", [])), name
    assert top["MarkFailed"]["Next"] == "Failed" and top["Failed"]["Type"] == "Fail"


def test_lambda_functions_and_batch_resources_exist() -> None:
    t = load_template()
    fns = resources_of_type(t, "AWS::Serverless::Function")
    assert {"ApiFunction", "UploadTriggerFunction", "DownloadFunction", "NormalizeFunction",
            "MergeFunction", "NotifyFunction", "MarkFailedFunction"} <= set(fns)
    for name, fn in fns.items():
        props = fn["Properties"]
        if props.get("PackageType") == "Image":
            d = props["ImageConfig"]["Command"][0].split(".")[0]
            assert (ROOT / "functions" / d / "app.py").exists(), name
        else:
            assert (ROOT / props["CodeUri"] / "app.py").exists(), name
    queue = t["Resources"]["TranscriberJobQueue"]["Properties"]["ComputeEnvironmentOrder"]
    kinds = [t["Resources"][c["ComputeEnvironment"]["Ref"]]["Properties"]["ComputeResources"]["Type"]
             for c in sorted(queue, key=lambda c: c["Order"])]
    assert kinds == ["SPOT", "EC2"]  # Spot first, On-Demand fallback
    for ce in resources_of_type(t, "AWS::Batch::ComputeEnvironment").values():
        assert ce["Properties"]["ComputeResources"]["MinvCpus"] == 0  # scales to zero


def test_table_has_ttl_and_list_indexes() -> None:
    props = load_template()["Resources"]["JobsTable"]["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert {i["IndexName"] for i in props["GlobalSecondaryIndexes"]} == {"ByStatus", "ByCreated"}


def test_api_modules_import_no_media_libraries() -> None:
    probe = (
        "import importlib.util, sys\n"
        "for p in sys.argv[1:]:\n"
        "    s = importlib.util.spec_from_file_location('m' + str(abs(hash(p))), p)\n"
        "    m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "print(sorted(n for n in ('yt_dlp', 'av', 'numpy', 'faster_whisper', 'ctranslate2') if n in sys.modules))\n"
    )
    paths = [str(ROOT / "functions" / f / "app.py") for f in ("api", "upload_trigger")]
    out = subprocess.run([sys.executable, "-c", probe, *paths], capture_output=True, text=True,
                         env=dict(os.environ, AWS_DEFAULT_REGION="us-east-1"), cwd=Path(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- least privilege and the broad grants the security review found -----------------------------


def _statements(props: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in props.get("Policies", []):
        if isinstance(p, dict) and "Statement" in p:
            out += p["Statement"]
        elif isinstance(p, dict) and "PolicyDocument" in p:
            out += p["PolicyDocument"]["Statement"]
    return out


def test_no_function_has_full_dynamodb_crud_and_no_grant_is_on_every_resource() -> None:
    t = load_template()
    for lid, r in t["Resources"].items():
        if r["Type"] not in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine", "AWS::IAM::Role"):
            continue
        props = r["Properties"]
        assert not any(isinstance(p, dict) and "DynamoDBCrudPolicy" in p for p in props.get("Policies", [])), lid
        for st in _statements(props):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st.get("Resource") == "*":
                # only actions AWS offers no resource-level permissions for
                assert set(actions) <= {"batch:DescribeJobs", "batch:ListJobs", "logs:CreateLogDelivery", "logs:GetLogDelivery",
                                        "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries",
                                        "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                                        "logs:DescribeLogGroups"}, (lid, actions)
            assert not any(a.endswith(":*") or a == "*" for a in actions), (lid, actions)


def test_batch_hosts_require_imdsv2_and_keep_it_from_containers() -> None:
    t = load_template()
    lt = t["Resources"]["BatchLaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"]
    assert lt["HttpTokens"] == "required" and lt["HttpPutResponseHopLimit"] == 1
    for ce in resources_of_type(t, "AWS::Batch::ComputeEnvironment").values():
        assert ce["Properties"]["ComputeResources"]["LaunchTemplate"]["LaunchTemplateId"] == {
            "Ref": "BatchLaunchTemplate"}


def test_function_logs_expire_and_uploads_are_not_open_to_every_origin() -> None:
    t = load_template()
    logging = t["Globals"]["Function"]["LoggingConfig"]
    assert logging["LogGroup"] == {"Ref": "FunctionLogGroup"}
    assert t["Resources"]["FunctionLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for lid, r in t["Resources"].items():
        assert "LoggingConfig" not in r.get("Properties", {}) or lid == "FunctionLogGroup", lid  # none opts out
    cors = t["Resources"]["MediaBucket"]["Properties"]["CorsConfiguration"]
    assert "*" not in json.dumps(cors) and t["Parameters"]["UploadOrigins"]["Default"] == ""


def test_the_state_machine_has_no_duplicate_keys() -> None:
    """json.load keeps the last of two equal keys silently; Step Functions' parser refuses them."""
    from collections import Counter

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        twice = [k for k, n in Counter(k for k, _ in pairs).items() if n > 1]
        assert not twice, f"duplicate keys {twice}"
        return dict(pairs)

    json.loads((ROOT / "statemachines" / "transcription.asl.json").read_text(), object_pairs_hook=no_duplicates)


def test_the_local_runtime_gives_numpy_the_worker_containers_blas_threads() -> None:
    """The Batch worker runs with OPENBLAS_NUM_THREADS=1 (numpy's BLAS threads spin between small
    products, on the decoder's cores); locally the worker shares the runtime's process, where
    numpy is loaded before the variable could be read, so the runtime sets the same limit."""
    import numpy  # noqa: F401 - loads OpenBLAS, as the runtime's process has it loaded
    from threadpoolctl import threadpool_info, threadpool_limits

    from ytcaption_local.runtime import LocalRuntime

    props = load_template()["Resources"]["TranscriberJobDefinition"]["Properties"]
    env = {e["Name"]: e["Value"] for e in props["ContainerProperties"]["Environment"]}
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    with threadpool_limits(2, user_api="blas"):  # restored when the test ends
        LocalRuntime._limit_blas(props)
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)
