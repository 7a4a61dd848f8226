"""Tell the outside world a job ended: a webhook POST and an EventBridge event.

The webhook is delivered at most once per job and terminal status (a claim in
the jobs table guards it against Step Functions retrying the Notify state),
with a few quick retries of its own; a receiver that stays down does not fail
the job, which has already ended.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

from ytcaption.adapters import aws
from ytcaption.adapters.netsafety import UrlPolicy, check_url, guarded
from ytcaption.adapters.table import Table
from ytcaption.domain.errors import UnsafeUrl
from ytcaption.domain.jobs import Job
from ytcaption.observability import logger
from ytcaption.settings import AwsResources

EVENT_SOURCE = "ytcaption"
USER_AGENT = "YTCaption-Webhook/1.0"
#: The longest a webhook try made inside an API request may take (API Gateway allows 29 s
#: for the whole request; a receiver that never answers must not hold the caller).
IN_REQUEST_TIMEOUT_S = 2.0
SIGNATURE_HEADER = "X-YTCaption-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the timestamp is signed
    with the body, so a receiver can refuse replays of an old delivery."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@functools.cache
def _secret_value(arn: str) -> str:
    """The signing key, read once per process (a Lambda container) from Secrets Manager."""
    return str(aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def signing_secret(settings: AwsResources) -> str | None:
    arn = getattr(settings, "webhook_secret_arn", "")
    return _secret_value(arn) if arn else None


def payload(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "error": job.error.model_dump(mode="json") if job.error else None,
        "results": sorted(job.results),
        "language": job.language,
        "source": job.source.url or job.source.filename,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
    }


class Notifier:
    def __init__(self, settings: AwsResources, repo: Table, events_client: Any | None = None) -> None:
        self.settings = settings
        self.repo = repo
        self._events = events_client

    @property
    def events(self) -> Any:
        if self._events is None:
            self._events = aws.client("events")
        return self._events

    def job_finished(self, job: Job, *, attempts: int | None = None,
                     timeout_s: float | None = None) -> dict[str, Any]:
        """Event and webhook for a job that reached a terminal state.

        ``attempts`` caps webhook tries and ``timeout_s`` each try's wait (the API cancels
        inside a request, so it tries once, briefly).
        """
        body = payload(job)
        out: dict[str, Any] = {"event": self._put_event(job, body)}
        if job.options.webhook_url:
            out["webhook"] = self._deliver_once(job, body, attempts, timeout_s)
        return out

    def _put_event(self, job: Job, body: dict[str, Any]) -> bool:
        try:
            resp = self.events.put_events(
                Entries=[{
                    "Source": EVENT_SOURCE,
                    "DetailType": f"Transcription Job {job.status.value.capitalize()}",
                    "Detail": json.dumps(body),
                    "EventBusName": self.settings.event_bus_name,
                    "Resources": [job.execution_arn] if job.execution_arn else [],
                }]
            )
            return int(resp.get("FailedEntryCount", 0)) == 0
        except Exception:  # an event bus outage must not fail a finished job
            logger.exception("EventBridge put_events failed")
            return False

    def _deliver_once(self, job: Job, body: dict[str, Any], attempts: int | None = None,
                      timeout_s: float | None = None) -> str:
        claim = f"WEBHOOK#{job.job_id}#{job.status.value}"
        if not self.repo.claim(claim, owner="notify"):
            return "already-delivered"
        if self.post(str(job.options.webhook_url), body, event=f"job.{job.status.value.lower()}",
                     attempts=attempts, timeout_s=timeout_s):
            return "delivered"
        self.repo.release(claim)  # let a later retry of the Notify state try again
        return "failed"

    def post(self, url: str, body: dict[str, Any], *, event: str, attempts: int | None = None,
             timeout_s: float | None = None) -> bool:
        policy = UrlPolicy.from_settings(self.settings)
        try:
            check_url(url, policy)
        except UnsafeUrl as exc:
            logger.warning("webhook refused: unsafe URL", extra={"error": exc.message})
            return False
        with guarded(policy):
            return self._post(url, body, event=event, attempts=attempts or self.settings.webhook_attempts,
                              timeout_s=min(timeout_s or self.settings.webhook_timeout_s,
                                            self.settings.webhook_timeout_s))

    def _post(self, url: str, body: dict[str, Any], *, event: str, attempts: int, timeout_s: float) -> bool:
        data = json.dumps(body).encode()
        try:
            secret = signing_secret(self.settings)
        except Exception:  # never send unsigned what should be signed: a later retry may work
            logger.exception("webhook signing key unavailable")
            return False
        for attempt in range(attempts):
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                       "X-YTCaption-Event": event, "X-YTCaption-Delivery": f"{body['job_id']}:{event}"}
            if secret:
                headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), data)  # fresh per attempt
            request = urllib.request.Request(  # noqa: S310 - http(s) only, checked at submission
                url, data=data, method="POST", headers=headers,
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
                    if 200 <= resp.status < 300:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code not in (408, 429):
                    logger.warning("webhook refused", extra={"status": exc.code})
                    return False
            except UnsafeUrl as exc:
                logger.warning("webhook refused: unsafe address", extra={"error": exc.message})
                return False
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", None)
                if isinstance(reason, UnsafeUrl):
                    logger.warning("webhook refused: unsafe address", extra={"error": reason.message})
                    return False
                logger.warning("webhook unreachable", extra={"error": type(exc).__name__})
            if attempt + 1 < attempts:
                time.sleep(min(8.0, 0.5 * 2**attempt))
        return False
