"""Normalize stage: 16 kHz mono, loudness-normalized, cut at silences; writes the manifest."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ytcaption import services
from ytcaption.observability import logger, metrics, tracer
from ytcaption.stages.inputs import StageInput


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return services.normalize_stage().run(StageInput.model_validate(event).job_id)
