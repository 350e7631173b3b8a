"""POST /v1/classify answered without the ASGI round trip, when the request is one the app would accept.

Why: the classify route is the API's hot path, and on it the request machinery cost more than the route's own
work: Mangum's event loop, Starlette's middleware stack, FastAPI's routing and dependency solving and its
response round trip were ~0.2 ms of the ~0.6 ms the API layer added to each engine call
(bench/results/*-api-handler.md; issue 18's budget is 0.5 ms). And nothing here imports FastAPI or Starlette,
so a cold start whose first request is a classification does not pay for importing them and building the app
(api/lambda_adapter.py builds it on the first request this path does not answer).

The app stays the one owner of everything else. A request this path does not recognise as well-formed (another
route or method, a body over the limit, a content type other than JSON, a body that is not JSON the request
model accepts, an Authorization header that is not `Bearer <token>`) is handed to the app unchanged, and the
app answers it, errors included. What this path does answer runs the route's own functions
(`classify_context_for`, `classify_response`), maps its exceptions with the app's error table
(`error_answer`), and is written as Starlette writes a response, so its bytes are the app's:
tests/api/test_direct.py sends the same generated requests to both and compares the answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from categorizer.api.classify_service import classify_response
from categorizer.api.error_table import error_answer, is_expected, json_bytes
from categorizer.api.paths import CLASSIFY_PATH, without_stage
from categorizer.api.schemas import ClassifyRequest
from categorizer.api.services import ApiServices, classify_context_for
from categorizer.observability import logger

# Content types FastAPI surely reads as JSON (it reads any application/json or +json, and without one refuses the
# body); others go to the app.
JSON_CONTENT_TYPES = frozenset({"application/json", "application/json; charset=utf-8",
                                "application/json;charset=utf-8"})


@dataclass(frozen=True)
class DirectResponse:
    """A response as an ASGI app starts it: status, raw headers (lower-case names), body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def json(cls, body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None) -> DirectResponse:
        """As Starlette's Response writes it: the given headers, then content-length and content-type."""
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
        raw += [(b"content-length", str(len(body)).encode("latin-1")), (b"content-type", b"application/json")]
        return cls(status, raw, body)


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The first value of header `name` (lower-case) in an ASGI scope, as Starlette's `Headers.get` reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Bearer <token>` (scheme in any case), as FastAPI's HTTPBearer reads it; None otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class DirectClassify:
    services: ApiServices  # the app's own (create_app(settings, services=...)): what its dependencies read
    path: str = CLASSIFY_PATH

    def answer(self, scope: Mapping[str, Any], body: bytes) -> DirectResponse | None:
        """The response, or None: the app answers this request."""
        if scope["method"] != "POST" or without_stage(scope)[1] != self.path:
            return None
        limit = self.services.settings.max_body_bytes
        declared = header(scope, b"content-length") or ""
        if len(body) > limit or (declared.isdigit() and int(declared) > limit):
            return None
        if (header(scope, b"content-type") or "").lower() not in JSON_CONTENT_TYPES:  # none: the app refuses (422)
            return None
        token = bearer_token(header(scope, b"authorization"))
        if token is None:
            return None
        try:
            request = ClassifyRequest.model_validate(json.loads(body))
        except (ValueError, RecursionError, ValidationError):  # not JSON or UTF-8, too deep, or not a request
            return None
        try:
            response = classify_response(request, classify_context_for(self.services, token))
        except Exception as exc:  # mapped by the app's one error table, as the app maps it
            if not is_expected(exc):
                logger.exception("unhandled error")
            error = error_answer(exc)
            return DirectResponse.json(json_bytes(error.body), status=error.status, headers=error.headers)
        # As FastAPI writes a response model: pydantic's own JSON (its float format, not json.dumps').
        return DirectResponse.json(response.model_dump_json(by_alias=True).encode())
