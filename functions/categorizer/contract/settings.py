"""Per-function settings: what each Lambda function reads from its environment, each value defaulted once.

infra/config.py builds these objects for a stage and writes them out with `to_env()`; the functions read
them back with `from_env()` once, at cold start; the local stack, the CLI and the tests build them through
infra/config.py (or directly). A group that a stage tunes (the learning loop, the batch fan-out) is a
nested `EnvSettings`, so the stage holds one object and every function that needs it gets the same values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from categorizer.contract import names
from categorizer.contract.env import EnvSettings, setting


@dataclass(frozen=True, kw_only=True)
class CommonSettings(EnvSettings):
    stage: str = setting("STAGE", "local")
    # Lambda sets AWS_REGION itself (and refuses it in a function's environment).
    region: str = setting("AWS_REGION", "us-east-1", aliases=("AWS_DEFAULT_REGION",), runtime=True)
    service: str = setting("POWERTOOLS_SERVICE_NAME", names.APP_NAME)
    metrics_namespace: str = setting("POWERTOOLS_METRICS_NAMESPACE", names.METRICS_NAMESPACE)
    log_level: str = setting("POWERTOOLS_LOG_LEVEL", "INFO")


@dataclass(frozen=True, kw_only=True)
class ModelSource(EnvSettings):
    """Where the serving model comes from: a local bundle directory, or the registry's champion pointer."""

    model_dir: str | None = setting("MODEL_DIR", None)
    model_bucket: str | None = setting("MODEL_BUCKET", None)
    champion_parameter: str | None = setting("CHAMPION_PARAMETER", None)
    model_cache_dir: str = setting("MODEL_CACHE_DIR", names.MODEL_CACHE_DIR)
    # How long a container trusts the champion pointer it read: the hot-swap delay.
    model_max_age_seconds: int = setting("MODEL_MAX_AGE_SECONDS", 60)
    onnx_threads: int | None = setting("ONNX_THREADS", None)  # None: onnxruntime's default (all cores)
    # Novelty above which a prediction is out_of_scope (and needs_review); None: the bundle's calibrated
    # threshold (manifest "novelty.threshold"). Bundles without novelty never flag, whatever this says.
    out_of_scope_threshold: float | None = setting("OUT_OF_SCOPE_THRESHOLD", None)

    def __post_init__(self) -> None:
        if not self.model_dir and not (self.model_bucket and self.champion_parameter):
            raise ValueError("no model configured: set MODEL_DIR, or MODEL_BUCKET and CHAMPION_PARAMETER")


@dataclass(frozen=True, kw_only=True)
class FanOut(EnvSettings):
    """Files stored above `fanout_bytes` (gzip counted x4) are split into chunk tasks of `chunk_rows` records."""

    fanout_bytes: int = setting("FANOUT_BYTES", 32 * 1024 * 1024)
    chunk_rows: int = setting("CHUNK_ROWS", 51_200)


@dataclass(frozen=True, kw_only=True)
class LearningLoop(EnvSettings):
    """The retraining job and the promotion gate. Start-training and promote both get the whole group, so the
    hold-out rule that keeps feedback out of training is the one the gate judges with."""

    min_new_feedback: int = setting("MIN_NEW_FEEDBACK", 50)
    feedback_holdout_percent: int = setting("FEEDBACK_HOLDOUT_PERCENT", 20)
    # "champion" (names.CHAMPION_RECIPE): retrain with the recipe that built the serving model, so the gate
    # compares like with like; or a model_build recipe by name (fast, full, auto).
    training_recipe: str = setting("TRAINING_RECIPE", names.CHAMPION_RECIPE)
    training_instance_type: str = setting("TRAINING_INSTANCE_TYPE", "ml.m5.xlarge")
    training_use_spot: bool = setting("TRAINING_USE_SPOT", True)
    training_max_runtime_seconds: int = setting("TRAINING_MAX_RUNTIME_SECONDS", 3600)
    training_max_wait_seconds: int = setting("TRAINING_MAX_WAIT_SECONDS", 7200)  # spot: runtime + waiting
    training_volume_gb: int = setting("TRAINING_VOLUME_GB", 30)
    promotion_max_class_f1_drop: float = setting("PROMOTION_MAX_CLASS_F1_DROP", 0.05)
    # Re-quantizing to int8 flips 1-3 of 3,080 hold-out items either way on every retrain
    # (docs/learning-loop.md): a strict "no drop at all" gate would reject or accept on that noise alone.
    promotion_macro_f1_tolerance: float = setting("PROMOTION_MACRO_F1_TOLERANCE", 0.002)
    # A label new to the champion (proposed, or active but unknown to a rolled-back champion) must reach these
    # on its held-out items, and have at least that many of them (docs/learning-loop.md, "The label catalogue").
    new_label_min_precision: float = setting("NEW_LABEL_MIN_PRECISION", 0.8)
    new_label_min_recall: float = setting("NEW_LABEL_MIN_RECALL", 0.7)
    new_label_min_held_out: int = setting("NEW_LABEL_MIN_HELD_OUT", 5)

    def __post_init__(self) -> None:
        if not 0 <= self.feedback_holdout_percent <= 100:
            raise ValueError(f"FEEDBACK_HOLDOUT_PERCENT={self.feedback_holdout_percent} is not a percentage")
        if self.training_use_spot and self.training_max_wait_seconds < self.training_max_runtime_seconds:
            raise ValueError("TRAINING_MAX_WAIT_SECONDS must be at least TRAINING_MAX_RUNTIME_SECONDS with spot")


