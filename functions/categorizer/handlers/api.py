"""Lambda entry point of the HTTP API: API Gateway (REST v1 or HTTP API v2) event in, response out.

Settings are read and checked here, at cold start. The model is not loaded here or in lifespan (Mangum runs
lifespan on every call): the first request that needs it loads it through the model store, once per container.
"""

from __future__ import annotations

from categorizer.api import create_app
from categorizer.api.lambda_adapter import lambda_handler_for
from categorizer.contract import ApiSettings

app = create_app(ApiSettings.from_env())  # cold start: a missing or malformed variable fails here, by name
handler = lambda_handler_for(app)
