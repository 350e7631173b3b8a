"""Evaluation: accuracy, macro-F1, per-class scores, confusion matrix, calibration, review threshold, report."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_BINS = 15


def per_class_scores(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, dict]:
    scores = {}
    for index, label in enumerate(labels):
        tp = int(np.sum((y_pred == index) & (y_true == index)))
        fp = int(np.sum((y_pred == index) & (y_true != index)))
        fn = int(np.sum((y_pred != index) & (y_true == index)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return scores


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS):
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece, table = 0.0, []
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if not in_bin.any():
            continue
        accuracy, mean_conf = float(correct[in_bin].mean()), float(confidence[in_bin].mean())
        ece += in_bin.mean() * abs(accuracy - mean_conf)
        table.append({"low": float(low), "high": float(high), "count": int(in_bin.sum()),
                      "accuracy": accuracy, "confidence": mean_conf})
    return float(ece), table


def review_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float) -> dict[str, float]:
    """Lowest confidence threshold whose auto-accepted predictions (conf >= t) reach the target precision.

    Below the threshold a prediction `needs_review`. Coverage is the share auto-accepted.
    """
    order = np.argsort(-confidence, kind="stable")
    sorted_conf, sorted_correct = confidence[order], correct[order]
    precision_at = np.cumsum(sorted_correct) / np.arange(1, len(order) + 1)
    ok = np.nonzero(precision_at >= target_precision)[0]
    if len(ok) == 0:
        return {"threshold": 1.0, "precision": float("nan"), "coverage": 0.0, "target_precision": target_precision}
    # Largest accepted prefix meeting the target; ties at the cut-off confidence are all accepted or none.
    cut = int(ok[-1])
    threshold = float(sorted_conf[cut])
    accepted = confidence >= threshold
    return {"threshold": threshold, "precision": float(correct[accepted].mean()),
            "coverage": float(accepted.mean()), "target_precision": target_precision}


def evaluate(probabilities: np.ndarray, true_labels: Sequence[str], labels: Sequence[str], *,
             target_precision: float = 0.95) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({t for t in true_labels if t not in index})
    if unknown:
        raise ValueError(f"evaluation labels not known to the model: {unknown[:10]}")
    y_true = np.array([index[t] for t in true_labels])
    y_pred = probabilities.argmax(axis=1)
    # float64: float32 means depend on summation order, and a report must not depend on row order.
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = (y_true == y_pred).astype(np.float64)
    classes = per_class_scores(y_true, y_pred, labels)
    present = [label for label in labels if classes[label]["support"] > 0]
    ece, calibration = expected_calibration_error(confidence, correct)
    return {
        "n": len(y_true),
        "accuracy": float(correct.mean()),
        "macro_f1": float(np.mean([classes[label]["f1"] for label in present])),
        "macro_precision": float(np.mean([classes[label]["precision"] for label in present])),
        "macro_recall": float(np.mean([classes[label]["recall"] for label in present])),
        "ece": ece,
        "review": review_threshold(confidence, correct, target_precision),
        "per_class": classes,
        "calibration": calibration,
        "confusion_matrix": confusion_matrix(y_true, y_pred, len(labels)).tolist(),
    }


def plot_confusion(metrics: dict, labels: Sequence[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(metrics["confusion_matrix"], dtype=float)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(6, len(labels) * 0.18)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(metrics: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = metrics["calibration"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], marker="o", label="model")
    ax.axvline(metrics["review"]["threshold"], color="orange", linestyle=":", label="review threshold")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {metrics['ece']:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(metrics: dict, labels: Sequence[str], out_dir: Path, *, title: str,
                 extra_lines: Sequence[str] = ()) -> Path:
    """metrics.json, confusion.png, reliability.png and report.md in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    plot_confusion(metrics, labels, out_dir / "confusion.png")
    plot_reliability(metrics, out_dir / "reliability.png")
    review = metrics["review"]
    lines = [
        f"# {title}", "",
        *extra_lines, "",
        "| metric | value |", "|---|---|",
        f"| items | {metrics['n']} |",
        f"| accuracy | {metrics['accuracy']:.4f} |",
        f"| macro-F1 | {metrics['macro_f1']:.4f} |",
        f"| macro precision / recall | {metrics['macro_precision']:.4f} / {metrics['macro_recall']:.4f} |",
        f"| expected calibration error | {metrics['ece']:.4f} |",
        f"| review threshold (>= {review['target_precision']:.0%} precision) | {review['threshold']:.4f} "
        f"(precision {review['precision']:.4f}, auto-accepted {review['coverage']:.1%}) |",
        "", "![confusion matrix](confusion.png)", "", "![reliability](reliability.png)", "",
        "## Per class", "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|",
    ]
    for label in sorted(labels, key=lambda x: metrics["per_class"][x]["f1"]):
        s = metrics["per_class"][label]
        lines.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
