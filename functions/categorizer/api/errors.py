"""The one error shape, `{"error": {"code", "message", "details"}}`, and the one place that maps
domain exceptions to HTTP status codes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from categorizer.adapters.feedback_table import FeedbackStoreError
from categorizer.adapters.review_table import InvalidCursorError, ReviewStoreError
from categorizer.api.auth import REALM, AuthenticationError, AuthUnavailableError, PermissionDeniedError
from categorizer.api.file_service import FilesForbiddenError, UnsupportedFileError, UploadNotFoundError
from categorizer.api.logic import FeedbackConflictError, InvalidTextsError
from categorizer.model_store import ModelUnavailableError
from categorizer.observability import logger
from categorizer.registry.catalogue import (
    CatalogueUnavailableError,
    InvalidLabelNameError,
    LabelChangeConflictError,
    LabelExistsError,
    LabelNotFoundError,
    RetiredLabelError,
    UnknownLabelError,
)
from categorizer.review.decisions import InvalidDecisionError, ReviewConflictError, ReviewItemNotFoundError


class BodyTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")
        self.details = {"max_bytes": limit}


# Domain exception -> (HTTP status, error code). Subclasses map like their base.
ERROR_STATUS: dict[type[Exception], tuple[int, str]] = {
    AuthenticationError: (401, "unauthenticated"),
    PermissionDeniedError: (403, "forbidden"),
    FilesForbiddenError: (403, "forbidden"),
    UploadNotFoundError: (404, "not_found"),
    ReviewItemNotFoundError: (404, "not_found"),
    LabelNotFoundError: (404, "label_not_found"),
    LabelExistsError: (409, "label_exists"),
    LabelChangeConflictError: (409, "label_conflict"),
    FeedbackConflictError: (409, "idempotency_conflict"),
    ReviewConflictError: (409, "review_conflict"),
    BodyTooLargeError: (413, "body_too_large"),
    InvalidTextsError: (422, "invalid_text"),
    UnknownLabelError: (422, "unknown_label"),
    RetiredLabelError: (422, "retired_label"),
    InvalidLabelNameError: (422, "invalid_label_name"),
    UnsupportedFileError: (422, "unsupported_file"),
    InvalidDecisionError: (422, "invalid_decision"),
    InvalidCursorError: (422, "invalid_cursor"),
    AuthUnavailableError: (503, "auth_unavailable"),
    CatalogueUnavailableError: (503, "labels_unavailable"),
    FeedbackStoreError: (503, "feedback_store_unavailable"),
    ModelUnavailableError: (503, "model_unavailable"),
    ReviewStoreError: (503, "review_queue_unavailable"),
}

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
               422: "validation_error"}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(exc: Exception) -> JSONResponse:
    """The answer to `exc`: its row of ERROR_STATUS, or 500 with nothing of it shown (the caller logs it)."""
    status, code = _status_for(exc)
    if status == 500:
        return JSONResponse(error_body("internal_error", "internal error; it has been logged"), status_code=500)
    headers = _auth_headers(exc)
    if status == 503:
        headers["Retry-After"] = "1"
    return JSONResponse(error_body(code, str(exc), getattr(exc, "details", None)), status_code=status,
                        headers=headers)


def is_expected(exc: Exception) -> bool:
    """Has a row in ERROR_STATUS (an answer, not a bug: not logged as an exception)."""
    return _status_for(exc)[0] != 500


def _status_for(exc: Exception) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500, "internal_error"


def _auth_headers(exc: Exception) -> dict[str, str]:
    """RFC 6750: 401 says how to authenticate; 403 says which scope is missing."""
    if isinstance(exc, AuthenticationError):
        if not exc.token_present:
            return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
        reason = str(exc).replace('"', "'").replace("\\", "/")
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", error_description="{reason}"'}
    if isinstance(exc, PermissionDeniedError):
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{exc.scope}"'}
    return {}


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # No `input` echo: it can be a 10,000-character text, and `ctx` may hold exceptions that are not JSON.
    problems = [{"loc": list(error.get("loc", ())), "message": error.get("msg", ""), "type": error.get("type", "")}
                for error in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['message']}" for p in problems[:3])
    return JSONResponse(error_body("validation_error", f"the request is invalid: {summary}", problems),
                        status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every documented method on this path (Starlette names only the first route's, and GET and POST
    /v1/labels are two routes). The OpenAPI document is the list: FastAPI builds it once and keeps it."""
    path = request.scope.get("path", "")
    matches: list[tuple[int, set[str]]] = []
    for template, operations in request.app.openapi().get("paths", {}).items():
        regex, _, convertors = compile_path(template)
        if regex.match(path):
            matches.append((len(convertors), {method.upper() for method in operations}))
    if not matches:
        return ""
    fewest = min(params for params, _ in matches)  # /v1/files/uploads is that path, not /v1/files/{upload_id}
    return ", ".join(sorted(set().union(*(methods for params, methods in matches if params == fewest))))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error")
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    for exc_type in ERROR_STATUS:
        app.add_exception_handler(exc_type, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
