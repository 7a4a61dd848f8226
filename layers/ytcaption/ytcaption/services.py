"""The one place that builds the services a Lambda or the GPU worker uses: typed, built on
first use from settings (never at import), once per process. :func:`reset` forgets them
all, with the settings and the boto3 clients they hold: tests and the local runtime call
it when the environment they point at changes.

Each builder imports its service inside its body, so a handler that asks for one stage
loads that stage's modules only (``tests/unit/test_import_trees.py`` checks it).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ytcaption.api.discovery import Discovery
    from ytcaption.api.service import JobService
    from ytcaption.stages.download import DownloadStage
    from ytcaption.stages.intake import Intake
    from ytcaption.stages.mark_failed import MarkFailedStage
    from ytcaption.stages.merge import MergeStage
    from ytcaption.stages.normalize import NormalizeStage
    from ytcaption.stages.notify import NotifyStage
    from ytcaption.stages.reconcile import Reconciler
    from ytcaption.stages.site_captions import SiteCaptionsStage
    from ytcaption.stages.transcribe import TranscribeStage


@cache
def job_service() -> JobService:
    """The job API's use cases (API function, S3 upload trigger)."""
    from ytcaption.api.service import JobService
    from ytcaption.settings import get_api_settings

    return JobService(get_api_settings())


@cache
def discovery() -> Discovery:
    """Search and media info (media API function); yt-dlp only inside its calls."""
    from ytcaption.api.discovery import Discovery
    from ytcaption.settings import get_discovery_settings

    return Discovery(get_discovery_settings())


@cache
def intake() -> Intake:
    from ytcaption.settings import get_intake_settings
    from ytcaption.stages.intake import Intake

    return Intake(get_intake_settings())


@cache
def site_captions_stage() -> SiteCaptionsStage:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.site_captions import SiteCaptionsStage

    return SiteCaptionsStage(get_pipeline_settings())


@cache
def download_stage() -> DownloadStage:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.download import DownloadStage

    return DownloadStage(get_pipeline_settings())


@cache
def normalize_stage() -> NormalizeStage:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.normalize import NormalizeStage

    return NormalizeStage(get_pipeline_settings())


@cache
def transcribe_stage() -> TranscribeStage:
    """The GPU worker's stage (``python -m ytcaption.worker``)."""
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.transcribe import TranscribeStage

    return TranscribeStage(get_pipeline_settings())


@cache
def merge_stage() -> MergeStage:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.merge import MergeStage

    return MergeStage(get_pipeline_settings())


@cache
def notify_stage() -> NotifyStage:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.notify import NotifyStage

    return NotifyStage(get_pipeline_settings())


@cache
def mark_failed_stage() -> MarkFailedStage:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.mark_failed import MarkFailedStage

    return MarkFailedStage(get_pipeline_settings())


@cache
def reconciler() -> Reconciler:
    from ytcaption.settings import get_pipeline_settings
    from ytcaption.stages.reconcile import Reconciler

    return Reconciler(get_pipeline_settings())


_BUILDERS = (job_service, discovery, intake, site_captions_stage, download_stage, normalize_stage,
             transcribe_stage, merge_stage, notify_stage, mark_failed_stage, reconciler)


def reset() -> None:
    """Forget every service built, the settings they were built from and the boto3 clients."""
    from ytcaption.adapters import aws
    from ytcaption.settings import clear_settings_cache

    for build in _BUILDERS:
        build.cache_clear()
    clear_settings_cache()
    aws.reset_clients()
