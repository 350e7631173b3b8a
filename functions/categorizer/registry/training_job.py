"""Start a retraining: export the feedback, then one SageMaker training job in script mode.

The job runs the AWS-managed PyTorch training image with model_build/sagemaker_entry.py from the source
archive (`sagemaker_program` + `sagemaker_submit_directory`, as the SageMaker Python SDK sets them), and
four channels: `train` (base data), `test` (the fixed hold-out), `feedback` (this export) and `labels` (the
label catalogue's map, snapshotted now: a label change made while the job runs applies to the next job). Its name comes
from the schedule's event time, so a retried invocation finds its job instead of starting a second one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from categorizer.adapters.feedback_table import FeedbackRecord
from categorizer.adapters.training_jobs import TrainingJobs
from categorizer.contract import StartTrainingSettings
from categorizer.contract.names import CHAMPION_RECIPE
from categorizer.observability import logger
from categorizer.registry.catalogue import CatalogueStore, mismatch_notes
from categorizer.registry.feedback_export import ExportLocation, plan_export, write_export
from categorizer.registry.store import ModelRegistry

TRAIN_CHANNEL, HOLDOUT_CHANNEL, FEEDBACK_CHANNEL, LABELS_CHANNEL = "train", "test", "feedback", "labels"
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's rule


class TrainingConfigError(ValueError):
    """A setting the training job needs is missing or invalid."""


def base_prefix(training_prefix: str) -> str:
    return f"{training_prefix}base/"


def holdout_prefix(training_prefix: str) -> str:
    return f"{training_prefix}holdout/"


def job_name_for(prefix: str, when: datetime) -> str:
    name = f"{prefix}-{when:%Y%m%d-%H%M%S}"
    if not JOB_NAME_PATTERN.match(name):
        raise TrainingConfigError(f"training job name {name!r} breaks SageMaker's rules (<= 63 characters, "
                                  "letters, digits and hyphens)")
    return name


def job_output_key(output_prefix: str, job_name: str) -> str:
    """Where SageMaker writes the job's model: <S3OutputPath>/<job name>/output/model.tar.gz."""
    return f"{output_prefix}{job_name}/output/model.tar.gz"


