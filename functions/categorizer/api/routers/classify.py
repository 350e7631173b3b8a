from __future__ import annotations

from fastapi import APIRouter

from categorizer.api import logic
from categorizer.api.deps import ClassifyContext, ClassifyContextDep
from categorizer.api.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ErrorResponse,
    ExplanationSpanOut,
    LabelScoreOut,
    PredictionOut,
)
from categorizer.engine.explain import Span

router = APIRouter(tags=["classify"])


def spans_out(spans: list[Span]) -> list[ExplanationSpanOut]:
    return [ExplanationSpanOut(text=span.text, weight=span.weight) for span in spans]

ERRORS = {
    400: {"model": ErrorResponse, "description": "The body is not valid JSON or UTF-8"},
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "The token lacks the classify permission"},
    413: {"model": ErrorResponse, "description": "The body is larger than the limit"},
    422: {"model": ErrorResponse, "description": (
        "Invalid request: `validation_error` (schema, limits; `details[].loc` names the field and index, "
        "e.g. a text that is only whitespace at `[\"body\", \"texts\", 2]`), or `invalid_text` if the engine "
        "refuses a text (`details.items` names each index). Nothing is classified.")},
    503: {"model": ErrorResponse, "description": "No model can be loaded, or tokens cannot be verified"},
}


@router.post("/classify", summary="Classify 1 to N texts", responses=ERRORS)
async def classify(body: ClassifyRequest, context: ClassifyContextDep) -> ClassifyResponse:
    # async def + a synchronous engine call: no thread-pool hop; Lambda serves one request at a time.
    return classify_response(body, context)


def classify_response(body: ClassifyRequest, context: ClassifyContext) -> ClassifyResponse:
    """The route's work, callable without FastAPI: the direct path (api/direct.py) answers with it too."""
    classifier = context.classifier
    items = logic.classify_texts(classifier, body.all_texts, top_k=body.top_k, explain=body.explain)
    logic.queue_doubtful(body.all_texts, items, caller=context.caller, model_version=classifier.version,
                         table=context.review, settings=context.settings.review)
    return ClassifyResponse(
        model_version=classifier.version,
        predictions=[
            PredictionOut(
                prediction_id=item.prediction_id,
                label=item.prediction.label,
                confidence=item.prediction.confidence,
                top_k=[LabelScoreOut(label=s.label, score=s.score) for s in item.prediction.top_k],
                needs_review=item.prediction.needs_review,
                truncated=item.prediction.truncated,
                out_of_scope=item.prediction.out_of_scope,
                novelty=item.prediction.novelty,
                explanation=spans_out(why.spans) if (why := item.prediction.explanation) else None,
                explanation_runner_up=spans_out(why.runner_up_spans) if why else None,
            )
            for item in items
        ],
    )
