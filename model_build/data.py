"""Labelled data sets: read any CSV / JSON / JSON Lines file with text column(s) and a label column."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from categorizer.files.rows import describe_columns, parse_text_columns
from categorizer.files.text_columns import join_text_columns


class DataError(ValueError):
    """The training data cannot be used (missing columns, too few rows or classes)."""


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[str]
    weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.weights:
            self.weights = [1.0] * len(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def label_set(self) -> list[str]:
        return sorted(set(self.labels))

    def subset(self, indices: Sequence[int]) -> LabelledData:
        return LabelledData([self.texts[i] for i in indices], [self.labels[i] for i in indices],
                            [self.weights[i] for i in indices])

    def extend(self, other: LabelledData) -> LabelledData:
        return LabelledData(self.texts + other.texts, self.labels + other.labels, self.weights + other.weights)


def _records(path: Path) -> Iterator[dict]:
    name = path.name.lower()
    if name.endswith(".csv"):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from csv.DictReader(handle)
    elif name.endswith((".jsonl", ".ndjson")):
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{line_number}: not valid JSON ({exc.msg})") from exc
    elif name.endswith(".json"):
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list):
            raise DataError(f"{path}: a JSON training file must hold an array of objects")
        yield from records
    else:
        raise DataError(f"{path}: unknown format (use .csv, .json, .jsonl)")


def text_columns_or_error(value: str | Sequence[str]) -> tuple[str, ...]:
    """The text columns as written on the command line ('a,b', 'a b', ['a', 'b']): files.rows' rule."""
    try:
        return parse_text_columns(value)
    except ValueError as exc:
        raise DataError(str(exc)) from exc


def read_labelled(path: Path, *, text_columns: str | Sequence[str] = ("text",), label_column: str = "category",
                  weight: float = 1.0) -> LabelledData:
    """Rows with an empty text or label are skipped (counted in the error), not guessed at."""
    text_columns = text_columns_or_error(text_columns)
    texts, labels = [], []
    checked_columns = False
    for record in _records(path):
        if not isinstance(record, dict):
            raise DataError(f"{path}: every record must be an object")
        if not checked_columns:
            _check_columns(path, record, text_columns, label_column)
            checked_columns = True
        text = join_text_columns([record.get(c) for c in text_columns])
        label = str(record.get(label_column) or "").strip()
        if text and label:
            texts.append(text)
            labels.append(label)
    if not texts:
        raise DataError(f"{path}: no usable rows (need non-empty text and label)")
    return LabelledData(texts, labels, [weight] * len(texts))


def _check_columns(path: Path, record: dict, text_columns: Sequence[str], label_column: str) -> None:
    has = f"it has {describe_columns(list(record))}"
    missing = [column for column in text_columns if column not in record]
    if missing:
        raise DataError(f"{path}: no text column {describe_columns(missing)}; {has}. "
                        "Pick them with --text-column NAME[,NAME...]")
    if label_column not in record:
        raise DataError(f"{path}: no label column {label_column!r}; {has}. Pick it with --label-column NAME")


def stratified_split(data: LabelledData, *, fraction: float, seed: int) -> tuple[LabelledData, LabelledData]:
    """Split off `fraction` of every class (at least one item where the class has two or more)."""
    keep, held = stratified_indices(data.labels, fraction=fraction, seed=seed)
    return data.subset(keep), data.subset(held)


def stratified_indices(labels: Sequence[str], *, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) positions: `fraction` of every class held out, as `stratified_split` does."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    rng = random.Random(seed)
    keep, held = [], []
    for label in sorted(by_label):
        indices = by_label[label][:]
        rng.shuffle(indices)
        n_held = round(len(indices) * fraction)
        # Classes with a single item stay in training; others give at least one and keep at least one.
        n_held = min(max(n_held, 1), len(indices) - 1) if len(indices) >= 2 else 0
        held.extend(indices[:n_held])
        keep.extend(indices[n_held:])
    return sorted(keep), sorted(held)


def sha256_files(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
