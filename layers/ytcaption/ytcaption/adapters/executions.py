"""Step Functions adapter: one execution per job, named after the job.

Naming the execution after the job makes starting idempotent: a second start of
the same job finds ``ExecutionAlreadyExists`` instead of running it twice.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from ytcaption.adapters import aws


def execution_arn(state_machine_arn: str, job_id: str) -> str:
    head, _, name = state_machine_arn.partition(":stateMachine:")
    return f"{head}:execution:{name}:{job_id}"


class Executions(aws.Adapter):
    service, label = "stepfunctions", "Step Functions"

    def __init__(self, state_machine_arn: str, sfn_client: Any | None = None) -> None:
        super().__init__(sfn_client)
        self.state_machine_arn = state_machine_arn

    def start(self, job_id: str, payload: dict[str, Any]) -> tuple[str, bool]:
        """Start the job's execution; returns ``(arn, started_now)``."""
        try:
            resp = self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=job_id, input=json.dumps(payload)
            )
            return str(resp["executionArn"]), True
        except ClientError as exc:
            if aws.error_code(exc) == "ExecutionAlreadyExists":
                return execution_arn(self.state_machine_arn, job_id), False
            raise aws.translate(exc, "Step Functions start_execution") from exc

    def stop(self, arn: str, *, error: str, cause: str) -> bool:
        """Stop a running execution; False if it had already ended or never existed."""
        try:
            self.client.stop_execution(executionArn=arn, error=error, cause=cause)
            return True
        except ClientError as exc:
            if aws.error_code(exc) in ("ExecutionDoesNotExist", "ValidationException",
                                       "ExecutionNotRunning"):
                return False
            raise aws.translate(exc, "Step Functions stop_execution") from exc

    def status(self, arn: str) -> str | None:
        try:
            return str(self.client.describe_execution(executionArn=arn)["status"])
        except ClientError as exc:
            if aws.error_code(exc) == "ExecutionDoesNotExist":
                return None
            raise aws.translate(exc, "Step Functions describe_execution") from exc
