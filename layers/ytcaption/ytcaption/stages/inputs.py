"""What the pipeline Lambdas receive from the state machine, and the pipeline they call."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_pipeline: Any = None


class StageInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class FailureInput(StageInput):
    error: dict[str, Any] | None = None


class SiteCaptionsInput(FailureInput):
    mode: Literal["prefer", "fallback"]


def pipeline() -> Any:
    """The Pipeline, built on first use from settings (not at import)."""
    global _pipeline
    if _pipeline is None:
        from ytcaption.settings import get_pipeline_settings
        from ytcaption.stages.pipeline import Pipeline

        _pipeline = Pipeline(get_pipeline_settings())
    return _pipeline


def reconciler() -> Any:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.reconcile import Reconciler

    return Reconciler(get_pipeline_settings())


def intake() -> Any:
    from ytcaption.settings import get_intake_settings
    from ytcaption.stages.intake import Intake

    return Intake(get_intake_settings())


def reset() -> None:
    global _pipeline
    _pipeline = None
