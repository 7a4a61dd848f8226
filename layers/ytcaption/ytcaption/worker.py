"""The GPU Batch job (``containers/transcriber``): transcribe one shard of a job with
:class:`ytcaption.stages.transcribe.TranscribeStage`, the only stage this process loads.

    python -m ytcaption.worker [--job-id ID] [--shard N]

Arguments default to the ``JOB_ID`` and ``SHARD_INDEX`` environment variables
that the state machine sets on each Batch job; it also sets ``SUBMITTED_AT``
(when the shard was submitted, for the queue-wait metric) and
``_X_AMZN_TRACE_ID`` (the execution's X-Ray trace header, which every JSON log
line then carries as ``xray_trace_id``, like the Lambdas' lines).

Exit status, which the job definition's ``RetryStrategy.EvaluateOnExit`` reads
(Batch alone retries a shard; the state machine does not):

- 0: the shard is done (or the job no longer wants it);
- 75 (``EX_TEMPFAIL``): a retryable error (``retryable`` in :mod:`ytcaption.domain.errors`):
  Batch runs the shard again, and chunks already transcribed are skipped;
- 65: a permanent error (a model that cannot load, a bug): Batch gives up at once;
- 2: a bad invocation.

Before exiting with an error the worker records it on the job
(:meth:`TranscribeStage.record_worker_error`), so the job fails with the worker's own
code and message instead of Step Functions' bare ``States.TaskFailed``.
"""

from __future__ import annotations

import argparse
import os
import sys

from ytcaption.domain.errors import YTCaptionError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PERMANENT = 65
EXIT_RETRYABLE = 75


def exit_code(exc: YTCaptionError) -> int:
    """The exit status for a failure: retryability comes from errors.py, nowhere else."""
    return EXIT_RETRYABLE if exc.retryable else EXIT_PERMANENT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ytcaption.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job-id", default=os.environ.get("JOB_ID"))
    parser.add_argument("--shard", type=int, default=int(os.environ.get("SHARD_INDEX", "-1")))
    parser.add_argument("--submitted-at", default=os.environ.get("SUBMITTED_AT") or None)
    args = parser.parse_args(argv)
    if not args.job_id or args.shard < 0:
        parser.print_usage(sys.stderr)
        print("error: a job id and a shard index are required", file=sys.stderr)
        return EXIT_USAGE
    from ytcaption import services
    from ytcaption.observability import logger

    stage = services.transcribe_stage()
    try:
        result = stage.run(args.job_id, args.shard, submitted_at=args.submitted_at)
    except Exception as raised:
        if isinstance(raised, YTCaptionError):
            exc = raised
            logger.error("shard failed", extra={"code": exc.code, "error": exc.message, "shard": args.shard})
        else:  # a bug or an unexpected library error: details to the logs only
            logger.exception("shard failed unexpectedly", extra={"shard": args.shard})
            exc = YTCaptionError(f"the transcription worker failed unexpectedly ({type(raised).__name__})")
        code = exit_code(exc)
        stage.record_worker_error(args.job_id, args.shard, exc)
        print(f"{exc.code}: {exc.message} (exit {code})", file=sys.stderr)
        return code
    logger.info("shard finished", extra=result)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
