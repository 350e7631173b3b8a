"""A text's probabilities and novelty depend on the text only: not on its batch, neighbours, order or threads.

A model quantized per call (one activation scale per tensor) runs every text as its own forward pass; a model
built with constant scales (every bundle built now) runs texts of one token length together. These tests hold
both to it: any batch, any order, 1 or N threads gives each text its alone-probabilities (within 1e-6; the
rounded scores and novelty exactly), an evaluation report cannot depend on row order, and passes are shared only
among texts of one length, and only by a model that promises constant scales.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from categorizer.engine import Classifier, Prediction, load_bundle
from categorizer.engine.classifier import CHUNK
from model_build.evaluate import evaluate

# Short and long, near-duplicates and unrelated: texts whose lengths (and so padding) differ a lot.
POOL = (
    "my card was stolen yesterday",
    "when does my card arrive",
    "what is the euro exchange rate",
    "card",
    "I lost my card on the train and I need a new one as soon as possible, it had all my money on it",
    "exchange rate for dollars to pounds today please",
    "still waiting for the card you sent me two weeks ago, where is it?",
    "stolen",
    "Café: is the rate for € better on weekdays?",
    "how long until a new card shows up in the mail",
    "someone took my wallet with my card",
    "rate",
)
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def engines(tiny_bundle: Path) -> dict[int, Classifier]:
    return {threads: Classifier.from_path(tiny_bundle, threads=threads) for threads in (1, 2, 3)}


@pytest.fixture(scope="module")
def alone(engines: dict[int, Classifier]) -> dict[str, np.ndarray]:
    """Each pool text's probabilities when classified on its own, on one thread."""
    return {text: engines[1].probabilities([text])[0] for text in POOL}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.sampled_from(POOL), min_size=1, max_size=24), threads=st.sampled_from((1, 2, 3)))
def test_each_text_gets_its_alone_probabilities_in_any_batch(engines, alone, batch, threads):
    probabilities = engines[threads].probabilities(batch)
    for text, row in zip(batch, probabilities, strict=True):
        assert np.max(np.abs(row - alone[text])) <= TOLERANCE, text


@pytest.fixture(scope="module")
def alone_novelty(engines: dict[int, Classifier]) -> dict[str, float]:
    """Each pool text's novelty when classified on its own, on one thread."""
    return {text: float(engines[1].scores([text])[1][0]) for text in POOL}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.sampled_from(POOL), min_size=1, max_size=24), threads=st.sampled_from((1, 2, 3)))
def test_each_text_gets_its_alone_novelty_in_any_batch(engines, alone_novelty, batch, threads):
    _, novelty = engines[threads].scores(batch)
    for text, value in zip(batch, novelty, strict=True):
        assert abs(float(value) - alone_novelty[text]) <= TOLERANCE, text


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(POOL), threads=st.sampled_from((1, 2, 3)))
def test_classify_labels_and_scores_do_not_depend_on_order(engines, order, threads):
    reference = {text: result for text, result in zip(POOL, engines[1].classify(list(POOL)), strict=True)}
    for text, result in zip(order, engines[threads].classify(list(order)), strict=True):
        assert isinstance(result, Prediction)
        assert result.label == reference[text].label
        assert result.top_k == reference[text].top_k
        assert (result.novelty, result.out_of_scope) == (reference[text].novelty, reference[text].out_of_scope)


def test_evaluation_report_does_not_depend_on_row_order(engines):
    truth = {"my card was stolen yesterday": "lost_or_stolen_card", "stolen": "lost_or_stolen_card",
             "someone took my wallet with my card": "lost_or_stolen_card",
             "when does my card arrive": "card_arrival",
             "how long until a new card shows up in the mail": "card_arrival",
             "still waiting for the card you sent me two weeks ago, where is it?": "card_arrival",
             "card": "card_arrival", "rate": "exchange_rate", "what is the euro exchange rate": "exchange_rate",
             "exchange rate for dollars to pounds today please": "exchange_rate",
             "Café: is the rate for € better on weekdays?": "exchange_rate"}
    texts = list(truth)
    classifier = engines[2]
    reports = []
    for seed in range(4):
        order = np.random.default_rng(seed).permutation(len(texts)) if seed else np.arange(len(texts))
        shuffled = [texts[i] for i in order]
        reports.append(evaluate(classifier.probabilities(shuffled), [truth[t] for t in shuffled], classifier.labels))
    for report in reports[1:]:
        assert report["accuracy"] == reports[0]["accuracy"]
        assert report["macro_f1"] == reports[0]["macro_f1"]
        assert report["per_class"] == reports[0]["per_class"]
        assert report["confusion_matrix"] == reports[0]["confusion_matrix"]
        assert report["ece"] == pytest.approx(reports[0]["ece"], abs=1e-12)  # float sums in another order
        assert report["review"]["threshold"] == reports[0]["review"]["threshold"]


class _CountingSession:
    """Wraps an onnxruntime session and records the batch size of every forward pass."""

    def __init__(self, session) -> None:
        self.session = session
        self.batches: list[int] = []

    def run(self, outputs, feed):
        self.batches.append(int(feed["input_ids"].shape[0]))
        return self.session.run(outputs, feed)


def test_a_static_scale_model_shares_passes_only_among_texts_of_one_length(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.batchable
    graph = onnx.load(str(bundle.file("model.onnx"))).graph
    assert not [node for node in graph.node if node.op_type == "DynamicQuantizeLinear"]
    classifier = Classifier(bundle, threads=1)
    counting = classifier._session = _CountingSession(classifier._session)
    same = ["card stolen"] * (CHUNK + 3)  # one length: a full pass and a pass of 3
    other = ["where is my new card please"]
    results = classifier.classify(same + other)
    assert sorted(counting.batches) == [1, 3, CHUNK]
    assert len({(r.label, tuple(r.top_k), r.novelty) for r in results[: len(same)]}) == 1

    # A bundle without the manifest's promise (a model quantized per call) runs every text alone.
    manifest = json.loads(bundle.file("manifest.json").read_text(encoding="utf-8"))
    manifest.pop("activation_scales")
    legacy = dataclasses.replace(bundle, manifest=manifest)
    assert not legacy.batchable
    per_text = Classifier(legacy, threads=1)
    counting = per_text._session = _CountingSession(per_text._session)
    per_text.classify(same + other)
    assert counting.batches == [1] * (len(same) + 1)
