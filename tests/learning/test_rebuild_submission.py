"""A bundle built outside a training job (`make up`'s background build) goes through the same gate: submitted
with `registry.promotion.submit_bundle` on moto, with real bundles and the stage's promote settings; the
decision is recorded, the pointer moves only on a pass, and the serving model store swaps to a promoted one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.engine import BundleError
from categorizer.handlers.promote import build_dependencies
from categorizer.model_store import ModelStore
from categorizer.registry.promotion import PromotionStatus, submit_bundle
from categorizer.registry.records import Action, Origin
from categorizer.registry.training_data import upload_training_data
from tests.learning.support import BUCKET, Stage, relabelled, reversioned
from tests.support.paths import BANKING77, TEST_DATA

REBUILD = {"kind": Origin.REBUILD.value, "by": "test", "recipe": "auto"}


def dependencies(stage: Stage):
    deps = build_dependencies(stage.settings)
    deps.actor = "local:make up (background build)"
    return deps


def hold_out(path: Path) -> None:
    upload_training_data(ModelBucket(BUCKET), training_prefix="training/", base_files=[path], holdout_files=[path])


def test_a_better_rebuild_is_promoted_without_feedback_and_serving_swaps_to_it(stage: Stage, tiny_bundle: Path,
                                                                              tmp_path: Path):
    hold_out(TEST_DATA / "tiny.csv")
    registry = stage.registry()
    bad_dir, bad_tar = relabelled(tiny_bundle, tmp_path / "quick", "20261101-000000-0c0c0c0c")
    registry.publish(bad_dir, bad_tar, actor="make up", reason="the quick model")
    store = ModelStore(stage.serving())  # MODEL_MAX_AGE_SECONDS=1
    assert store.get().version == "20261101-000000-0c0c0c0c"
    good_dir, good_tar = reversioned(tiny_bundle, tmp_path / "built", "20261101-000500-600d600d")

    submission = submit_bundle(good_dir, good_tar, dependencies(stage), source=REBUILD)

    assert submission.status is PromotionStatus.PROMOTED, submission.decision.reasons
    assert registry.champion_version() == "20261101-000500-600d600d"
    decision = registry.decisions()[-1]
    assert decision.action is Action.PROMOTED and decision.version == "20261101-000500-600d600d"
    assert decision.previous_champion == "20261101-000000-0c0c0c0c"
    assert decision.actor == "local:make up (background build)"
    checks = {c["name"]: c for c in decision.checks}
    assert all(c["passed"] for c in checks.values()) and set(checks) == {"labels", "holdout_macro_f1",
                                                                         "feedback_accuracy", "class_f1"}
    assert checks["holdout_macro_f1"]["detail"].startswith("rebuild: hold-out macro-F1 improved")
    assert "no held-out feedback items" in checks["feedback_accuracy"]["detail"]  # none was needed
    assert decision.candidate_metrics["holdout"]["macro_f1"] > decision.champion_metrics["holdout"]["macro_f1"]
    assert registry.get("20261101-000500-600d600d").origin is Origin.REBUILD

    deadline = time.monotonic() + stage.serving().model_max_age_seconds + 3
    while store.get().version != "20261101-000500-600d600d" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get().version == "20261101-000500-600d600d"  # hot-swapped, no restart
    assert store.get().classify(["my card has not arrived"])[0].label == "card_arrival"


@pytest.mark.slow
def test_a_rebuild_no_better_than_the_quick_model_is_rejected_recorded_and_not_judged_twice(
        stage: Stage, default_bundle: Path, tmp_path: Path):
    """The BANKING77 quick model as champion and as candidate (a re-versioned copy): the same scores on the
    3,080 hold-out texts, so a rebuild gains nothing and the gate refuses it; the champion keeps serving."""
    hold_out(BANKING77 / "test.csv")
    registry = stage.registry()
    quick = default_bundle.resolve()
    registry.publish(quick, quick.with_name(f"{quick.name}.tar.gz"), actor="make up")
    champion = registry.champion_version()
    same_dir, same_tar = reversioned(quick, tmp_path / "rebuilt", "20261101-001000-5a5e5a5e")

    submission = submit_bundle(same_dir, same_tar, dependencies(stage), source=REBUILD)

    assert submission.status is PromotionStatus.REJECTED
    assert registry.champion_version() == champion
    decision = registry.decisions()[-1]
    assert decision.action is Action.REJECTED and decision.version == "20261101-001000-5a5e5a5e"
    assert [c["name"] for c in decision.checks if not c["passed"]] == ["holdout_macro_f1"]
    assert decision.reasons[0].startswith("rebuild: hold-out macro-F1 did not improve")
    assert decision.candidate_metrics["holdout"]["n"] == 3080
    assert decision.candidate_metrics["holdout"] == decision.champion_metrics["holdout"]  # same network

    again = submit_bundle(same_dir, same_tar, dependencies(stage), source=REBUILD)
    assert again.status is PromotionStatus.ALREADY_DECIDED and again.decision == decision
    assert len(registry.decisions()) == 2  # published + rejected: nothing judged twice


def test_a_bundle_that_does_not_verify_is_refused_before_it_is_registered(stage: Stage, champion: str,
                                                                          tiny_bundle: Path, tmp_path: Path):
    hold_out(TEST_DATA / "tiny.csv")
    broken_dir, broken_tar = reversioned(tiny_bundle, tmp_path / "broken", "20261101-002000-baadbaad")
    (broken_dir / "labels.json").write_text(json.dumps(["tampered"]))  # no longer matches its sha256

    with pytest.raises(BundleError):
        submit_bundle(broken_dir, broken_tar, dependencies(stage), source=REBUILD)

    registry = stage.registry()
    assert registry.get("20261101-002000-baadbaad") is None
    assert registry.champion_version() == champion and len(registry.decisions()) == 1


def test_the_cli_gate_judges_a_registered_rebuild_by_the_same_rule(stage: Stage, tiny_bundle: Path, tmp_path: Path):
    """`categorizer model promote VERSION` (review_registered) reads the record's origin: a rebuild needs no
    feedback, where a training job's candidate without feedback is refused."""
    from categorizer.engine import load_bundle
    from categorizer.registry.promotion import review_registered

    hold_out(TEST_DATA / "tiny.csv")
    registry = stage.registry()
    bad_dir, bad_tar = relabelled(tiny_bundle, tmp_path / "quick", "20261101-000000-0c0c0c0c")
    registry.publish(bad_dir, bad_tar, actor="test")
    for version, origin in (("20261101-003000-0e0e0e0e", Origin.REBUILD), ("20261101-003100-0f0f0f0f",
                                                                           Origin.TRAINING_JOB)):
        bundle_dir, tarball = reversioned(tiny_bundle, tmp_path / version, version)
        registry.register(tarball, load_bundle(bundle_dir), source={"kind": origin.value})

    rebuild = review_registered("20261101-003000-0e0e0e0e", dependencies(stage))
    job = review_registered("20261101-003100-0f0f0f0f", dependencies(stage))

    assert rebuild.gate.accepted
    assert not job.gate.accepted and job.gate.reasons == ("no held-out feedback items to compare on",)


