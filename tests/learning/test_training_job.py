"""Start-training: the CreateTrainingJob request, the handler on the real schedule event, idempotent retries,
and the skips."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber

from categorizer.adapters.training_jobs import TrainingJobs
from categorizer.registry.training_job import (
    RetrainDependencies,
    TrainingConfigError,
    TrainingJobSpec,
    build_request,
    job_name_for,
    recipe_arguments,
    start_retraining,
)
from categorizer_cli.local.sagemaker_job import decode_hyperparameters, user_arguments
from model_build.sagemaker_entry import parse_args
from tests.learning.support import (
    BUCKET,
    IMAGE_URI,
    ROLE_ARN,
    SOURCE_URI,
    Stage,
    feedback_record,
    load_event,
    store_feedback,
)
from tests.support.observability import emitted_metrics

JOB = "categorizer-dev-20261123-210000"  # from events/learning/scheduled_event.json's time


def corrections(n: int, *, day: int = 10, prefix: str = "p") -> list:
    labels = ("card_arrival", "exchange_rate", "lost_or_stolen_card")
    return [feedback_record(f"{prefix}{i}", f"text number {i} from {prefix}", labels[i % 3],
                            created_at=f"2026-11-{day:02d}T10:00:{i:02d}.000Z") for i in range(n)]


def test_the_request_names_the_image_role_channels_and_output(stage: Stage):
    spec = TrainingJobSpec.from_settings(stage.start_settings)
    request = build_request(spec, JOB, feedback_prefix=f"training/feedback/{JOB}/train/")
    assert request["TrainingJobName"] == JOB
    assert request["AlgorithmSpecification"] == {"TrainingImage": IMAGE_URI, "TrainingInputMode": "File"}
    assert request["RoleArn"] == ROLE_ARN
    assert request["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/training-jobs/"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels == {"train": f"s3://{BUCKET}/training/base/", "test": f"s3://{BUCKET}/training/holdout/",
                        "feedback": f"s3://{BUCKET}/training/feedback/{JOB}/train/"}
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"

    # Script mode, as the SageMaker SDK sets it; the toolkit decodes the values and passes the rest as flags
    # that the entrypoint accepts.
    hps = decode_hyperparameters(request["HyperParameters"])
    assert hps["sagemaker_program"] == "model_build/sagemaker_entry.py"
    assert hps["sagemaker_submit_directory"] == SOURCE_URI
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    args, _ = parse_args(user_arguments(hps))
    assert args.recipe == "fast"


@pytest.mark.parametrize(("manifest_recipe", "effective"), [
    ({"sparse_head_weight": 0.0, "fine_tune_epochs": 0, "seed": 13},
     {"sparse_head_weight": 0.0, "fine_tune_epochs": 0}),
    ({"sparse_head_weight": 0.5, "fine_tune_epochs": 0}, {"sparse_head_weight": 0.5, "fine_tune_epochs": 0}),
    ({"sparse_head_weight": 0.25, "fine_tune_epochs": 2}, {"sparse_head_weight": 0.25, "fine_tune_epochs": 2}),
    (None, {"sparse_head_weight": 0.5, "fine_tune_epochs": 0}),  # an older manifest: `full`
])
def test_the_champion_recipe_retrains_with_what_built_the_serving_model(stage: Stage, manifest_recipe, effective):
    """TRAINING_RECIPE=champion (the default): the job's flags rebuild the champion's effective recipe, through
    the same hyperparameter path the toolkit and the entrypoint use."""
    from model_build.recipe import RECIPES

    spec = dataclasses.replace(TrainingJobSpec.from_settings(stage.start_settings), recipe="champion")
    manifest = {"recipe": manifest_recipe} if manifest_recipe is not None else {}
    request = build_request(spec, JOB, feedback_prefix="x/", recipe=recipe_arguments(spec.recipe, manifest))

    args, overrides = parse_args(user_arguments(decode_hyperparameters(request["HyperParameters"])))
    recipe = RECIPES[args.recipe].with_overrides(overrides)
    assert {name: getattr(recipe, name) for name in effective} == effective
    assert recipe_arguments("fast", manifest) == {"recipe": "fast"}  # a recipe by name is taken as it is


def test_on_demand_capacity_has_no_max_wait(stage: Stage):
    loop = dataclasses.replace(stage.start_settings.learning, training_use_spot=False)
    on_demand = dataclasses.replace(stage.start_settings, learning=loop)
    request = build_request(TrainingJobSpec.from_settings(on_demand), JOB, feedback_prefix="x/")
    assert request["EnableManagedSpotTraining"] is False
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_job_names_come_from_the_schedule_time_and_follow_sagemaker_rules():
    assert job_name_for("categorizer-prod", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == \
        "categorizer-prod-20260102-030405"
    with pytest.raises(TrainingConfigError):
        job_name_for("x" * 50, datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(TrainingConfigError):
        job_name_for("bad_name", datetime(2026, 1, 2, tzinfo=UTC))


def test_schedule_event_exports_feedback_and_starts_one_job(stage: Stage, champion: str, lambda_context, capsys):
    from categorizer.handlers.start_training import handler

    store_feedback(corrections(8))
    result = handler(load_event("scheduled_event.json"), lambda_context)
    assert result["status"] == "started" and result["job_name"] == JOB
    assert result["export"]["train_items"] + result["export"]["evaluation_items"] == 8
    assert emitted_metrics(capsys.readouterr().out)["TrainingJobsStarted"] == [1.0]

    job = stage.sagemaker.describe_training_job(TrainingJobName=JOB)
    assert job["RoleArn"] == ROLE_ARN
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "test", "feedback", "labels"]
    label_map = json.loads(stage.s3.get_object(Bucket=BUCKET, Key=f"training/feedback/{JOB}/labels/label_map.json")
                           ["Body"].read())
    assert label_map["map"] == {} and label_map["catalogue_revision"] == 0  # no catalogue yet: the champion's
    exported = stage.s3.get_object(Bucket=BUCKET, Key=f"training/feedback/{JOB}/train/feedback.jsonl")
    rows = [json.loads(line) for line in exported["Body"].read().decode().splitlines()]
    assert len(rows) == result["export"]["train_items"] and set(rows[0]) == {"text", "label"}


def test_a_retried_schedule_event_starts_no_second_job(stage: Stage, champion: str, lambda_context):
    from categorizer.handlers.start_training import handler

    store_feedback(corrections(8))
    event = load_event("scheduled_event.json")
    assert handler(event, lambda_context)["status"] == "started"
    summary_key = f"training/feedback/{JOB}/export.json"
    first_export = stage.s3.get_object(Bucket=BUCKET, Key=summary_key)["Body"].read()
    store_feedback(corrections(6, day=20, prefix="later"))  # arrives between the attempts

    again = handler(event, lambda_context)
    assert again == {"status": "already_started", "job_name": JOB}
    jobs = stage.sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == [JOB]
    assert stage.s3.get_object(Bucket=BUCKET, Key=summary_key)["Body"].read() == first_export


def test_a_job_started_by_a_concurrent_attempt_counts_as_started(stage: Stage, champion: str, tmp_path):
    """DescribeTrainingJob says no job, then CreateTrainingJob says ResourceInUse: the other attempt won."""
    store_feedback(corrections(8))
    client = stage.sagemaker
    with Stubber(client) as stub:
        stub.add_client_error("describe_training_job", service_error_code="ValidationException",
                              service_message="Requested resource not found.")
        stub.add_client_error("create_training_job", service_error_code="ResourceInUse",
                              service_message=f"Training job names must be unique: {JOB}")
        deps = RetrainDependencies(settings=stage.start_settings, registry=stage.registry(), jobs=TrainingJobs(client),
                                   read_feedback=lambda: corrections(8), cache_dir=tmp_path)
        result = start_retraining(datetime(2026, 11, 23, 21, 0, tzinfo=UTC), deps)
        stub.assert_no_pending_responses()
    assert result["status"] == "already_started" and result["job_name"] == JOB


def test_too_little_new_feedback_starts_nothing_and_says_why(stage: Stage, champion: str, lambda_context,
                                                             log_output):
    from categorizer.handlers.start_training import handler

    store_feedback(corrections(3))
    result = handler(load_event("scheduled_event.json"), lambda_context)
    assert result["status"] == "skipped"
    assert result["reason"] == "only 3 new usable feedback item(s) since the first model; 5 needed to retrain"
    assert stage.sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    assert any(line.get("message") == "retraining skipped" and "only 3 new" in line.get("reason", "")
               for line in log_output())


def test_feedback_already_trained_on_is_not_new(stage: Stage, champion: str, lambda_context, tiny_bundle, tmp_path):
    from categorizer.engine import load_bundle
    from categorizer.handlers.start_training import handler
    from tests.learning.support import reversioned

    store_feedback(corrections(8, day=10) + corrections(2, day=25, prefix="late"))
    # A model trained with feedback up to the 20th is registered (promoted or not).
    bundle_dir, tarball = reversioned(tiny_bundle, tmp_path / "trained", "20261121-000000-aaaaaaaa")
    stage.registry().register(tarball, load_bundle(bundle_dir), source={
        "kind": "training_job", "job_name": "categorizer-dev-20261120-000000",
        "feedback_until": "2026-11-20T00:00:00.000Z"})
    result = handler(load_event("scheduled_event.json"), lambda_context)
    assert result["status"] == "skipped"
    assert result["reason"].startswith("only 2 new usable feedback item(s) since 2026-11-20T00:00:00.000Z")


def test_no_champion_means_nothing_to_retrain_against(stage: Stage, lambda_context):
    from categorizer.handlers.start_training import handler

    store_feedback(corrections(8))
    result = handler(load_event("scheduled_event.json"), lambda_context)
    assert result["status"] == "skipped" and "no champion" in result["reason"]


def test_missing_training_settings_fail_at_cold_start_naming_the_variable():
    """The handler module reads its settings at import: a missing variable stops the function there."""
    from categorizer.contract import SettingsError, StartTrainingSettings
    from tests.support.settings import function_environment_for_tests

    env = function_environment_for_tests()
    del env["TRAINING_ROLE_ARN"]
    with pytest.raises(SettingsError, match="the start-training function cannot start: TRAINING_ROLE_ARN is not set"):
        StartTrainingSettings.from_env(env)
