"""The HTTP API: FastAPI app (api/app.py), routers, auth, error mapping. The Lambda handler is
categorizer.handlers.api (api/lambda_adapter.py).

Imports nothing: the Lambda handler answers most classifications without FastAPI (api/direct.py), so importing
one module of this package must not import the app."""
