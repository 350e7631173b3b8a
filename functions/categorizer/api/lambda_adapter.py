"""The Lambda handler around a FastAPI app: Mangum plus the Powertools logger, tracer and metrics.

Kept apart from handlers/api.py (which reads the environment at import) so tests can wrap an app built from
their own settings in exactly the handler Lambda runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from categorizer.observability import logger, metrics, tracer

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def request_id(event: dict[str, Any]) -> str | None:
    """API Gateway's id of the request: REST and HTTP API events both carry it at requestContext.requestId."""
    request_context = event.get("requestContext")
    return request_context.get("requestId") if isinstance(request_context, dict) else None


def lambda_handler_for(app: FastAPI) -> LambdaHandler:
    asgi_handler = Mangum(app, lifespan="off")

    # The request id is the logs' correlation id. Set here rather than with the decorator's
    # `correlation_id_path`, which evaluates a JMESPath expression per call: ~9 us more per request warm, ~18 us
    # after an engine call (bench/results/*-api-handler.md).
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        logger.set_correlation_id(request_id(event))
        return asgi_handler(event, context)

    return handler
