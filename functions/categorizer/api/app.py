"""The FastAPI application: routers, error handlers, middleware. No model loading here (see model_store)."""

from __future__ import annotations

from fastapi import FastAPI

from categorizer.api.errors import install_error_handlers
from categorizer.api.middleware import ApiGatewayStagePrefix, BodySizeLimit
from categorizer.api.paths import API_PREFIX
from categorizer.api.routers import classify, console, feedback, files, health, labels, model, review
from categorizer.api.services import ApiServices, build_services
from categorizer.contract import ApiSettings

DESCRIPTION = """
Classify short texts into categories and send corrections.

**Auth.** Every route but `/v1/health` needs `Authorization: Bearer <token>`: a Cognito access token
(machines: client-credentials grant with the `categorizer/classify` and/or `categorizer/feedback` scopes;
people: user/password sign-in, permissions from the `classify` / `feedback` groups) or an ID token.
No or bad token: 401 with `WWW-Authenticate`. Missing permission: 403.

**Errors.** Every failure has one shape: `{"error": {"code": "...", "message": "...", "details": ...}}`.
Validation problems are 422 `validation_error` with `details` listing each problem's location.

**Texts that cannot be classified.** One bad text fails the whole classify request with 422 and nothing is
classified, so a client never has to match partial results to inputs. An empty or whitespace-only text is
a `validation_error` whose `details[].loc` names its index (`["body", "texts", 2]`); a text the engine
refuses otherwise is `invalid_text` with `details.items` = `[{"index", "code", "message"}]`.

**Idempotency.** `POST /v1/feedback` stores a retried request once: same `Idempotency-Key` header, or,
without the header, the same prediction from the same user. A replay answers 201 with the same
`feedback_id` and `Idempotent-Replayed: true`; the same key with different content is 409.
"""


def create_app(settings: ApiSettings, *, services: ApiServices | None = None) -> FastAPI:
    """The app for these settings; `services` replaces what `build_services` would make (tests)."""
    app = routed_app()
    app.state.services = services or build_services(settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiGatewayStagePrefix)  # added last = outermost
    return app


def routed_app() -> FastAPI:
    """The routes, their documentation and the error table, without settings: what the OpenAPI document and
    the API Gateway route list (api/routes.py) are derived from, and what `create_app` completes."""
    app = FastAPI(
        title="Categorizer API",
        version="1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    for router in (health.router, classify.router, feedback.router, model.router, labels.router, review.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(files.router, prefix=API_PREFIX)  # web console: uploads, recent files, links
    app.include_router(console.api_router, prefix=API_PREFIX)  # web console: model report, history, ops
    app.include_router(console.router)  # web console: the page at /console/
    install_error_handlers(app)
    return app
