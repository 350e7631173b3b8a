from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from categorizer.api import logic
from categorizer.api.deps import ClassifierDep, FeedbackCaller, FeedbackRepository, LabelServiceDep
from categorizer.api.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["feedback"])

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

ERRORS = {
    400: {"model": ErrorResponse, "description": "The body is not valid JSON or UTF-8"},
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "The token lacks the feedback permission"},
    409: {"model": ErrorResponse, "description": "The Idempotency-Key (or this prediction, for you) was "
                                                 "already used with different content"},
    413: {"model": ErrorResponse, "description": "The body is larger than the limit"},
    422: {"model": ErrorResponse, "description": "`validation_error`, or `unknown_label` with "
                                                 "`details.valid_labels`, or `retired_label` naming "
                                                 "`details.replaced_by`"},
    503: {"model": ErrorResponse, "description": "The feedback store or the model is unavailable; retry"},
}


@router.post("/feedback", status_code=status.HTTP_201_CREATED, summary="Correct a prediction",
             responses=ERRORS)
async def send_feedback(
    body: FeedbackRequest,
    caller: FeedbackCaller,
    classifier: ClassifierDep,
    repository: FeedbackRepository,
    labels: LabelServiceDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Retries with the same key are stored once. Without it, one feedback per prediction "
                    "and user is stored (retries included).")] = None,
) -> FeedbackResponse:
    correction = logic.Correction(
        prediction_id=body.prediction_id,
        text=body.text,
        predicted_label=body.predicted_label,
        correct_label=body.correct_label,
        comment=body.comment,
    )
    receipt = logic.record_feedback(correction, caller=caller, labels=classifier.labels,
                                    model_version=classifier.version, repository=repository,
                                    idempotency_key=idempotency_key, catalogue=labels.current(classifier))
    if receipt.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return FeedbackResponse(feedback_id=receipt.feedback_id)
