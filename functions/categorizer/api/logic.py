"""What the routes do, as plain functions with typed inputs (no FastAPI, no HTTP)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from categorizer.adapters.feedback_table import FeedbackRecord, FeedbackSource, FeedbackTable
from categorizer.adapters.review_table import ReviewSource, ReviewTable, SourceKind
from categorizer.api.auth import Principal
from categorizer.contract import MetricName, ReviewQueue
from categorizer.engine import Classifier, Prediction, TextError
from categorizer.observability import logger, metrics
from categorizer.registry.catalogue import Catalogue, UnknownLabelError, check_feedback_labels
from categorizer.review.queueing import QueueReport, queue_for_review, to_queue
from categorizer.wiring import Lazy

__all__ = ["UnknownLabelError"]  # re-exported: the label rule lives in registry/catalogue.py


class InvalidTextsError(Exception):
    """The engine refused some texts; the request is refused as a whole (the schema catches most first)."""

    def __init__(self, items: list[dict]) -> None:
        indexes = ", ".join(str(item["index"]) for item in items)
        super().__init__(f"text(s) at index {indexes} cannot be classified")
        self.details = {"items": items}


class FeedbackConflictError(Exception):
    """The same idempotency key (or prediction, for this user) was already used for different content."""

    def __init__(self, feedback_id: str) -> None:
        super().__init__("feedback with this Idempotency-Key (or for this prediction from you) already exists "
                         "with different content; send a new Idempotency-Key for a new correction")
        self.details = {"feedback_id": feedback_id}


@dataclass(frozen=True)
class IdentifiedPrediction:
    prediction_id: str
    prediction: Prediction


@dataclass(frozen=True)
class Correction:
    prediction_id: str
    text: str
    predicted_label: str
    correct_label: str
    comment: str | None = None

    def fingerprint(self) -> str:
        content = json.dumps([self.prediction_id, self.text, self.predicted_label, self.correct_label,
                              self.comment], ensure_ascii=False)
        return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FeedbackReceipt:
    feedback_id: str
    replayed: bool  # True when this request repeated one already stored


def new_prediction_id() -> str:
    return uuid.uuid4().hex


def classify_texts(classifier: Classifier, texts: Sequence[str], *, top_k: int,
                   explain: bool = False) -> list[IdentifiedPrediction]:
    results = classifier.classify(texts, top_k=min(top_k, len(classifier.labels)), explain=explain)
    errors = [{"index": index, "code": result.code, "message": result.message}
              for index, result in enumerate(results) if isinstance(result, TextError)]
    if errors:
        raise InvalidTextsError(errors)
    predictions: list[Prediction] = results  # type: ignore[assignment] - no TextError left
    metrics.add_metric(name=MetricName.PREDICTIONS, unit=MetricUnit.Count, value=len(predictions))
    metrics.add_metric(name=MetricName.LOW_CONFIDENCE_PREDICTIONS, unit=MetricUnit.Count,
                       value=sum(p.needs_review for p in predictions))
    metrics.add_metric(name=MetricName.OUT_OF_SCOPE_PREDICTIONS, unit=MetricUnit.Count,
                       value=sum(p.out_of_scope for p in predictions))
    return [IdentifiedPrediction(new_prediction_id(), p) for p in predictions]


def queue_doubtful(texts: Sequence[str], items: Sequence[IdentifiedPrediction], *, caller: Principal,
                   model_version: str, table: Lazy[ReviewTable | None], settings: ReviewQueue) -> QueueReport:
    """Predictions that need review go to the review queue (bounded; a queue failure is counted, not raised).
    The queue (`table`, None: there is none) is made only when a prediction needs review."""
    source = ReviewSource(SourceKind.API, caller=caller.subject)
    doubtful = [to_queue(text, item.prediction, source=source, model_version=model_version)
                for text, item in zip(texts, items, strict=True) if item.prediction.needs_review]
    queue = table.get() if doubtful else None
    report = queue_for_review(queue, doubtful, settings=settings, cap=settings.review_max_per_request)
    if settings.review_table:  # the stage has a queue: its metrics are published, zero included
        metrics.add_metric(name=MetricName.REVIEW_ITEMS_QUEUED, unit=MetricUnit.Count, value=report.written)
        metrics.add_metric(name=MetricName.REVIEW_QUEUE_WRITE_FAILURES, unit=MetricUnit.Count, value=report.failed)
    return report


def feedback_id_for(subject: str, *, prediction_id: str, idempotency_key: str | None) -> str:
    """Deterministic: a retry of the same request maps to the same id (and DynamoDB key).

    Keys are scoped to the user, so two users choosing the same Idempotency-Key never collide.
    """
    scope = ("key", idempotency_key) if idempotency_key else ("prediction", prediction_id)
    material = "\x1f".join(("feedback-v1", subject, *scope))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def record_feedback(correction: Correction, *, caller: Principal, labels: Sequence[str], model_version: str,
                    repository: FeedbackTable, idempotency_key: str | None = None,
                    now: datetime | None = None, catalogue: Catalogue | None = None,
                    source: FeedbackSource = FeedbackSource.API) -> FeedbackReceipt:
    """Store a correction. Its labels are checked by the catalogue's one rule (`check_feedback_labels`, also
    what review decisions use): proposed labels are accepted, retired ones refused naming their replacement."""
    check_feedback_labels(catalogue, predicted_label=correction.predicted_label,
                          correct_label=correction.correct_label, serving_labels=labels)
    feedback_id = feedback_id_for(caller.subject, prediction_id=correction.prediction_id,
                                  idempotency_key=idempotency_key)
    created = (now or datetime.now(UTC)).astimezone(UTC)
    record = FeedbackRecord(
        feedback_id=feedback_id,
        prediction_id=correction.prediction_id,
        text=correction.text,
        predicted_label=correction.predicted_label,
        correct_label=correction.correct_label,
        comment=correction.comment,
        user_sub=caller.subject,
        client_id=caller.client_id,
        model_version=model_version,
        created_at=created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        fingerprint=correction.fingerprint(),
        idempotency_key=idempotency_key,
        source=source,
    )
    existing = repository.put_if_absent(record)
    if existing is not None:
        if existing.fingerprint != record.fingerprint:
            raise FeedbackConflictError(feedback_id)
        logger.info("feedback replayed", extra={"feedback_id": feedback_id})
        return FeedbackReceipt(feedback_id, replayed=True)
    metrics.add_metric(name=MetricName.FEEDBACK, unit=MetricUnit.Count, value=1)
    # 0 or 1 on every stored feedback, so its average is the disagreement rate.
    metrics.add_metric(name=MetricName.FEEDBACK_DISAGREEMENT, unit=MetricUnit.Count,
                       value=int(correction.correct_label != correction.predicted_label))
    logger.info("feedback stored", extra={"feedback_id": feedback_id, "prediction_id": correction.prediction_id,
                                          "model_version": model_version})
    return FeedbackReceipt(feedback_id, replayed=False)
