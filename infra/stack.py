"""The categorizer stack: the same class for every stage, configured by a StageConfig. It composes the
constructs and grants; the constructs hold the resource details."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import config
from infra.components.api import ClassificationApi
from infra.components.batch import FileBuckets, IngestNotification, IngestQueue
from infra.components.code_assets import CodeAssets
from infra.components.identity import Identity
from infra.components.learning_loop import LearningLoopTriggers, TrainingResources
from infra.components.model_registry import ModelRegistry
from infra.components.monitoring import Monitoring, WatchedQueue
from infra.components.nag import acknowledge, acknowledge_iam5_resources, arn_token
from infra.components.review_queue import ReviewQueueMetricsSchedule
from infra.components.service_function import ServiceFunction
from infra.components.storage import (
    READ_OBJECT_ACTIONS,
    WRITE_OBJECT_ACTIONS,
    AccessLogBucket,
    grant_list,
    grant_objects,
)
from infra.components.tables import Tables
from infra.config import FunctionName, OutputKey

RETENTION = {1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS, 5: logs.RetentionDays.FIVE_DAYS,
             7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
             60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS,
             180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR}


class CategorizerStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: config.StageConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, description=f"categorizer ({stage.name}): text classification "
                                                          "API, batch files and the learning loop", **kwargs)
        names = config.resource_names(stage.name, account=self.account, region=self.region)
        # Kept data survives a stack deletion or replacement, but not a failed first create (RetainExceptOnCreate):
        # with plain RETAIN the retry of a failed first deploy fails on "already exists".
        removal = cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if stage.retain_data else cdk.RemovalPolicy.DESTROY
        retention = RETENTION[stage.log_retention_days]

        # --- Data -----------------------------------------------------------------------------------------
        access_logs = AccessLogBucket(self, "AccessLogs", bucket_name=names.access_log_bucket,
                                      expiration_days=stage.access_log_expiration_days, removal_policy=removal)
        registry = ModelRegistry(self, "Models", names=names, stage=stage, access_logs=access_logs.bucket,
                                 removal_policy=removal)
        files = FileBuckets(self, "Files", names=names, stage=stage, access_logs=access_logs.bucket,
                            removal_policy=removal)
        tables = Tables(self, "Tables", specs=config.table_specs(names), retain=stage.retain_data)
        identity = Identity(self, "Identity", names=names, retain=stage.retain_data,
                            threat_protection=stage.cognito_threat_protection)
        training = TrainingResources(self, "Training", names=names, stage=stage, model_bucket=registry.bucket)
        # Before the functions: the batch function's environment names the queue (chunk fan-out).
        queue = IngestQueue(self, "IngestQueue", spec=config.queue_spec(stage, names))

        # --- Functions ------------------------------------------------------------------------------------
        assets = CodeAssets(self, "Code", layer_name="runtime",
                            description="categorizer runtime dependencies (onnxruntime, tokenizers, fastapi, ...)")
        inputs = config.EnvironmentInputs(
            identity=config.IdentityValues(user_pool_id=identity.user_pool.user_pool_id,
                                           app_client_ids=identity.client_ids),
            training=config.TrainingValues(sagemaker_role_arn=training.role.role_arn,
                                           training_image_uri=training.image_uri, source_uri=training.source_uri),
            batch_queue_url=queue.queue.queue_url,
        )
        descriptions = {
            FunctionName.API: "REST API: classify, feedback, model card (FastAPI + Mangum)",
            FunctionName.BATCH: "Classifies files dropped under ingest/ (SQS event source)",
            FunctionName.START_TRAINING: "Exports feedback and starts a SageMaker training job",
            FunctionName.PROMOTE: "Evaluates a finished training job and promotes or rejects it",
            FunctionName.REVIEW_QUEUE_METRICS: "Publishes the review queue's depth and oldest open item's age",
        }
        functions = {
            name: ServiceFunction(
                self, f"{name.value.title().replace('_', '')}Function",
                function_name=names.function(name), handler=config.HANDLERS[name], code=assets.code,
                layers=[assets.layer], sizing=config.function_sizing(stage, name),
                environment=config.function_environment(name, stage=stage, names=names, inputs=inputs),
                description=descriptions[name], log_retention=retention, removal_policy=removal,
            ) for name in FunctionName
        }
        api_fn, batch_fn = functions[FunctionName.API], functions[FunctionName.BATCH]
        start_fn, promote_fn = functions[FunctionName.START_TRAINING], functions[FunctionName.PROMOTE]
        review_metrics_fn = functions[FunctionName.REVIEW_QUEUE_METRICS]

        # --- API ------------------------------------------------------------------------------------------
        api = ClassificationApi(self, "Api", handler=api_fn.function, user_pool=identity.user_pool, stage=stage,
                                names=names, removal_policy=removal, log_retention=retention)
        api_fn.acknowledge_synchronous("API Gateway proxy integration")
        tables.feedback.grant(api_fn.role, "PutItem", "GetItem")  # conditional put; a replay reads the original
        tables.feedback.grant(api_fn.role, "Scan")  # the console's ops page: feedback volume and corrections
        # Review queue: queue or bump an item, claim and close it (conditional updates), list the open ones.
        tables.review.grant(api_fn.role, "UpdateItem", "GetItem")
        tables.review.grant(api_fn.role, "Query", indexes=True)
        registry.grant_read(api_fn.role, config.MODELS_PREFIX, config.DECISIONS_PREFIX,  # + promotion history
                            config.LABELS_PREFIX)  # the label catalogue: read, and changed by /v1/labels
        registry.grant_write(api_fn.role, config.LABELS_PREFIX)
        registry.grant_read_champion(api_fn.role)
        # Web console files. PutObject only signs the presigned POST (the browser uploads with the function's
        # signature; S3 enforces the form's exact key and size); the API is no S3 event target, so no loop.
        grant_objects(files.ingest, api_fn.role, actions=["s3:PutObject"], prefixes=[config.INGEST_PREFIX])
        grant_list(files.ingest, api_fn.role, prefixes=[config.INGEST_PREFIX])
        # Manifests, and presigned GETs of results/error reports; ListBucket makes a missing key 404, not 403.
        grant_objects(files.results, api_fn.role, actions=["s3:GetObject"], prefixes=[config.RESULTS_PREFIX])
        grant_list(files.results, api_fn.role, prefixes=[config.RESULTS_PREFIX])
        # No dependency cycle: the bucket needs only the RestApi's id, and the RestApi needs nothing of the bucket.
        files.allow_browser_uploads(api.origin)

        # --- Batch ----------------------------------------------------------------------------------------
        IngestNotification(self, "IngestNotification", bucket=files.ingest, bucket_name=names.ingest_bucket,
                           queue=queue.queue, prefix=config.INGEST_PREFIX)
        queue.attach(batch_fn.function, max_concurrency=stage.batch_max_concurrency)
        batch_fn.acknowledge_synchronous("SQS event source mapping; failed messages go to the ingest DLQ")
        acknowledge(batch_fn.function, "Serverless-LambdaEventSourceMappingDestination",
                    "SQS event sources have no on-failure destination; the queue's redrive policy moves a "
                    "message to the DLQ after max_receive_count receives.")
        grant_objects(files.ingest, batch_fn.role, actions=READ_OBJECT_ACTIONS, prefixes=[config.INGEST_PREFIX])
        grant_list(files.ingest, batch_fn.role, prefixes=[config.INGEST_PREFIX])
        grant_objects(files.results, batch_fn.role, actions=[*READ_OBJECT_ACTIONS, *WRITE_OBJECT_ACTIONS],
                      prefixes=[config.RESULTS_PREFIX])
        grant_list(files.results, batch_fn.role, prefixes=[config.RESULTS_PREFIX])
        # Fan-out: the join deletes its work folder (and nothing else); chunk and join tasks go on the queue.
        # The chain is bounded (split -> chunk -> join), far below Lambda's recursive-loop cut-off of 16.
        grant_objects(files.results, batch_fn.role, actions=["s3:DeleteObject"],
                      prefixes=[config.RESULTS_WORK_PREFIX])
        queue.grant_send_chunk_tasks(batch_fn.role)
        registry.grant_read(batch_fn.role, config.MODELS_PREFIX)
        registry.grant_read_champion(batch_fn.role)
        tables.review.grant(batch_fn.role, "UpdateItem")  # rows that need review, queued or bumped

        # --- Learning loop --------------------------------------------------------------------------------
        loop = LearningLoopTriggers(self, "LearningLoop", names=names, stage=stage, start_training=start_fn.function,
                             promote=promote_fn.function)
        tables.feedback.grant(start_fn.role, "Scan")  # the feedback export
        registry.grant_read(start_fn.role, config.TRAINING_PREFIX, config.MODELS_PREFIX, config.LABELS_PREFIX)
        registry.grant_write(start_fn.role, config.TRAINING_PREFIX)
        registry.grant_read_champion(start_fn.role)
        training.grant_start_jobs(start_fn.role)

        tables.feedback.grant(promote_fn.role, "Scan")  # the held-out feedback the gate scores on
        registry.grant_read(promote_fn.role, config.TRAINING_OUTPUT_PREFIX, config.TRAINING_PREFIX,
                            config.MODELS_PREFIX, config.DECISIONS_PREFIX, config.LABELS_PREFIX)
        # The catalogue: a promotion makes the label changes its job was trained with live.
        registry.grant_write(promote_fn.role, config.MODELS_PREFIX, config.DECISIONS_PREFIX, config.LABELS_PREFIX)
        registry.grant_set_champion(promote_fn.role)
        training.grant_describe_jobs(promote_fn.role)

        # --- Review queue health ----------------------------------------------------------------------------
        ReviewQueueMetricsSchedule(self, "ReviewQueueMetrics", names=names, stage=stage,
                                   function=review_metrics_fn.function)
        # Counts the open index and reads its oldest item: Query on that one index, nothing on the table.
        tables.review.grant(review_metrics_fn.role, "Query", indexes=[config.REVIEW_OPEN_BY_TIME])

        # --- Monitoring -----------------------------------------------------------------------------------
        monitoring = Monitoring(
            self, "Monitoring", names=names, stage=stage, api=api.api, source_queue=queue.queue,
            functions={name.value.title().replace("_", ""): fn.function for name, fn in functions.items()},
            dead_letter_queues=[
                WatchedQueue("IngestDlq", queue.dlq,
                             "Files failed max_receive_count times. Read the batch function's logs for the "
                             "object key, fix the cause, then redrive the DLQ to the ingest queue."),
                WatchedQueue("LearningLoopFailures", loop.failures,
                             "A scheduled retraining or a promotion failed after its retries. Read the message "
                             "(the original event) and the function's logs; rerun with `categorizer retrain`."),
            ],
        )

        self._acknowledge_prefix_grants(functions, registry, files, names)
        self.outputs = {
            OutputKey.STAGE: stage.name,
            OutputKey.REGION: self.region,
            OutputKey.API_URL: api.url,
            OutputKey.USER_POOL_ID: identity.user_pool.user_pool_id,
            OutputKey.MACHINE_CLIENT_ID: identity.machine_client.user_pool_client_id,
            OutputKey.USER_CLIENT_ID: identity.user_client.user_pool_client_id,
            OutputKey.TOKEN_URL: identity.token_url,
            OutputKey.INGEST_BUCKET: files.ingest.bucket_name,
            OutputKey.RESULTS_BUCKET: files.results.bucket_name,
            OutputKey.MODEL_BUCKET: registry.bucket.bucket_name,
            OutputKey.CHAMPION_PARAMETER: registry.champion_parameter_name,
            OutputKey.FEEDBACK_TABLE: tables.feedback.table.table_name,
            OutputKey.REVIEW_TABLE: tables.review.table.table_name,
            OutputKey.INGEST_QUEUE_URL: queue.queue.queue_url,
            OutputKey.INGEST_DLQ_URL: queue.dlq.queue_url,
            OutputKey.START_TRAINING_FUNCTION: start_fn.function.function_name,
            OutputKey.ALARM_TOPIC_ARN: monitoring.topic.topic_arn,
            OutputKey.DASHBOARD: monitoring.dashboard.dashboard_name,
        }
        outputs = Construct(self, "Outputs")
        for key, value in self.outputs.items():
            cdk.CfnOutput(outputs, key.value, value=value, key=key.value)
        self.functions = functions
        self.monitoring = monitoring

    @staticmethod
    def _acknowledge_prefix_grants(functions: dict[FunctionName, ServiceFunction], registry: ModelRegistry,
                                   files: FileBuckets, names: config.ResourceNames) -> None:
        """Object grants end in `<prefix>*`: that wildcard is the least privilege S3 can express."""
        models = arn_token(registry.bucket)
        jobs = ("arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
                f"training-job/{names.training_job_prefix}-*")
        prefixes = {
            FunctionName.API: [f"{models}/{config.MODELS_PREFIX}*", f"{models}/{config.DECISIONS_PREFIX}*",
                               f"{models}/{config.LABELS_PREFIX}*",
                               f"{arn_token(files.ingest)}/{config.INGEST_PREFIX}*",
                               f"{arn_token(files.results)}/{config.RESULTS_PREFIX}*"],
            FunctionName.BATCH: [f"{models}/{config.MODELS_PREFIX}*",
                                 f"{arn_token(files.ingest)}/{config.INGEST_PREFIX}*",
                                 f"{arn_token(files.results)}/{config.RESULTS_PREFIX}*",
                                 f"{arn_token(files.results)}/{config.RESULTS_WORK_PREFIX}*"],
            FunctionName.START_TRAINING: [f"{models}/{config.TRAINING_PREFIX}*",
                                          f"{models}/{config.MODELS_PREFIX}*", f"{models}/{config.LABELS_PREFIX}*",
                                          jobs],
            FunctionName.PROMOTE: [*(f"{models}/{p}*" for p in (config.TRAINING_OUTPUT_PREFIX, config.TRAINING_PREFIX,
                                                               config.MODELS_PREFIX, config.DECISIONS_PREFIX,
                                                               config.LABELS_PREFIX)),
                                   jobs],
        }
        for name, resources in prefixes.items():
            acknowledge_iam5_resources(
                functions[name].role.node.find_child("DefaultPolicy"), resources,
                "Objects under one fixed key prefix (or jobs under this stage's job-name prefix): the narrowest "
                "grant for keys and names created at run time.")
