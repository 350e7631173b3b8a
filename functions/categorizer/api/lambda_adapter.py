"""The Lambda handler around a FastAPI app: Mangum plus the Powertools logger, tracer and metrics.

Kept apart from handlers/api.py (which reads the environment at import) so tests can wrap an app built from
their own settings in exactly the handler Lambda runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from categorizer.observability import logger, metrics, tracer

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def lambda_handler_for(app: FastAPI) -> LambdaHandler:
    asgi_handler = Mangum(app, lifespan="off")

    # REST and HTTP API events both carry the request id at requestContext.requestId.
    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return asgi_handler(event, context)

    return handler
