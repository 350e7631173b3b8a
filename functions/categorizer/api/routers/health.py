from __future__ import annotations

from fastapi import APIRouter

from categorizer.api.deps import ClassifierDep
from categorizer.api.schemas import ErrorResponse, HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and the model version loaded (no auth)",
            responses={503: {"model": ErrorResponse, "description": "No model can be loaded"}})
async def health(classifier: ClassifierDep) -> HealthResponse:
    return HealthResponse(status="ok", model_version=classifier.version)
