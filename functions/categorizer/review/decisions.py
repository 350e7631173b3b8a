"""A reviewer's work on one item: claim it, then accept, correct or skip it.

A decision becomes a feedback item (source `review`) through the same `record_feedback` as POST /v1/feedback:
the same label checks, the same idempotency, and the training export treats it like any correction (the same
hold-out rule). The feedback is written before the item is closed, so a decision is never lost: a replay of the
same decision by the same reviewer finds the closed item and answers with the same feedback id.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from aws_lambda_powertools.metrics import MetricUnit

from categorizer.adapters.feedback_table import FeedbackSource, FeedbackTable
from categorizer.adapters.review_table import ClaimRefusal, ClaimRefusedError, ReviewItem, ReviewTable
from categorizer.api.auth import Principal
from categorizer.api.logic import Correction, record_feedback
from categorizer.contract import MetricName, ReviewQueue
from categorizer.observability import logger, metrics
from categorizer.registry.catalogue import Catalogue


class Decision(StrEnum):
    ACCEPT = "accept"  # the predicted label is right
    CORRECT = "correct"  # another label is right
    SKIP = "skip"  # not sure: back to the queue for someone else


class ReviewItemNotFoundError(Exception):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"no review item {item_id!r}")


class ReviewConflictError(Exception):
    """The item cannot be claimed or decided by this reviewer now (409), with the reason."""

    def __init__(self, refusal: ClaimRefusal, message: str) -> None:
        super().__init__(message)
        self.details = {"reason": refusal.value}


class InvalidDecisionError(ValueError):
    """The decision and its label do not fit together (422)."""


@dataclass(frozen=True)
class DecisionReceipt:
    item_id: str
    decision: Decision
    label: str | None
    feedback_id: str | None
    replayed: bool = False


_MESSAGES = {
    ClaimRefusal.HELD: "another reviewer holds this item; pick another one",
    ClaimRefusal.DECIDED: "this item was already decided",
    ClaimRefusal.NOT_HELD: "claim the item first (POST /v1/review/{item_id}/claim): your lease is missing or expired",
}


def claim_item(table: ReviewTable, item_id: str, *, reviewer: Principal, settings: ReviewQueue,
               clock: Callable[[], float] = time.time) -> ReviewItem:
    now = int(clock())
    try:
        return table.claim(item_id, reviewer=reviewer.subject, now=now, until=now + settings.review_lease_seconds)
    except ClaimRefusedError as exc:
        raise _refused(item_id, exc) from exc


def require_lease(table: ReviewTable, item_id: str, *, reviewer: Principal,
                  clock: Callable[[], float] = time.time) -> ReviewItem:
    """The item, if `reviewer` holds its unexpired claim and it is not decided (404 / 409 otherwise)."""
    item = table.get(item_id)
    if item is None:
        raise ReviewItemNotFoundError(item_id)
    if item.decided_at:
        raise ReviewConflictError(ClaimRefusal.DECIDED, _MESSAGES[ClaimRefusal.DECIDED])
    if item.lease_holder != reviewer.subject or (item.lease_until or 0) < int(clock()):
        raise ReviewConflictError(ClaimRefusal.NOT_HELD, _MESSAGES[ClaimRefusal.NOT_HELD])
    return item


def decide_item(table: ReviewTable, item_id: str, decision: Decision, label: str | None, *, reviewer: Principal,
                labels: Sequence[str], feedback: FeedbackTable, catalogue: Catalogue | None = None,
                clock: Callable[[], float] = time.time) -> DecisionReceipt:
    item = table.get(item_id)
    if item is None:
        raise ReviewItemNotFoundError(item_id)
    chosen = _label_for(decision, label, item)
    if item.decided_at:
        if item.decided_by == reviewer.subject and item.decision == decision and item.decided_label == chosen:
            return DecisionReceipt(item_id, decision, chosen, item.feedback_id, replayed=True)
        raise ReviewConflictError(ClaimRefusal.DECIDED, _MESSAGES[ClaimRefusal.DECIDED])
    now = clock()
    if item.lease_holder != reviewer.subject or (item.lease_until or 0) < int(now):
        raise ReviewConflictError(ClaimRefusal.NOT_HELD, _MESSAGES[ClaimRefusal.NOT_HELD])
    if decision is Decision.SKIP:
        _guarded(item_id, lambda: table.release(item_id, reviewer=reviewer.subject, now_epoch=int(now)))
        return DecisionReceipt(item_id, decision, None, None)
    at = datetime.fromtimestamp(now, UTC)
    reference = review_reference(item)
    receipt = record_feedback(
        Correction(prediction_id=reference, text=item.text, predicted_label=item.label, correct_label=chosen),
        caller=reviewer, labels=labels, model_version=item.model_version, repository=feedback,
        idempotency_key=reference, now=at, catalogue=catalogue, source=FeedbackSource.REVIEW)
    _guarded(item_id, lambda: table.close(item_id, reviewer=reviewer.subject, decision=decision.value, label=chosen,
                                          feedback_id=receipt.feedback_id,
                                          now=at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                                          now_epoch=int(now)))
    metrics.add_metric(name=MetricName.REVIEW_DECISIONS, unit=MetricUnit.Count, value=1)
    # 0 or 1 per decision: its average is the agreement rate (people accepting what the model said).
    metrics.add_metric(name=MetricName.REVIEW_AGREEMENT, unit=MetricUnit.Count, value=int(chosen == item.label))
    logger.info("review decision recorded", extra={"item_id": item_id, "decision": decision.value,
                                                   "feedback_id": receipt.feedback_id})
    return DecisionReceipt(item_id, decision, chosen, receipt.feedback_id, replayed=receipt.replayed)


def review_reference(item: ReviewItem) -> str:
    """The feedback's prediction id: the item and when it was queued. A text queued again after its item expired
    is a new question, whose answer may differ; a replay of the same decision is the same answer."""
    episode = hashlib.sha256(item.queued_at.encode()).hexdigest()[:8]
    return f"review-{item.item_id}-{episode}"


def _label_for(decision: Decision, label: str | None, item: ReviewItem) -> str | None:
    if decision is Decision.SKIP:
        if label is not None:
            raise InvalidDecisionError("a skip takes no label")
        return None
    if decision is Decision.ACCEPT:
        if label is not None and label != item.label:
            raise InvalidDecisionError(f"accept confirms the predicted label {item.label!r}; to choose "
                                       f"{label!r}, send decision `correct`")
        return item.label
    if not label:
        raise InvalidDecisionError("a correction needs the right `label`")
    return label


def _guarded(item_id: str, update: Callable[[], None]) -> None:
    try:
        update()
    except ClaimRefusedError as exc:
        raise _refused(item_id, exc) from exc


def _refused(item_id: str, exc: ClaimRefusedError) -> Exception:
    if exc.refusal is ClaimRefusal.NOT_FOUND:
        return ReviewItemNotFoundError(item_id)
    return ReviewConflictError(exc.refusal, _MESSAGES[exc.refusal])
