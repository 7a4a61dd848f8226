"""The local stack, deployed by moto's own CloudFormation from the SAM-transformed
``template.yaml``.

``transformed_template`` runs aws-sam-translator as CloudFormation's transform
would; ``deploy`` hands the result to moto's ``CreateStack``, which creates the
roles (with their inline policies), the Lambda functions (environment resolved),
the layer, the jobs table, the media and logs buckets, the dead-letter queue,
the log groups, the ECR repository, the launch template,
the instance profile, the Batch compute environments, job queue and job
definition, the dashboard and the Lambda permissions.

Adjusted before moto sees the template (moto 5.2.5 would fail or differ):

- conditions are evaluated here: moto leaves ``AWS::NoValue`` in lists (a role
  policy behind ``Fn::If`` becomes ``None`` and the role fails);
- every parameter is passed explicitly: moto does not split a
  ``CommaDelimitedList`` default (``InstanceTypes`` became ``g``, ``4``, ...);
- AWS managed policies (``ManagedPolicyArns``: logs, X-Ray, the ECS agent) are
  left out: moto does not ship them and nothing local calls those services;
- the table, the functions and the queue are named
  ``<stack>-<logical id>``: moto's generated names change at every start, and a
  state directory's jobs outlive one (their executions name the machine);
- the ECR repository gets a lower-case name (moto generates an upper-case one
  and then refuses it); compute environments get the Batch service-linked
  role, which AWS creates on first use.

By hand, with the template's own properties, because moto's CloudFormation
lacks them:

- ``AWS::CloudWatch::Alarm``, ``AWS::SecretsManager::Secret`` (the webhook
  signing key, whose value the runtime chooses), ``AWS::ApiGateway::ApiKey``:
  not supported types;
- the other ``AWS::ApiGateway::*`` resources: moto's REST API ignores the
  inline OpenAPI body, so its deployment fails; requests go through the local
  API front built from the same body (``ytcaption_local.apigw``);
- ``AWS::StepFunctions::StateMachine``: moto's CloudFormation creates it in
  the plain Step Functions backend, while ``execute_state_machine`` (which
  runs the ASL) serves the API from another, where it would not exist; it also
  ignores ``DefinitionSubstitutions`` and ``DefinitionS3Location``. Created
  from ``statemachines/*.asl.json`` with the substitutions resolved against
  the stack;
- ``AWS::Events::Rule`` (the reconciler's ``rate(5 minutes)``): not created.
  moto hands every ``PutEvents`` event to every rule on the bus, a schedule
  rule included, and fails on its Lambda target (``NotImplementedError``, a
  500 to the Notify function); the runtime's own loop stands for the schedule
  (``RuntimeOptions.reconcile_every_s``, ``ytcaption local serve``);
- ``AWS::Lambda::EventInvokeConfig``: not supported, and moto does not retry
  asynchronous invocations anyway; the runtime applies it (``FunctionSpec``);
- the media bucket's CORS, lifecycle, public access block and notifications,
  and the table's TTL: moto's CloudFormation sets only a bucket's encryption
  and tags and a table's keys, indexes and encryption;
- ``AWS::S3::BucketPolicy``: not supported; nothing local reaches S3 in a way
  a bucket policy would decide;
- the VPC, subnet and security group the ``SubnetIds`` and ``SecurityGroupIds``
  parameters name (given to the stack on AWS).
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ytcaption_local.template import ROOT, configure_bucket, load_template

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARTIFACTS = "ytcaption-local-artifacts"

#: Resource types created here rather than by moto's CloudFormation (see the module docstring).
BY_HAND = frozenset({
    "AWS::CloudWatch::Alarm", "AWS::SecretsManager::Secret", "AWS::S3::BucketPolicy",
    "AWS::Lambda::EventInvokeConfig", "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Stage", "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::UsagePlanKey", "AWS::StepFunctions::StateMachine", "AWS::Events::Rule",
})

#: What ``{"Ref": "AWS::NoValue"}`` resolves to: dropped from the list or mapping holding it.
NO_VALUE: Any = object()


class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Join and Fn::If (with the template's Conditions)
    against a stack's names."""

    def __init__(self, refs: dict[str, Any], getatt: dict[tuple[str, str], str],
                 conditions: dict[str, Any] | None = None) -> None:
        self.refs, self.getatt = refs, getatt
        self.conditions = conditions or {}

    def condition(self, name: str) -> bool:
        return self._holds(self.conditions[name])

    def _holds(self, c: Any) -> bool:
        (key, arg), = c.items()
        if key == "Fn::Equals":
            return str(self(arg[0])) == str(self(arg[1]))
        if key == "Fn::Not":
            return not self._holds(arg[0])
        if key == "Fn::And":
            return all(self._holds(x) for x in arg)
        if key == "Fn::Or":
            return any(self._holds(x) for x in arg)
        if key == "Condition":
            return self.condition(arg)
        raise KeyError(f"cannot evaluate condition {key}")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self(x) for x in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if key == "Fn::If":
                return self(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Ref":
                if arg not in self.refs:
                    raise KeyError(f"cannot resolve Ref {arg}")
                return self.refs[arg]
            if key == "Fn::GetAtt":
                res, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                if (res, attr) not in self.getatt:
                    raise KeyError(f"cannot resolve GetAtt {res}.{attr}")
                return self.getatt[(res, attr)]
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))
                return self._sub(text, extra)
            if key == "Fn::Join":
                return str(arg[0]).join(str(x) for x in self(arg[1]))
        return {k: v for k, v in ((k, self(v)) for k, v in value.items()) if v is not NO_VALUE}

    def _sub(self, text: str, extra: dict[str, Any]) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name:
                res, attr = name.split(".", 1)
                return str(self.getatt[(res, attr)])
            return str(self.refs[name])

        return re.sub(r"\$\{([^}!]+)\}", repl, text)


