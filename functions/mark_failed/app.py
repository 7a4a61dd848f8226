"""Failure path: record the job's error code and message, then notify."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ytcaption import services
from ytcaption.observability import logger, metrics, tracer
from ytcaption.stages.inputs import FailureInput


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failure = FailureInput.model_validate(event)
    return services.mark_failed_stage().run(failure.job_id, failure.error)
