"""The review queue: list what needs a person, claim one item, decide it (docs/api.md, "Review queue")."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from categorizer.adapters.review_table import ReviewItem, ReviewSource, ReviewStoreError, SourceKind
from categorizer.api.classify_service import spans_out
from categorizer.api.deps import (
    ClassifierDep,
    FeedbackRepository,
    LabelsAdmin,
    LabelServiceDep,
    ReviewCaller,
    ReviewQueueDep,
    SettingsDep,
)
from categorizer.api.schemas import (
    ITEM_ID_PATTERN,
    REVIEW_PAGE_MAX,
    ClaimedItemOut,
    ErrorResponse,
    LabelScoreOut,
    ProposeFromReviewRequest,
    ReviewDecisionRequest,
    ReviewDecisionResponse,
    ReviewItemOut,
    ReviewPage,
    ReviewSourceOut,
)
from categorizer.contract.names import ReviewOrder
from categorizer.registry import catalogue as cat
from categorizer.review.decisions import Decision, claim_item, decide_item, require_lease

router = APIRouter(tags=["review"])

ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "The token lacks the review permission (`reviewers` group)"},
    422: {"model": ErrorResponse, "description": "`validation_error`, or `invalid_cursor`"},
    503: {"model": ErrorResponse, "description": "The review queue is unavailable (or not set up here); retry"},
}
ITEM_ERRORS = {
    **ERRORS,
    400: {"model": ErrorResponse, "description": "The body is not valid JSON or UTF-8"},
    413: {"model": ErrorResponse, "description": "The body is larger than the limit"},
    404: {"model": ErrorResponse, "description": "No such item (or it expired)"},
    409: {"model": ErrorResponse, "description": "`review_conflict`: another reviewer holds the item, it was "
                                                 "decided already, or your claim is missing or expired "
                                                 "(`details.reason`)"},
    422: {"model": ErrorResponse, "description": "`validation_error`, `invalid_decision` (a label that does not "
                                                 "fit the decision) or `unknown_label`"},
}
ItemId = Annotated[str, Path(pattern=ITEM_ID_PATTERN, description="from GET /v1/review")]


def _queue(table):
    if table is None:
        raise ReviewStoreError("this stack has no review queue (REVIEW_TABLE is not set)")
    return table


def _source(source: ReviewSource) -> ReviewSourceOut:
    return ReviewSourceOut(**source.as_dict())


def item_out(item: ReviewItem) -> ReviewItemOut:
    return ReviewItemOut(item_id=item.item_id, text=item.text, source=_source(item.source),
                         model_version=item.model_version, label=item.label, confidence=item.confidence,
                         top_k=[LabelScoreOut(label=label, score=score) for label, score in item.top_k],
                         novelty=item.novelty, out_of_scope=item.out_of_scope, seen=item.seen,
                         created_at=item.queued_at)


@router.get("/review", summary="Open items that need a person", responses=ERRORS)
async def list_review_items(
    caller: ReviewCaller,
    table: ReviewQueueDep,
    order: Annotated[Literal["uncertain", "novel", "recent"], Query(
        description="uncertain: lowest confidence first; novel: out-of-scope and most novel first; "
                    "recent: newest first")] = "uncertain",
    label: Annotated[str | None, Query(min_length=1, max_length=200, description="only this predicted label")] = None,
    source: Annotated[Literal["api", "file"] | None, Query(description="only items from the API or from files")] = None,
    limit: Annotated[int, Query(ge=1, le=REVIEW_PAGE_MAX)] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=2048, description="`next` of the previous page")]
    = None,
) -> ReviewPage:
    items, next_cursor = _queue(table).list_open(order=ReviewOrder(order), limit=limit, cursor=cursor, label=label,
                                                 source=SourceKind(source) if source else None)
    return ReviewPage(items=[item_out(item) for item in items], next=next_cursor)


@router.post("/review/{item_id}/claim", summary="Lease an item to yourself for a few minutes",
             responses=ITEM_ERRORS)
async def claim_review_item(item_id: ItemId, caller: ReviewCaller, table: ReviewQueueDep,
                            settings: SettingsDep, classifier: ClassifierDep) -> ClaimedItemOut:
    item = claim_item(_queue(table), item_id, reviewer=caller, settings=settings.review)
    why = classifier.explain(item.text)  # the serving model's reasons, shown highlighted on the Review page
    return ClaimedItemOut(**item_out(item).model_dump(), lease_until=item.lease_until or 0,
                          explanation=spans_out(why.spans) if why else None)


@router.post("/review/{item_id}", summary="Accept, correct or skip a claimed item", responses=ITEM_ERRORS)
async def decide_review_item(item_id: ItemId, body: ReviewDecisionRequest, caller: ReviewCaller,
                             table: ReviewQueueDep, classifier: ClassifierDep, feedback: FeedbackRepository,
                             labels: LabelServiceDep) -> ReviewDecisionResponse:
    # The label rule of POST /v1/feedback: proposed labels allowed, retired ones refused naming their replacement.
    receipt = decide_item(_queue(table), item_id, Decision(body.decision), body.label, reviewer=caller,
                          labels=classifier.labels, feedback=feedback, catalogue=labels.current(classifier))
    return ReviewDecisionResponse(item_id=receipt.item_id, decision=receipt.decision.value, label=receipt.label,
                                  feedback_id=receipt.feedback_id)


@router.post("/review/{item_id}/propose", summary="Propose a new label from a claimed item (its first example)",
             responses={**ITEM_ERRORS, 409: {"model": ErrorResponse, "description": (
                 "`review_conflict` (claim the item first) or `label_exists`")}})
async def propose_from_review_item(item_id: ItemId, body: ProposeFromReviewRequest, caller: LabelsAdmin,
                                   table: ReviewQueueDep, classifier: ClassifierDep, feedback: FeedbackRepository,
                                   labels: LabelServiceDep) -> ReviewDecisionResponse:
    """The path from "the model has never seen this" to "a category exists": a `proposed` label whose first
    example is this item, and the item decided as that label. Needs the labels permission (`admins`) and the
    item's claim; reviewers then assign more items to it, and the gate waits until it has enough."""
    queue = _queue(table)
    item = require_lease(queue, item_id, reviewer=caller)
    catalogue = labels.change(classifier, caller, lambda c, actor: cat.propose(
        c, name=body.name, description=body.description, examples=[item.text], actor=actor, min_examples=1,
        reason=f"proposed from review item {item_id}"))
    receipt = decide_item(queue, item_id, Decision.CORRECT, body.name, reviewer=caller, labels=classifier.labels,
                          feedback=feedback, catalogue=catalogue)
    return ReviewDecisionResponse(item_id=receipt.item_id, decision=receipt.decision.value, label=receipt.label,
                                  feedback_id=receipt.feedback_id)
