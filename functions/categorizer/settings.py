"""One typed settings object, read from the environment once per process.

The CDK stacks and the local stack set the same variable names (see infra/ and categorizer_cli/local).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _opt_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def _csv(name: str, default: str = "") -> tuple[str, ...]:
    return tuple(part.strip() for part in os.environ.get(name, default).split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    # Model: either a local bundle directory, or the model bucket + champion pointer (SSM parameter).
    model_dir: str | None
    model_bucket: str | None
    champion_parameter: str | None
    model_cache_dir: str
    model_max_age_seconds: int
    onnx_threads: int | None
    # API
    feedback_table: str | None
    user_pool_id: str | None
    app_client_ids: tuple[str, ...]
    jwks_url: str | None
    issuer: str | None
    classify_scope: str
    feedback_scope: str
    # Cognito groups that grant the same permissions to people (user tokens carry no custom scopes).
    classify_group: str
    feedback_group: str
    max_texts_per_request: int
    max_text_chars: int
    max_body_bytes: int
    # Batch
    results_bucket: str | None
    ingest_prefix: str
    results_prefix: str
    max_file_bytes: int
    idempotency_table: str | None
    # Batch chunk fan-out (files too large for one invocation): off unless the queue URL is set.
    batch_queue_url: str | None = None
    fanout_bytes: int = 32 * 1024 * 1024
    chunk_rows: int = 51_200
    # Learning loop (set by infra/config.py function_environment; defaults match the local stack).
    training_prefix: str = "training/"  # base/, holdout/ and feedback/<job>/ exports in the model bucket
    training_output_prefix: str = "training-jobs/"  # SageMaker OutputDataConfig path in the model bucket
    decisions_prefix: str = "decisions/"  # promotion / rejection / rollback records
    training_job_prefix: str = "categorizer-local"
    training_role_arn: str | None = None
    training_image_uri: str | None = None
    training_source_uri: str | None = None  # s3://.../sourcedir.tar.gz (model_build + categorizer)
    training_entry_point: str = "model_build/sagemaker_entry.py"
    training_instance_type: str = "ml.m5.xlarge"
    training_use_spot: bool = True
    training_max_runtime_seconds: int = 3600
    training_max_wait_seconds: int = 7200
    min_new_feedback: int = 50
    promotion_max_class_f1_drop: float = 0.05
    promotion_macro_f1_tolerance: float = 0.0  # how much hold-out macro-F1 may drop (0: must not drop at all)
    feedback_holdout_percent: int = 20  # share of predictions (by id hash) kept out of training, for the gate
    training_recipe: str = "full"  # model_build recipe the training job runs ("fast": head only)
    training_volume_gb: int = 30
    # Web console (functions/categorizer/console, api/routers/console.py and files.py).
    ingest_bucket: str | None = None  # where the console's presigned uploads go (ingest/<sub>/...)
    console_client_id: str | None = None  # the people (user/password) app client the page signs in with
    cognito_endpoint: str | None = None  # Cognito IdP endpoint the page calls (the emulator locally)
    upload_max_bytes: int = 50 * 1024 * 1024  # presigned POST content-length-range upper bound
    link_expiry_seconds: int = 300  # presigned upload / download links

    @property
    def token_issuer(self) -> str | None:
        """Cognito's issuer. Locally the JWKS lives elsewhere (the emulator), so the two are separate."""
        if self.issuer:
            return self.issuer
        if self.user_pool_id:
            return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"
        return None

    @property
    def token_jwks_url(self) -> str | None:
        if self.jwks_url:
            return self.jwks_url
        issuer = self.token_issuer
        return f"{issuer}/.well-known/jwks.json" if issuer else None

    @property
    def cognito_idp_endpoint(self) -> str:
        return self.cognito_endpoint or f"https://cognito-idp.{self.region}.amazonaws.com/"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            stage=env("STAGE", "local"),
            region=env("AWS_REGION", env("AWS_DEFAULT_REGION", "us-east-1")),
            model_dir=env("MODEL_DIR") or None,
            model_bucket=env("MODEL_BUCKET") or None,
            champion_parameter=env("CHAMPION_PARAMETER") or None,
            model_cache_dir=env("MODEL_CACHE_DIR", "/tmp/models"),  # noqa: S108 - Lambda's only writable dir
            model_max_age_seconds=_int("MODEL_MAX_AGE_SECONDS", 60),
            onnx_threads=_opt_int("ONNX_THREADS"),
            feedback_table=env("FEEDBACK_TABLE") or None,
            user_pool_id=env("USER_POOL_ID") or None,
            app_client_ids=_csv("APP_CLIENT_IDS"),
            jwks_url=env("JWKS_URL") or None,
            issuer=env("TOKEN_ISSUER") or None,
            classify_scope=env("CLASSIFY_SCOPE", "categorizer/classify"),
            feedback_scope=env("FEEDBACK_SCOPE", "categorizer/feedback"),
            classify_group=env("CLASSIFY_GROUP", "classify"),
            feedback_group=env("FEEDBACK_GROUP", "feedback"),
            max_texts_per_request=_int("MAX_TEXTS_PER_REQUEST", 256),
            max_text_chars=_int("MAX_TEXT_CHARS", 10_000),
            max_body_bytes=_int("MAX_BODY_BYTES", 1_048_576),
            results_bucket=env("RESULTS_BUCKET") or None,
            ingest_prefix=env("INGEST_PREFIX", "ingest/"),
            results_prefix=env("RESULTS_PREFIX", "results/"),
            max_file_bytes=_int("MAX_FILE_BYTES", 512 * 1024 * 1024),
            idempotency_table=env("IDEMPOTENCY_TABLE") or None,
            batch_queue_url=env("BATCH_QUEUE_URL") or None,
            fanout_bytes=_int("FANOUT_BYTES", 32 * 1024 * 1024),
            chunk_rows=_int("CHUNK_ROWS", 51_200),
            training_prefix=env("TRAINING_PREFIX", "training/"),
            training_output_prefix=env("TRAINING_OUTPUT_PREFIX", "training-jobs/"),
            decisions_prefix=env("DECISIONS_PREFIX", "decisions/"),
            training_job_prefix=env("TRAINING_JOB_PREFIX", "categorizer-local"),
            training_role_arn=env("TRAINING_ROLE_ARN") or None,
            training_image_uri=env("TRAINING_IMAGE_URI") or None,
            training_source_uri=env("TRAINING_SOURCE_URI") or None,
            training_entry_point=env("TRAINING_ENTRY_POINT", "model_build/sagemaker_entry.py"),
            training_instance_type=env("TRAINING_INSTANCE_TYPE", "ml.m5.xlarge"),
            training_use_spot=env("TRAINING_USE_SPOT", "true").strip().lower() in {"1", "true", "yes"},
            training_max_runtime_seconds=_int("TRAINING_MAX_RUNTIME_SECONDS", 3600),
            training_max_wait_seconds=_int("TRAINING_MAX_WAIT_SECONDS", 7200),
            min_new_feedback=_int("MIN_NEW_FEEDBACK", 50),
            promotion_max_class_f1_drop=float(env("PROMOTION_MAX_CLASS_F1_DROP", "0.05")),
            promotion_macro_f1_tolerance=float(env("PROMOTION_MACRO_F1_TOLERANCE", "0.0")),
            feedback_holdout_percent=_int("FEEDBACK_HOLDOUT_PERCENT", 20),
            training_recipe=env("TRAINING_RECIPE", "full"),
            training_volume_gb=_int("TRAINING_VOLUME_GB", 30),
            ingest_bucket=env("INGEST_BUCKET") or None,
            console_client_id=env("CONSOLE_CLIENT_ID") or None,
            # Locally the emulator answers Cognito too (AWS_ENDPOINT_URL); in AWS the regional endpoint.
            cognito_endpoint=env("COGNITO_ENDPOINT") or env("AWS_ENDPOINT_URL") or None,
            upload_max_bytes=_int("UPLOAD_MAX_BYTES", 50 * 1024 * 1024),
            link_expiry_seconds=_int("LINK_EXPIRY_SECONDS", 300),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
