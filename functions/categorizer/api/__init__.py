"""The HTTP API: FastAPI app, routers, auth, error mapping. The Lambda handler is categorizer.handlers.api."""

from categorizer.api.app import create_app

__all__ = ["create_app"]
