"""Stage settings and resource names: the ONE source for the CDK app and the local emulator stack.

Everything here is plain Python (no aws_cdk import), so `categorizer_cli` can provision the same tables,
buckets, queues and parameters on moto and give the functions the same environment as in AWS:

    from infra.config import load_stage, resource_names, table_specs, queue_spec, function_environment

    stage = load_stage("local")
    names = resource_names(stage.name, account="123456789012", region="us-east-1")
    for table in table_specs(names): ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

APP_NAME = "categorizer"
# Powertools Metrics (EMF): one namespace; the `service` dimension is `categorizer-<stage>` so that stages
# sharing an account never mix. The monitoring construct reads these names; the functions emit them.
METRICS_NAMESPACE = "Categorizer"


def service_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}"


class MetricName(StrEnum):
    PREDICTIONS = "Predictions"  # API, per request: texts classified
    LOW_CONFIDENCE_PREDICTIONS = "LowConfidencePredictions"  # API: predictions with needs_review
    PREDICTIONS_BY_LABEL = "PredictionsByLabel"  # with a `label` dimension (dashboard only, optional)
    FEEDBACK = "Feedback"  # API: feedback items stored
    FEEDBACK_DISAGREEMENT = "FeedbackDisagreement"  # API: 1 when correct_label != predicted_label
    ROWS_CLASSIFIED = "RowsClassified"  # batch
    ROWS_REJECTED = "RowsRejected"  # batch
    FILES_PROCESSED = "FilesProcessed"  # batch
    FILES_FAILED = "FilesFailed"  # batch
    FILE_TRANSIENT_FAILURES = "FileTransientFailures"  # batch: S3/SQS/model errors, the message is retried
    TRAINING_JOBS_STARTED = "TrainingJobsStarted"  # start-training
    TRAINING_JOBS_FAILED = "TrainingJobsFailed"  # promote (state change Failed / Stopped)
    PROMOTIONS = "ModelsPromoted"  # promote
    PROMOTIONS_REJECTED = "PromotionsRejected"  # promote
    CONSECUTIVE_REJECTIONS = "ConsecutivePromotionRejections"  # promote: rejections since the last promotion

# OAuth: one resource server, two scopes (the API maps them to routes, see docs/api.md).
RESOURCE_SERVER_ID = "categorizer"
CLASSIFY_SCOPE_NAME = "classify"
FEEDBACK_SCOPE_NAME = "feedback"
CLASSIFY_SCOPE = f"{RESOURCE_SERVER_ID}/{CLASSIFY_SCOPE_NAME}"
FEEDBACK_SCOPE = f"{RESOURCE_SERVER_ID}/{FEEDBACK_SCOPE_NAME}"
# People's access tokens carry no custom scopes: Cognito groups grant them the same permissions.
CLASSIFY_GROUP = "classify"
FEEDBACK_GROUP = "feedback"
# The scope every Cognito user access token has (API Gateway lets it through; the app then checks groups).
PASSWORD_MIN_LENGTH = 14  # Cognito password policy (also: upper, lower, digit and symbol required)
USER_TOKEN_SCOPE = "aws.cognito.signin.user.admin"  # noqa: S105 - a scope name, not a secret

# Key layout in the buckets (the functions get these as settings).
INGEST_PREFIX = "ingest/"
RESULTS_PREFIX = "results/"
# The batch fan-out's temporary objects (chunks, parts, plan): categorizer.batch.keys.WORK_FOLDER under the
# results prefix. The batch function may delete only here; a lifecycle rule expires what a job leaves behind.
RESULTS_WORK_PREFIX = f"{RESULTS_PREFIX}_work/"
MODELS_PREFIX = "models/"
TRAINING_PREFIX = "training/"  # base/, holdout/ (uploaded once, docs/deploy.md) and feedback/<job>/ exports
DECISIONS_PREFIX = "decisions/"
TRAINING_OUTPUT_PREFIX = "training-jobs/"
TRAINING_JOB_PREFIX = APP_NAME  # job names are <prefix>-<stage>-<deterministic suffix>

# Lambda gives a function vCPUs in proportion to its memory: one full vCPU at 1,769 MB, up to 6.
MB_PER_VCPU = 1769


class FunctionName(StrEnum):
    API = "api"
    BATCH = "batch"
    START_TRAINING = "start_training"
    PROMOTE = "promote"


HANDLERS: dict[FunctionName, str] = {
    FunctionName.API: "categorizer.handlers.api.handler",
    FunctionName.BATCH: "categorizer.handlers.batch.handler",
    FunctionName.START_TRAINING: "categorizer.handlers.start_training.handler",
    FunctionName.PROMOTE: "categorizer.handlers.promote.handler",
}


def onnx_threads_for(memory_mb: int) -> int:
    """The ONNX intra-op thread count for a function of this size: its vCPU share, rounded, 1..6."""
    return max(1, min(6, round(memory_mb / MB_PER_VCPU)))


@dataclass(frozen=True, kw_only=True)
class FunctionSettings:
    memory_mb: int
    timeout_seconds: int
    ephemeral_storage_mb: int = 512
    reserved_concurrency: int | None = None

    @property
    def onnx_threads(self) -> int:
        return onnx_threads_for(self.memory_mb)


@dataclass(frozen=True, kw_only=True)
class AlarmThresholds:
    api_5xx_rate_percent: float
    api_p99_latency_ms: float
    function_errors: int  # errors per 5 minutes, per function
    function_throttles: int
    rejected_row_ratio: float  # rejected / (classified + rejected) per hour
    low_confidence_share: float  # drift: the share of predictions sent to review above this baseline
    feedback_disagreement_rate: float
    promotions_rejected_in_a_row: int


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """Everything that differs between stages. One instance per stage below; pick one with `load_stage`."""

    name: str
    retain_data: bool  # RETAIN tables/buckets/user pool on stack deletion (prod) or DESTROY them (dev)
    log_retention_days: int
    # API Gateway
    api_throttle_rate: float  # steady requests per second, stage-wide
    api_throttle_burst: int
    api_quota_per_day: int  # usage plan quota per API key
    require_api_key: bool = False  # usage-plan keys on the protected routes (issue keys per partner)
    waf_enabled: bool
    waf_rate_limit_per_5min: int = 2000  # per client IP
    cognito_threat_protection: bool = False  # Cognito Plus plan: compromised-credential and risk checks
    # Functions
    api_function: FunctionSettings
    batch_function: FunctionSettings
    training_function: FunctionSettings = FunctionSettings(memory_mb=512, timeout_seconds=300)
    promote_function: FunctionSettings = FunctionSettings(memory_mb=3008, timeout_seconds=900,
                                                          ephemeral_storage_mb=2048)
    # Batch queue
    batch_size: int = 1  # one file per invocation: a file is the unit of work and of failure
    batch_max_concurrency: int = 2
    max_receive_count: int = 3  # receives before a message goes to the DLQ
    # Chunk fan-out (docs/batch.md): files stored above this size (gzip counted x4) are split into chunk tasks
    # of this many records, sent on the ingest queue itself.
    batch_fanout_bytes: int = 32 * 1024 * 1024
    batch_chunk_rows: int = 51_200
    dlq_retention_days: int = 14
    # Buckets
    ingest_expiration_days: int
    results_expiration_days: int
    access_log_expiration_days: int
    noncurrent_version_expiration_days: int = 30
    incomplete_upload_days: int = 1  # results bucket: a killed batch job leaves an incomplete multipart upload
    work_expiration_days: int = 7  # results/_work/ of fan-out jobs that never joined (their chunk hit the DLQ)
    # Learning loop
    retrain_schedule: str = "rate(7 days)"
    retrain_enabled: bool
    min_new_feedback: int = 50
    training_recipe: str = "full"  # model_build recipe of the training job ("fast": head on the frozen encoder)
    training_volume_gb: int = 30
    feedback_holdout_percent: int = 20  # predictions (by id hash) kept out of training to judge candidates
    training_instance_type: str = "ml.m5.xlarge"
    training_use_spot: bool = True
    training_max_runtime_seconds: int = 3600
    training_max_wait_seconds: int = 7200  # spot: runtime + time waiting for capacity
    training_image_repository: str = "pytorch-training"
    training_image_tag: str = "2.6.0-cpu-py312-ubuntu22.04-sagemaker"
    promotion_max_class_f1_drop: float = 0.05
    # Re-quantizing to int8 flips 1-3 of 3,080 hold-out items either way on every retrain (docs/learning-loop.md):
    # a strict "no drop at all" gate would reject or accept on that noise alone.
    promotion_macro_f1_tolerance: float = 0.002
    model_max_age_seconds: int = 60
    # Monitoring
    alarms: AlarmThresholds
    alarm_email: str | None = None

    @property
    def removal_policy_name(self) -> str:
        return "RETAIN" if self.retain_data else "DESTROY"


_DEV_ALARMS = AlarmThresholds(
    api_5xx_rate_percent=5.0, api_p99_latency_ms=3000, function_errors=5, function_throttles=5,
    rejected_row_ratio=0.2, low_confidence_share=0.35, feedback_disagreement_rate=0.5,
    promotions_rejected_in_a_row=3,
)

STAGES: dict[str, StageConfig] = {
    "dev": StageConfig(
        name="dev",
        retain_data=False,
        log_retention_days=7,
        api_throttle_rate=20,
        api_throttle_burst=40,
        api_quota_per_day=50_000,
        waf_enabled=False,
        api_function=FunctionSettings(memory_mb=2048, timeout_seconds=29, ephemeral_storage_mb=1024),
        batch_function=FunctionSettings(memory_mb=3538, timeout_seconds=600, ephemeral_storage_mb=1024),
        ingest_expiration_days=7,
        results_expiration_days=14,
        access_log_expiration_days=30,
        retrain_enabled=False,
        alarms=_DEV_ALARMS,
    ),
    "prod": StageConfig(
        name="prod",
        retain_data=True,
        log_retention_days=90,
        api_throttle_rate=200,
        api_throttle_burst=400,
        api_quota_per_day=2_000_000,
        waf_enabled=True,
        cognito_threat_protection=True,
        api_function=FunctionSettings(memory_mb=2048, timeout_seconds=29, ephemeral_storage_mb=1024,
                                      reserved_concurrency=100),
        batch_function=FunctionSettings(memory_mb=3538, timeout_seconds=600, ephemeral_storage_mb=1024,
                                        reserved_concurrency=10),
        batch_max_concurrency=10,
        ingest_expiration_days=30,
        results_expiration_days=90,
        access_log_expiration_days=365,
        retrain_enabled=True,
        alarms=replace(_DEV_ALARMS, api_5xx_rate_percent=1.0, api_p99_latency_ms=1000, function_errors=1,
                       function_throttles=1, rejected_row_ratio=0.05, low_confidence_share=0.25,
                       feedback_disagreement_rate=0.3, promotions_rejected_in_a_row=2),
    ),
}
# The local emulator stack (`make up`): dev settings under their own names.
# Locally a retrain runs on this machine: the quick recipe, and any new feedback is enough to try one.
STAGES["local"] = replace(STAGES["dev"], name="local", retrain_enabled=True, training_recipe="fast",
                          min_new_feedback=1)

DEPLOYABLE_STAGES = ("dev", "prod")


def load_stage(name: str) -> StageConfig:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; expected one of {sorted(STAGES)}") from None


# --- Names ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ResourceNames:
    """Physical names of every named resource of a stage (account and region make bucket names unique)."""

    stage: str
    stack: str
    feedback_table: str
    model_bucket: str
    ingest_bucket: str
    results_bucket: str
    access_log_bucket: str
    ingest_queue: str
    ingest_dlq: str
    learning_loop_failures: str
    champion_parameter: str
    user_pool: str
    user_pool_domain_prefix: str
    machine_client: str
    user_client: str
    api: str
    training_job_prefix: str
    sagemaker_role: str
    alarm_topic: str
    dashboard: str

    def function(self, function: FunctionName) -> str:
        return f"{APP_NAME}-{self.stage}-{function.value.replace('_', '-')}"


def resource_names(stage: str, *, account: str, region: str) -> ResourceNames:
    """Names for one stage. In CDK, account and region are the stack's (tokens are fine)."""
    base = f"{APP_NAME}-{stage}"

    def bucket(purpose: str) -> str:  # S3 names are global: account and region make them unique
        return f"{base}-{purpose}-{account}-{region}"

    return ResourceNames(
        stage=stage,
        stack=f"Categorizer-{stage}",
        feedback_table=f"{base}-feedback",
        model_bucket=bucket("models"),
        ingest_bucket=bucket("ingest"),
        results_bucket=bucket("results"),
        access_log_bucket=bucket("access-logs"),
        ingest_queue=f"{base}-ingest",
        ingest_dlq=f"{base}-ingest-dlq",
        learning_loop_failures=f"{base}-learning-loop-failures",
        champion_parameter=f"/{APP_NAME}/{stage}/champion",
        user_pool=f"{base}-users",
        user_pool_domain_prefix=f"{base}-{account}",
        machine_client=f"{base}-machine",
        user_client=f"{base}-user",
        api=f"{base}-api",
        training_job_prefix=f"{TRAINING_JOB_PREFIX}-{stage}",
        sagemaker_role=f"{base}-sagemaker-{region}",
        alarm_topic=f"{base}-alarms",
        dashboard=f"{base}",
    )


