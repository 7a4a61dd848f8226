"""Intake stage: an execution started by hand ({"url"} or {"s3_uri"}) gets its job record first."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ytcaption import services
from ytcaption.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return services.intake().create(event.get("input"), str(event.get("execution_arn") or ""))
