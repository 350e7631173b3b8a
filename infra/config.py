"""Stage settings and resource names: the ONE source for the CDK app and the local emulator stack.

Everything here is plain Python (no aws_cdk import), so `categorizer_cli` can provision the same tables,
buckets, queues and parameters on moto and give the functions the same environment as in AWS:

    from infra.config import load_stage, resource_names, table_specs, queue_spec, function_environment

    stage = load_stage("local")
    names = resource_names(stage.name, account="123456789012", region="us-east-1")
    for table in table_specs(names): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

# The names the functions agree on are the contract's (functions/categorizer/contract); infra re-exports them.
from categorizer.contract.names import (  # noqa: F401 - re-exported for the constructs
    ADMINS_GROUP,
    APP_NAME,
    CLASSIFY_GROUP,
    CLASSIFY_SCOPE,
    CLASSIFY_SCOPE_NAME,
    DECISIONS_PREFIX,
    FEEDBACK_GROUP,
    FEEDBACK_SCOPE,
    FEEDBACK_SCOPE_NAME,
    FEEDBACK_TABLE,
    INGEST_PREFIX,
    LABELS_PREFIX,
    LABELS_SCOPE,
    LABELS_SCOPE_NAME,
    METRICS_NAMESPACE,
    MODELS_PREFIX,
    PASSWORD_MIN_LENGTH,
    RESOURCE_SERVER_ID,
    RESULTS_PREFIX,
    RESULTS_WORK_PREFIX,
    REVIEW_OPEN_BY_TIME,
    REVIEW_SCOPE,
    REVIEW_SCOPE_NAME,
    REVIEW_TABLE,
    REVIEWERS_GROUP,
    TRAINING_OUTPUT_PREFIX,
    TRAINING_PREFIX,
    USER_TOKEN_SCOPE,
    MetricName,
    TableShape,
    service_name,
)
from categorizer.contract.settings import (
    ApiSettings,
    BatchSettings,
    FanOut,
    Identity,
    LearningLoop,
    ModelSource,
    PromoteSettings,
    ReviewQueue,
    ReviewQueueMetricsSettings,
    StartTrainingSettings,
)

# Lambda gives a function vCPUs in proportion to its memory: one full vCPU at 1,769 MB, up to 6.
MB_PER_VCPU = 1769


class FunctionName(StrEnum):
    API = "api"
    BATCH = "batch"
    START_TRAINING = "start_training"
    PROMOTE = "promote"
    REVIEW_QUEUE_METRICS = "review_queue_metrics"


HANDLERS: dict[FunctionName, str] = {
    FunctionName.API: "categorizer.handlers.api.handler",
    FunctionName.BATCH: "categorizer.handlers.batch.handler",
    FunctionName.START_TRAINING: "categorizer.handlers.start_training.handler",
    FunctionName.PROMOTE: "categorizer.handlers.promote.handler",
    FunctionName.REVIEW_QUEUE_METRICS: "categorizer.handlers.review_queue_metrics.handler",
}


def onnx_threads_for(memory_mb: int) -> int:
    """The ONNX intra-op thread count for a function of this size: its vCPU share, rounded, 1..6."""
    return max(1, min(6, round(memory_mb / MB_PER_VCPU)))


@dataclass(frozen=True, kw_only=True)
class FunctionSizing:
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
    # drift: the share of API predictions and batch rows flagged out-of-scope (a new kind of input). The model
    # flags about 1 % of texts like its training data (its calibrated rate), so a share this high is news.
    out_of_scope_share: float
    feedback_disagreement_rate: float
    promotions_rejected_in_a_row: int
    # The oldest open review item has waited this long: nobody works the queue (items expire after
    # REVIEW_TTL_DAYS, undecided). Hours, compared with ReviewQueueOldestItemAge (seconds).
    review_oldest_item_alarm_hours: float = 72


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
    # Per client IP per 5 minutes. At least the stage's throttle can sustain from one client for a while
    # (10,000 / 300 s = 33 req/s); a lower limit blocks integrations that batch from one NAT address.
    waf_rate_limit_per_5min: int = 10_000
    cognito_threat_protection: bool = False  # Cognito Plus plan: compromised-credential and risk checks
    # Functions
    api_function: FunctionSizing
    batch_function: FunctionSizing
    training_function: FunctionSizing = FunctionSizing(memory_mb=512, timeout_seconds=300)
    promote_function: FunctionSizing = FunctionSizing(memory_mb=3008, timeout_seconds=900,
                                                          ephemeral_storage_mb=2048)
    # Two Query calls every tick: the count and the oldest open item of the review queue.
    review_metrics_function: FunctionSizing = FunctionSizing(memory_mb=256, timeout_seconds=60)
    # Batch queue
    batch_size: int = 1  # one file per invocation: a file is the unit of work and of failure
    batch_max_concurrency: int = 2
    max_receive_count: int = 3  # receives before a message goes to the DLQ
    fanout: FanOut = field(default_factory=FanOut)  # chunk fan-out of large files (docs/batch.md)
    review: ReviewQueue = field(default_factory=ReviewQueue)  # the review queue (its table name is set per stage)
    # How often the review queue's depth and oldest item age are measured (always on; the local stack too).
    review_metrics_schedule: str = "rate(5 minutes)"
    dlq_retention_days: int = 14
    # Buckets
    ingest_expiration_days: int
    results_expiration_days: int
    access_log_expiration_days: int
    noncurrent_version_expiration_days: int = 30
    incomplete_upload_days: int = 1  # results bucket: a killed batch job leaves an incomplete multipart upload
    work_expiration_days: int = 7  # results/_work/ of fan-out jobs that never joined (their chunk hit the DLQ)
    # Learning loop: the schedule here; the job's and the gate's values are the functions' (one group).
    retrain_schedule: str = "rate(7 days)"
    retrain_enabled: bool
    learning: LearningLoop = field(default_factory=LearningLoop)
    training_image_repository: str = "pytorch-training"
    training_image_tag: str = "2.6.0-cpu-py312-ubuntu22.04-sagemaker"
    # Monitoring
    alarms: AlarmThresholds
    alarm_email: str | None = None


_DEV_ALARMS = AlarmThresholds(
    api_5xx_rate_percent=5.0, api_p99_latency_ms=3000, function_errors=5, function_throttles=5,
    rejected_row_ratio=0.2, low_confidence_share=0.35, out_of_scope_share=0.15, feedback_disagreement_rate=0.5,
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
        api_function=FunctionSizing(memory_mb=2048, timeout_seconds=29, ephemeral_storage_mb=1024),
        batch_function=FunctionSizing(memory_mb=3538, timeout_seconds=600, ephemeral_storage_mb=1024),
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
        api_function=FunctionSizing(memory_mb=2048, timeout_seconds=29, ephemeral_storage_mb=1024,
                                      reserved_concurrency=100),
        batch_function=FunctionSizing(memory_mb=3538, timeout_seconds=600, ephemeral_storage_mb=1024,
                                        reserved_concurrency=10),
        batch_max_concurrency=10,
        ingest_expiration_days=30,
        results_expiration_days=90,
        access_log_expiration_days=365,
        retrain_enabled=True,
        alarms=replace(_DEV_ALARMS, api_5xx_rate_percent=1.0, api_p99_latency_ms=1000, function_errors=1,
                       function_throttles=1, rejected_row_ratio=0.05, low_confidence_share=0.25, out_of_scope_share=0.1,
                       feedback_disagreement_rate=0.3, promotions_rejected_in_a_row=2),
    ),
}
# The local emulator stack (`make up`): dev settings under their own names.
# Locally a retrain runs on this machine with the champion's recipe (the quick one until `make up`'s background
# build is promoted), and any new feedback is enough to try one.
STAGES["local"] = replace(STAGES["dev"], name="local", retrain_enabled=True,
                          learning=replace(LearningLoop(), min_new_feedback=1))

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
    review_table: str
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
        review_table=f"{base}-review",
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
        training_job_prefix=base,  # jobs are <prefix>-<deterministic suffix>
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
    REVIEW_TABLE = "ReviewTable"
    INGEST_QUEUE_URL = "IngestQueueUrl"
    INGEST_DLQ_URL = "IngestDlqUrl"
    START_TRAINING_FUNCTION = "StartTrainingFunction"
    ALARM_TOPIC_ARN = "AlarmTopicArn"
    DASHBOARD = "Dashboard"


# --- Tables -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """A table of this stage: its physical name and the shape the adapter relies on (the contract's)."""

    name: str
    shape: TableShape

    @property
    def logical_name(self) -> str:
        return self.shape.logical_name

    def create_table_kwargs(self) -> dict:
        return self.shape.create_table_kwargs(self.name)


def table_specs(names: ResourceNames) -> tuple[TableSpec, ...]:
    return (TableSpec(name=names.feedback_table, shape=FEEDBACK_TABLE),
            TableSpec(name=names.review_table, shape=REVIEW_TABLE))


# --- User pool ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UserPoolShape:
    """The Cognito pool every environment creates: the CDK construct, the local stack and the API tests."""

    password_min_length: int = PASSWORD_MIN_LENGTH  # upper, lower, digit and symbol are always required
    scopes: tuple[tuple[str, str], ...] = (  # (name, description) on the resource server RESOURCE_SERVER_ID
        (CLASSIFY_SCOPE_NAME, "Classify text and read the model card"),
        (FEEDBACK_SCOPE_NAME, "Send corrections of predictions"),
        (REVIEW_SCOPE_NAME, "List, claim and decide items of the review queue"),
        (LABELS_SCOPE_NAME, "Add, rename, merge and retire labels"),
    )
    groups: tuple[tuple[str, str], ...] = (  # (name, description): people's permissions
        (CLASSIFY_GROUP, "May classify text and read the model card"),
        (FEEDBACK_GROUP, "May send feedback (corrections)"),
        (REVIEWERS_GROUP, "May work the review queue"),
        (ADMINS_GROUP, "May change the label catalogue"),
    )
    # Machines: client credentials with every scope and a secret. People: user/password (and SRP), no secret.
    machine_oauth_scopes: tuple[str, ...] = (CLASSIFY_SCOPE, FEEDBACK_SCOPE, REVIEW_SCOPE, LABELS_SCOPE)
    people_auth_flows: tuple[str, ...] = ("ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH",
                                          "ALLOW_REFRESH_TOKEN_AUTH")

    def password_policy(self) -> dict:
        """The boto3 `PasswordPolicy` (the local stack and the tests create the pool with it)."""
        return {"MinimumLength": self.password_min_length, "RequireUppercase": True, "RequireLowercase": True,
                "RequireNumbers": True, "RequireSymbols": True}


USER_POOL = UserPoolShape()


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


# --- Function settings and environments ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IdentityValues:
    """Values only known once Cognito exists (CDK tokens in the stack, real ids on the local stack)."""

    user_pool_id: str
    app_client_ids: tuple[str, ...]  # (machines, people): the console signs people in with the last one


@dataclass(frozen=True, kw_only=True)
class TrainingValues:
    """Values only known once the learning loop's resources exist."""

    sagemaker_role_arn: str
    training_image_uri: str
    source_uri: str  # s3://... of sourcedir.tar.gz (model_build + categorizer + requirements.txt)


@dataclass(frozen=True, kw_only=True)
class EnvironmentInputs:
    identity: IdentityValues | None = None
    training: TrainingValues | None = None
    # The ingest queue's URL (a CDK token in the stack): the batch function sends its chunk tasks there.
    # None leaves the fan-out off (files are then processed in one invocation or fail time_budget_exceeded).
    batch_queue_url: str | None = None
    # Local stack only: a bundle directory instead of the registry, the emulator's JWKS, and so on.
    overrides: dict[str, object] = field(default_factory=dict)


def function_sizing(stage: StageConfig, function: FunctionName) -> FunctionSizing:
    return {
        FunctionName.API: stage.api_function,
        FunctionName.BATCH: stage.batch_function,
        FunctionName.START_TRAINING: stage.training_function,
        FunctionName.PROMOTE: stage.promote_function,
        FunctionName.REVIEW_QUEUE_METRICS: stage.review_metrics_function,
    }[function]


FunctionSettings = (ApiSettings | BatchSettings | StartTrainingSettings | PromoteSettings
                    | ReviewQueueMetricsSettings)


def function_settings(function: FunctionName, *, stage: StageConfig, names: ResourceNames,
                      inputs: EnvironmentInputs | None = None) -> FunctionSettings:
    """The typed settings one function of this stage runs with: what its environment carries."""
    inputs = inputs or EnvironmentInputs()
    common = {"stage": stage.name, "service": service_name(stage.name)}
    threads = function_sizing(stage, function).onnx_threads
    model = ModelSource(model_bucket=names.model_bucket, champion_parameter=names.champion_parameter,
                        onnx_threads=threads)
    review = replace(stage.review, review_table=names.review_table)
    if function is FunctionName.API:
        if inputs.identity is None:
            raise ValueError("the API function needs the user pool id and app client ids")
        return ApiSettings(
            **common, model=model, feedback_table=names.feedback_table,
            identity=Identity(user_pool_id=inputs.identity.user_pool_id,
                              app_client_ids=inputs.identity.app_client_ids),
            ingest_bucket=names.ingest_bucket, results_bucket=names.results_bucket,
            console_client_id=inputs.identity.app_client_ids[-1], review=review, **inputs.overrides)
    if function is FunctionName.BATCH:
        return BatchSettings(**common, model=model, results_bucket=names.results_bucket,
                             batch_queue_url=inputs.batch_queue_url, fanout=stage.fanout, review=review,
                             **inputs.overrides)
    if function is FunctionName.REVIEW_QUEUE_METRICS:
        return ReviewQueueMetricsSettings(**common, review=review, **inputs.overrides)
    registry = {"model_bucket": names.model_bucket, "champion_parameter": names.champion_parameter,
                "feedback_table": names.feedback_table, "training_job_prefix": names.training_job_prefix,
                "onnx_threads": threads, "learning": stage.learning}
    if function is FunctionName.START_TRAINING:
        if inputs.training is None:
            raise ValueError("the start-training function needs the training role, image and source")
        return StartTrainingSettings(**common, **registry, training_role_arn=inputs.training.sagemaker_role_arn,
                                     training_image_uri=inputs.training.training_image_uri,
                                     training_source_uri=inputs.training.source_uri, **inputs.overrides)
    return PromoteSettings(**common, **registry, **inputs.overrides)


def function_environment(function: FunctionName, *, stage: StageConfig, names: ResourceNames,
                         inputs: EnvironmentInputs | None = None) -> dict[str, str]:
    """The environment of one function: its settings, written out (the function reads them back)."""
    return function_settings(function, stage=stage, names=names, inputs=inputs).to_env()


def training_image_uri(*, repository: str, tag: str, region: str, registry_account: str) -> str:
    return f"{registry_account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"


# AWS Deep Learning Containers registry accounts of the commercial partition (aws/deep-learning-containers
# available_images.md and the SageMaker Python SDK's image_uri_config; the China and GovCloud partitions use
# other hosts and are not supported by this stack). Regions opened after 2019 have a registry of their own.
DLC_DEFAULT_ACCOUNT = "763104351884"
DLC_REGISTRY_ACCOUNTS: dict[str, str] = {
    **dict.fromkeys((
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1", "eu-west-1",
        "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1",
        "ap-northeast-2", "ap-southeast-1", "ap-southeast-2"), DLC_DEFAULT_ACCOUNT),
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
}
DLC_REGIONS = tuple(sorted(DLC_REGISTRY_ACCOUNTS))


class UnsupportedRegionError(ValueError):
    """No Deep Learning Containers image for this region: the training job could not start there."""


def dlc_account(region: str) -> str:
    try:
        return DLC_REGISTRY_ACCOUNTS[region]
    except KeyError:
        raise UnsupportedRegionError(
            f"no AWS Deep Learning Containers training image in {region}: deploy to one of "
            f"{', '.join(DLC_REGIONS)}") from None