def _scores(macro: float, feedback: float | None):
    from categorizer.registry.evaluation import Scores
    from categorizer.registry.gate import ModelScores

    labels = ("a", "b")
    return ModelScores(labels=labels, holdout=Scores(n=300, accuracy=macro, macro_f1=macro,
                                                     per_class_f1=dict.fromkeys(labels, macro)),
                       feedback=Scores(n=0, accuracy=float("nan"), macro_f1=float("nan")) if feedback is None
                       else Scores(n=20, accuracy=feedback, macro_f1=feedback))


@pytest.mark.parametrize(("case", "candidate", "champion", "failing"), [
    ("gains more than the tolerance, no feedback", _scores(0.905, None), _scores(0.90, None), set()),
    ("gains only int8 noise", _scores(0.9015, None), _scores(0.90, None), {"holdout_macro_f1"}),
    ("the same scores", _scores(0.90, None), _scores(0.90, None), {"holdout_macro_f1"}),
    ("better hold-out, feedback kept", _scores(0.93, 0.7), _scores(0.90, 0.7), set()),
    ("better hold-out, worse on feedback", _scores(0.93, 0.6), _scores(0.90, 0.7), {"feedback_accuracy"}),
])
def test_the_gates_rebuild_rule(case: str, candidate, champion, failing: set[str]):
    from categorizer.registry.gate import GatePolicy, decide

    result = decide(candidate, champion, GatePolicy(max_class_f1_drop=0.05, macro_f1_tolerance=0.002), rebuild=True)
    assert {c.name for c in result.checks if not c.passed} == failing, case
    assert result.accepted is (not failing)
    # The same candidate as a training job's: without feedback, or without a gain on it, it never passes.
    assert not decide(candidate, champion, GatePolicy(max_class_f1_drop=0.05, macro_f1_tolerance=0.002)).accepted
