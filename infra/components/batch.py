"""Batch files: the ingest and results buckets, the ingest queue with its DLQ, and the S3 -> SQS wiring.

No unbounded recursion path: notifications fire only for `ingest/` keys of the ingest bucket, and the batch
function can write only to the results bucket (which has no notifications at all). The one way back to the
function is its own chunk fan-out (split -> chunk tasks -> join task on the ingest queue): three steps deep,
and the function's recursive-loop detection (TERMINATE) would stop a runaway chain.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import config
from infra.components.nag import acknowledge
from infra.components.storage import secure_bucket


class FileBuckets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, names: config.ResourceNames,
                 stage: config.StageConfig, access_logs: s3.IBucket, removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        noncurrent = cdk.Duration.days(stage.noncurrent_version_expiration_days)
        # Versioned: an object version is the identity of a batch job (a new upload of a key is a new job).
        self.ingest = secure_bucket(
            self, "Ingest", bucket_name=names.ingest_bucket, removal_policy=removal_policy,
            access_logs=access_logs, versioned=True,
            lifecycle_rules=[s3.LifecycleRule(id="expire-ingested", prefix=config.INGEST_PREFIX,
                                              expiration=cdk.Duration.days(stage.ingest_expiration_days),
                                              noncurrent_version_expiration=noncurrent)],
        )
        # A batch job killed mid-file leaves an incomplete multipart upload (never visible, but billed): abort
        # it after a day. Fan-out work objects of a job that never joined expire sooner than results; the
        # join deletes them (delete markers), so their noncurrent versions go after a day too.
        self.results = secure_bucket(
            self, "Results", bucket_name=names.results_bucket, removal_policy=removal_policy,
            access_logs=access_logs, versioned=True, incomplete_upload_days=stage.incomplete_upload_days,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-results", expiration=cdk.Duration.days(stage.results_expiration_days),
                                 noncurrent_version_expiration=noncurrent),
                s3.LifecycleRule(id="expire-fanout-work", prefix=config.RESULTS_WORK_PREFIX,
                                 expiration=cdk.Duration.days(stage.work_expiration_days),
                                 noncurrent_version_expiration=cdk.Duration.days(1)),
            ],
        )

    def allow_browser_uploads(self, origin: str) -> None:
        """Let the web console (served from `origin`) POST presigned upload forms to the ingest bucket and read
        the answer. Only POST: downloads are plain navigations to presigned GET links, which need no CORS."""
        self.ingest.add_cors_rule(
            allowed_methods=[s3.HttpMethods.POST],  # S3 answers the OPTIONS preflight from this rule
            allowed_origins=[origin],
            allowed_headers=["content-type"],
            max_age=600,
        )


class IngestQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, spec: config.QueueSpec) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.dlq = sqs.Queue(
            self, "DeadLetters", queue_name=spec.dlq_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=cdk.Duration.seconds(spec.dlq_retention_seconds),
        )
        acknowledge(self.dlq, "Serverless-SQSRedrivePolicy", "This queue is the dead-letter queue of the ingest queue.")
        self.queue = sqs.Queue(
            self, "Queue", queue_name=spec.name,
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(spec.visibility_timeout_seconds),
            retention_period=cdk.Duration.seconds(spec.retention_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=spec.max_receive_count),
        )

    def attach(self, function: lambda_.Function, *, max_concurrency: int) -> sources.SqsEventSource:
        """One file per message; failed records are reported in `batchItemFailures`, not by raising."""
        source = sources.SqsEventSource(
            self.queue, batch_size=self.spec.batch_size, report_batch_item_failures=True,
            max_concurrency=max(2, max_concurrency),
        )
        function.add_event_source(source)
        return source

    def grant_send_chunk_tasks(self, grantee: iam.IGrantable) -> None:
        """The batch function's fan-out sends chunk and join tasks to this queue (SendMessageBatch is
        authorized as sqs:SendMessage). Only that action: the URL comes from the environment, not GetQueueUrl."""
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["sqs:SendMessage"], resources=[self.queue.queue_arn]))


class IngestNotification(Construct):
    """S3 ObjectCreated under the ingest prefix -> the ingest queue.

    Written as the bucket's own NotificationConfiguration (no CDK notifications custom resource, so no extra
    Lambda function). The queue policy names the bucket by its ARN built from the configured name, so the
    bucket can depend on the policy without a dependency cycle (S3 checks the destination on creation).
    """

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.Bucket, bucket_name: str,
                 queue: sqs.Queue, prefix: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.prefix = prefix
        bucket_arn = stack.format_arn(service="s3", region="", account="", resource=bucket_name)
        queue.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowIngestBucketNotifications",
            principals=[iam.ServicePrincipal("s3.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": bucket_arn},
                        "StringEquals": {"aws:SourceAccount": stack.account}},
        ))
        cfn_bucket: s3.CfnBucket = bucket.node.default_child
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=[s3.CfnBucket.QueueConfigurationProperty(
                event="s3:ObjectCreated:*",
                queue=queue.queue_arn,
                filter=s3.CfnBucket.NotificationFilterProperty(
                    s3_key=s3.CfnBucket.S3KeyFilterProperty(
                        rules=[s3.CfnBucket.FilterRuleProperty(name="prefix", value=prefix)])),
            )],
        )
        cfn_bucket.add_resource_dependency(queue.node.find_child("Policy").node.default_child)
