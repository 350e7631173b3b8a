"""Novelty statistics, cross-fitted threshold calibration, and the in-graph computation, on tiny synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from model_build.novelty import (
    NOVELTY_OUTPUT,
    add_novelty_to_graph,
    calibrate_threshold,
    cross_fitted_scores,
    fit_novelty,
    novelty_scores,
)

DIM, CLASSES = 8, 3


def clusters(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three tight, well-separated clusters of unit vectors (like sentence embeddings)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM)[:CLASSES]
    targets = np.repeat(np.arange(CLASSES), n_per_class)
    points = centres[targets] + 0.05 * rng.standard_normal((len(targets), DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), targets


def test_points_near_a_class_are_less_novel_than_points_far_from_all():
    x, y = clusters(50, seed=1)
    stats = fit_novelty(x, y, num_labels=CLASSES, shrinkage=0.5)
    near, _ = clusters(5, seed=2)
    far = np.eye(DIM)[CLASSES:CLASSES + 3].astype(np.float32)  # directions no class lives in
    assert novelty_scores(near, stats).max() < novelty_scores(far, stats).min()


def test_full_shrinkage_is_the_scaled_squared_euclidean_distance_to_the_nearest_mean():
    x, y = clusters(20, seed=3)
    stats = fit_novelty(x, y, num_labels=CLASSES, shrinkage=1.0)
    means = np.stack([x[y == c].mean(axis=0) for c in range(CLASSES)]).astype(np.float64)
    probe = np.random.default_rng(4).standard_normal((6, DIM))
    euclidean = ((probe[:, None, :] - means[None]) ** 2).sum(axis=2).min(axis=1)
    variance = np.trace(np.cov((x - means[y]).T, bias=True)) * len(x) / (len(x) - CLASSES) / DIM
    np.testing.assert_allclose(novelty_scores(probe, stats), euclidean / variance / DIM, rtol=1e-4)


def test_a_class_missing_from_a_fold_is_never_the_nearest():
    x, y = clusters(10, seed=5)
    keep = y != 2
    stats = fit_novelty(x[keep], y[keep], num_labels=CLASSES, shrinkage=0.5)
    scores_of_missing_class = novelty_scores(x[~keep], stats)
    assert np.all(np.isfinite(scores_of_missing_class))
    assert scores_of_missing_class.min() > novelty_scores(x[keep], stats).max()


def test_cross_fitted_scores_are_not_flattered_by_fitting_on_the_same_items():
    x, y = clusters(12, seed=6)
    in_sample = novelty_scores(x, fit_novelty(x, y, num_labels=CLASSES, shrinkage=0.1))
    held_out = cross_fitted_scores(x, y, num_labels=CLASSES, shrinkage=0.1)
    assert held_out.mean() > in_sample.mean()


def test_the_calibrated_threshold_flags_about_the_target_share_of_fresh_in_scope_data():
    x, y = clusters(400, seed=7)
    threshold = calibrate_threshold(cross_fitted_scores(x, y, num_labels=CLASSES, shrinkage=0.5), flag_rate=0.05)
    fresh, _ = clusters(1000, seed=8)
    flagged = novelty_scores(fresh, fit_novelty(x, y, num_labels=CLASSES, shrinkage=0.5)) > threshold
    assert 0.02 <= flagged.mean() <= 0.08


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1])
def test_calibration_refuses_a_flag_rate_outside_zero_one(rate):
    with pytest.raises(ValueError, match="flag_rate"):
        calibrate_threshold(np.arange(10.0), flag_rate=rate)


def test_the_graph_computes_what_numpy_computes(tmp_path: Path):
    """A stand-in model (embedding in, probabilities and embedding out) gets the `novelty` output; the
    embedding stops being an output; values match novelty_scores."""
    x, y = clusters(30, seed=9)
    stats = fit_novelty(x, y, num_labels=CLASSES, shrinkage=0.3)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["embedding"]),
         helper.make_node("Softmax", ["input"], ["probabilities"], axis=-1)],
        "stand_in",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", DIM])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", DIM]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "in.onnx"))

    add_novelty_to_graph(tmp_path / "in.onnx", tmp_path / "out.onnx", stats=stats)

    session = ort.InferenceSession(str(tmp_path / "out.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities", NOVELTY_OUTPUT]
    probe = np.concatenate([x[:5], np.eye(DIM, dtype=np.float32)[CLASSES:]])
    _, novelty = session.run(None, {"input": probe})
    assert novelty.shape == (len(probe),)
    np.testing.assert_allclose(novelty, novelty_scores(probe, stats), rtol=1e-4, atol=1e-4)


def test_a_graph_without_an_embedding_output_is_refused(tmp_path: Path):
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["probabilities"])], "plain",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", DIM])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", DIM])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "in.onnx"))
    x, y = clusters(5, seed=10)
    with pytest.raises(ValueError, match="embedding"):
        add_novelty_to_graph(tmp_path / "in.onnx", tmp_path / "out.onnx",
                             stats=fit_novelty(x, y, num_labels=CLASSES, shrinkage=0.5))
