"""Putting predictions that need review in front of people, without ever failing or stalling a classification.

The API and the batch job call `queue_for_review` after they have their answer. Writes are bounded (a cap per
request or per file, a fixed pool of parallel writes with short timeouts and two attempts each) and every
failure is caught, logged once with a count and reported in the `QueueReport`, never raised: the queue is an
aid to people, the classification is the product.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from categorizer.adapters.review_table import (
    QueuedPrediction,
    QueueOutcome,
    ReviewSource,
    ReviewTable,
    SourceKind,
)
from categorizer.contract import ReviewQueue
from categorizer.engine import Prediction
from categorizer.files.rows import InputRow
from categorizer.observability import logger


@dataclass(frozen=True)
class QueueReport:
    queued: int = 0  # new open items
    seen_again: int = 0  # open items whose `seen` grew
    already_decided: int = 0  # texts a person decided before: not reopened
    failed: int = 0  # the table failed: not queued (logged and counted)
    over_cap: int = 0  # left out by the per-request / per-file cap

    @property
    def written(self) -> int:
        return self.queued + self.seen_again


def to_queue(text: str, prediction: Prediction, *, source: ReviewSource, model_version: str) -> QueuedPrediction:
    return QueuedPrediction(text=text, source=source, model_version=model_version, label=prediction.label,
                            confidence=prediction.confidence,
                            top_k=tuple((s.label, s.score) for s in prediction.top_k),
                            novelty=prediction.novelty, out_of_scope=prediction.out_of_scope)


def sample_by_label(candidates: Sequence[QueuedPrediction], cap: int) -> list[QueuedPrediction]:
    """At most `cap` items, taken round-robin over the predicted labels (each label's least confident first), so
    a file full of one doubtful label still shows the others to people. Deterministic."""
    by_label: dict[str, list[QueuedPrediction]] = defaultdict(list)
    for item in candidates:
        by_label[item.label].append(item)
    for items in by_label.values():
        items.sort(key=lambda p: (not p.out_of_scope, p.confidence, p.item_id))
    chosen: list[QueuedPrediction] = []
    queues = [by_label[label] for label in sorted(by_label)]
    depth = 0
    while len(chosen) < cap and any(depth < len(q) for q in queues):
        chosen.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return chosen[:cap]


class DoubtfulRows:
    """The rows of one file that need review, bounded: per predicted label, the `cap` most doubtful (out of
    scope first, then least confident) are kept, so memory stays small for a file of any size and the final
    sample (sample_by_label) can still represent every label."""

    def __init__(self, *, cap: int, bucket: str, key: str, model_version: str) -> None:
        self.cap = cap
        self._bucket, self._key, self._version = bucket, key, model_version
        self._by_label: dict[str, list[tuple[tuple, int, QueuedPrediction]]] = defaultdict(list)
        self._count = 0

    def add(self, row: InputRow, prediction: Prediction) -> None:
        if not prediction.needs_review or self.cap <= 0:
            return
        self._count += 1
        item = to_queue(row.text, prediction, model_version=self._version,
                        source=ReviewSource(SourceKind.FILE, bucket=self._bucket, key=self._key, row=row.row))
        heap = self._by_label[prediction.label]
        # A max-heap on "how much we want it" inverted: the root is the least doubtful kept item.
        rank = (prediction.out_of_scope, -prediction.confidence)
        entry = (rank, -self._count, item)
        if len(heap) < self.cap:
            heapq.heappush(heap, entry)
        elif rank > heap[0][0]:
            heapq.heapreplace(heap, entry)

    def candidates(self) -> list[QueuedPrediction]:
        return [item for heap in self._by_label.values() for _, _, item in heap]


def queue_for_review(table: ReviewTable | None, candidates: Iterable[QueuedPrediction], *, settings: ReviewQueue,
                     cap: int, clock: Callable[[], float] = time.time) -> QueueReport:
    """Queue up to `cap` candidates (one per text), in parallel, and report what happened. Never raises."""
    unique = list({item.item_id: item for item in candidates}.values())
    chosen = sample_by_label(unique, cap)
    over_cap = len(unique) - len(chosen)
    if table is None or not chosen:
        return QueueReport(over_cap=over_cap + (len(chosen) if table is None else 0))
    now = clock()
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    expires_at = int(now) + settings.review_ttl_days * 86_400

    def write(item: QueuedPrediction) -> QueueOutcome | Exception:
        try:
            return table.queue(item, now=stamp, expires_at=expires_at)
        except Exception as exc:  # any failure is counted, never raised: see the module docstring
            return exc

    workers = max(1, min(settings.review_write_workers, len(chosen)))
    if workers == 1:
        outcomes = [write(item) for item in chosen]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="review-queue") as pool:
            outcomes = list(pool.map(write, chosen))
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if failures:
        logger.warning("review queue writes failed; the predictions were returned anyway",
                       extra={"failed": len(failures), "of": len(chosen), "error": str(failures[0])})
    return QueueReport(queued=outcomes.count(QueueOutcome.QUEUED), seen_again=outcomes.count(QueueOutcome.SEEN_AGAIN),
                       already_decided=outcomes.count(QueueOutcome.ALREADY_DECIDED), failed=len(failures),
                       over_cap=over_cap)
