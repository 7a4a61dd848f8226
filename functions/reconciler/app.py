"""Scheduled reconciler: fail jobs that say they run while nothing runs them."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ytcaption import services
from ytcaption.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    grace = event.get("grace_s") if isinstance(event, dict) else None
    return services.reconciler().run(grace_s=float(grace) if grace is not None else None)
