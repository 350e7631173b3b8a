"""Lambda entry point of the HTTP API: API Gateway (REST v1 or HTTP API v2) event in, response out.

Settings are read and checked here, at cold start. The model is not loaded here or in lifespan (Mangum runs
lifespan on every call): the first request that needs it loads it through the model store, once per container.
The FastAPI app is built by the first request that is not a well-formed classification (api/lambda_adapter.py).
"""

from __future__ import annotations

from categorizer.api.lambda_adapter import api_handler
from categorizer.api.services import build_services
from categorizer.contract import ApiSettings

settings = ApiSettings.from_env()  # cold start: a missing or malformed variable fails here, by name
services = build_services(settings)  # what the app's routes and the direct path serve from (benches read it)
handler = api_handler(settings, services)
