"""Out-of-scope detection: how unlike the training data a text is, computed inside the ONNX graph.

novelty(x) = min over classes c of (e - m_c)^T S^-1 (e - m_c) / d, where e is the L2-normalised sentence
embedding (d dimensions), m_c the mean training embedding of class c and S a covariance shared by all
classes, shrunk toward a multiple of the identity: S = (1 - shrinkage) * C + shrinkage * trace(C) / d * I.
Higher = farther from every class the model knows. With S^-1 = W W^T and z = e W, the graph computes
|z|^2 - 2 z.(m_c W) + |m_c W|^2 (one MatMul and a ReduceMin over classes), as a second output `novelty` of
the same session.run that gives the probabilities: no extra pass over the text.

The threshold is calibrated on the training data only: 5-fold cross-fitting (statistics fitted on four
folds, novelty of the fifth), and the threshold is the (1 - flag_rate) quantile of those held-out in-scope
scores, so that about `flag_rate` of in-scope texts are flagged out-of-scope. A fine-tuned encoder has
pulled its own training texts toward their classes, so its threshold comes instead from a trial fine-tuned
without the validation split (pipeline.fine_tune_split, pipeline._novelty). Shrinkage and flag rate were
chosen on validation splits of CLINC150 and BANKING77 (docs/model.md, "Out-of-scope detection").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EMBEDDING_OUTPUT = "embedding"
NOVELTY_OUTPUT = "novelty"
NOVELTY_METHOD = "mahalanobis-nearest-class-mean-shrunk-shared-covariance"
NOVELTY_CALIBRATION = "5-fold cross-fitted quantile of in-scope training novelty"
# A fine-tuned encoder has moved its own training texts: calibrate on the split it never saw instead.
NOVELTY_CALIBRATION_UNSEEN = ("quantile of in-scope novelty on the validation split a trial fine-tune never saw, "
                              "scaled to the encoder fine-tuned on all the data")
_EIGEN_FLOOR = 1e-6  # relative: directions with less variance than this are treated as having this much


@dataclass(frozen=True)
class NoveltyStats:
    whitening: np.ndarray  # (d, d) float32, W with W W^T = S^-1
    means: np.ndarray  # (classes, d) float32, class means already multiplied by W

    @property
    def dimensions(self) -> int:
        return int(self.whitening.shape[0])


def fit_novelty(embeddings: np.ndarray, targets: np.ndarray, *, num_labels: int, shrinkage: float) -> NoveltyStats:
    """Class means and the shrunk shared covariance of in-scope embeddings (targets index 0..num_labels-1)."""
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError("shrinkage must lie in [0, 1]")
    x = embeddings.astype(np.float64)
    d = x.shape[1]
    means = np.zeros((num_labels, d))
    for label in range(num_labels):
        rows = x[targets == label]
        if len(rows):
            means[label] = rows.mean(axis=0)
    present = np.unique(targets)
    centered = x - means[targets]
    covariance = centered.T @ centered / max(1, len(x) - len(present))
    covariance = (1.0 - shrinkage) * covariance + shrinkage * np.trace(covariance) / d * np.eye(d)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.maximum(eigenvalues, eigenvalues.max() * _EIGEN_FLOOR)
    whitening = eigenvectors / np.sqrt(eigenvalues)
    # A class without training rows (possible in a cross-fitting fold) must never be the nearest mean.
    projected = means @ whitening
    projected[np.setdiff1d(np.arange(num_labels), present)] = 1e6
    return NoveltyStats(whitening=whitening.astype(np.float32), means=projected.astype(np.float32))


def novelty_scores(embeddings: np.ndarray, stats: NoveltyStats) -> np.ndarray:
    """What the graph computes, in numpy (float64): the minimum squared distance over classes, over d."""
    z = embeddings.astype(np.float64) @ stats.whitening.astype(np.float64)
    means = stats.means.astype(np.float64)
    distances = (z * z).sum(axis=1, keepdims=True) - 2.0 * z @ means.T + (means * means).sum(axis=1)[None, :]
    return np.maximum(distances.min(axis=1), 0.0) / stats.dimensions


def cross_fitted_scores(embeddings: np.ndarray, targets: np.ndarray, *, num_labels: int, shrinkage: float,
                        folds: int = 5, seed: int = 13) -> np.ndarray:
    """Each item's novelty under statistics fitted without it (its fold held out): unbiased in-scope scores."""
    assignment = np.random.default_rng(seed).permutation(len(embeddings)) % folds
    scores = np.zeros(len(embeddings))
    for fold in range(folds):
        held = assignment == fold
        if held.all() or not held.any():
            continue
        stats = fit_novelty(embeddings[~held], targets[~held], num_labels=num_labels, shrinkage=shrinkage)
        scores[held] = novelty_scores(embeddings[held], stats)
    return scores


def calibrate_threshold(in_scope_scores: np.ndarray, *, flag_rate: float) -> float:
    """The novelty above which about `flag_rate` of in-scope texts lie."""
    if not 0.0 < flag_rate < 1.0:
        raise ValueError("flag_rate must lie in (0, 1)")
    if not len(in_scope_scores):
        raise ValueError("no in-scope scores to calibrate on")
    return float(np.quantile(in_scope_scores, 1.0 - flag_rate))


def add_novelty_to_graph(model_path: Path, out_path: Path, *, stats: NoveltyStats,
                         embedding_name: str = EMBEDDING_OUTPUT) -> Path:
    """Add the `novelty` output (shape [batch]) computed from the graph's `embedding` output, which is then
    no longer an output (the engine needs only probabilities and novelty)."""
    model = onnx.load(str(model_path))
    graph = model.graph
    outputs = [o.name for o in graph.output]
    if embedding_name not in outputs:
        raise ValueError(f"the graph has no {embedding_name!r} output (outputs: {outputs})")
    means = stats.means.astype(np.float32)
    graph.initializer.extend([
        numpy_helper.from_array(stats.whitening.astype(np.float32), "novelty_whitening"),
        numpy_helper.from_array(np.ascontiguousarray(-2.0 * means.T), "novelty_means_t2"),
        numpy_helper.from_array((means * means).sum(axis=1).astype(np.float32), "novelty_means_sq"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "novelty_zero"),
        numpy_helper.from_array(np.array(1.0 / stats.dimensions, dtype=np.float32), "novelty_scale"),
    ])
    graph.node.extend([
        helper.make_node("MatMul", [embedding_name, "novelty_whitening"], ["novelty_z"]),
        helper.make_node("Mul", ["novelty_z", "novelty_z"], ["novelty_z_sq"]),
        helper.make_node("ReduceSum", ["novelty_z_sq", "novelty_axes"], ["novelty_norm"], keepdims=1),
        helper.make_node("MatMul", ["novelty_z", "novelty_means_t2"], ["novelty_cross"]),
        helper.make_node("Add", ["novelty_cross", "novelty_means_sq"], ["novelty_partial"]),
        helper.make_node("Add", ["novelty_partial", "novelty_norm"], ["novelty_distances"]),
        helper.make_node("ReduceMin", ["novelty_distances"], ["novelty_min"], axes=[-1], keepdims=0),
        helper.make_node("Max", ["novelty_min", "novelty_zero"], ["novelty_clipped"]),
        helper.make_node("Mul", ["novelty_clipped", "novelty_scale"], [NOVELTY_OUTPUT]),
    ])
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "novelty_axes"))
    kept = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in graph.output if o.name != embedding_name]
    del graph.output[:]
    graph.output.extend(kept)
    graph.output.append(helper.make_tensor_value_info(NOVELTY_OUTPUT, TensorProto.FLOAT, ["batch"]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path
