"""Evaluation maths on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from model_build.evaluate import evaluate, expected_calibration_error, review_threshold
from model_build.recipe import FULL


def test_metrics_on_a_known_confusion():
    labels = ["a", "b"]
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    metrics = evaluate(probs, ["a", "a", "b", "b"], labels)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["confusion_matrix"] == [[2, 0], [1, 1]]
    assert metrics["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_review_threshold_is_the_lowest_that_meets_the_target():
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 1, 1, 0, 0], dtype=float)
    result = review_threshold(confidence, correct, 0.95)
    assert result["threshold"] == pytest.approx(0.8)
    assert result["precision"] == 1.0 and result["coverage"] == pytest.approx(4 / 6)


def test_review_threshold_when_nothing_meets_the_target():
    result = review_threshold(np.array([0.9, 0.8]), np.array([0.0, 0.0]), 0.95)
    assert result["threshold"] == 1.0 and result["coverage"] == 0.0


def test_calibration_error_of_a_perfectly_calibrated_model_is_zero():
    confidence = np.array([0.5, 0.5, 1.0, 1.0])
    correct = np.array([1.0, 0.0, 1.0, 1.0])
    ece, table = expected_calibration_error(confidence, correct)
    assert ece == pytest.approx(0.0)
    assert sum(b["count"] for b in table) == 4


def test_unknown_evaluation_label_is_an_error():
    with pytest.raises(ValueError, match="not known"):
        evaluate(np.array([[1.0, 0.0]]), ["zzz"], ["a", "b"])


def test_recipe_overrides_cast_sagemaker_strings():
    recipe = FULL.with_overrides({"fine_tune_epochs": "5", "encoder_lr": "2e-5", "unknown": "x"})
    assert recipe.fine_tune_epochs == 5 and recipe.encoder_lr == pytest.approx(2e-5)
