"""The Lambda handler around a FastAPI app: Mangum plus the Powertools logger, tracer and metrics, and the
direct path for POST /v1/classify (api/direct.py), which hands the app every request it does not answer.

Kept apart from handlers/api.py (which reads the environment at import) so tests can wrap an app built from
their own settings in exactly the handler Lambda runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from categorizer.api.direct import DirectClassify
from categorizer.observability import logger, metrics, tracer

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def request_id(event: dict[str, Any]) -> str | None:
    """API Gateway's id of the request: REST and HTTP API events both carry it at requestContext.requestId."""
    request_context = event.get("requestContext")
    return request_context.get("requestId") if isinstance(request_context, dict) else None


def lambda_handler_for(app: FastAPI, *, direct_classify: bool = True) -> LambdaHandler:
    """`direct_classify=False`: every request through the app (what the direct path is compared with)."""
    asgi_handler = Mangum(app, lifespan="off")
    direct = DirectClassify.of(app) if direct_classify else None

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
        return lambda_io({"status": response.status_code, "headers": response.raw_headers, "body": response.body})

    return handler