@dataclass(frozen=True, kw_only=True)
class TrainingJobSpec:
    bucket: str
    role_arn: str
    image_uri: str
    source_uri: str
    entry_point: str
    instance_type: str
    use_spot: bool
    max_runtime_seconds: int
    max_wait_seconds: int
    training_prefix: str
    output_prefix: str
    recipe: str
    region: str
    stage: str
    volume_gb: int = 30

    @classmethod
    def from_settings(cls, settings: StartTrainingSettings) -> TrainingJobSpec:
        learning = settings.learning  # required values and spot limits are checked at cold start (contract)
        return cls(bucket=settings.model_bucket, role_arn=settings.training_role_arn,
                   image_uri=settings.training_image_uri, source_uri=settings.training_source_uri,
                   entry_point=settings.training_entry_point, instance_type=learning.training_instance_type,
                   use_spot=learning.training_use_spot, max_runtime_seconds=learning.training_max_runtime_seconds,
                   max_wait_seconds=learning.training_max_wait_seconds, training_prefix=settings.training_prefix,
                   output_prefix=settings.training_output_prefix, recipe=learning.training_recipe,
                   region=settings.region, stage=settings.stage, volume_gb=learning.training_volume_gb)

    def s3(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def _channel(name: str, uri: str, content_type: str) -> dict[str, Any]:
    return {"ChannelName": name, "ContentType": content_type, "InputMode": "File", "CompressionType": "None",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated"}}}


# What `--recipe auto` chooses (model_build/auto.py): with these two values, `full` rebuilds any recipe.
_CHOSEN_RECIPE_FIELDS = ("sparse_head_weight", "fine_tune_epochs")


def recipe_arguments(recipe: str, champion_manifest: dict[str, Any]) -> dict[str, Any]:
    """The job's recipe hyperparameters. `champion`: the recipe that built the serving model (the effective
    recipe its manifest records), so a retrain starts level with the model it must beat instead of a point
    behind it; a manifest without a recipe (older bundles) gives `full`."""
    if recipe != CHAMPION_RECIPE:
        return {"recipe": recipe}
    chosen = champion_manifest.get("recipe") or {}
    return {"recipe": "full", **{name.replace("_", "-"): chosen[name] for name in _CHOSEN_RECIPE_FIELDS
                                 if name in chosen}}


def build_request(spec: TrainingJobSpec, job_name: str, *, feedback_prefix: str,
                  labels_prefix: str | None = None, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CreateTrainingJob request. Hyperparameter values are JSON-encoded, as the SageMaker SDK sends them
    (the training toolkit decodes them, then passes the non-`sagemaker_` ones as `--name value`). `recipe`:
    the recipe hyperparameters (recipe_arguments); by default the spec's recipe by name."""
    hyperparameters = {
        "sagemaker_program": spec.entry_point,
        "sagemaker_submit_directory": spec.source_uri,
        "sagemaker_region": spec.region,
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": job_name,
        **(recipe if recipe is not None else {"recipe": spec.recipe}),
    }
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": spec.max_runtime_seconds}
    if spec.use_spot:
        stopping["MaxWaitTimeInSeconds"] = spec.max_wait_seconds
    return {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {"TrainingImage": spec.image_uri, "TrainingInputMode": "File"},
        "RoleArn": spec.role_arn,
        "HyperParameters": {name: json.dumps(value) for name, value in hyperparameters.items()},
        "InputDataConfig": [
            _channel(TRAIN_CHANNEL, spec.s3(base_prefix(spec.training_prefix)), "text/csv"),
            _channel(HOLDOUT_CHANNEL, spec.s3(holdout_prefix(spec.training_prefix)), "text/csv"),
            _channel(FEEDBACK_CHANNEL, spec.s3(feedback_prefix), "application/jsonlines"),
            *([_channel(LABELS_CHANNEL, spec.s3(labels_prefix), "application/json")] if labels_prefix else []),
        ],
        "OutputDataConfig": {"S3OutputPath": spec.s3(spec.output_prefix)},
        "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": spec.volume_gb},
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spec.use_spot,
        "Tags": [{"Key": "app", "Value": "categorizer"}, {"Key": "stage", "Value": spec.stage}],
    }


class RetrainStatus(StrEnum):
    STARTED = "started"
    ALREADY_STARTED = "already_started"  # a retried invocation of the same schedule tick
    SKIPPED = "skipped"  # too little new feedback, or no champion yet


@dataclass
class RetrainDependencies:
    settings: StartTrainingSettings
    registry: ModelRegistry
    jobs: TrainingJobs
    read_feedback: Callable[[], Sequence[FeedbackRecord]]
    cache_dir: Path


def start_retraining(when: datetime, deps: RetrainDependencies) -> dict[str, Any]:
    """Export feedback and start the job for the schedule tick `when`, or say why not."""
    settings = deps.settings
    spec = TrainingJobSpec.from_settings(settings)
    job_name = job_name_for(settings.training_job_prefix, when)
    if deps.jobs.exists(job_name):  # a retried invocation: the job is running or ran; never export again
        logger.info("training job already started", extra={"job_name": job_name})
        return {"status": RetrainStatus.ALREADY_STARTED, "job_name": job_name}
    champion = deps.registry.champion_pointer()
    if champion is None:
        return _skipped(job_name, "no champion model yet: publish one first (its labels define the label set)")
    champion_record = deps.registry.require(champion.version)
    labels = deps.registry.labels_of(champion_record, deps.cache_dir / "bundles")
    catalogue = CatalogueStore(deps.registry.bucket).read()  # the snapshot this job trains for
    if catalogue is not None:
        for note in mismatch_notes(catalogue, champion=champion.version, champion_labels=labels):
            logger.warning("label catalogue and champion differ", extra={"note": note})
    plan = plan_export(deps.read_feedback(), labels=labels, since=deps.registry.last_feedback_cutoff(),
                       min_new=settings.learning.min_new_feedback,
                       holdout_percent=settings.learning.feedback_holdout_percent, catalogue=catalogue,
                       trained_revision=deps.registry.last_catalogue_revision())
    if plan.skip_reason:
        return _skipped(job_name, plan.skip_reason, plan.summary())
    location = ExportLocation.for_job(settings.training_prefix, job_name)
    export = write_export(deps.registry.bucket, plan, location, catalogue=catalogue, champion_labels=labels)
    if plan.usable.unknown_labels:
        logger.warning("feedback with labels the next model will not know was refused",
                       extra={"unknown_labels": plan.usable.unknown_labels})
    request = build_request(spec, job_name, feedback_prefix=location.train_prefix,
                            labels_prefix=location.labels_prefix,
                            recipe=recipe_arguments(spec.recipe, champion_record.bundle_manifest))
    started = deps.jobs.create(request)
    status = RetrainStatus.STARTED if started else RetrainStatus.ALREADY_STARTED
    logger.info("training job " + status.value.replace("_", " "), extra={"job_name": job_name, "export": export,
                                                                 "champion": champion.version})
    return {"status": status, "job_name": job_name, "champion": champion.version, "export": export}


def _skipped(job_name: str, reason: str, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    logger.info("retraining skipped", extra={"job_name": job_name, "reason": reason, "export": summary})
    return {"status": RetrainStatus.SKIPPED, "job_name": job_name, "reason": reason,
            **({"export": summary} if summary else {})}
