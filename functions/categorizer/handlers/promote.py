"""Lambda entry point of the promote function: "SageMaker Training Job State Change" events.

The logic (registry/promotion.py) decides; this emits the metrics the alarms watch: a failed or stopped
job (TrainingJobsFailed), promotions and rejections, and the count of rejections in a row.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.contract import MetricName, PromoteSettings
from categorizer.observability import logger, metrics, tracer
from categorizer.registry.promotion import PromotionDependencies, PromotionStatus, handle_training_state_change
from categorizer.registry.store import ModelRegistry, registry_cache_dir
from categorizer.wiring import Lazy

# The one table from outcome to metric.
METRIC_BY_STATUS: dict[PromotionStatus, MetricName | None] = {
    PromotionStatus.TRAINING_FAILED: MetricName.TRAINING_JOBS_FAILED,
    PromotionStatus.PROMOTED: MetricName.PROMOTIONS,
    PromotionStatus.REJECTED: MetricName.PROMOTIONS_REJECTED,
    PromotionStatus.ALREADY_DECIDED: None,
    PromotionStatus.IGNORED: None,
}


def build_dependencies(settings: PromoteSettings) -> PromotionDependencies:
    """The one place this function's clients are made (the CLI's `model promote` builds the same)."""
    return PromotionDependencies(settings=settings, registry=ModelRegistry.from_settings(settings),
                                 read_feedback=FeedbackScan(settings.feedback_table).all_records,
                                 cache_dir=registry_cache_dir(settings.model_cache_dir))


def emit_metrics(outcome: dict[str, Any]) -> None:
    metric = METRIC_BY_STATUS[outcome["status"]]
    if metric is not None:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    if "consecutive_rejections" in outcome:
        metrics.add_metric(name=MetricName.CONSECUTIVE_REJECTIONS, unit=MetricUnit.Count,
                           value=outcome["consecutive_rejections"])


settings = PromoteSettings.from_env()  # cold start: a missing or malformed variable fails here, by name
dependencies = Lazy(lambda: build_dependencies(settings))


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies.get()
    deps.actor = f"promote-function:{context.function_name}"
    outcome = handle_training_state_change(event, deps)
    emit_metrics(outcome)
    return outcome
