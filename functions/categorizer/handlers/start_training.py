"""Lambda entry point of the start-training function: the EventBridge retraining schedule.

The event's `time` (the schedule tick) names the training job, so a retried invocation of the same tick
finds its job and starts no second one. Skips (too little new feedback, no champion) return normally with
the reason, which is logged; configuration or AWS errors raise, so the asynchronous invocation retries and
then lands in the learning loop's failure queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.adapters.training_jobs import TrainingJobs
from categorizer.contract import MetricName, StartTrainingSettings
from categorizer.observability import logger, metrics, tracer
from categorizer.registry.store import ModelRegistry, registry_cache_dir
from categorizer.registry.training_job import RetrainDependencies, RetrainStatus, start_retraining
from categorizer.wiring import Lazy

# The one table from outcome to metric (an outcome with no metric is listed with None on purpose).
METRIC_BY_STATUS: dict[RetrainStatus, MetricName | None] = {
    RetrainStatus.STARTED: MetricName.TRAINING_JOBS_STARTED,
    RetrainStatus.SKIPPED: MetricName.RETRAINING_SKIPPED,
    RetrainStatus.ALREADY_STARTED: None,
}


def build_dependencies(settings: StartTrainingSettings) -> RetrainDependencies:
    """The one place this function's clients are made."""
    return RetrainDependencies(settings=settings, registry=ModelRegistry.from_settings(settings),
                               jobs=TrainingJobs(), read_feedback=FeedbackScan(settings.feedback_table).all_records,
                               cache_dir=registry_cache_dir(settings.model_cache_dir))


settings = StartTrainingSettings.from_env()  # cold start: a missing or malformed variable fails here, by name
dependencies = Lazy(lambda: build_dependencies(settings))


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    outcome = start_retraining(datetime.fromisoformat(event.time), dependencies.get())
    metric = METRIC_BY_STATUS[outcome["status"]]
    if metric is not None:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return outcome
