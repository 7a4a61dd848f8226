#!/usr/bin/env python3
"""Deploy the real template.yaml into the running LocalStack through CloudFormation.

What ``sam package`` would do, then ``create-stack``: the zips ``make package``
built are uploaded to an artifacts bucket and every local ``CodeUri`` /
``ContentUri`` points at them; ``DefinitionUri`` is inlined as ``Definition``
(its substitutions stay for CloudFormation); image functions get an
``ImageUri`` the plugin maps to local code (``*/ytcaption-media:*``), and the
Batch image tag is ``localstack`` (mapped the same way). LocalStack's
CloudFormation runs the SAM transform. Prints the API URL and key and writes
them to .localstack/outputs.json.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".localstack"
PACKAGE = ROOT / "build" / "package"
STACK = "ytcaption-ls"
REGION = "us-east-1"
ARTIFACTS = "ytcaption-ls-artifacts"
MEDIA_IMAGE = "000000000000.dkr.ecr.us-east-1.localhost.localstack.cloud/ytcaption-media:localstack"
PARAMETERS = {"DefaultModel": "tiny.en", "TranscriberImageTag": "localstack", "StageName": "v1"}


def clients(endpoint: str) -> dict[str, Any]:
    # LocalStack's well-known dummy credentials (account 000000000000)
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",  # noqa: S106
                                    region_name=REGION)
    return {name: session.client(name, endpoint_url=endpoint)
            for name in ("s3", "ec2", "cloudformation", "apigateway")}


def packaged_template(s3: Any) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "local"))
    from ytcaption_local.template import load_template

    manifest = json.loads((PACKAGE / "manifest.json").read_text())
    s3.create_bucket(Bucket=ARTIFACTS)
    keys: dict[str, str] = {}
    for kind in ("layers", "functions"):
        for lid, item in manifest[kind].items():
            key = f"{lid}-{item['sha256'][:16]}.zip"
            s3.upload_file(str(PACKAGE / item["zip"]), ARTIFACTS, key)
            keys[lid] = f"s3://{ARTIFACTS}/{key}"
    template = copy.deepcopy(load_template())
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion"):
            if props.get("PackageType") == "Image":
                props["ImageUri"] = MEDIA_IMAGE
            else:
                uri_key = "ContentUri" if "ContentUri" in props else "CodeUri"
                if lid not in keys:
                    sys.exit(f"{lid} is not in build/package: run `make package` first")
                props[uri_key] = keys[lid]
        if res["Type"] == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((ROOT / props.pop("DefinitionUri")).read_text())
    return dict(template)


def network(ec2: Any) -> tuple[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="ytcaption-batch", Description="Batch egress", VpcId=vpc)["GroupId"]
    return subnet, sg


def wait(cfn: Any, stack: str, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = desc["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
                failed = [f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
                          for e in events if e["ResourceStatus"].endswith("FAILED")]
                sys.exit(f"stack {stack} ended {status}:\n  " + "\n  ".join(failed[:20]))
            return dict(desc)
        time.sleep(1)
    sys.exit(f"stack {stack} still in progress after {timeout_s}s")


def main() -> None:
    info = json.loads((STATE / "localstack.json").read_text())
    endpoint = info["endpoint"]
    c = clients(endpoint)
    started = time.monotonic()
    template = packaged_template(c["s3"])
    subnet, sg = network(c["ec2"])
    params = {**PARAMETERS, "SubnetIds": subnet, "SecurityGroupIds": sg}
    # a template over 51,200 bytes must come from S3 (as `sam deploy` does on AWS)
    body = json.dumps(template)
    c["s3"].put_object(Bucket=ARTIFACTS, Key="template.json", Body=body.encode())
    c["cloudformation"].create_stack(
        StackName=STACK, TemplateURL=f"{endpoint}/{ARTIFACTS}/template.json",
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    desc = wait(c["cloudformation"], STACK)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    api_id = outputs["ApiUrl"].split("//", 1)[1].split(".", 1)[0]
    stage = PARAMETERS["StageName"]
    key = c["apigateway"].get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    outputs.update({
        "StackName": STACK,
        # LocalStack serves every REST API under this path on its one port
        "ApiUrl": f"{endpoint}/_aws/execute-api/{api_id}/{stage}",
        "ApiKey": key,
        "Endpoint": endpoint,
    })
    (STATE / "outputs.json").write_text(json.dumps(outputs, indent=2) + "\n")
    print(f"stack {STACK} CREATE_COMPLETE in {time.monotonic() - started:.1f}s")
    print(f"API URL: {outputs['ApiUrl']}")
    print(f"API key: {key}")


if __name__ == "__main__":
    main()
