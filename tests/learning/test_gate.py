"""The promotion gate as a decision table, plus agreement of its metrics with model_build's evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from categorizer.registry.evaluation import Scores, score
from categorizer.registry.gate import GatePolicy, ModelScores, decide
from model_build.evaluate import evaluate as build_evaluate

LABELS = ("a", "b", "c")
POLICY = GatePolicy(max_class_f1_drop=0.05, macro_f1_tolerance=0.0)


def scores(macro: float, feedback_acc: float | None, per_class: dict[str, float] | None = None,
           labels: tuple[str, ...] = LABELS) -> ModelScores:
    per_class = per_class or dict.fromkeys(LABELS, macro)
    feedback = Scores(n=0, accuracy=float("nan"), macro_f1=float("nan")) if feedback_acc is None else \
        Scores(n=40, accuracy=feedback_acc, macro_f1=feedback_acc)
    return ModelScores(labels=labels, holdout=Scores(n=300, accuracy=macro, macro_f1=macro, per_class_f1=per_class),
                       feedback=feedback)


CHAMPION = scores(0.90, 0.50, {"a": 0.90, "b": 0.90, "c": 0.90})

# (case, candidate, policy, accepted, failing checks)
TABLE = [
    ("better everywhere", scores(0.92, 0.80, {"a": 0.92, "b": 0.92, "c": 0.92}), POLICY, True, set()),
    ("equal macro-F1, better on feedback", scores(0.90, 0.60, {"a": 0.90, "b": 0.90, "c": 0.90}), POLICY, True,
     set()),
    ("macro-F1 drops", scores(0.899, 0.90, {"a": 0.899, "b": 0.899, "c": 0.899}), POLICY, False,
     {"holdout_macro_f1"}),
    ("macro-F1 drop within a set tolerance", scores(0.899, 0.90, {"a": 0.899, "b": 0.899, "c": 0.899}),
     GatePolicy(max_class_f1_drop=0.05, macro_f1_tolerance=0.002), True, set()),
    ("feedback accuracy equal", scores(0.95, 0.50, {"a": 0.95, "b": 0.95, "c": 0.95}), POLICY, False,
     {"feedback_accuracy"}),
    ("feedback accuracy worse", scores(0.95, 0.40, {"a": 0.95, "b": 0.95, "c": 0.95}), POLICY, False,
     {"feedback_accuracy"}),
    ("no feedback items to compare on", scores(0.95, None, {"a": 0.95, "b": 0.95, "c": 0.95}), POLICY, False,
     {"feedback_accuracy"}),
    ("one class drops more than the margin", scores(0.92, 0.80, {"a": 0.84, "b": 0.96, "c": 0.96}), POLICY, False,
     {"class_f1"}),
    ("one class drops exactly the margin", scores(0.92, 0.80, {"a": 0.85, "b": 0.955, "c": 0.955}), POLICY, True,
     set()),
    ("a class the candidate no longer scores", scores(0.92, 0.80, {"b": 0.95, "c": 0.95}), POLICY, False,
     {"class_f1"}),
    ("everything worse", scores(0.50, 0.10, {"a": 0.5, "b": 0.5, "c": 0.5}), POLICY, False,
     {"holdout_macro_f1", "feedback_accuracy", "class_f1"}),
    ("different label set", scores(0.99, 0.99, labels=("a", "b", "d")), POLICY, False, {"labels"}),
]


@pytest.mark.parametrize(("candidate", "policy", "accepted", "failing"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_promotion_decision_table(candidate: ModelScores, policy: GatePolicy, accepted: bool, failing: set[str]):
    result = decide(candidate, CHAMPION, policy)
    assert result.accepted is accepted
    assert {c.name for c in result.checks if not c.passed} == failing
    if accepted:
        assert len(result.reasons) == 4  # all four checks, each saying why it passed
    else:
        assert len(result.reasons) == len(failing) and all(result.reasons)


def test_reasons_name_the_numbers():
    result = decide(scores(0.88, 0.40, {"a": 0.70, "b": 0.97, "c": 0.97}), CHAMPION, POLICY)
    text = " | ".join(result.reasons)
    assert "0.8800 vs champion 0.9000" in text
    assert "0.4000 vs champion 0.5000" in text
    assert "a -0.200" in text


def test_scores_agree_with_model_build_evaluation():
    rng = np.random.default_rng(7)
    labels = [f"l{i}" for i in range(6)]
    probabilities = rng.dirichlet(np.ones(6), size=500)
    truth = [labels[i] for i in rng.integers(0, 5, size=500)]  # l5 never occurs: excluded from macro-F1 by both
    ours = score(probabilities, truth, labels)
    theirs = build_evaluate(probabilities, truth, labels)
    assert ours.accuracy == pytest.approx(theirs["accuracy"])
    assert ours.macro_f1 == pytest.approx(theirs["macro_f1"])
    for label, f1 in ours.per_class_f1.items():
        assert f1 == pytest.approx(theirs["per_class"][label]["f1"])


def test_labels_the_model_does_not_know_count_as_errors():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    result = score(probabilities, ["x", "y", "z"], ["x", "y"])
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.per_class_f1["z"] == 0.0
