"""BANKING77 (Casanueva et al. 2020, CC BY 4.0) texts as `session.run` feeds, one text per feed: a text alone,
unpadded, as the engine runs it. Shared by the benches that time the served graph itself."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"


def read_split(name: str) -> tuple[list[str], list[str]]:
    """(texts, categories) of `name` ("train.csv" or "test.csv")."""
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["category"] for row in rows]


def alone_feeds(tokenizer: Any, texts: list[str]) -> list[dict[str, np.ndarray]]:
    """One feed per text: its token ids as a batch of one, and the all-ones attention mask."""
    return [{"input_ids": ids, "attention_mask": np.ones_like(ids)}
            for ids in (np.array([tokenizer.encode(text).ids], dtype=np.int64) for text in texts)]
