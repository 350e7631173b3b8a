from __future__ import annotations

from fastapi import APIRouter

from categorizer.api.deps import ClassifierDep, ClassifyCaller
from categorizer.api.schemas import ErrorResponse, ModelInfo

router = APIRouter(tags=["model"])


@router.get("/model", summary="The serving model: version, labels, evaluation metrics, review threshold",
            responses={401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
                       403: {"model": ErrorResponse, "description": "The token lacks the classify permission"},
                       503: {"model": ErrorResponse, "description": "No model can be loaded"}})
async def model_info(caller: ClassifyCaller, classifier: ClassifierDep) -> ModelInfo:
    return ModelInfo(
        model_version=classifier.version,
        labels=list(classifier.labels),
        review_threshold=classifier.review_threshold,
        out_of_scope_threshold=classifier.out_of_scope_threshold,
        max_tokens=classifier.max_tokens,
        metrics=classifier.bundle.metrics,
    )
