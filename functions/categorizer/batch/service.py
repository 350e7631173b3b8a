"""One SQS message (an S3 notification, possibly several records) -> one job per created object."""

from __future__ import annotations

import json

from categorizer.batch.fanout import TASK_FIELD, run_task, split_file
from categorizer.batch.job import process_object
from categorizer.batch.notifications import InvalidNotificationError, parse_notification
from categorizer.batch.report import JobDependencies, JobOutcome, JobStatus
from categorizer.observability import logger


def _task(body: str) -> dict | None:
    """A chunk fan-out task this function sent itself, or None for anything else."""
    try:
        message = json.loads(body)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) and TASK_FIELD in message else None


def handle_message(body: str, deps: JobDependencies) -> list[JobOutcome]:
    """Run every object of the notification in order. A transient error propagates (retry the message);
    the objects already done are then duplicates on the retry and cost one manifest read each."""
    task = _task(body)
    if task is not None:
        outcome = run_task(task, deps)
        logger.info("fan-out task finished", extra={"task": task, "status": outcome.status, "key": outcome.key})
        return [outcome]
    try:
        events = parse_notification(body)
    except InvalidNotificationError as exc:
        # Retrying cannot fix a message that is not an S3 notification: report it, do not loop.
        logger.error("message is not an S3 notification; dropped", extra={"error": str(exc), "body": body[:500]})
        return [JobOutcome(JobStatus.INVALID, bucket="", key="", reason=str(exc))]
    outcomes = []
    for event in events:
        # Fan out only where the function can send itself chunk tasks (the queue URL is set).
        outcome = process_object(event, deps, split=split_file if deps.tasks is not None else None)
        log = logger.error if outcome.status in (JobStatus.FAILED, JobStatus.REFUSED) else logger.info
        summary = outcome.summary
        log("file job finished", extra={
            "status": outcome.status, "bucket": event.bucket, "key": event.key, "etag": event.etag,
            "version_id": event.version_id, "reason": outcome.reason,
            "rows_in": summary.rows_in if summary else None,
            "rows_classified": summary.rows_classified if summary else None,
            "rows_rejected": summary.rows_rejected if summary else None,
            "manifest": outcome.outputs.manifest if outcome.outputs else None,
        })
        outcomes.append(outcome)
    return outcomes
