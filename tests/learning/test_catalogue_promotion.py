"""Promotion through the label catalogue, with the promote handler on moto: the job's snapshot decides what
the candidate is compared through and what becomes live; a change recorded while the job ran waits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.registry import catalogue as cat
from categorizer.registry.feedback_export import ExportLocation
from categorizer.registry.records import Action
from tests.learning.support import BUCKET, Stage, load_event, reversioned
from tests.learning.test_promotion import JOB, OUTPUT_KEY, channels, promote  # noqa: F401 - `channels` is a fixture

EXAMPLES = [f"Is my puppy covered by pet insurance, case {i}?" for i in range(12)]


def renamed(bundle_dir: Path, destination: Path, version: str, old: str, new: str) -> Path:
    """The same network with one label renamed in labels.json (what a job trained through the map gives)."""
    from model_build.bundle import make_tarball, write_manifest

    shutil.copytree(bundle_dir, destination)
    labels = json.loads((destination / "labels.json").read_text())
    (destination / "labels.json").write_text(json.dumps([new if label == old else label for label in labels]))
    manifest = json.loads((destination / "manifest.json").read_text())
    manifest.pop("files")
    manifest["version"] = version
    write_manifest(destination, manifest)
    return make_tarball(destination, destination.parent / f"{version}.tar.gz")


def _record_rename_and_snapshot(champion: str, tiny_bundle: Path) -> cat.CatalogueStore:
    store = cat.CatalogueStore(ModelBucket(BUCKET))
    labels = json.loads((tiny_bundle / "labels.json").read_text())
    snapshot = store.update(lambda c: cat.rename(cat.seed(labels, champion=champion, actor="test"),
                                                 "exchange_rate", to="fx / rates", actor="ann", reason="style"))
    # What start-training wrote for this job; then an admin records another change while it trains.
    ModelBucket(BUCKET).put_json(ExportLocation.for_job("training/", JOB).catalogue_key, snapshot.to_json())
    store.update(lambda c: cat.propose(c, name="pets", description="", examples=EXAMPLES, actor="bob"))
    return store


def test_a_renamed_candidate_is_compared_through_the_map_and_makes_the_rename_live(
        stage: Stage, channels, champion: str, tiny_bundle: Path, tmp_path: Path, lambda_context):  # noqa: F811
    store = _record_rename_and_snapshot(champion, tiny_bundle)
    tarball = renamed(tiny_bundle, tmp_path / "cand", "20261123-212600-4e4a3e00", "exchange_rate", "fx / rates")
    stage.s3.upload_file(str(tarball), BUCKET, OUTPUT_KEY)

    outcome = promote(load_event("training_job_completed.json"), lambda_context)

    assert outcome["status"] == "promoted", outcome["decision"]["reasons"]
    decision = stage.registry().decisions()[-1]
    assert decision.action is Action.PROMOTED
    assert decision.label_changes == ("rename 'exchange_rate' to 'fx / rates'",)
    live = store.read()
    assert live.champion == "20261123-212600-4e4a3e00"
    assert live.require("exchange_rate").status is cat.LabelStatus.RETIRED
    assert live.require("exchange_rate").replaced_by == "fx / rates"
    assert live.require("fx / rates").status is cat.LabelStatus.ACTIVE
    assert live.require("pets").status is cat.LabelStatus.PROPOSED  # recorded during the job: the next one


def test_a_candidate_still_holding_the_renamed_label_is_rejected_and_nothing_goes_live(
        stage: Stage, channels, champion: str, tiny_bundle: Path, tmp_path: Path, lambda_context):  # noqa: F811
    store = _record_rename_and_snapshot(champion, tiny_bundle)
    _, tarball = reversioned(tiny_bundle, tmp_path / "same", "20261123-212600-5a5e5a5e")
    stage.s3.upload_file(str(tarball), BUCKET, OUTPUT_KEY)

    outcome = promote(load_event("training_job_completed.json"), lambda_context)

    assert outcome["status"] == "rejected"
    assert outcome["decision"]["reasons"] == ["the candidate still holds retired label(s) ['exchange_rate']"]
    assert stage.registry().champion_version() == champion
    assert store.read().require("exchange_rate").pending is not None  # still recorded, not live