# --- Outputs ----------------------------------------------------------------------------------------------


class OutputKey(StrEnum):
    """Stack output names: `cdk deploy --outputs-file` and the local stack's .local/outputs.json use these."""

    STAGE = "Stage"
    REGION = "Region"
    API_URL = "ApiUrl"
    USER_POOL_ID = "UserPoolId"
    MACHINE_CLIENT_ID = "MachineClientId"
    USER_CLIENT_ID = "UserClientId"
    TOKEN_URL = "TokenUrl"  # noqa: S105 - an output name
    INGEST_BUCKET = "IngestBucket"
    RESULTS_BUCKET = "ResultsBucket"
    MODEL_BUCKET = "ModelBucket"
    CHAMPION_PARAMETER = "ChampionParameter"
    FEEDBACK_TABLE = "FeedbackTable"
    INGEST_QUEUE_URL = "IngestQueueUrl"
    INGEST_DLQ_URL = "IngestDlqUrl"
    START_TRAINING_FUNCTION = "StartTrainingFunction"
    ALARM_TOPIC_ARN = "AlarmTopicArn"
    DASHBOARD = "Dashboard"


# --- Tables -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str = "S"  # DynamoDB attribute type: S, N or B


@dataclass(frozen=True, kw_only=True)
class IndexSpec:
    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    projection: str = "ALL"


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    logical_name: str  # "feedback": what a local stack or a test looks a table up by
    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None

    def create_table_kwargs(self) -> dict:
        """The boto3 `create_table` arguments (on-demand), for the local stack."""
        keys = [self.partition_key, *([self.sort_key] if self.sort_key else [])]
        attributes = {k.name: k.type for k in keys}
        for index in self.indexes:
            for k in (index.partition_key, index.sort_key):
                if k:
                    attributes[k.name] = k.type

        def schema(pk: KeyAttribute, sk: KeyAttribute | None) -> list[dict]:
            return [{"AttributeName": pk.name, "KeyType": "HASH"},
                    *([{"AttributeName": sk.name, "KeyType": "RANGE"}] if sk else [])]

        kwargs: dict = {
            "TableName": self.name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": schema(self.partition_key, self.sort_key),
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()],
        }
        if self.indexes:
            kwargs["GlobalSecondaryIndexes"] = [
                {"IndexName": i.name, "KeySchema": schema(i.partition_key, i.sort_key),
                 "Projection": {"ProjectionType": i.projection}} for i in self.indexes
            ]
        return kwargs