def transformed_template() -> tuple[dict[str, Any], dict[str, str]]:
    """The template after the SAM transform, and each resource's local code path.

    Local ``CodeUri``/``DefinitionUri``/``ContentUri`` are swapped for ``s3://``
    URIs first (what ``sam package`` does), and image functions get a local
    ``ImageUri``, because the translator only accepts packaged templates.
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    template = copy.deepcopy(load_template())
    local: dict[str, str] = {}
    for lid, r in template["Resources"].items():
        props = r.get("Properties", {})
        for key in ("CodeUri", "DefinitionUri", "ContentUri"):
            if isinstance(props.get(key), str):
                local[lid] = props[key]
                props[key] = f"s3://{ARTIFACTS}/{lid}"
        if props.get("PackageType") == "Image":
            props["ImageUri"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{lid.lower()}:local"
    params = {"SubnetIds": ["subnet-local"], "SecurityGroupIds": ["sg-local"]}
    out = transform(template, params, NoManagedPolicies())
    # the translator renames the layer with a hash suffix; local paths follow their resources
    return dict(out), local


def stub_zip() -> bytes:
    """Code for moto's records only: the runtime calls the handler from its CodeUri."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def lambda_handler(event, context):\n    raise RuntimeError('local stub')\n")
    return buf.getvalue()


@dataclass
class Stack:
    """What ``deploy`` made: the transformed template and how to resolve it."""

    name: str
    template: dict[str, Any]
    #: logical id -> the resource's local code path (CodeUri, DefinitionUri, ContentUri)
    local_paths: dict[str, str]
    #: Ref and Fn::GetAtt of every resource, as deployed (hand-made ones included)
    resolve: Resolver
    #: logical id -> physical id, for the resources moto's CloudFormation created
    physical: dict[str, str] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template["Resources"])

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.template["Resources"].items() if r["Type"] == rtype}


