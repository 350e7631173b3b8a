"""Settings for tests, built through the contract and infra/config.py like every other caller.

`function_environment_for_tests()` is the environment the handler modules read at import (tests then
replace each function's dependencies through its own `services`/`dependencies` holder, or build an app with
`create_app(settings)`); the builders below give one function's typed settings for a test's own resources.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from categorizer.contract import (
    ApiSettings,
    BatchSettings,
    Identity,
    ModelSource,
    PromoteSettings,
    StartTrainingSettings,
)
from infra import config as infra

REGION = "us-east-1"
ACCOUNT = "123456789012"
STAGE = "dev"  # the learning-loop tests play the dev stage (the names in events/learning/*.json)
NAMES = infra.resource_names(STAGE, account=ACCOUNT, region=REGION)
IMAGE_URI = infra.training_image_uri(repository="pytorch-training", tag="2.6.0-cpu-py312-ubuntu22.04-sagemaker",
                                     region=REGION, registry_account=infra.dlc_account(REGION))
SOURCE_URI = f"s3://{NAMES.model_bucket}/{infra.TRAINING_PREFIX}source/sourcedir.tar.gz"
INPUTS = infra.EnvironmentInputs(
    identity=infra.IdentityValues(user_pool_id=f"{REGION}_TestPool", app_client_ids=("machine", "people")),
    training=infra.TrainingValues(sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{NAMES.sagemaker_role}",
                                  training_image_uri=IMAGE_URI, source_uri=SOURCE_URI),
)


def function_environment_for_tests() -> dict[str, str]:
    """The dev stage's function environments, merged (the names never clash), as infra writes them."""
    env: dict[str, str] = {}
    for function in infra.FunctionName:
        env |= infra.function_environment(function, stage=infra.load_stage(STAGE), names=NAMES, inputs=INPUTS)
    return env


def api_settings(*, model_dir: Path, user_pool_id: str, app_client_ids: tuple[str, ...], jwks_url: str,
                 feedback_table: str, ingest_bucket: str = "categorizer-ingest-test",
                 results_bucket: str = "categorizer-results-test", model_bucket: str | None = None,
                 **changes: object) -> ApiSettings:
    """`model_bucket`: where the label catalogue is kept (the local bundle still serves)."""
    return ApiSettings(
        stage="test", model=ModelSource(model_dir=str(model_dir), onnx_threads=1, model_bucket=model_bucket),
        identity=Identity(user_pool_id=user_pool_id, app_client_ids=app_client_ids, jwks_url=jwks_url),
        feedback_table=feedback_table, ingest_bucket=ingest_bucket, results_bucket=results_bucket, **changes)


def batch_settings(*, results_bucket: str, model_dir: str = "unused-the-test-hands-in-a-classifier",
                   **changes: object) -> BatchSettings:
    return BatchSettings(stage="test", model=ModelSource(model_dir=model_dir, onnx_threads=1),
                         results_bucket=results_bucket, **changes)


def learning_settings(function: infra.FunctionName, cache_dir: Path, **learning: object
                      ) -> StartTrainingSettings | PromoteSettings:
    """What infra gives start-training or promote on the dev stage, with this test's cache and loop values."""
    settings = infra.function_settings(function, stage=infra.load_stage(STAGE), names=NAMES, inputs=INPUTS)
    loop = dataclasses.replace(settings.learning, **{"min_new_feedback": 5, "training_recipe": "fast", **learning})
    return dataclasses.replace(settings, model_cache_dir=str(cache_dir), onnx_threads=1,  # type: ignore[type-var]
                               learning=loop)
