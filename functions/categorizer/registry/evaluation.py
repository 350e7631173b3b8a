"""Score a model on labelled texts with the serving engine: accuracy, macro-F1 and per-class F1.

The same definitions as model_build/evaluate.py (tests check they agree), written again here because the
Lambda functions ship without model_build (it imports torch).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from categorizer.engine import Classifier
from categorizer.files.text_columns import join_text_columns


class EvaluationDataError(ValueError):
    """A labelled file cannot be read (unknown format, missing columns)."""


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: LabelledTexts) -> LabelledTexts:
        return LabelledTexts(self.texts + other.texts, self.labels + other.labels)


@dataclass(frozen=True)
class Scores:
    n: int
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float] = field(default_factory=dict)  # labels with support in the data only
    support: dict[str, int] = field(default_factory=dict)
    precision: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": round(self.accuracy, 6), "macro_f1": round(self.macro_f1, 6)}

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "per_class_f1": {k: round(v, 6) for k, v in self.per_class_f1.items()},
                "support": self.support}


EMPTY = Scores(n=0, accuracy=float("nan"), macro_f1=float("nan"))


def score(probabilities: np.ndarray, true_labels: Sequence[str], labels: Sequence[str]) -> Scores:
    """Labels the model does not know count as errors (they cannot be predicted).

    `labels` names the model's outputs as the comparison sees them: two outputs may carry the same name (a
    champion's two labels that the catalogue merged), which then count as one class."""
    if not len(true_labels):
        return EMPTY
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    return score_names(predicted, true_labels)


def score_names(predicted: Sequence[str | None], true_labels: Sequence[str]) -> Scores:
    y_pred = np.array([p if p is not None else "\x00dropped" for p in predicted], dtype=object)
    y_true = np.array(list(true_labels), dtype=object)
    per_class, support, precision_of, recall_of = {}, {}, {}, {}
    for label in dict.fromkeys(true_labels):
        tp = int(np.sum((y_pred == label) & (y_true == label)))
        fp = int(np.sum((y_pred == label) & (y_true != label)))
        fn = int(np.sum((y_pred != label) & (y_true == label)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        per_class[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        support[label] = tp + fn
        precision_of[label], recall_of[label] = precision, recall
    return Scores(n=len(true_labels), accuracy=float(np.mean(y_true == y_pred)),
                  macro_f1=float(np.mean(list(per_class.values()))), per_class_f1=per_class, support=support,
                  precision=precision_of, recall=recall_of)


def evaluate(classifier: Classifier, data: LabelledTexts,
             label_map: Callable[[str], str | None] | None = None) -> Scores:
    """`label_map` names the model's outputs as the catalogue does now (a renamed label under its new name)."""
    if not len(data):
        return EMPTY
    names = [label_map(label) or label for label in classifier.labels] if label_map else classifier.labels
    return score(classifier.probabilities(data.texts), data.labels, names)


def map_labels(data: LabelledTexts, label_map: Callable[[str], str | None]) -> LabelledTexts:
    """Labelled texts under the catalogue's current names; items of a label retired without replacement go."""
    kept = [(text, label_map(label)) for text, label in zip(data.texts, data.labels, strict=True)]
    return LabelledTexts([t for t, label in kept if label is not None], [label for _, label in kept if label])


def read_labelled(raw: bytes, name: str, *, text_columns: Sequence[str] = ("text",),
                  label_column: str = "category") -> LabelledTexts:
    """CSV, JSON Lines or a JSON array with text column(s) and a label column; rows missing either are skipped."""
    lower = name.lower()
    text = raw.decode("utf-8-sig")
    if lower.endswith(".csv"):
        records = list(csv.DictReader(io.StringIO(text, newline="")))
    elif lower.endswith((".jsonl", ".ndjson")):
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif lower.endswith(".json"):
        records = json.loads(text)
    else:
        raise EvaluationDataError(f"{name}: unknown format (use .csv, .jsonl or .json)")
    if records and not all(isinstance(r, dict) for r in records):
        raise EvaluationDataError(f"{name}: every record must be an object")
    if records:
        missing = [c for c in (*text_columns, label_column) if c not in records[0]]
        if missing:
            raise EvaluationDataError(f"{name}: missing column(s) {missing}")
    texts, labels = [], []
    for record in records:
        joined = join_text_columns([record.get(c) for c in text_columns]).strip()
        label = str(record.get(label_column) or "").strip()
        if joined and label:
            texts.append(joined)
            labels.append(label)
    return LabelledTexts(texts, labels)


def read_labelled_files(paths: Sequence[Path], **columns: Any) -> LabelledTexts:
    data = LabelledTexts([], [])
    for path in paths:
        data = data + read_labelled(path.read_bytes(), path.name, **columns)
    return data
