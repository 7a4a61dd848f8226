"""The baseline for bench/import_time.py: a minimal Powertools REST handler.

boto3, Logger, Tracer, Metrics and a validating resolver with one pydantic
route: what any serious Python API Lambda imports anyway.
"""

from __future__ import annotations

from typing import Any

import boto3  # noqa: F401
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="Baseline")
app = APIGatewayRestResolver(enable_validation=True)


class Item(BaseModel):
    name: str


@app.post("/items")
def create(item: Item) -> dict[str, str]:
    return {"name": item.name}


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
