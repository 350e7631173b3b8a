"""Lambda entry point of the batch function: SQS messages carrying S3 notifications.

Each message is one record of a partial batch response: a transient error (S3 write, model load)
fails only that message, which returns to the queue and, after a few receives, to the DLQ. A file
that is bad as a whole is reported (errors file + failed manifest) and its message is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.adapters.review_table import ReviewTable
from categorizer.adapters.s3_objects import S3Objects
from categorizer.adapters.task_queue import TaskQueue
from categorizer.batch.report import JobDependencies, JobOutcome, JobStatus
from categorizer.batch.service import handle_message
from categorizer.contract import BatchSettings, MetricName
from categorizer.files.pipeline import TextClassifier
from categorizer.model_store import ModelStore
from categorizer.observability import logger, metrics, tracer
from categorizer.wiring import Lazy

# All-failed batches still answer with batchItemFailures (the event source mapping reports them).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# The one table from outcome to metric (None: no file-level metric for that outcome).
METRIC_BY_STATUS: dict[JobStatus, MetricName | None] = {
    JobStatus.SUCCEEDED: MetricName.FILES_PROCESSED,
    JobStatus.FAILED: MetricName.FILES_FAILED,
    JobStatus.REFUSED: MetricName.FILES_FAILED,
    JobStatus.DUPLICATE: MetricName.DUPLICATE_DELIVERIES,
    JobStatus.INVALID: MetricName.INVALID_NOTIFICATIONS,
    JobStatus.SPLIT: MetricName.FILES_SPLIT,
    JobStatus.CHUNK_DONE: MetricName.CHUNKS_PROCESSED,
    JobStatus.SUPERSEDED: None,
    JobStatus.IGNORED: None,
    JobStatus.STALE: None,
}


@dataclass(frozen=True)
class BatchServices:
    """What the batch function builds once per container."""

    settings: BatchSettings
    objects: S3Objects
    get_classifier: Callable[[], TextClassifier]  # the model store's: loads once, hot-swaps the champion
    tasks: TaskQueue | None  # None: the chunk fan-out is off
    review: ReviewTable | None = None  # None: rows that need review are not queued


def build_services(settings: BatchSettings) -> BatchServices:
    """The one place this function's clients are made, from one boto3 session (each session parses botocore's
    data files again: docs/model.md, "API cold start")."""
    aws = boto3.Session()
    review_table = settings.review.review_table
    return BatchServices(
        settings=settings, objects=S3Objects(aws.client("s3")),
        get_classifier=ModelStore(settings.model, session=Lazy(lambda: aws)).get,
        tasks=TaskQueue(settings.batch_queue_url, aws.client("sqs")) if settings.batch_queue_url else None,
        review=ReviewTable.create(review_table, region=settings.region, session=aws) if review_table else None)


def _count(name: MetricName, value: int = 1) -> None:
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def record_metrics(outcome: JobOutcome) -> None:
    metric = METRIC_BY_STATUS[outcome.status]
    if metric is not None:
        _count(metric)
    if outcome.summary:
        _count(MetricName.ROWS_CLASSIFIED, outcome.summary.rows_classified)
        _count(MetricName.ROWS_REJECTED, outcome.summary.rows_rejected)
        _count(MetricName.OUT_OF_SCOPE_PREDICTIONS, outcome.summary.out_of_scope)
        _count(MetricName.REVIEW_ITEMS_QUEUED, outcome.summary.review_queued)
        _count(MetricName.REVIEW_QUEUE_WRITE_FAILURES, outcome.summary.review_queue_failed)


settings = BatchSettings.from_env()  # cold start: a missing or malformed variable fails here, by name
services = Lazy(lambda: build_services(settings))


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    built = services.get()
    deps = JobDependencies(settings=built.settings, objects=built.objects, get_classifier=built.get_classifier,
                           remaining_ms=lambda_context.get_remaining_time_in_millis, tasks=built.tasks,
                           review=built.review)
    try:
        outcomes = handle_message(record.body, deps)
    except Exception:
        _count(MetricName.FILE_TRANSIENT_FAILURES)
        logger.exception("file job failed; the message goes back to the queue",
                         extra={"message_id": record.message_id})
        raise
    for outcome in outcomes:
        record_metrics(outcome)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
