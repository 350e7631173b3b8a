"""Learning-loop test helpers: the stage's names, the function environment infra gives the start-training and
promote functions, feedback items written through the API's adapter, re-versioned copies of a bundle."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aws_lambda_powertools.utilities import parameters

from categorizer.adapters.feedback_table import FeedbackRecord, FeedbackTable
from categorizer.contract import ModelSource, PromoteSettings, StartTrainingSettings
from infra import config as infra
from tests.support.events import load_event as _load_event
from tests.support.settings import ACCOUNT, IMAGE_URI, NAMES, REGION, SOURCE_URI, STAGE, learning_settings

JOB_PREFIX = NAMES.training_job_prefix  # the names in events/learning/*.json
BUCKET = NAMES.model_bucket
PARAMETER = NAMES.champion_parameter
TABLE = NAMES.feedback_table
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{NAMES.sagemaker_role}"
__all__ = ["ACCOUNT", "BUCKET", "IMAGE_URI", "JOB_PREFIX", "PARAMETER", "REGION", "ROLE_ARN", "SOURCE_URI", "STAGE",
           "TABLE", "Stage", "use_learning_functions"]


def use_learning_functions(cache_dir: Path, **learning: object) -> tuple[StartTrainingSettings, PromoteSettings]:
    """Point the start-training and promote handlers at this test's stage (call inside moto)."""
    from categorizer.handlers import promote, start_training

    start = learning_settings(infra.FunctionName.START_TRAINING, cache_dir, **learning)
    decide = learning_settings(infra.FunctionName.PROMOTE, cache_dir, **learning)
    start_training.dependencies.override(start_training.build_dependencies(start))  # type: ignore[arg-type]
    promote.dependencies.override(promote.build_dependencies(decide))  # type: ignore[arg-type]
    parameters.clear_caches()
    return start, decide  # type: ignore[return-value]


def reset_learning_functions() -> None:
    from categorizer.handlers import promote, start_training

    start_training.dependencies.reset()
    promote.dependencies.reset()
    parameters.clear_caches()


@dataclass
class Stage:
    s3: object
    ssm: object
    dynamodb: object
    sagemaker: object
    cache_dir: Path
    start_settings: StartTrainingSettings
    settings: PromoteSettings

    def registry(self):
        from categorizer.registry.store import ModelRegistry

        return ModelRegistry.from_settings(self.settings)

    def serving(self, **changes: object) -> ModelSource:
        """What the API and batch functions read: the champion pointer, trusted for 1 s (fast hot swaps)."""
        return ModelSource(model_bucket=BUCKET, champion_parameter=PARAMETER, onnx_threads=1,
                           model_cache_dir=str(self.cache_dir / "serving"), model_max_age_seconds=1, **changes)


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
    return _load_event(f"learning/{name}")


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
