"""The review queue's health signal: a schedule that runs the review-queue-metrics function.

EventBridge schedule -> review-queue-metrics function -> ReviewQueueDepth and ReviewQueueOldestItemAge
(EMF) -> the monitoring alarm on the oldest item's age. No retries and no failure queue on purpose: each tick
measures "now", so a late retry is worth no more than the next tick a few minutes later; a function that keeps
failing shows as its Errors alarm, and a queue it cannot read as the ReviewQueueReadFailures alarm.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import config
from infra.components.nag import acknowledge

NO_REDELIVERY = ("A review-queue measurement is only good for its own tick: a failed or late one is "
                 "superseded by the next scheduled tick minutes later, so it is neither retried nor kept. "
                 "Failures are alarmed instead (the function's Errors alarm, ReviewQueueReadFailures).")


class ReviewQueueMetricsSchedule(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, names: config.ResourceNames,
                 stage: config.StageConfig, function: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        # A tick older than a tick is worth nothing: no Lambda retries, events dropped after a minute.
        function.configure_async_invoke(retry_attempts=0, max_event_age=cdk.Duration.minutes(1))
        self.rule = events.Rule(
            self, "Schedule", rule_name=f"{names.training_job_prefix}-review-queue-metrics",
            description="Measures the review queue (open items, oldest open item's age) on the stage's schedule",
            schedule=events.Schedule.expression(stage.review_metrics_schedule),
            targets=[targets.LambdaFunction(function, retry_attempts=0,
                                            max_event_age=cdk.Duration.minutes(1))],
        )
        acknowledge(self.rule, "Serverless-EventBusDLQ", NO_REDELIVERY)
        acknowledge(function, "Serverless-LambdaDLQ", NO_REDELIVERY)
        acknowledge(function, "Serverless-LambdaAsyncFailureDestination", NO_REDELIVERY)
