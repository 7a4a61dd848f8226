"""CloudFormation resource providers for AWS::Batch (missing from LocalStack community).

They translate the template's properties (PascalCase) to the Batch API
(camelCase) and call it through LocalStack, which the ``batch:ytcaption``
provider serves from moto. ``Ref`` gives the ARN, as on AWS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

Props = dict[str, Any]
SCHEMAS = json.loads(Path(__file__).with_name("cfn_batch_schemas.json").read_text())
SERVICE_ROLE = "AWSServiceRoleForBatch"


def camel(value: Any) -> Any:
    """Template properties to Batch API shapes: every key's first letter lowered."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def _name(request: ResourceRequest[Props], key: str) -> str:
    model = request.desired_state
    return str(model.get(key) or f"{request.stack_name}-{request.logical_resource_id}"[:128])


def _done(request: ResourceRequest[Props], model: Props) -> ProgressEvent[Props]:
    return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model,
                         custom_context=request.custom_context)


def _service_linked_role(request: ResourceRequest[Props]) -> str:
    """The role AWS creates for Batch on first use; moto wants it to exist."""
    iam = request.aws_client_factory.iam
    try:
        return str(iam.get_role(RoleName=SERVICE_ROLE)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(
            RoleName=SERVICE_ROLE, Path="/aws-service-role/batch.amazonaws.com/",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        )["Role"]["Arn"])


class ComputeEnvironmentProvider(ResourceProvider[Props]):
    TYPE = "AWS::Batch::ComputeEnvironment"
    SCHEMA = SCHEMAS[TYPE]

    def create(self, request: ResourceRequest[Props]) -> ProgressEvent[Props]:
        model = request.desired_state
        name = _name(request, "ComputeEnvironmentName")
        args: Props = {
            "computeEnvironmentName": name,
            "type": model["Type"],
            "state": model.get("State", "ENABLED"),
            "serviceRole": model.get("ServiceRole") or _service_linked_role(request),
        }
        if "ComputeResources" in model:
            args["computeResources"] = camel(model["ComputeResources"])
        arn = request.aws_client_factory.batch.create_compute_environment(**args)["computeEnvironmentArn"]
        model.update({"ComputeEnvironmentName": name, "ComputeEnvironmentArn": arn})
        return _done(request, model)

    def delete(self, request: ResourceRequest[Props]) -> ProgressEvent[Props]:
        batch = request.aws_client_factory.batch
        arn = request.desired_state.get("ComputeEnvironmentArn")
        if arn:
            batch.update_compute_environment(computeEnvironment=arn, state="DISABLED")
            batch.delete_compute_environment(computeEnvironment=arn)
        return _done(request, request.desired_state)


class JobQueueProvider(ResourceProvider[Props]):
    TYPE = "AWS::Batch::JobQueue"
    SCHEMA = SCHEMAS[TYPE]

    def create(self, request: ResourceRequest[Props]) -> ProgressEvent[Props]:
        model = request.desired_state
        name = _name(request, "JobQueueName")
        arn = request.aws_client_factory.batch.create_job_queue(
            jobQueueName=name, state=model.get("State", "ENABLED"), priority=int(model["Priority"]),
            computeEnvironmentOrder=[{"order": int(c["Order"]), "computeEnvironment": c["ComputeEnvironment"]}
                                     for c in model["ComputeEnvironmentOrder"]],
        )["jobQueueArn"]
        model.update({"JobQueueName": name, "JobQueueArn": arn})
        return _done(request, model)

    def delete(self, request: ResourceRequest[Props]) -> ProgressEvent[Props]:
        batch = request.aws_client_factory.batch
        arn = request.desired_state.get("JobQueueArn")
        if arn:
            batch.update_job_queue(jobQueue=arn, state="DISABLED")
            batch.delete_job_queue(jobQueue=arn)
        return _done(request, request.desired_state)


class JobDefinitionProvider(ResourceProvider[Props]):
    TYPE = "AWS::Batch::JobDefinition"
    SCHEMA = SCHEMAS[TYPE]

    def create(self, request: ResourceRequest[Props]) -> ProgressEvent[Props]:
        model = request.desired_state
        name = _name(request, "JobDefinitionName")
        args: Props = {"jobDefinitionName": name, "type": model["Type"]}
        for key in ("ContainerProperties", "RetryStrategy", "Timeout", "Parameters", "PlatformCapabilities",
                    "PropagateTags"):
            if key in model:
                args[key[:1].lower() + key[1:]] = model[key] if key == "Parameters" else camel(model[key])
        if "Timeout" in model:
            args["timeout"] = {"attemptDurationSeconds": int(model["Timeout"]["AttemptDurationSeconds"])}
        if "RetryStrategy" in model:
            args["retryStrategy"]["attempts"] = int(model["RetryStrategy"].get("Attempts", 1))
        arn = request.aws_client_factory.batch.register_job_definition(**args)["jobDefinitionArn"]
        model.update({"JobDefinitionName": name, "Id": arn})
        return _done(request, model)

    def delete(self, request: ResourceRequest[Props]) -> ProgressEvent[Props]:
        arn = request.desired_state.get("Id")
        if arn:
            request.aws_client_factory.batch.deregister_job_definition(jobDefinition=arn)
        return _done(request, request.desired_state)


class ComputeEnvironmentPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::Batch::ComputeEnvironment"

    def load(self) -> None:
        self.factory = ComputeEnvironmentProvider


class JobQueuePlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::Batch::JobQueue"

    def load(self) -> None:
        self.factory = JobQueueProvider


class JobDefinitionPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::Batch::JobDefinition"

    def load(self) -> None:
        self.factory = JobDefinitionProvider
