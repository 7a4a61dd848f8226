"""Notify stage (``NotifyFunction``): a finished job's webhook and EventBridge event."""

from __future__ import annotations

from typing import Any

from ytcaption.adapters.notifications import Notifier
from ytcaption.adapters.storage import Storage
from ytcaption.adapters.table import Table
from ytcaption.observability import bind_job
from ytcaption.settings import PipelineSettings
from ytcaption.stages.base import Stage


class NotifyStage(Stage):
    def __init__(self, settings: PipelineSettings, repo: Table | None = None,
                 storage: Storage | None = None, notifier: Notifier | None = None) -> None:
        super().__init__(settings, repo, storage)
        self.notifier = notifier or Notifier(settings, self.repo)

    def run(self, job_id: str) -> dict[str, Any]:
        bind_job(job_id)
        return self.notifier.job_finished(self.repo.get(job_id))