def deploy(client: Callable[[str], Any], name: str, parameters: dict[str, Any], *, webhook_secret: str,
           api_key: str) -> Stack:
    """Deploy the template as ``name``: moto's CloudFormation for what it supports, the rest here."""
    template, local_paths = transformed_template()
    res = template["Resources"]
    s3, iam, ec2 = client("s3"), client("iam"), client("ec2")

    # --- what exists before the stack: packaged code, the network, the Batch service role --------
    s3.create_bucket(Bucket=ARTIFACTS)
    for lid in local_paths:  # what `sam package` would upload (the layer's logical id changes in the transform)
        s3.put_object(Bucket=ARTIFACTS, Key=lid, Body=stub_zip())
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    batch_service_role = iam.create_role(
        RoleName="AWSServiceRoleForBatch", Path="/aws-service-role/batch.amazonaws.com/",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]

    values: dict[str, Any] = {}
    for pname, p in template.get("Parameters", {}).items():
        value = parameters.get(pname, p.get("Default", ""))
        if p.get("Type") == "CommaDelimitedList" and isinstance(value, str):
            value = [x.strip() for x in value.split(",")] if value else []
        values[pname] = value
    values.update({"SubnetIds": [subnet], "SecurityGroupIds": [sg]})
    pseudo = {"AWS::StackName": name, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
              "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    conditions = Resolver({**pseudo, **values}, {}, template.get("Conditions", {}))

    # --- hand-made resources that others refer to ---------------------------------------------
    hand_refs: dict[str, Any] = {}
    hand_getatt: dict[tuple[str, str], str] = {}
    for lid, r in res.items():
        if r["Type"] == "AWS::SecretsManager::Secret":  # the webhook signing key; its Ref is its ARN
            hand_refs[lid] = client("secretsmanager").create_secret(
                Name=f"{name}-{lid}", SecretString=webhook_secret)["ARN"]
        elif r["Type"] == "AWS::CloudWatch::Alarm":
            hand_refs[lid] = f"{name}-{lid}"
            hand_getatt[(lid, "Arn")] = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}-{lid}"
        elif r["Type"] == "AWS::StepFunctions::StateMachine":
            hand_refs[lid] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}-{lid}"
            hand_getatt[(lid, "Name")] = f"{name}-{lid}"
            hand_getatt[(lid, "Arn")] = hand_refs[lid]
        elif r["Type"] == "AWS::Events::Rule":
            hand_refs[lid] = f"{name}-{lid}"[:64]
            hand_getatt[(lid, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{hand_refs[lid]}"
        elif r["Type"] == "AWS::ApiGateway::RestApi":
            hand_refs[lid] = "local"  # the local API front (ytcaption_local.apigw)
        elif r["Type"] in BY_HAND:
            hand_refs[lid] = f"{name}-{lid}"

    # --- the template moto's CloudFormation gets ---------------------------------------------
    body = _for_moto(template, conditions, hand_refs, hand_getatt, batch_service_role, name)
    body["Outputs"] = {f"GetAtt{n}": {"Value": {"Fn::GetAtt": list(pair)}}
                       for n, pair in enumerate(sorted(_getatts_used_by_hand(template)))}
    cfn = client("cloudformation")
    cfn.create_stack(
        StackName=name, TemplateBody=json.dumps(body), Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        Parameters=[{"ParameterKey": k, "ParameterValue": ",".join(v) if isinstance(v, list) else str(v)}
                    for k, v in values.items()],
    )
    described = cfn.describe_stacks(StackName=name)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"moto's CloudFormation left {name} {described['StackStatus']}: "
                           f"{described.get('StackStatusReason')}")
    physical: dict[str, str] = {}
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=name):
        for s in page["StackResourceSummaries"]:
            physical[s["LogicalResourceId"]] = s["PhysicalResourceId"]
    getatt = dict(hand_getatt)
    pairs = sorted(_getatts_used_by_hand(template))
    for out in described.get("Outputs", []):
        getatt[pairs[int(out["OutputKey"].removeprefix("GetAtt"))]] = out["OutputValue"]
    resolve = Resolver({**pseudo, **values, **physical, **hand_refs}, getatt, template.get("Conditions", {}))
    stack = Stack(name, template, local_paths, resolve, physical)

    # --- what moto's CloudFormation does not do -----------------------------------------------
    bucket = physical["MediaBucket"]
    media = resolve(res["MediaBucket"]["Properties"])
    configure_bucket(s3, bucket, media)
    notif = media.get("NotificationConfiguration", {})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [
            {"LambdaFunctionArn": c["Function"], "Events": [c["Event"]],
             "Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}}}
            for c in notif.get("LambdaConfigurations", [])
        ]
    })
    ttl = res["JobsTable"]["Properties"].get("TimeToLiveSpecification")
    if ttl:
        client("dynamodb").update_time_to_live(TableName=physical["JobsTable"], TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])})
    for lid in stack.of_type("AWS::ApiGateway::ApiKey"):
        client("apigateway").create_api_key(name=f"{name}-{lid}", value=api_key, enabled=True)
    for lid, r in stack.of_type("AWS::StepFunctions::StateMachine").items():
        props = r["Properties"]
        definition = (ROOT / local_paths[lid]).read_text()
        for key, value in resolve(props.get("DefinitionSubstitutions", {})).items():
            definition = definition.replace("${" + key + "}", str(value))
        client("stepfunctions").create_state_machine(
            name=hand_getatt[(lid, "Name")], definition=definition, roleArn=resolve(props["RoleArn"]),
            type=props.get("StateMachineType", "STANDARD"))
    cloudwatch = client("cloudwatch")
    for lid, r in stack.of_type("AWS::CloudWatch::Alarm").items():
        # notifications go to an SNS topic given as a parameter: none locally
        a = resolve({k: v for k, v in r["Properties"].items() if k not in ("AlarmActions", "OKActions")})
        alarm = {k: a[k] for k in ("AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic",
                                   "ExtendedStatistic", "Period", "Metrics", "TreatMissingData") if k in a}
        cloudwatch.put_metric_alarm(
            AlarmName=hand_refs[lid], EvaluationPeriods=int(a["EvaluationPeriods"]),
            Threshold=float(a["Threshold"]), ComparisonOperator=a["ComparisonOperator"], **alarm)
    return stack


