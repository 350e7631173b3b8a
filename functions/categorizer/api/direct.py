"""POST /v1/classify answered without the ASGI round trip, when the request is one the app would accept.

Why: the classify route is the API's hot path, and on it the request machinery cost more than the route's own
work: Mangum's event loop, Starlette's middleware stack, FastAPI's routing and dependency solving and its
response round trip were ~0.2 ms of the ~0.6 ms the API layer added to each engine call
(bench/results/*-api-handler.md; issue 18's budget is 0.5 ms).

The app stays the one owner of everything else. A request this path does not recognise as well-formed (another
route or method, a body over the limit, a content type other than JSON, a body that is not JSON the request
model accepts, an Authorization header that is not `Bearer <token>`) is handed to the app unchanged, and the
app answers it, errors included. What this path does answer runs the route's own functions
(`classify_context_for`, `classify_response`), maps its exceptions with the app's error table
(`error_response`), and leaves through Mangum's own response builder, so its bytes are the app's:
tests/api/test_direct.py sends the same generated requests to both and compares the answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import Scope

from categorizer.api.deps import ApiServices, classify_context_for
from categorizer.api.errors import error_response, is_expected
from categorizer.api.middleware import without_stage
from categorizer.api.routers.classify import classify, classify_response
from categorizer.api.schemas import ClassifyRequest
from categorizer.observability import logger

# Content types FastAPI surely reads as JSON (it reads any application/json or +json, and without one refuses the
# body); others go to the app.
JSON_CONTENT_TYPES = frozenset({"application/json", "application/json; charset=utf-8",
                                "application/json;charset=utf-8"})


@dataclass(frozen=True)
class DirectClassify:
    app: FastAPI
    path: str  # as the app routes it, e.g. /v1/classify

    @classmethod
    def of(cls, app: FastAPI) -> DirectClassify:
        return cls(app=app, path=str(app.url_path_for(classify.__name__)))

    def answer(self, scope: Scope, body: bytes) -> Response | None:
        """The response, or None: the app answers this request."""
        if scope["method"] != "POST" or without_stage(scope)[1] != self.path:
            return None
        services: ApiServices = self.app.state.services  # what the app's dependencies read, read as they do
        limit = services.settings.max_body_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if len(body) > limit or (declared.isdigit() and int(declared) > limit):
            return None
        if headers.get("content-type", "").lower() not in JSON_CONTENT_TYPES:  # none: the app refuses (422)
            return None
        authorization = headers.get("authorization")
        scheme, token = get_authorization_scheme_param(authorization)
        if not (authorization and token and scheme.lower() == "bearer"):
            return None
        try:
            request = ClassifyRequest.model_validate(json.loads(body))
        except (ValueError, RecursionError, ValidationError):  # not JSON or UTF-8, too deep, or not a request
            return None
        try:
            context = classify_context_for(services, HTTPAuthorizationCredentials(scheme=scheme, credentials=token))
            response = classify_response(request, context)
        except Exception as exc:  # mapped by the app's one error table, as the app maps it
            if not is_expected(exc):
                logger.exception("unhandled error")
            return error_response(exc)
        # As FastAPI writes a response model: pydantic's own JSON (its float format, not json.dumps').
        return Response(response.model_dump_json(by_alias=True), media_type="application/json")
