"""The local runner: a job accepted by the emulator (never run by it) is trained for real by
model_build/sagemaker_entry.py from the packaged source archive, with SageMaker's directory contract; its
state-change event goes to the promote handler."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.registry.records import Action
from categorizer.registry.training_data import upload_training_data
from categorizer_cli.local.sagemaker_job import run_training_job
from tests.learning.support import BUCKET, SOURCE_URI, Stage, feedback_record, load_event, store_feedback
from tests.support.paths import TEST_DATA

JOB = "categorizer-dev-20261123-210000"


@pytest.fixture
def source_archive(stage: Stage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sourcedir.tar.gz exactly as the CDK asset builds it, where TRAINING_SOURCE_URI says."""
    monkeypatch.setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.bundling import write_training_source

    archive = write_training_source(tmp_path / "sourcedir.tar.gz")
    stage.s3.upload_file(str(archive), BUCKET, SOURCE_URI.removeprefix(f"s3://{BUCKET}/"))


def start_job(lambda_context) -> dict:
    from categorizer.handlers.start_training import handler

    return handler(load_event("scheduled_event.json"), lambda_context)


@pytest.mark.slow
def test_a_job_trains_locally_and_its_model_reaches_the_gate(stage: Stage, champion: str, source_archive,
                                                             lambda_context, tmp_path: Path):
    upload_training_data(ModelBucket(BUCKET), training_prefix="training/", base_files=[TEST_DATA / "tiny.csv"],
                         holdout_files=[TEST_DATA / "tiny.csv"])
    store_feedback([feedback_record(f"p{i}", text, label, created_at=f"2026-11-20T10:00:0{i}.000Z")
                    for i, (text, label) in enumerate([
                        ("is there a fee to change pounds to euros", "exchange_rate"),
                        ("the courier never delivered my card", "card_arrival"),
                        ("someone took my wallet with the card", "lost_or_stolen_card"),
                        ("how much is a dollar in yen today", "exchange_rate"),
                        ("my replacement card is late", "card_arrival"),
                        ("I think my card was pickpocketed", "lost_or_stolen_card"),
                        ("which rate applies to transfers abroad", "exchange_rate"),
                        ("card delivery is taking forever", "card_arrival")])])
    started = start_job(lambda_context)
    assert started["status"] == "started"

    outcome = run_training_job(JOB, workdir=tmp_path, keep_workdir=True)

    assert outcome["status"] == "Completed", outcome["log_tail"]
    artifact = f"s3://{BUCKET}/training-jobs/{JOB}/output/model.tar.gz"
    assert outcome["model_artifacts"] == artifact
    # SageMaker's layout: the model directory's files at the archive root.
    local = tmp_path / "model.tar.gz"
    stage.s3.download_file(BUCKET, f"training-jobs/{JOB}/output/model.tar.gz", str(local))
    with tarfile.open(local) as archive:
        assert {"manifest.json", "model.onnx", "labels.json", "tokenizer.json"} <= set(archive.getnames())
    # It ran from the packaged source archive, with the channels SageMaker would mount.
    [root] = [p for p in tmp_path.iterdir() if p.name.startswith(JOB)]
    assert (root / "code" / "model_build" / "sagemaker_entry.py").is_file()
    assert sorted(p.name for p in (root / "input" / "data").iterdir()) == ["feedback", "labels", "test", "train"]
    assert json.loads((root / "input" / "config" / "hyperparameters.json").read_text())["recipe"] == '"fast"'

    # The event has AWS's shape.
    event = outcome["event"]
    sample = load_event("training_job_completed.json")
    assert set(event) == set(sample)
    assert set(sample["detail"]) - set(event["detail"]) <= {"VpcConfig", "BillableTimeInSeconds",
                                                            "TrainingTimeInSeconds"}
    assert event["detail"]["ModelArtifacts"] == {"S3ModelArtifacts": artifact}

    # The promote handler took it from there: registered, scored against the champion, decided.
    promotion = outcome["promotion"]
    assert promotion["status"] in {"promoted", "rejected"}
    decision = stage.registry().decision_for_job(JOB)
    assert decision.action in {Action.PROMOTED, Action.REJECTED}
    assert (decision.action is Action.PROMOTED) == all(c["passed"] for c in decision.checks)
    candidate = stage.registry().get(decision.version)
    export = started["export"]
    assert candidate.source["job_name"] == JOB and candidate.source["feedback_until"] == export["feedback_until"]
    # The feedback channel went into training: 36 base rows plus the exported feedback rows.
    assert candidate.bundle_manifest["train_items"] == 36 + export["train_items"]


@pytest.mark.slow
def test_a_failing_job_becomes_a_failed_event_and_the_champion_stays(stage: Stage, champion: str,
                                                                      source_archive, lambda_context):
    # No base data was uploaded: the entrypoint exits with an error, as it would in SageMaker.
    store_feedback([feedback_record(f"p{i}", f"text {i}", "card_arrival", created_at=f"2026-11-20T10:00:0{i}.000Z")
                    for i in range(6)])
    assert start_job(lambda_context)["status"] == "started"

    outcome = run_training_job(JOB)

    assert outcome["status"] == "Failed"
    assert outcome["failure_reason"].startswith("AlgorithmError: ExitCode 2")
    assert "no training data" in outcome["failure_reason"]
    assert outcome["event"]["detail"]["FailureReason"] == outcome["failure_reason"]
    assert "ModelArtifacts" not in outcome["event"]["detail"]
    assert outcome["promotion"]["status"] == "training_failed"
    registry = stage.registry()
    assert registry.champion_version() == champion
    assert registry.decisions()[-1].action is Action.TRAINING_FAILED
