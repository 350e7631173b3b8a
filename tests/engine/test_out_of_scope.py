"""Out-of-scope detection in the engine: novelty from the bundle's graph, its threshold, the stage override,
and bundles built before novelty existed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from categorizer.contract import ModelSource
from categorizer.engine import Classifier, Prediction, load_bundle
from categorizer.model_store import ModelStore
from model_build.bundle import write_manifest

IN_SCOPE = ["I am still waiting on my card?", "My card payment was declined", "How do I top up with a cheque?"]
FOREIGN = ["asdkj qwe zxcv plokm", "how do I bake sourdough bread", "who won the football match yesterday",
           "play some jazz music", "lorem ipsum dolor sit amet"]


def test_the_quick_model_flags_foreign_topics_and_gibberish_but_not_banking(default_bundle: Path):
    classifier = Classifier.from_path(default_bundle, threads=1)
    assert classifier.has_novelty and classifier.out_of_scope_threshold == load_bundle(default_bundle).manifest[
        "novelty"]["threshold"]
    inside, outside = classifier.classify(IN_SCOPE), classifier.classify(FOREIGN)
    assert [p.out_of_scope for p in inside] == [False] * len(IN_SCOPE)
    assert [p.out_of_scope for p in outside] == [True] * len(FOREIGN)
    assert all(p.needs_review for p in outside)
    assert max(p.novelty for p in inside) < classifier.out_of_scope_threshold < min(p.novelty for p in outside)


def test_the_tiny_bundle_records_and_applies_its_threshold(tiny_bundle: Path, classifier: Classifier):
    novelty = load_bundle(tiny_bundle).manifest["novelty"]
    assert novelty["threshold"] > 0 and novelty["flag_rate"] == 0.01 and novelty["calibration_items"] > 0
    (inside, outside) = classifier.classify(["When will my new card arrive?", "how do I bake sourdough bread"])
    assert (inside.out_of_scope, outside.out_of_scope) == (False, True)
    assert outside.needs_review and outside.novelty > novelty["threshold"] > inside.novelty


def test_the_override_threshold_replaces_the_bundles(tiny_bundle: Path):
    text = ["When will my new card arrive?"]
    (strict,) = Classifier.from_path(tiny_bundle, threads=1, out_of_scope_threshold=0.0).classify(text)
    (lenient,) = Classifier.from_path(tiny_bundle, threads=1, out_of_scope_threshold=1e9).classify(text)
    assert strict.out_of_scope and strict.needs_review
    assert not lenient.out_of_scope and strict.novelty == lenient.novelty


def test_the_stage_setting_reaches_the_served_model(tiny_bundle: Path):
    env = {"MODEL_DIR": str(tiny_bundle), "OUT_OF_SCOPE_THRESHOLD": "0"}
    served = ModelStore(ModelSource.from_env(env)).get()
    assert served.out_of_scope_threshold == 0.0
    assert served.classify(["When will my new card arrive?"])[0].out_of_scope


@pytest.fixture(scope="module")
def old_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle as a build before out-of-scope detection made it: one output, no novelty fields."""
    path = tmp_path_factory.mktemp("old") / "bundle"
    shutil.copytree(tiny_bundle, path)
    model = onnx.load(str(path / "model.onnx"))
    kept = [o for o in model.graph.output if o.name != "novelty"]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    onnx.save(model, str(path / "model.onnx"))
    manifest = json.loads((path / "manifest.json").read_text())
    for field in ("novelty", "out_of_scope", "files"):
        manifest.pop(field)
    write_manifest(path, manifest)
    return path


def test_a_bundle_without_novelty_never_flags(old_bundle: Path):
    classifier = Classifier.from_path(old_bundle, threads=1, out_of_scope_threshold=0.0)
    assert not classifier.has_novelty and classifier.out_of_scope_threshold is None
    for result in classifier.classify(["When will my new card arrive?", *FOREIGN]):
        assert isinstance(result, Prediction)
        assert (result.out_of_scope, result.novelty) == (False, 0.0)
        assert result.needs_review == (result.confidence < classifier.review_threshold)