@dataclass(frozen=True, kw_only=True)
class ReviewQueue(EnvSettings):
    """The review queue: where predictions that need review go, and how long people have for them."""

    review_table: str | None = setting("REVIEW_TABLE", None)  # None: nothing is queued (e.g. a test stack)
    # Items nobody decides expire (DynamoDB TTL deletes them within days of this): a queue people cannot keep
    # up with must not grow for ever; the same text comes back if the model still doubts it.
    review_ttl_days: int = setting("REVIEW_TTL_DAYS", 30)
    review_lease_seconds: int = setting("REVIEW_LEASE_SECONDS", 300)  # a claim holds an item this long
    # At most this many items per dropped file, sampled so that every predicted label is represented.
    review_max_per_file: int = setting("REVIEW_MAX_PER_FILE", 200)
    # At most this many per API request (the rest of a big request is not queued), written in parallel.
    review_max_per_request: int = setting("REVIEW_MAX_PER_REQUEST", 16)
    review_write_workers: int = setting("REVIEW_WRITE_WORKERS", 8)

    def __post_init__(self) -> None:
        if self.review_lease_seconds < 10 or self.review_ttl_days < 1:
            raise ValueError("REVIEW_LEASE_SECONDS must be >= 10 and REVIEW_TTL_DAYS >= 1")


@dataclass(frozen=True, kw_only=True)
class Identity(EnvSettings):
    """Who may call the API: the Cognito pool and app clients, and the scope / group of each permission."""

    user_pool_id: str | None = setting("USER_POOL_ID", None)
    app_client_ids: tuple[str, ...] = setting("APP_CLIENT_IDS")
    # Locally the JWKS lives elsewhere (the emulator) than the issuer, so both can be set apart.
    jwks_url: str | None = setting("JWKS_URL", None)
    issuer: str | None = setting("TOKEN_ISSUER", None)
    classify_scope: str = setting("CLASSIFY_SCOPE", names.CLASSIFY_SCOPE)
    feedback_scope: str = setting("FEEDBACK_SCOPE", names.FEEDBACK_SCOPE)
    review_scope: str = setting("REVIEW_SCOPE", names.REVIEW_SCOPE)
    labels_scope: str = setting("LABELS_SCOPE", names.LABELS_SCOPE)
    classify_group: str = setting("CLASSIFY_GROUP", names.CLASSIFY_GROUP)
    feedback_group: str = setting("FEEDBACK_GROUP", names.FEEDBACK_GROUP)
    review_group: str = setting("REVIEW_GROUP", names.REVIEWERS_GROUP)
    admins_group: str = setting("ADMINS_GROUP", names.ADMINS_GROUP)
    region: str = setting("AWS_REGION", "us-east-1", aliases=("AWS_DEFAULT_REGION",), runtime=True)

    def __post_init__(self) -> None:
        if not self.app_client_ids:
            raise ValueError("APP_CLIENT_IDS is empty")
        if not (self.user_pool_id or (self.issuer and self.jwks_url)):
            raise ValueError("set USER_POOL_ID (or TOKEN_ISSUER and JWKS_URL) to verify tokens")

    @property
    def token_issuer(self) -> str:
        return self.issuer or f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def token_jwks_url(self) -> str:
        return self.jwks_url or f"{self.token_issuer}/.well-known/jwks.json"


