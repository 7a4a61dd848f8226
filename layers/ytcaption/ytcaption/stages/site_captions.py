"""The site-captions stage: a job's result from the video's own captions, no GPU.

Two entries in the state machine (``statemachines/transcription.asl.json``):

- ``prefer`` (state ``SiteCaptionsFirst``, before Download): people-made
  captions in the requested language complete the job; if the site has none,
  the stage answers ``completed: false`` and the job goes on to Download.
- ``fallback`` (state ``SiteCaptionsFallback``, when Download failed with
  ``SourceBlocked``): people-made or automatic captions complete the job; if
  there are none, the download's refusal is raised again, with a note, so the
  job fails with the code that says what happened (``SOURCE_BLOCKED``).

The job records which source produced its result (``transcript_source``) and
the JSON result says it too (``source``).
"""

from __future__ import annotations

from typing import Any

from ytcaption.adapters.netsafety import UrlPolicy, check_url, guarded
from ytcaption.domain.captions import Segment, Transcript
from ytcaption.domain.errors import InvalidRequest, UnsupportedMedia, YTCaptionError
from ytcaption.domain.jobs import JobStatus, MediaInfo
from ytcaption.observability import logger
from ytcaption.stages.base import Stage


class SiteCaptionsStage(Stage):
    def run(self, job_id: str, mode: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        if mode not in ("prefer", "fallback"):
            raise InvalidRequest(f"unknown site captions mode {mode!r}")
        message = ("looking for the site's captions" if mode == "prefer"
                   else "the download was refused; using the site's captions")
        job = self.enter(job_id, JobStatus.DOWNLOADING, message)
        if job.source.url is None:
            raise UnsupportedMedia("this job has no URL")
        refusal = self._refusal(error) if mode == "fallback" else None
        try:
            found = self._find(job.source.url, job.options.language, job.options.task, automatic=mode == "fallback")
        except YTCaptionError as exc:
            if refusal is None:
                raise
            raise self._with_note(refusal, f"the site's captions could not be read either ({exc.code})") from exc
        if found is None:
            if refusal is not None:
                raise self._with_note(refusal, "the site has no captions in the requested language")
            logger.info("no site captions; transcribing")
            return {"completed": False, "source": None}
        info, track, transcript = found
        source = "site_automatic_captions" if track.automatic else "site_captions"
        transcript.source = source
        written = self.write_results(job_id, transcript, job.options.formats)
        media = MediaInfo(
            title=info.get("title"), uploader=info.get("uploader") or info.get("channel"),
            duration_s=info.get("duration") if isinstance(info.get("duration"), int | float) else transcript.duration,
            source_url=info.get("webpage_url") or job.source.url,
            extractor=info.get("extractor_key") or info.get("extractor"),
        )
        kind = "automatic" if track.automatic else "people-made"
        done = self.repo.transition(
            job_id, JobStatus.COMPLETED,
            message=f"{len(transcript.segments)} segments from the site's {kind} captions ({track.language})",
            fields={"results": written, "language": transcript.language, "transcript_source": source,
                    "media": media.model_dump(mode="json")},
        )
        if mode == "prefer":
            # same source, same options (site_captions=prefer is part of the key): reusable.
            # A fallback result is not remembered: the audio may be downloadable next time.
            from ytcaption.adapters.result_cache import ResultCache

            cache = ResultCache(self.repo, self.storage)
            for key in done.cache_keys:
                cache.remember(key, done)
        logger.info("completed from site captions", extra={"source": source, "language": track.language,
                                                           "segments": len(transcript.segments)})
        return {"completed": True, "source": source}

    def _find(self, url: str, language: str, task: str, *, automatic: bool) -> Any:
        from ytcaption.media import site
        from ytcaption.media.ytdlp import ytdlp_options

        settings = self.settings
        policy = UrlPolicy.from_settings(settings)
        check_url(url, policy)
        base = ytdlp_options(settings.ytdlp, tmp_dir=settings.work_dir)
        wanted = "en" if task == "translate" else language  # the site's English captions are a translation
        with guarded(policy):
            info = site.extract(url, base, timeout_s=settings.media.download_timeout_s)
            track = site.pick_track(info, wanted, automatic=automatic)
            if track is None:
                return None
            ext, track_url = track.best() or ("", "")
            text = site.fetch_text(track_url, base, timeout_s=settings.media.download_timeout_s)
        cues = site.parse_caption_file(text)
        if not cues:
            logger.warning("the site's caption track is empty", extra={"language": track.language, "ext": ext})
            return None
        transcript = Transcript(
            language=track.language.split("-")[0].lower(),
            duration=max(end for _, end, _ in cues),
            model=None,
            task=task,
            segments=[Segment(start=round(s, 3), end=round(e, 3), text=t) for s, e, t in cues],
        )
        return info, track, transcript

    @staticmethod
    def _refusal(error: dict[str, Any] | None) -> YTCaptionError:
        from ytcaption.stages.mark_failed import failure_from_step_functions

        return failure_from_step_functions(error or {"Error": "SourceBlocked", "Cause": "the download was refused"})

    @staticmethod
    def _with_note(exc: YTCaptionError, note: str) -> YTCaptionError:
        return type(exc)(f"{exc.message} ({note})")