# Feedback: the key design is the API's (functions/categorizer/adapters/feedback_table.py, docs/api.md);
# tests/infra checks that this spec and the adapter's TABLE_SCHEMA agree.
FEEDBACK_PARTITION_KEY = KeyAttribute("pk")
FEEDBACK_SORT_KEY: KeyAttribute | None = None
FEEDBACK_BY_PREDICTION_INDEX = "by_prediction"
FEEDBACK_INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec(name=FEEDBACK_BY_PREDICTION_INDEX, partition_key=KeyAttribute("prediction_id"),
              sort_key=KeyAttribute("created_at")),
)


def table_specs(names: ResourceNames) -> tuple[TableSpec, ...]:
    return (
        TableSpec(logical_name="feedback", name=names.feedback_table, partition_key=FEEDBACK_PARTITION_KEY,
                  sort_key=FEEDBACK_SORT_KEY, indexes=FEEDBACK_INDEXES),
    )


# --- Queue ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    name: str
    dlq_name: str
    visibility_timeout_seconds: int
    max_receive_count: int
    retention_seconds: int
    dlq_retention_seconds: int
    batch_size: int


def queue_spec(stage: StageConfig, names: ResourceNames) -> QueueSpec:
    return QueueSpec(
        name=names.ingest_queue,
        dlq_name=names.ingest_dlq,
        # AWS's advice for an SQS event source: at least six times the function timeout.
        visibility_timeout_seconds=6 * stage.batch_function.timeout_seconds,
        max_receive_count=stage.max_receive_count,
        retention_seconds=4 * 24 * 3600,
        dlq_retention_seconds=stage.dlq_retention_days * 24 * 3600,
        batch_size=stage.batch_size,
    )


