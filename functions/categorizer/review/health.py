"""The review queue's health: how many items wait for a person, and how long the oldest one has waited.

Queueing never fails a classification and items expire after REVIEW_TTL_DAYS, so a queue nobody works on
grows quietly and then loses items without anyone deciding them. The review-queue-metrics function measures
the queue on a schedule (this module) and publishes the two numbers; the oldest item's age is alarmed.

A read failure is an outcome, not an exception: it is logged and reported (the handler counts it), and the
next tick measures again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from categorizer.adapters.review_table import ReviewStoreError, ReviewTable
from categorizer.observability import logger


class HealthStatus(StrEnum):
    MEASURED = "measured"
    UNAVAILABLE = "unavailable"  # the queue could not be read: nothing measured this tick


@dataclass(frozen=True)
class QueueHealth:
    status: HealthStatus
    depth: int = 0  # open items (a lower bound when not `complete`)
    oldest_age_seconds: float = 0.0  # since the oldest open item was first queued; 0 when the queue is empty
    complete: bool = True  # False: counting stopped at the page limit
    oldest_item_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status.value, "depth": self.depth, "oldest_age_seconds": self.oldest_age_seconds,
                "complete": self.complete, "oldest_item_id": self.oldest_item_id}


@dataclass(frozen=True)
class HealthDependencies:
    table: ReviewTable
    max_pages: int
    clock: Callable[[], float] = time.time


def age_seconds(queued_at: str, now: float) -> float:
    """Seconds from an item's `queued_at` (ISO 8601, "Z") to `now`; never negative (clock skew)."""
    return max(0.0, round(now - datetime.fromisoformat(queued_at).timestamp(), 3))


def measure_queue(deps: HealthDependencies) -> QueueHealth:
    """Count the open items and age the oldest one. Never raises for a queue that cannot be read."""
    try:
        depth, complete = deps.table.count_open(max_pages=deps.max_pages)
        oldest = deps.table.oldest_open()
    except ReviewStoreError as exc:
        logger.warning("review queue not measured: the review table could not be read",
                       extra={"table": deps.table.table_name, "error": str(exc)})
        return QueueHealth(status=HealthStatus.UNAVAILABLE)
    if not complete:
        logger.warning("review queue depth is a lower bound: counting stopped at the page limit",
                       extra={"depth_at_least": depth, "max_pages": deps.max_pages})
    # Two queries, not one snapshot: an item opened or decided in between shows in one number only; the next
    # tick agrees with itself again.
    if oldest is None:
        return QueueHealth(status=HealthStatus.MEASURED, depth=depth, complete=complete)
    return QueueHealth(status=HealthStatus.MEASURED, depth=depth, complete=complete,
                       oldest_age_seconds=age_seconds(oldest.queued_at, deps.clock()), oldest_item_id=oldest.item_id)
