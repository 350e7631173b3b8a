"""Learning-loop test helpers: the stage's names, the function environment infra gives the start-training and
promote functions, feedback items written through the API's adapter, re-versioned copies of a bundle."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aws_lambda_powertools.utilities import parameters

from categorizer.adapters.feedback_table import FeedbackRecord, FeedbackTable
from categorizer.settings import Settings, get_settings

REGION = "us-east-1"
ACCOUNT = "123456789012"
STAGE = "dev"
JOB_PREFIX = "categorizer-dev"  # the names in events/learning/*.json
BUCKET = f"categorizer-dev-models-{ACCOUNT}-{REGION}"
PARAMETER = "/categorizer/dev/champion"
TABLE = "categorizer-dev-feedback"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/categorizer-dev-sagemaker-{REGION}"
IMAGE_URI = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-training:2.6.0-cpu-py312-ubuntu22.04-sagemaker"
SOURCE_URI = f"s3://{BUCKET}/training/source/sourcedir.tar.gz"


def function_environment(cache_dir: Path, **overrides: str) -> dict[str, str]:
    """What infra/config.py function_environment sets for start-training + promote (dev stage)."""
    env = {
        "STAGE": STAGE, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "MODEL_BUCKET": BUCKET, "CHAMPION_PARAMETER": PARAMETER, "FEEDBACK_TABLE": TABLE,
        "TRAINING_PREFIX": "training/", "TRAINING_OUTPUT_PREFIX": "training-jobs/", "DECISIONS_PREFIX": "decisions/",
        "TRAINING_JOB_PREFIX": JOB_PREFIX, "TRAINING_ROLE_ARN": ROLE_ARN, "TRAINING_IMAGE_URI": IMAGE_URI,
        "TRAINING_SOURCE_URI": SOURCE_URI, "TRAINING_ENTRY_POINT": "model_build/sagemaker_entry.py",
        "TRAINING_INSTANCE_TYPE": "ml.m5.xlarge", "TRAINING_USE_SPOT": "true",
        "TRAINING_MAX_RUNTIME_SECONDS": "3600", "TRAINING_MAX_WAIT_SECONDS": "7200", "MIN_NEW_FEEDBACK": "5",
        "PROMOTION_MAX_CLASS_F1_DROP": "0.05", "MODEL_CACHE_DIR": str(cache_dir), "ONNX_THREADS": "1",
        "TRAINING_RECIPE": "fast", "MODEL_MAX_AGE_SECONDS": "1",
    }
    return env | overrides


def clear_caches() -> None:
    from categorizer.adapters import model_bucket
    from categorizer.handlers import promote, start_training

    get_settings.cache_clear()
    model_bucket._s3.cache_clear()  # the serving side's S3 client: bound to moto in process or to a server
    start_training.dependencies.cache_clear()
    promote.dependencies.cache_clear()
    parameters.clear_caches()


@dataclass
class Stage:
    s3: object
    ssm: object
    dynamodb: object
    sagemaker: object
    cache_dir: Path

    @property
    def settings(self) -> Settings:
        return get_settings()

    def registry(self):
        from categorizer.registry.store import ModelRegistry

        return ModelRegistry.from_settings(get_settings())


def feedback_record(prediction_id: str, text: str, correct_label: str, *, created_at: str,
                    predicted_label: str = "exchange_rate", feedback_id: str | None = None,
                    user: str = "user-1") -> FeedbackRecord:
    return FeedbackRecord(
        feedback_id=feedback_id or f"{prediction_id}-{created_at}", prediction_id=prediction_id, text=text,
        predicted_label=predicted_label, correct_label=correct_label, comment=None, user_sub=user,
        client_id="client", model_version="v0", created_at=created_at, fingerprint="f" * 64)


def store_feedback(records: list[FeedbackRecord]) -> None:
    """Write feedback exactly as the API does (its adapter, conditional put)."""
    table = FeedbackTable.create(TABLE, region=REGION)
    for record in records:
        assert table.put_if_absent(record) is None


def reversioned(bundle_dir: Path, destination: Path, version: str) -> tuple[Path, Path]:
    """A copy of a bundle under another version (same model), re-hashed, with its model.tar.gz."""
    from model_build.bundle import make_tarball, write_manifest

    shutil.copytree(bundle_dir, destination)
    manifest = json.loads((destination / "manifest.json").read_text())
    manifest.pop("files")
    manifest["version"] = version
    write_manifest(destination, manifest)
    return destination, make_tarball(destination, destination.parent / f"{version}.tar.gz")


def load_event(name: str) -> dict:
    return json.loads((Path(__file__).resolve().parents[2] / "events" / "learning" / name).read_text())


def relabelled(bundle_dir: Path, destination: Path, version: str) -> tuple[Path, Path]:
    """A valid bundle whose labels.json is rotated: the same network answers with the wrong names (a bad model)."""
    from model_build.bundle import make_tarball, write_manifest

    shutil.copytree(bundle_dir, destination)
    labels = json.loads((destination / "labels.json").read_text())
    (destination / "labels.json").write_text(json.dumps(labels[1:] + labels[:1]))
    manifest = json.loads((destination / "manifest.json").read_text())
    manifest.pop("files")
    manifest["version"] = version
    write_manifest(destination, manifest)
    return destination, make_tarball(destination, destination.parent / f"{version}.tar.gz")
