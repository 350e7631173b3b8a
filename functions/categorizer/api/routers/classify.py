from __future__ import annotations

from fastapi import APIRouter

from categorizer.api.classify_service import classify_response
from categorizer.api.deps import ClassifyContextDep
from categorizer.api.paths import CLASSIFY_ROUTE
from categorizer.api.schemas import ClassifyRequest, ClassifyResponse, ErrorResponse

router = APIRouter(tags=["classify"])

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


@router.post(CLASSIFY_ROUTE, summary="Classify 1 to N texts", responses=ERRORS)
async def classify(body: ClassifyRequest, context: ClassifyContextDep) -> ClassifyResponse:
    # async def + a synchronous engine call: no thread-pool hop; Lambda serves one request at a time.
    # The direct path (api/direct.py) answers most requests for this route without reaching it.
    return classify_response(body, context)
