"""The app's exception handlers: every failure leaves in the one error shape of api/error_table.py."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from categorizer.api.error_table import ERROR_STATUS, HTTP_CODES, error_answer, error_body
from categorizer.observability import logger


def error_response(exc: Exception) -> JSONResponse:
    """The answer to `exc` (api/error_table.py's `error_answer`) as a response."""
    answer = error_answer(exc)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


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
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
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
