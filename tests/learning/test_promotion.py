"""The promote function on real SageMaker state-change events (events/learning/): the gate's outcome with real
bundles, failed and stopped jobs, a corrupted candidate, redelivery, and the metrics the alarms watch."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.registry.feedback_export import held_out_for_evaluation
from categorizer.registry.promotion import EventShapeError, TrainingJobState
from categorizer.registry.records import Action
from categorizer.registry.store import registry_cache_dir
from categorizer.registry.training_data import upload_training_data
from tests.learning.support import (
    BUCKET,
    JOB_PREFIX,
    PARAMETER,
    Stage,
    feedback_record,
    load_event,
    relabelled,
    reversioned,
    store_feedback,
)
from tests.support.observability import emitted_metrics
from tests.support.paths import TEST_DATA

JOB = "categorizer-dev-20261123-210000"
OUTPUT_KEY = f"training-jobs/{JOB}/output/model.tar.gz"
EVENTS = ("training_job_completed.json", "training_job_failed.json", "training_job_stopped.json")
# Held-out feedback (their prediction ids hash into the evaluation share): real texts and their true labels.
HELD_OUT_TEXTS = [("When will my new card arrive?", "card_arrival"),
                  ("What exchange rate will I get?", "exchange_rate"),
                  ("My card was stolen", "lost_or_stolen_card"),
                  ("My card still hasn't come in the mail", "card_arrival")]


@pytest.fixture
def channels(stage: Stage) -> None:
    upload_training_data(ModelBucket(BUCKET), training_prefix="training/", base_files=[TEST_DATA / "tiny.csv"],
                         holdout_files=[TEST_DATA / "tiny.csv"])
    ids = (f"pred-{i}" for i in range(10_000))
    held = [i for i in ids if held_out_for_evaluation(i, 20)][: len(HELD_OUT_TEXTS)]
    store_feedback([feedback_record(pid, text, label, created_at=f"2026-11-2{n}T10:00:00.000Z")
                    for n, (pid, (text, label)) in enumerate(zip(held, HELD_OUT_TEXTS, strict=True))])


def promote(event: dict, context) -> dict:
    from categorizer.handlers.promote import handler

    return handler(event, context)


@pytest.mark.parametrize("name", EVENTS)
def test_sample_events_are_aws_shaped(name: str):
    event = load_event(name)
    assert event["source"] == "aws.sagemaker" and event["detail-type"] == "SageMaker Training Job State Change"
    assert event["resources"] == [event["detail"]["TrainingJobArn"]]
    state = TrainingJobState.from_event(event)
    assert state.job_name == JOB and state.job_name.startswith(f"{JOB_PREFIX}-")
    assert state.status in {"Completed", "Failed", "Stopped"}
    assert (state.model_artifacts is not None) == (state.status == "Completed")
    assert (state.failure_reason is not None) == (state.status == "Failed")
    detail = event["detail"]
    assert {"HyperParameters", "InputDataConfig", "OutputDataConfig", "StoppingCondition", "CreationTime",
            "TrainingEndTime", "SecondaryStatusTransitions", "Tags"} <= set(detail)
    assert all(value.isdigit() for key, value in detail.items() if key.endswith("Time"))  # epoch milliseconds


def test_other_events_are_refused():
    with pytest.raises(EventShapeError):
        TrainingJobState.from_event(load_event("../learning/scheduled_event.json"))
    broken = load_event("training_job_completed.json")
    del broken["detail"]["TrainingJobStatus"]
    with pytest.raises(EventShapeError, match="TrainingJobStatus"):
        TrainingJobState.from_event(broken)


def test_a_better_candidate_is_promoted(stage: Stage, channels, tiny_bundle: Path, tmp_path: Path, lambda_context,
                                       capsys):
    registry = stage.registry()
    bad_dir, bad_tar = relabelled(tiny_bundle, tmp_path / "bad", "20261101-000000-badbadba")
    registry.publish(bad_dir, bad_tar, actor="test")
    _, good_tar = reversioned(tiny_bundle, tmp_path / "good", "20261123-212600-600d600d")
    stage.s3.upload_file(str(good_tar), BUCKET, OUTPUT_KEY)

    outcome = promote(load_event("training_job_completed.json"), lambda_context)

    assert outcome["status"] == "promoted", outcome
    assert registry.champion_version() == "20261123-212600-600d600d"
    decision = registry.decisions()[-1]
    assert decision.action is Action.PROMOTED and decision.job_name == JOB
    assert decision.previous_champion == "20261101-000000-badbadba"
    assert decision.actor == f"promote-function:{lambda_context.function_name}"
    assert all(check["passed"] for check in decision.checks) and len(decision.checks) == 4
    assert decision.candidate_metrics["holdout"]["macro_f1"] > decision.champion_metrics["holdout"]["macro_f1"]
    assert decision.candidate_metrics["feedback"]["n"] == len(HELD_OUT_TEXTS)
    registered = registry.get("20261123-212600-600d600d")
    assert registered.source["job_name"] == JOB
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["ModelsPromoted"] == [1.0] and metrics["ConsecutivePromotionRejections"] == [0.0]


def test_a_candidate_no_better_on_feedback_is_rejected_and_the_champion_stays(
        stage: Stage, channels, champion: str, tiny_bundle: Path, tmp_path: Path, lambda_context, capsys):
    registry = stage.registry()
    _, same_tar = reversioned(tiny_bundle, tmp_path / "same", "20261123-212600-5a5e5a5e")
    stage.s3.upload_file(str(same_tar), BUCKET, OUTPUT_KEY)

    outcome = promote(load_event("training_job_completed.json"), lambda_context)

    assert outcome["status"] == "rejected"
    assert registry.champion_version() == champion
    decision = registry.decisions()[-1]
    assert decision.action is Action.REJECTED and decision.version == "20261123-212600-5a5e5a5e"
    assert [c["name"] for c in decision.checks if not c["passed"]] == ["feedback_accuracy"]
    assert decision.reasons == (f"accuracy on {len(HELD_OUT_TEXTS)} feedback items did not improve: "
                                f"{decision.champion_metrics['feedback']['accuracy']:.4f} vs champion "
                                f"{decision.champion_metrics['feedback']['accuracy']:.4f}",)
    assert registry.get("20261123-212600-5a5e5a5e") is not None  # kept in the registry, listable
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["PromotionsRejected"] == [1.0] and metrics["ConsecutivePromotionRejections"] == [1.0]

    # EventBridge delivers at least once: the same event again changes nothing.
    again = promote(load_event("training_job_completed.json"), lambda_context)
    assert again["status"] == "already_decided"
    assert len([d for d in registry.decisions() if d.job_name == JOB]) == 1


@pytest.mark.parametrize(("name", "words"), [("training_job_failed.json", "ExitCode 2"),
                                             ("training_job_stopped.json", "MaxRuntimeExceeded")])
def test_failed_and_stopped_jobs_are_recorded_and_change_nothing(stage: Stage, champion: str, lambda_context,
                                                                 capsys, name: str, words: str):
    outcome = promote(load_event(name), lambda_context)
    assert outcome["status"] == "training_failed"
    registry = stage.registry()
    assert registry.champion_version() == champion
    decision = registry.decisions()[-1]
    assert decision.action is Action.TRAINING_FAILED and decision.previous_champion == champion
    assert words in decision.reasons[0] and decision.reasons[1] == "the champion keeps serving"
    assert emitted_metrics(capsys.readouterr().out)["TrainingJobsFailed"] == [1.0]


def test_a_corrupted_candidate_is_refused_and_never_registered(stage: Stage, champion: str, tiny_bundle: Path,
                                                               tmp_path: Path, lambda_context):
    _, tarball = reversioned(tiny_bundle, tmp_path / "cand", "20261123-212600-c0ffee00")
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tarball) as source, tarfile.open(tampered, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "model.onnx":
                data = data[:-16] + b"\0" * 16  # a flipped tail: same size, wrong hash
            target.addfile(member, io.BytesIO(data))
    stage.s3.upload_file(str(tampered), BUCKET, OUTPUT_KEY)

    outcome = promote(load_event("training_job_completed.json"), lambda_context)

    assert outcome["status"] == "rejected"
    registry = stage.registry()
    assert registry.champion_version() == champion
    assert "does not match the manifest" in registry.decisions()[-1].reasons[0]
    assert registry.get("20261123-212600-c0ffee00") is None
    incoming = registry_cache_dir(stage.settings.model_cache_dir) / "incoming"
    assert incoming.is_dir() and not any(incoming.iterdir())  # the refused download is not left in /tmp


def test_a_missing_job_output_is_refused(stage: Stage, champion: str, lambda_context):
    outcome = promote(load_event("training_job_completed.json"), lambda_context)
    assert outcome["status"] == "rejected"
    assert "cannot be used" in stage.registry().decisions()[-1].reasons[0]


def test_jobs_of_other_stages_and_unfinished_jobs_are_ignored(stage: Stage, champion: str, lambda_context):
    other = load_event("training_job_completed.json")
    other["detail"]["TrainingJobName"] = "categorizer-prod-20261123-210000"
    assert promote(other, lambda_context)["status"] == "ignored"
    running = load_event("training_job_completed.json")
    running["detail"]["TrainingJobStatus"] = "InProgress"
    assert promote(running, lambda_context)["status"] == "ignored"
    assert [d.action for d in stage.registry().decisions()] == [Action.PUBLISHED]


def test_every_outcome_has_one_entry_in_its_handlers_metric_table():
    from categorizer.handlers import promote as promote_handler
    from categorizer.handlers import start_training
    from categorizer.registry.promotion import PromotionStatus
    from categorizer.registry.training_job import RetrainStatus

    assert set(promote_handler.METRIC_BY_STATUS) == set(PromotionStatus)
    assert set(start_training.METRIC_BY_STATUS) == set(RetrainStatus)


def test_the_hold_out_is_uploaded_once(stage: Stage, tmp_path: Path):
    bucket = ModelBucket(BUCKET)
    first = upload_training_data(bucket, training_prefix="training/", base_files=[TEST_DATA / "tiny.csv"],
                                 holdout_files=[TEST_DATA / "tiny.csv"])
    assert first["uploaded"] == ["training/base/tiny.csv", "training/holdout/tiny.csv"]
    other = tmp_path / "other.csv"
    other.write_text("text,category\nhello,card_arrival\n")
    second = upload_training_data(bucket, training_prefix="training/", base_files=[other], holdout_files=[other])
    assert second == {"uploaded": [], "kept": ["training/base/tiny.csv", "training/holdout/tiny.csv"]}
    assert stage.s3.list_objects_v2(Bucket=BUCKET, Prefix="training/")["KeyCount"] == 2


def test_a_lost_champion_pointer_is_never_a_reason_to_skip_the_gate(stage: Stage, channels, champion: str,
                                                                    tiny_bundle: Path, tmp_path: Path,
                                                                    lambda_context):
    """The pointer reset to a placeholder (once, CloudFormation did this on unrelated deploys) or deleted: the
    stage has a history, so the candidate is rejected with the repair, not promoted ungated."""
    _, tarball = reversioned(tiny_bundle, tmp_path / "cand", "20261123-212600-c0ffee00")
    stage.s3.upload_file(str(tarball), BUCKET, OUTPUT_KEY)
    stage.ssm.put_parameter(Name=PARAMETER, Value="none", Type="String", Overwrite=True)

    outcome = promote(load_event("training_job_completed.json"), lambda_context)

    assert outcome["status"] == "rejected", outcome
    registry = stage.registry()
    assert registry.champion_version() is None  # nothing was made champion
    assert "champion pointer is missing or unreadable although 1 decision(s) exist" in \
        registry.decisions()[-1].reasons[0]


def test_the_first_model_of_a_new_stage_serves_without_a_gate(stage: Stage, channels, tiny_bundle: Path,
                                                              tmp_path: Path, lambda_context):
    stage.ssm.delete_parameter(Name=PARAMETER)  # a new stage: nothing published, no pointer yet
    _, tarball = reversioned(tiny_bundle, tmp_path / "first", "20261123-212600-f1257000")
    stage.s3.upload_file(str(tarball), BUCKET, OUTPUT_KEY)

    outcome = promote(load_event("training_job_completed.json"), lambda_context)

    assert outcome["status"] == "promoted", outcome
    assert stage.registry().champion_version() == "20261123-212600-f1257000"
