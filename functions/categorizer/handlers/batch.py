"""Lambda entry point of the batch function: SQS messages carrying S3 notifications.

Each message is one record of a partial batch response: a transient error (S3 write, model load)
fails only that message, which returns to the queue and, after a few receives, to the DLQ. A file
that is bad as a whole is reported (errors file + failed manifest) and its message is done.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer import model_store
from categorizer.adapters.s3_objects import get_s3_objects
from categorizer.adapters.task_queue import get_task_queue
from categorizer.batch.job import JobDependencies, JobOutcome
from categorizer.batch.service import handle_message
from categorizer.observability import logger, metrics, tracer
from categorizer.settings import get_settings

# All-failed batches still answer with batchItemFailures (the event source mapping reports them).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _count(name: str, value: int = 1) -> None:
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _record_metrics(outcome: JobOutcome) -> None:
    if outcome.status == "succeeded":
        _count("FilesProcessed")
    elif outcome.status in ("failed", "refused"):
        _count("FilesFailed")
    elif outcome.status == "duplicate":
        _count("DuplicateDeliveries")
    elif outcome.status == "invalid":
        _count("InvalidNotifications")
    elif outcome.status == "split":
        _count("FilesSplit")
    elif outcome.status == "chunk_done":
        _count("ChunksProcessed")
    if outcome.summary:
        _count("RowsClassified", outcome.summary.rows_classified)
        _count("RowsRejected", outcome.summary.rows_rejected)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    settings = get_settings()
    deps = JobDependencies(settings=settings, objects=get_s3_objects(), get_classifier=model_store.get_classifier,
                           remaining_ms=lambda_context.get_remaining_time_in_millis,
                           tasks=get_task_queue(settings.batch_queue_url) if settings.batch_queue_url else None)
    try:
        outcomes = handle_message(record.body, deps)
    except Exception:
        _count("FileTransientFailures")
        logger.exception("file job failed; the message goes back to the queue",
                         extra={"message_id": record.message_id})
        raise
    for outcome in outcomes:
        _record_metrics(outcome)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
