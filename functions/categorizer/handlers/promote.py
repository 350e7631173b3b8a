"""Lambda entry point of the promote function: "SageMaker Training Job State Change" events.

The logic (registry/promotion.py) decides; this emits the metrics the alarms watch: a failed or stopped
job (TrainingJobsFailed), promotions and rejections, and the count of rejections in a row.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.observability import logger, metrics, tracer
from categorizer.registry.promotion import PromotionDependencies, handle_training_state_change
from categorizer.registry.store import ModelRegistry, registry_cache_dir
from categorizer.settings import get_settings

# The names infra/config.py's MetricName gives the alarms and the dashboard (a test keeps them equal).
TRAINING_JOBS_FAILED = "TrainingJobsFailed"
MODELS_PROMOTED = "ModelsPromoted"
PROMOTIONS_REJECTED = "PromotionsRejected"
CONSECUTIVE_REJECTIONS = "ConsecutivePromotionRejections"


@lru_cache(maxsize=1)
def dependencies() -> PromotionDependencies:
    settings = get_settings()
    read_feedback = FeedbackScan(settings.feedback_table).all_records if settings.feedback_table else list
    return PromotionDependencies(settings=settings, registry=ModelRegistry.from_settings(settings),
                                 read_feedback=read_feedback, cache_dir=registry_cache_dir(settings))


def emit_metrics(outcome: dict[str, Any]) -> None:
    status = outcome["status"]
    if status == "training_failed":
        metrics.add_metric(name=TRAINING_JOBS_FAILED, unit=MetricUnit.Count, value=1)
    elif status == "promoted":
        metrics.add_metric(name=MODELS_PROMOTED, unit=MetricUnit.Count, value=1)
    elif status == "rejected":
        metrics.add_metric(name=PROMOTIONS_REJECTED, unit=MetricUnit.Count, value=1)
    if "consecutive_rejections" in outcome:
        metrics.add_metric(name=CONSECUTIVE_REJECTIONS, unit=MetricUnit.Count,
                           value=outcome["consecutive_rejections"])


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()
    deps.actor = f"promote-function:{context.function_name}"
    outcome = handle_training_state_change(event, deps)
    emit_metrics(outcome)
    return outcome
