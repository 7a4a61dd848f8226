"""Site-captions stage: the job's result from the video's own captions (prefer / fallback)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ytcaption import services
from ytcaption.observability import logger, metrics, tracer
from ytcaption.stages.inputs import SiteCaptionsInput


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = SiteCaptionsInput.model_validate(event)
    return services.site_captions_stage().run(step.job_id, step.mode, step.error)
