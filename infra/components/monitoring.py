"""Dashboard and alarms. Every alarm notifies an encrypted, SSL-only SNS topic and says what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import config
from infra.config import MetricName

FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_HOUR = cdk.Duration.hours(1)


def alarm_name_prefix(stage: str) -> str:
    """Every alarm of a stage is named `<app>-<stage>-...`: the topic policy lets exactly these publish."""
    return f"{config.APP_NAME}-{stage}-"


@dataclass(frozen=True)
class WatchedQueue:
    label: str
    queue: sqs.IQueue
    runbook: str


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, names: config.ResourceNames,
                 stage: config.StageConfig, api: apigw.RestApi, functions: Mapping[str, lambda_.IFunction],
                 dead_letter_queues: Sequence[WatchedQueue], source_queue: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        self._stage = stage
        self._dimensions = {"service": config.service_name(stage.name)}
        thresholds = stage.alarms

        key = kms.Key(self, "TopicKey", enable_key_rotation=True,
                      description=f"Encrypts the {names.alarm_topic} SNS topic",
                      removal_policy=cdk.RemovalPolicy.DESTROY)
        # CloudWatch alarms publish to an encrypted topic only if the key lets CloudWatch use it.
        key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
        ))
        self.topic = sns.Topic(self, "AlarmTopic", topic_name=names.alarm_topic, master_key=key,
                               enforce_ssl=True, display_name=f"categorizer {stage.name} alarms")
        # enforce_ssl writes a topic policy, and a topic policy replaces SNS's default one, which is what lets
        # same-account alarms publish: without this statement every alarm fails with "not authorized to perform
        # SNS:Publish". Only this stack's alarms (by name prefix), only from this account.
        stack = cdk.Stack.of(self)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowThisStacksAlarms",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"], resources=[self.topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:"
                                             f"alarm:{alarm_name_prefix(stage.name)}*"},
            },
        ))
        if stage.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(stage.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}

        # --- API -------------------------------------------------------------------------------------------
        requests = api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        errors_5xx = api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        errors_4xx = api.metric_client_error(period=FIVE_MINUTES, statistic="Sum")
        latency_p99 = api.metric_latency(period=FIVE_MINUTES, statistic="p99")
        latency_p50 = api.metric_latency(period=FIVE_MINUTES, statistic="p50")
        rate_5xx = cw.MathExpression(expression="IF(requests > 0, 100 * errors / requests, 0)",
                                     using_metrics={"requests": requests, "errors": errors_5xx},
                                     label="5xx rate (%)", period=FIVE_MINUTES)
        self._alarm("Api5xxRate", rate_5xx, threshold=thresholds.api_5xx_rate_percent, periods=3, datapoints=2,
                    runbook="API answers 5xx above the threshold. Check the API function's errors and logs "
                            "(model load from S3, SSM champion pointer, DynamoDB feedback table); roll back "
                            "the champion if a new model fails to load.")
        self._alarm("ApiLatencyP99", latency_p99, threshold=thresholds.api_p99_latency_ms, periods=3,
                    datapoints=3,
                    runbook="API p99 latency is high. Look for cold starts after a deploy or a model swap, "
                            "throttles, and request sizes; raise the API function's memory (more vCPUs, "
                            "ONNX threads follow) or provisioned concurrency.")

        # --- Functions -------------------------------------------------------------------------------------
        for label, function in functions.items():
            self._alarm(f"{label}Errors", function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                        threshold=thresholds.function_errors, periods=1, datapoints=1,
                        runbook=f"The {label} function raised errors. Open its log group (JSON logs, "
                                "filter level=ERROR), fix the cause, then redrive any DLQ messages.")
            self._alarm(f"{label}Throttles", function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                        threshold=thresholds.function_throttles, periods=1, datapoints=1,
                        runbook=f"The {label} function was throttled. Check the account's concurrency and the "
                                "function's reserved concurrency in the stage config; raise either.")

        # --- Queues ----------------------------------------------------------------------------------------
        for watched in dead_letter_queues:
            visible = watched.queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES,
                                                                                 statistic="Maximum")
            self._alarm(f"{watched.label}Messages", visible, threshold=1, periods=1, datapoints=1,
                        runbook=watched.runbook)

        # --- Batch -----------------------------------------------------------------------------------------
        rows_classified = self._metric(MetricName.ROWS_CLASSIFIED, period=ONE_HOUR)
        rows_rejected = self._metric(MetricName.ROWS_REJECTED, period=ONE_HOUR)
        rejected_ratio = cw.MathExpression(
            expression="IF(classified + rejected > 0, rejected / (classified + rejected), 0)",
            using_metrics={"classified": rows_classified, "rejected": rows_rejected},
            label="rejected row ratio", period=ONE_HOUR)
        self._alarm("RejectedRowRatio", rejected_ratio, threshold=thresholds.rejected_row_ratio, periods=1,
                    datapoints=1,
                    runbook="Many input rows were rejected. Read the <name>.errors.* reports next to the "
                            "results (reasons per row) and tell the team that dropped the files.")
        # The review queue never fails a classification; this says when it silently stopped receiving items.
        self._alarm("ReviewQueueWriteFailures",
                    self._metric(MetricName.REVIEW_QUEUE_WRITE_FAILURES, period=ONE_HOUR),
                    threshold=10, periods=1, datapoints=1,
                    runbook="Predictions that need review were not queued (classifications were answered). "
                            "Search the API and batch logs for 'review queue writes failed': the review table's "
                            "throttling, permissions or existence.")
        # Nobody works the review queue: its oldest open item (ReviewQueueOldestItemAge, published every few
        # minutes by review-queue-metrics) has waited longer than the stage allows.
        self._alarm("ReviewQueueOldestItemAge",
                    self._metric(MetricName.REVIEW_QUEUE_OLDEST_ITEM_AGE, period=FIVE_MINUTES, statistic="Maximum"),
                    threshold=thresholds.review_oldest_item_alarm_hours * 3600, periods=2, datapoints=2,
                    runbook=f"An open review item has waited over {thresholds.review_oldest_item_alarm_hours:g} h "
                            "and items expire undecided after REVIEW_TTL_DAYS. Check ReviewQueueDepth on the "
                            "dashboard and the console's Review page: assign reviewers (Cognito group "
                            "'reviewers'), or lower the inflow (REVIEW_MAX_PER_FILE / REVIEW_MAX_PER_REQUEST); "
                            "docs/deploy.md, 'The review queue alarm'.")
        # The health signal itself is blind: three ticks in a row could not read the review table.
        self._alarm("ReviewQueueReadFailures",
                    self._metric(MetricName.REVIEW_QUEUE_READ_FAILURES, period=FIVE_MINUTES),
                    threshold=1, periods=3, datapoints=3,
                    runbook="The review-queue-metrics function cannot read the review table, so the queue's "
                            "depth and age are not measured (and their alarm cannot fire). Search its logs for "
                            "'review queue not measured': throttling, permissions (dynamodb:Query on the "
                            "open-by-time index) or a missing table.")
        # Whole-file failures are reports, not retries; this counts the retried ones (S3/SQS errors, the model
        # not loading), which become DLQ messages after max_receive_count.
        self._alarm("FileTransientFailures",
                    self._metric(MetricName.FILE_TRANSIENT_FAILURES, period=FIVE_MINUTES),
                    threshold=1, periods=1, datapoints=1,
                    runbook="A batch file job (or a fan-out chunk/join task) failed with a transient error and "
                            "its message returns to the ingest queue. Search the batch function's logs for "
                            "'file job failed' (message_id, exception): S3 or SQS throttling/permissions, or "
                            "the champion model failing to load. Repeated failures land in the ingest DLQ; fix "
                            "the cause, then redrive it.")

        # --- Learning loop ---------------------------------------------------------------------------------
        self._alarm("TrainingJobFailed", self._metric(MetricName.TRAINING_JOBS_FAILED, period=ONE_HOUR),
                    threshold=1, periods=1, datapoints=1,
                    runbook="A training job failed or was stopped. Read its CloudWatch logs "
                            "(/aws/sagemaker/TrainingJobs) and FailureReason; the champion keeps serving.")
        self._alarm("PromotionRejectedRepeatedly",
                    self._metric(MetricName.CONSECUTIVE_REJECTIONS, period=cdk.Duration.days(1),
                                 statistic="Maximum"),
                    threshold=thresholds.promotions_rejected_in_a_row, periods=1, datapoints=1,
                    runbook="Several candidates in a row failed the promotion gate. Inspect the decisions "
                            "(`categorizer model list`): noisy feedback labels or a drifted hold-out set.")

        # --- Model quality signals -------------------------------------------------------------------------
        predictions = self._metric(MetricName.PREDICTIONS, period=ONE_HOUR)
        low_confidence = self._metric(MetricName.LOW_CONFIDENCE_PREDICTIONS, period=ONE_HOUR)
        low_share = cw.MathExpression(
            expression="IF(predictions > 0, low / predictions, 0)",
            using_metrics={"predictions": predictions, "low": low_confidence},
            label="low-confidence share", period=ONE_HOUR)
        self._alarm("LowConfidenceShare", low_share, threshold=thresholds.low_confidence_share, periods=3,
                    datapoints=3,
                    runbook="More predictions than usual need review: the input may have drifted. Sample "
                            "recent texts, collect feedback on them and retrain (`categorizer retrain`).")
        out_of_scope = self._metric(MetricName.OUT_OF_SCOPE_PREDICTIONS, period=ONE_HOUR)
        out_of_scope_share = cw.MathExpression(
            expression="IF(predictions + rows > 0, oos / (predictions + rows), 0)",
            using_metrics={"predictions": predictions, "rows": rows_classified, "oos": out_of_scope},
            label="out-of-scope share", period=ONE_HOUR)
        self._alarm("OutOfScopeShare", out_of_scope_share, threshold=thresholds.out_of_scope_share, periods=3,
                    datapoints=3,
                    runbook="Many texts (API predictions and batch rows) are unlike anything the model was "
                            "trained on: a new kind of input is arriving. Sample the out-of-scope texts (the "
                            "out_of_scope column of batch results), label them, add categories if needed and "
                            "retrain (`categorizer retrain`).")
        disagreement = self._metric(MetricName.FEEDBACK_DISAGREEMENT, period=cdk.Duration.hours(6),
                                    statistic="Average")
        self._alarm("FeedbackDisagreementRate", disagreement, threshold=thresholds.feedback_disagreement_rate,
                    periods=1, datapoints=1,
                    runbook="Users correct many predictions. Check which labels are corrected (feedback "
                            "table), then retrain; roll back if it started with a promotion.")

        self.dashboard = self._dashboard(names, api, functions, dead_letter_queues, source_queue,
                                         requests=requests, errors_4xx=errors_4xx, errors_5xx=errors_5xx,
                                         latency_p50=latency_p50, latency_p99=latency_p99,
                                         rejected_ratio=rejected_ratio, low_share=low_share,
                                         out_of_scope_share=out_of_scope_share)

    def _metric(self, name: MetricName, *, period: cdk.Duration, statistic: str = "Sum") -> cw.Metric:
        return cw.Metric(namespace=config.METRICS_NAMESPACE, metric_name=name.value,
                         dimensions_map=self._dimensions, period=period, statistic=statistic)

    def _alarm(self, name: str, metric: cw.IMetric, *, threshold: float, periods: int, datapoints: int,
               runbook: str) -> cw.Alarm:
        alarm = metric.create_alarm(
            self, name,
            alarm_name=f"{alarm_name_prefix(self._stage.name)}{name}",
            alarm_description=f"Runbook: {runbook}",
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[name] = alarm
        return alarm

    def _dashboard(self, names: config.ResourceNames, api: apigw.RestApi,
                   functions: Mapping[str, lambda_.IFunction], dead_letter_queues: Sequence[WatchedQueue],
                   source_queue: sqs.IQueue, **metrics: cw.IMetric) -> cw.Dashboard:
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=names.dashboard,
                                 default_interval=cdk.Duration.hours(24))

        def per_function(title: str, make) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, width=8, left=[make(f).with_(label=label)
                                                              for label, f in functions.items()])

        dashboard.add_widgets(
            cw.TextWidget(markdown=f"# categorizer {self._stage.name}\nAlarms go to SNS topic "
                                   f"`{names.alarm_topic}`; each alarm's description is its runbook.",
                          width=24, height=2),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="API requests and errors", width=8,
                           left=[metrics["requests"]], right=[metrics["errors_4xx"], metrics["errors_5xx"]]),
            cw.GraphWidget(title="API latency p50 / p99 (ms)", width=8,
                           left=[metrics["latency_p50"], metrics["latency_p99"]]),
            cw.AlarmStatusWidget(title="Alarms", width=8, alarms=list(self.alarms.values())),
        )
        dashboard.add_widgets(
            per_function("Invocations", lambda f: f.metric_invocations(statistic="Sum")),
            per_function("Errors", lambda f: f.metric_errors(statistic="Sum")),
            per_function("Throttles", lambda f: f.metric_throttles(statistic="Sum")),
        )
        dashboard.add_widgets(
            per_function("Duration p99 (ms)", lambda f: f.metric_duration(statistic="p99")),
            per_function("Concurrent executions", lambda f: f.metric("ConcurrentExecutions",
                                                                     statistic="Maximum")),
            cw.GraphWidget(title="Queues: ingest backlog and dead letters", width=8, left=[
                source_queue.metric_approximate_number_of_messages_visible(label="ingest backlog"),
                *(w.queue.metric_approximate_number_of_messages_visible(label=w.label)
                  for w in dead_letter_queues)]),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="Batch rows", width=8, left=[
                self._metric(MetricName.ROWS_CLASSIFIED, period=ONE_HOUR),
                self._metric(MetricName.ROWS_REJECTED, period=ONE_HOUR)],
                right=[metrics["rejected_ratio"]]),
            cw.GraphWidget(title="Batch files", width=8, left=[
                self._metric(MetricName.FILES_PROCESSED, period=ONE_HOUR),
                self._metric(MetricName.FILES_FAILED, period=ONE_HOUR),
                self._metric(MetricName.FILE_TRANSIENT_FAILURES, period=ONE_HOUR)]),
            cw.GraphWidget(title="Batch deliveries: duplicates, invalid messages, fan-out", width=8, left=[
                self._metric(name, period=ONE_HOUR) for name in (
                    MetricName.DUPLICATE_DELIVERIES, MetricName.INVALID_NOTIFICATIONS, MetricName.FILES_SPLIT,
                    MetricName.CHUNKS_PROCESSED)]),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="Predictions, low-confidence and out-of-scope share", width=8, left=[
                self._metric(MetricName.PREDICTIONS, period=ONE_HOUR),
                self._metric(MetricName.LOW_CONFIDENCE_PREDICTIONS, period=ONE_HOUR),
                self._metric(MetricName.OUT_OF_SCOPE_PREDICTIONS, period=ONE_HOUR)],
                right=[metrics["low_share"], metrics["out_of_scope_share"]]),
            cw.GraphWidget(title="Feedback volume and disagreement rate", width=8, left=[
                self._metric(MetricName.FEEDBACK, period=ONE_HOUR)],
                right=[self._metric(MetricName.FEEDBACK_DISAGREEMENT, period=ONE_HOUR, statistic="Average")]),
            cw.GraphWidget(title="Training jobs and promotions", width=8, left=[
                self._metric(MetricName.TRAINING_JOBS_STARTED, period=cdk.Duration.days(1)),
                self._metric(MetricName.RETRAINING_SKIPPED, period=cdk.Duration.days(1)),
                self._metric(MetricName.TRAINING_JOBS_FAILED, period=cdk.Duration.days(1)),
                self._metric(MetricName.PROMOTIONS, period=cdk.Duration.days(1)),
                self._metric(MetricName.PROMOTIONS_REJECTED, period=cdk.Duration.days(1))]),
            cw.GraphWidget(title="Review queue: queued, decisions per hour, agreement rate", width=8, left=[
                self._metric(MetricName.REVIEW_ITEMS_QUEUED, period=ONE_HOUR),
                self._metric(MetricName.REVIEW_DECISIONS, period=ONE_HOUR),
                self._metric(MetricName.REVIEW_QUEUE_WRITE_FAILURES, period=ONE_HOUR)],
                right=[self._metric(MetricName.REVIEW_AGREEMENT, period=ONE_HOUR, statistic="Average")]),
        )
        # The queue's health beside it: gauges (Maximum per 5 minutes) do not share an axis with hourly sums.
        oldest_hours = cw.MathExpression(
            expression="age / 3600", label="oldest open item (hours)", period=FIVE_MINUTES,
            using_metrics={"age": self._metric(MetricName.REVIEW_QUEUE_OLDEST_ITEM_AGE, period=FIVE_MINUTES,
                                               statistic="Maximum")})
        dashboard.add_widgets(
            cw.GraphWidget(title="Review queue: open items and oldest open item (hours)", width=8, left=[
                self._metric(MetricName.REVIEW_QUEUE_DEPTH, period=FIVE_MINUTES, statistic="Maximum")],
                right=[oldest_hours],
                right_annotations=[cw.HorizontalAnnotation(
                    value=self._stage.alarms.review_oldest_item_alarm_hours, label="alarm")]),
        )
        return dashboard
