"""The API function's Lambda handler: the direct path for POST /v1/classify (api/direct.py), Mangum around the
FastAPI app for every other request, and the Powertools logger, tracer and metrics around both.

The app is built on the first request the direct path does not answer, not at cold start: importing FastAPI and
building the app's routes, models and OpenAPI schema cost ~0.25 s of the function's init
(bench/results/*-api-cold-start.md), and a cold start whose first request is a classification never needs them.
Nothing this module imports at the top imports FastAPI.

Kept apart from handlers/api.py (which reads the environment at import) so tests can wrap an app built from
their own settings in exactly the handler Lambda runs (`lambda_handler_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from categorizer.api.direct import DirectClassify
from categorizer.api.services import ApiServices
from categorizer.contract import ApiSettings
from categorizer.observability import logger, metrics, tracer
from categorizer.wiring import Lazy

if TYPE_CHECKING:
    from fastapi import FastAPI

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
AsgiApp = Callable[[dict[str, Any], Any, Any], Any]


def request_id(event: dict[str, Any]) -> str | None:
    """API Gateway's id of the request: REST and HTTP API events both carry it at requestContext.requestId."""
    request_context = event.get("requestContext")
    return request_context.get("requestId") if isinstance(request_context, dict) else None


class AppOnFirstUse:
    """An ASGI app that builds the real one (once) when the first request reaches it."""

    def __init__(self, build: Callable[[], AsgiApp]) -> None:
        self._app = Lazy(build)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._app.get()(scope, receive, send)


def api_handler(settings: ApiSettings, services: ApiServices) -> LambdaHandler:
    """The handler Lambda runs (handlers/api.py): the app is built when a request first needs it."""

    def app() -> FastAPI:
        from categorizer.api.app import create_app  # here, not at the top: see the module docstring

        return create_app(settings, services=services)

    return lambda_handler(services, app=app)


def lambda_handler_for(app: FastAPI, *, direct_classify: bool = True) -> LambdaHandler:
    """The handler around an app already built (tests). `direct_classify=False`: every request through the app
    (what the direct path is compared with)."""
    return lambda_handler(app.state.services, app=lambda: app, direct_classify=direct_classify)


def lambda_handler(services: ApiServices, *, app: Callable[[], AsgiApp],
                   direct_classify: bool = True) -> LambdaHandler:
    """`app` builds the app that answers what the direct path does not; it must serve these same `services`."""
    asgi_handler = Mangum(AppOnFirstUse(app), lifespan="off")
    direct = DirectClassify(services) if direct_classify else None

    # The request id is the logs' correlation id. Set here rather than with the decorator's
    # `correlation_id_path`, which evaluates a JMESPath expression per call: ~9 us more per request warm, ~18 us
    # after an engine call (bench/results/*-api-handler.md).
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        logger.set_correlation_id(request_id(event))
        if direct is None:
            return asgi_handler(event, context)
        lambda_io = asgi_handler.infer(event, context)  # Mangum's reading of this event shape, and its writer
        response = direct.answer(lambda_io.scope, lambda_io.body)
        if response is None:  # Mangum whole (it reads the event again, a few us): its cycle stays its own
            return asgi_handler(event, context)
        return lambda_io({"status": response.status, "headers": response.headers, "body": response.body})

    return handler
