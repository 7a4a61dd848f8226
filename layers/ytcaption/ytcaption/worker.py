"""The GPU Batch job: transcribe one shard of a job.

    python -m ytcaption.worker [--job-id ID] [--shard N]

Arguments default to the ``JOB_ID`` and ``SHARD_INDEX`` environment variables
that the state machine sets on each Batch job; it also sets ``SUBMITTED_AT``
(when the shard was submitted, for the queue-wait metric) and
``_X_AMZN_TRACE_ID`` (the execution's X-Ray trace header, which every JSON log
line then carries as ``xray_trace_id``, like the Lambdas' lines). Exit status 0 means the shard
is done (or the job no longer wants it); 1 means Batch/Step Functions should
retry it (chunks already transcribed are skipped); 2 means a bad invocation.
"""

from __future__ import annotations

import argparse
import os
import sys

from ytcaption.errors import YTCaptionError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ytcaption.worker", description=__doc__)
    parser.add_argument("--job-id", default=os.environ.get("JOB_ID"))
    parser.add_argument("--shard", type=int, default=int(os.environ.get("SHARD_INDEX", "-1")))
    parser.add_argument("--submitted-at", default=os.environ.get("SUBMITTED_AT") or None)
    args = parser.parse_args(argv)
    if not args.job_id or args.shard < 0:
        parser.print_usage(sys.stderr)
        print("error: a job id and a shard index are required", file=sys.stderr)
        return 2
    from ytcaption.observability import logger
    from ytcaption.pipeline import Pipeline
    from ytcaption.settings import get_pipeline_settings

    try:
        result = Pipeline(get_pipeline_settings()).transcribe_shard(args.job_id, args.shard,
                                                                   submitted_at=args.submitted_at)
    except YTCaptionError as exc:
        logger.error("shard failed", extra={"code": exc.code, "error": exc.message, "shard": args.shard})
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    logger.info("shard finished", extra=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
