"""What the stage Lambdas receive from the state machine (validated before a stage runs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StageInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class FailureInput(StageInput):
    error: dict[str, Any] | None = None


class SiteCaptionsInput(FailureInput):
    mode: Literal["prefer", "fallback"]
