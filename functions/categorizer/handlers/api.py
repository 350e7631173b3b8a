"""Lambda entry point of the HTTP API: API Gateway (REST v1 or HTTP API v2) event in, response out.

The model is not loaded here or in lifespan (Mangum runs lifespan on every call): the first request that
needs it loads it through the model store, once per container.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from categorizer.api import create_app
from categorizer.observability import logger, metrics, tracer

app = create_app()
asgi_handler = Mangum(app, lifespan="off")


# REST and HTTP API events both carry the request id at requestContext.requestId.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return asgi_handler(event, context)
