"""Two small ASGI middlewares: the API Gateway stage prefix, and the request body size limit."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from categorizer.api.error_table import BodyTooLargeError
from categorizer.api.errors import error_response
from categorizer.api.paths import without_stage


class ApiGatewayStagePrefix:
    """Route `/prod/v1/...` as `/v1/...` and set `root_path`, so /docs and OpenAPI `servers` use the prefix.

    REST (v1) events give the path without the stage, HTTP API (v2) events with it; both end up the same.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            prefix, path = without_stage(scope)
            if prefix:
                scope = {**scope, "root_path": prefix, "path": prefix + path}
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Refuse bodies over `max_bytes` with 413 in the API's error shape, by header and by actual size."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(BodyTooLargeError(self.max_bytes))(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await error_response(BodyTooLargeError(self.max_bytes))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
