"""The one error shape, `{"error": {"code", "message", "details"}}`, and the one table that maps domain
exceptions to HTTP status codes.

Free of FastAPI and Starlette: the app's exception handlers (api/errors.py) and the direct classify path
(api/direct.py) both answer from `error_answer`, so their bytes are the same, and the direct path answers
without FastAPI imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from categorizer.adapters.feedback_table import FeedbackStoreError
from categorizer.adapters.review_table import InvalidCursorError, ReviewStoreError
from categorizer.api.auth import REALM, AuthenticationError, AuthUnavailableError, PermissionDeniedError
from categorizer.api.file_service import FilesForbiddenError, UnsupportedFileError, UploadNotFoundError
from categorizer.api.logic import FeedbackConflictError, InvalidTextsError
from categorizer.model_store import ModelUnavailableError
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

# Starlette's HTTP errors (routing, methods, bodies FastAPI cannot read) -> error code.
HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
              422: "validation_error"}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def json_bytes(content: Any) -> bytes:
    """JSON as the API writes an error body: Starlette's JSONResponse rendering, byte for byte."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ErrorAnswer:
    """An error response, before any framework shapes it."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error_answer(exc: Exception) -> ErrorAnswer:
    """The answer to `exc`: its row of ERROR_STATUS, or 500 with nothing of it shown (the caller logs it)."""
    status, code = _status_for(exc)
    if status == 500:
        return ErrorAnswer(500, error_body("internal_error", "internal error; it has been logged"))
    headers = _auth_headers(exc)
    if status == 503:
        headers["Retry-After"] = "1"
    return ErrorAnswer(status, error_body(code, str(exc), getattr(exc, "details", None)), headers)


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
