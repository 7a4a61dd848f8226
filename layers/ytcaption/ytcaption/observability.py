"""Powertools Logger, Tracer and Metrics shared by every function.

Service name and metrics namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE`` (set in the template's Globals).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="ytcaption")
tracer = Tracer(service="ytcaption")
metrics = Metrics(namespace="YTCaption", service="ytcaption")


def bind_job(job_id: str | None, correlation_id: str | None = None) -> None:
    """Every log line after this names the job (and its request's correlation id)."""
    if job_id:
        logger.append_keys(job_id=job_id)
    if correlation_id:
        logger.set_correlation_id(correlation_id)