def _for_moto(template: dict[str, Any], conditions: Resolver, hand_refs: dict[str, Any],
              hand_getatt: dict[tuple[str, str], str], batch_service_role: str, name: str) -> dict[str, Any]:
    """The template as moto 5.2.5's CloudFormation can create it (see the module docstring)."""

    def evaluated(v: Any) -> Any:  # Fn::If and AWS::NoValue, and references to hand-made resources
        if isinstance(v, list):
            return [x for x in (evaluated(y) for y in v) if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (key, arg), = v.items()
            if key == "Fn::If":
                return evaluated(arg[1] if conditions.condition(arg[0]) else arg[2])
            if key == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if key == "Ref" and arg in hand_refs:
                return hand_refs[arg]
            if key == "Fn::GetAtt":
                pair = tuple(arg if isinstance(arg, list) else arg.split(".", 1))
                if pair in hand_getatt:
                    return hand_getatt[pair]
            if key == "Fn::Sub":
                text, extra = (arg, None) if isinstance(arg, str) else (arg[0], arg[1])

                def hand(m: re.Match[str]) -> str:
                    ref = m.group(1)
                    lid, _, attr = ref.partition(".")
                    if attr and (lid, attr) in hand_getatt:
                        return hand_getatt[(lid, attr)]
                    if not attr and ref in hand_refs and not (extra and ref in extra):
                        return str(hand_refs[ref])
                    return m.group(0)

                text = re.sub(r"\$\{([^}!]+)\}", hand, text)
                return {"Fn::Sub": text if extra is None else [text, evaluated(extra)]}
        return {k: x for k, x in ((k, evaluated(y)) for k, y in v.items()) if x is not NO_VALUE}

    resources: dict[str, Any] = {}
    for lid, r in template["Resources"].items():
        if r["Type"] in BY_HAND or ("Condition" in r and not conditions.condition(r["Condition"])):
            continue
        r = evaluated({k: v for k, v in r.items() if k != "Condition"})
        props = r.setdefault("Properties", {})
        if r["Type"] in _NAMED:
            # stable across restarts: a state dir's jobs name their execution by its machine
            props.setdefault(_NAMED[r["Type"]], f"{name}-{lid}"[:64])
        if r["Type"] == "AWS::IAM::Role":
            props.pop("ManagedPolicyArns", None)
        elif r["Type"] == "AWS::ECR::Repository":
            props.setdefault("RepositoryName", f"{name}-{lid}".lower())
        elif r["Type"] == "AWS::Batch::ComputeEnvironment":
            props.setdefault("ServiceRole", batch_service_role)
        resources[lid] = r
    return {"AWSTemplateFormatVersion": "2010-09-09", "Parameters": template.get("Parameters", {}),
            "Resources": resources}


#: Types whose generated name would change at every start (moto adds a random suffix).
_NAMED = {"AWS::DynamoDB::Table": "TableName", "AWS::Lambda::Function": "FunctionName",
          "AWS::SQS::Queue": "QueueName"}


def _getatts_used_by_hand(template: dict[str, Any]) -> set[tuple[str, str]]:
    """The Fn::GetAtt pairs the hand-made resources (and the media bucket's extra settings)
    read from moto's resources: asked of the stack as outputs."""
    found: set[tuple[str, str]] = set()
    res = template["Resources"]

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if "Fn::GetAtt" in v and len(v) == 1:
                a = v["Fn::GetAtt"]
                pair = tuple(a if isinstance(a, list) else a.split(".", 1))
                if pair[0] in res and res[pair[0]]["Type"] not in BY_HAND:
                    found.add((str(pair[0]), str(pair[1])))
            if "Fn::Sub" in v and len(v) == 1:
                a = v["Fn::Sub"]
                for m in re.findall(r"\$\{([^}!.]+)\.([^}!]+)\}", a if isinstance(a, str) else a[0]):
                    if m[0] in res and res[m[0]]["Type"] not in BY_HAND:
                        found.add((m[0], m[1]))
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for r in res.values():
        if r["Type"] in BY_HAND:
            walk(r)
    walk(res["MediaBucket"]["Properties"].get("NotificationConfiguration", {}))
    return found
