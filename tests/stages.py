"""Every pipeline stage over one table and one bucket, for tests that run stages directly
in the order the state machine would (the Lambdas build theirs in ``ytcaption.services``)."""

from __future__ import annotations

from ytcaption.adapters.storage import Storage
from ytcaption.adapters.table import Table
from ytcaption.settings import PipelineSettings
from ytcaption.stages.download import DownloadStage
from ytcaption.stages.mark_failed import MarkFailedStage
from ytcaption.stages.merge import MergeStage
from ytcaption.stages.normalize import NormalizeStage
from ytcaption.stages.notify import NotifyStage
from ytcaption.stages.site_captions import SiteCaptionsStage
from ytcaption.stages.transcribe import TranscribeStage


class Stages:
    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self.repo = Table(settings.jobs_table)
        self.storage = Storage(settings.bucket_name)
        shared = {"repo": self.repo, "storage": self.storage}
        self.site_captions = SiteCaptionsStage(settings, **shared)
        self.download = DownloadStage(settings, **shared)
        self.normalize = NormalizeStage(settings, **shared)
        self.transcribe = TranscribeStage(settings, **shared)
        self.merge = MergeStage(settings, **shared)
        self.notify = NotifyStage(settings, **shared)
        self.mark_failed = MarkFailedStage(settings, **shared)
