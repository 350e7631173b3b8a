"""The work of POST /v1/classify, free of FastAPI: the route (api/routers/classify.py) and the direct path
(api/direct.py) both answer with `classify_response`, so they cannot drift apart."""

from __future__ import annotations

from categorizer.api import logic
from categorizer.api.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ExplanationSpanOut,
    LabelScoreOut,
    PredictionOut,
)
from categorizer.api.services import ClassifyContext
from categorizer.engine.explain import Span


def spans_out(spans: list[Span]) -> list[ExplanationSpanOut]:
    return [ExplanationSpanOut(text=span.text, weight=span.weight) for span in spans]


def classify_response(body: ClassifyRequest, context: ClassifyContext) -> ClassifyResponse:
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
