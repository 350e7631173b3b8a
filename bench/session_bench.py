"""What the benches that time the served graph itself share: BANKING77 (Casanueva et al. 2020, CC BY 4.0) texts
as `session.run` feeds, one text per feed (alone and unpadded, as the engine runs a text), and `session.run`
timed over those feeds for several sessions in interleaved rounds (this machine is shared: a variant's figure is
the median of its per-round medians, each round running every variant once)."""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"
WARM_UP = 20  # feeds run before each variant's timed pass in a round


def read_split(name: str) -> tuple[list[str], list[str]]:
    """(texts, categories) of `name` ("train.csv" or "test.csv")."""
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["category"] for row in rows]


def alone_feeds(tokenizer: Any, texts: list[str]) -> list[dict[str, np.ndarray]]:
    """One feed per text: its token ids as a batch of one, and the all-ones attention mask."""
    return [{"input_ids": ids, "attention_mask": np.ones_like(ids)}
            for ids in (np.array([tokenizer.encode(text).ids], dtype=np.int64) for text in texts)]


def interleaved_p50s(sessions: Mapping[str, Any], feeds: list[dict[str, np.ndarray]], rounds: int, *,
                     before_each: Mapping[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """Per variant, the p50 `session.run` ms of each round. `before_each[name]`, if given, runs (untimed)
    before each of that variant's texts, e.g. to flush the caches."""
    medians: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            for feed in feeds[:WARM_UP]:
                session.run(None, feed)
            prepare = (before_each or {}).get(name)
            samples = []
            for feed in feeds:
                if prepare is not None:
                    prepare()
                start = time.perf_counter()
                session.run(None, feed)
                samples.append(time.perf_counter() - start)
            medians[name].append(statistics.median(samples) * 1e3)
    return medians
