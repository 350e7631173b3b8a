"""Lambda entry point of the start-training function: the EventBridge retraining schedule.

The event's `time` (the schedule tick) names the training job, so a retried invocation of the same tick
finds its job and starts no second one. Skips (too little new feedback, no champion) return normally with
the reason, which is logged; configuration or AWS errors raise, so the asynchronous invocation retries and
then lands in the learning loop's failure queue.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.adapters.training_jobs import TrainingJobs
from categorizer.observability import logger, metrics, tracer
from categorizer.registry.store import ModelRegistry, registry_cache_dir
from categorizer.registry.training_job import RetrainDependencies, TrainingConfigError, start_retraining
from categorizer.settings import get_settings

TRAINING_JOBS_STARTED = "TrainingJobsStarted"
RETRAINING_SKIPPED = "RetrainingSkipped"  # dashboard only: too little new feedback, no champion


@lru_cache(maxsize=1)
def dependencies() -> RetrainDependencies:
    settings = get_settings()
    if not settings.feedback_table:
        raise TrainingConfigError("the start-training function needs FEEDBACK_TABLE")
    return RetrainDependencies(settings=settings, registry=ModelRegistry.from_settings(settings),
                               jobs=TrainingJobs(), read_feedback=FeedbackScan(settings.feedback_table).all_records,
                               cache_dir=registry_cache_dir(settings))


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    when = datetime.fromisoformat(event.time)
    outcome = start_retraining(when, dependencies())
    if outcome["status"] == "started":
        metrics.add_metric(name=TRAINING_JOBS_STARTED, unit=MetricUnit.Count, value=1)
    elif outcome["status"] == "skipped":
        metrics.add_metric(name=RETRAINING_SKIPPED, unit=MetricUnit.Count, value=1)
    return outcome
