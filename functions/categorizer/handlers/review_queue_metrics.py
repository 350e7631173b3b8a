"""Lambda entry point of the review-queue-metrics function: an EventBridge schedule (every few minutes).

Publishes ReviewQueueDepth and ReviewQueueOldestItemAge (seconds, 0 when empty) once per tick; the age is
alarmed (docs/deploy.md, "Alarms, dashboard, logs"). The measuring is review/health.py.

A queue that cannot be read is swallowed and counted (ReviewQueueReadFailures, alarmed when it lasts), not
raised. Why: a tick measures "now", so a retry minutes later is no better than the next tick, and raising
would only add Lambda/EventBridge retries (infra turns them off for this function) and error noise for one
blip of DynamoDB. Anything else (a bug, a broken deployment) still raises and shows as function Errors.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.adapters.review_table import ReviewTable
from categorizer.contract import MetricName, ReviewQueueMetricsSettings
from categorizer.observability import logger, metrics, tracer
from categorizer.review.health import HealthDependencies, HealthStatus, QueueHealth, measure_queue
from categorizer.wiring import Lazy

# The one table from outcome to metric: a measured tick publishes the two gauges, a failed one a count.
METRICS_BY_STATUS: dict[HealthStatus, tuple[MetricName, ...]] = {
    HealthStatus.MEASURED: (MetricName.REVIEW_QUEUE_DEPTH, MetricName.REVIEW_QUEUE_OLDEST_ITEM_AGE),
    HealthStatus.UNAVAILABLE: (MetricName.REVIEW_QUEUE_READ_FAILURES,),
}


def build_dependencies(settings: ReviewQueueMetricsSettings) -> HealthDependencies:
    """The one place this function's clients are made."""
    table = ReviewTable.create(settings.review.review_table, region=settings.region)  # type: ignore[arg-type]
    return HealthDependencies(table=table, max_pages=settings.review_depth_max_pages)


def emit_metrics(health: QueueHealth) -> None:
    values = {MetricName.REVIEW_QUEUE_DEPTH: (MetricUnit.Count, health.depth),
              MetricName.REVIEW_QUEUE_OLDEST_ITEM_AGE: (MetricUnit.Seconds, health.oldest_age_seconds),
              MetricName.REVIEW_QUEUE_READ_FAILURES: (MetricUnit.Count, 1)}
    for name in METRICS_BY_STATUS[health.status]:
        unit, value = values[name]
        metrics.add_metric(name=name, unit=unit, value=value)


settings = ReviewQueueMetricsSettings.from_env()  # cold start: a missing or malformed variable fails here, by name
dependencies = Lazy(lambda: build_dependencies(settings))


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    health = measure_queue(dependencies.get())
    emit_metrics(health)
    logger.info("review queue measured" if health.status is HealthStatus.MEASURED else "review queue unreadable",
                extra={"tick": event.time, **health.as_dict()})
    return health.as_dict()