# --- Function environments -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IdentityValues:
    """Values only known once Cognito exists (CDK tokens in the stack, real ids on the local stack)."""

    user_pool_id: str
    app_client_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class TrainingValues:
    """Values only known once the learning loop's resources exist."""

    sagemaker_role_arn: str
    training_image_uri: str
    source_uri: str  # s3://... of sourcedir.tar.gz (model_build + categorizer + requirements.txt)
    entry_point: str = "model_build/sagemaker_entry.py"


@dataclass(frozen=True, kw_only=True)
class EnvironmentInputs:
    identity: IdentityValues | None = None
    training: TrainingValues | None = None
    # The ingest queue's URL (a CDK token in the stack): the batch function sends its chunk tasks there.
    # None leaves the fan-out off (files are then processed in one invocation or fail time_budget_exceeded).
    batch_queue_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def function_settings(stage: StageConfig, function: FunctionName) -> FunctionSettings:
    return {
        FunctionName.API: stage.api_function,
        FunctionName.BATCH: stage.batch_function,
        FunctionName.START_TRAINING: stage.training_function,
        FunctionName.PROMOTE: stage.promote_function,
    }[function]


def function_environment(function: FunctionName, *, stage: StageConfig, names: ResourceNames,
                         inputs: EnvironmentInputs | None = None) -> dict[str, str]:
    """The environment of one function; variable names are those of functions/categorizer/settings.py."""
    inputs = inputs or EnvironmentInputs()
    sizing = function_settings(stage, function)
    env: dict[str, str] = {
        "STAGE": stage.name,
        "POWERTOOLS_SERVICE_NAME": service_name(stage.name),
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "MODEL_BUCKET": names.model_bucket,
        "CHAMPION_PARAMETER": names.champion_parameter,
        "MODEL_MAX_AGE_SECONDS": str(stage.model_max_age_seconds),
        "ONNX_THREADS": str(sizing.onnx_threads),
    }
    if function is FunctionName.API:
        if inputs.identity is None:
            raise ValueError("the API function needs the user pool id and app client ids")
        env |= {
            "FEEDBACK_TABLE": names.feedback_table,
            "USER_POOL_ID": inputs.identity.user_pool_id,
            "APP_CLIENT_IDS": ",".join(inputs.identity.app_client_ids),
            "CLASSIFY_SCOPE": CLASSIFY_SCOPE,
            "FEEDBACK_SCOPE": FEEDBACK_SCOPE,
            "CLASSIFY_GROUP": CLASSIFY_GROUP,
            "FEEDBACK_GROUP": FEEDBACK_GROUP,
            # Web console: uploads to the user's ingest prefix, their results, the promotion history.
            "INGEST_BUCKET": names.ingest_bucket,
            "INGEST_PREFIX": INGEST_PREFIX,
            "RESULTS_BUCKET": names.results_bucket,
            "RESULTS_PREFIX": RESULTS_PREFIX,
            "DECISIONS_PREFIX": DECISIONS_PREFIX,
            # app_client_ids is (machine, people): the page signs people in with the last one.
            "CONSOLE_CLIENT_ID": inputs.identity.app_client_ids[-1],
        }
    elif function is FunctionName.BATCH:
        env |= {
            "RESULTS_BUCKET": names.results_bucket,
            "INGEST_PREFIX": INGEST_PREFIX,
            "RESULTS_PREFIX": RESULTS_PREFIX,
            "FANOUT_BYTES": str(stage.batch_fanout_bytes),
            "CHUNK_ROWS": str(stage.batch_chunk_rows),
        }
        if inputs.batch_queue_url:
            env["BATCH_QUEUE_URL"] = inputs.batch_queue_url
    elif function is FunctionName.START_TRAINING:
        if inputs.training is None:
            raise ValueError("the start-training function needs the training role, image and source")
        env |= {
            "FEEDBACK_TABLE": names.feedback_table,
            "TRAINING_PREFIX": TRAINING_PREFIX,
            "TRAINING_OUTPUT_PREFIX": TRAINING_OUTPUT_PREFIX,
            "TRAINING_JOB_PREFIX": names.training_job_prefix,
            "TRAINING_ROLE_ARN": inputs.training.sagemaker_role_arn,
            "TRAINING_IMAGE_URI": inputs.training.training_image_uri,
            "TRAINING_SOURCE_URI": inputs.training.source_uri,
            "TRAINING_ENTRY_POINT": inputs.training.entry_point,
            "TRAINING_INSTANCE_TYPE": stage.training_instance_type,
            "TRAINING_USE_SPOT": str(stage.training_use_spot).lower(),
            "TRAINING_MAX_RUNTIME_SECONDS": str(stage.training_max_runtime_seconds),
            "TRAINING_MAX_WAIT_SECONDS": str(stage.training_max_wait_seconds),
            "MIN_NEW_FEEDBACK": str(stage.min_new_feedback),
            "TRAINING_RECIPE": stage.training_recipe,
            "TRAINING_VOLUME_GB": str(stage.training_volume_gb),
            "FEEDBACK_HOLDOUT_PERCENT": str(stage.feedback_holdout_percent),
        }
    elif function is FunctionName.PROMOTE:
        env |= {
            "FEEDBACK_TABLE": names.feedback_table,
            "TRAINING_PREFIX": TRAINING_PREFIX,
            "TRAINING_JOB_PREFIX": names.training_job_prefix,
            "DECISIONS_PREFIX": DECISIONS_PREFIX,
            "PROMOTION_MAX_CLASS_F1_DROP": str(stage.promotion_max_class_f1_drop),
            "PROMOTION_MACRO_F1_TOLERANCE": str(stage.promotion_macro_f1_tolerance),
            "FEEDBACK_HOLDOUT_PERCENT": str(stage.feedback_holdout_percent),
            "MODEL_CACHE_DIR": "/tmp/models",  # noqa: S108 - Lambda's only writable directory
        }
    return env | inputs.extra


def training_image_uri(*, repository: str, tag: str, region: str, registry_account: str) -> str:
    return f"{registry_account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"


# AWS Deep Learning Containers registry accounts (aws/deep-learning-containers, available_images.md);
# every other listed commercial region uses 763104351884.
DLC_REGISTRY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-southeast-3": "907027046896",
    "eu-south-1": "692866216735",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
}
DLC_DEFAULT_ACCOUNT = "763104351884"
DLC_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1", "eu-west-1", "eu-west-2",
    "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2",
    "ap-southeast-1", "ap-southeast-2", *DLC_REGISTRY_ACCOUNTS,
)


def dlc_account(region: str) -> str:
    return DLC_REGISTRY_ACCOUNTS.get(region, DLC_DEFAULT_ACCOUNT)


def vcpus(memory_mb: int) -> float:
    return math.floor(memory_mb / MB_PER_VCPU * 100) / 100
