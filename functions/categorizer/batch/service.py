"""One SQS message (an S3 notification, possibly several records) -> one job per created object."""

from __future__ import annotations

import json

from categorizer.batch.fanout import TASK_FIELD, run_task
from categorizer.batch.job import JobDependencies, JobOutcome, process_object
from categorizer.batch.notifications import InvalidNotificationError, parse_notification
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
        return [JobOutcome("invalid", bucket="", key="", reason=str(exc))]
    outcomes = []
    for event in events:
        outcome = process_object(event, deps)
        log = logger.error if outcome.status in ("failed", "refused") else logger.info
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