@dataclass(frozen=True, kw_only=True)
class ApiSettings(CommonSettings):
    function_label: ClassVar[str] = "the API function"

    model: ModelSource
    identity: Identity
    feedback_table: str = setting("FEEDBACK_TABLE")
    max_body_bytes: int = setting("MAX_BODY_BYTES", 1_048_576)
    # Web console: presigned uploads to the caller's ingest prefix, their results, the promotion history.
    ingest_bucket: str = setting("INGEST_BUCKET")
    results_bucket: str = setting("RESULTS_BUCKET")
    ingest_prefix: str = setting("INGEST_PREFIX", names.INGEST_PREFIX)
    results_prefix: str = setting("RESULTS_PREFIX", names.RESULTS_PREFIX)
    decisions_prefix: str = setting("DECISIONS_PREFIX", names.DECISIONS_PREFIX)
    console_client_id: str | None = setting("CONSOLE_CLIENT_ID", None)  # the people app client the page uses
    # Cognito IdP endpoint the page calls: the emulator locally (AWS_ENDPOINT_URL), else the regional one.
    cognito_endpoint: str | None = setting("COGNITO_ENDPOINT", None, aliases=("AWS_ENDPOINT_URL",))
    upload_max_bytes: int = setting("UPLOAD_MAX_BYTES", 50 * 1024 * 1024)  # presigned POST upper bound
    link_expiry_seconds: int = setting("LINK_EXPIRY_SECONDS", 300)  # presigned upload / download links
    review: ReviewQueue = field(default_factory=ReviewQueue)

    @property
    def cognito_idp_endpoint(self) -> str:
        return self.cognito_endpoint or f"https://cognito-idp.{self.region}.amazonaws.com/"


@dataclass(frozen=True, kw_only=True)
class BatchSettings(CommonSettings):
    function_label: ClassVar[str] = "the batch function"

    model: ModelSource
    results_bucket: str = setting("RESULTS_BUCKET")
    ingest_prefix: str = setting("INGEST_PREFIX", names.INGEST_PREFIX)
    results_prefix: str = setting("RESULTS_PREFIX", names.RESULTS_PREFIX)
    max_file_bytes: int = setting("MAX_FILE_BYTES", 512 * 1024 * 1024)
    # The chunk fan-out is off unless the queue URL (the ingest queue itself) is set.
    batch_queue_url: str | None = setting("BATCH_QUEUE_URL", None)
    fanout: FanOut = field(default_factory=FanOut)
    review: ReviewQueue = field(default_factory=ReviewQueue)


@dataclass(frozen=True, kw_only=True)
class RegistrySettings(CommonSettings):
    """What start-training and promote share: the registry (model bucket + champion pointer) and the loop."""

    model_bucket: str = setting("MODEL_BUCKET")
    champion_parameter: str = setting("CHAMPION_PARAMETER")
    feedback_table: str = setting("FEEDBACK_TABLE")
    training_job_prefix: str = setting("TRAINING_JOB_PREFIX")  # <app>-<stage>: jobs of this stage only
    training_prefix: str = setting("TRAINING_PREFIX", names.TRAINING_PREFIX)
    training_output_prefix: str = setting("TRAINING_OUTPUT_PREFIX", names.TRAINING_OUTPUT_PREFIX)
    decisions_prefix: str = setting("DECISIONS_PREFIX", names.DECISIONS_PREFIX)
    model_cache_dir: str = setting("MODEL_CACHE_DIR", names.MODEL_CACHE_DIR)
    onnx_threads: int | None = setting("ONNX_THREADS", None)
    learning: LearningLoop = field(default_factory=LearningLoop)


@dataclass(frozen=True, kw_only=True)
class StartTrainingSettings(RegistrySettings):
    function_label: ClassVar[str] = "the start-training function"

    training_role_arn: str = setting("TRAINING_ROLE_ARN")
    training_image_uri: str = setting("TRAINING_IMAGE_URI")
    training_source_uri: str = setting("TRAINING_SOURCE_URI")  # s3://.../sourcedir.tar.gz
    training_entry_point: str = setting("TRAINING_ENTRY_POINT", "model_build/sagemaker_entry.py")


@dataclass(frozen=True, kw_only=True)
class PromoteSettings(RegistrySettings):
    function_label: ClassVar[str] = "the promote function"


@dataclass(frozen=True, kw_only=True)
class ReviewQueueMetricsSettings(CommonSettings):
    """The scheduled function that publishes the review queue's depth and the age of its oldest open item."""

    function_label: ClassVar[str] = "the review-queue-metrics function"

    review: ReviewQueue = field(default_factory=ReviewQueue)
    # Counting reads the open index page by page (1 MB each: about a thousand items). Past this many pages the
    # depth published is a lower bound (logged): a runaway queue must not make every tick read all of it.
    review_depth_max_pages: int = setting("REVIEW_DEPTH_MAX_PAGES", 100)

    def __post_init__(self) -> None:
        if not self.review.review_table:
            raise ValueError("REVIEW_TABLE is not set: there is no review queue to measure")
        if self.review_depth_max_pages < 1:
            raise ValueError("REVIEW_DEPTH_MAX_PAGES must be at least 1")
