"""The FastAPI dependencies that hand the API's services (api/services.py) to routes.

`create_app(settings)` builds the services and keeps them on `app.state`; routes reach them only through the
`Annotated` aliases below, so a test replaces any of them with `app.dependency_overrides` or by passing its
own `ApiServices`.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, which
costs more than the work they do; in Lambda one request runs at a time anyway. They are also shallow on
purpose: each reads the services from the request (`services_of`) instead of depending on a "services"
dependency, because FastAPI solves every node of a route's dependency tree on every request (its per-request
cache is consulted only after a node's own dependencies are solved), and that tree walk was the largest single
cost of the API layer (bench/results/*-api-handler.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from categorizer.adapters.feedback_table import FeedbackTable
from categorizer.adapters.review_table import ReviewTable
from categorizer.api.auth import Principal, require_permission
from categorizer.api.console_service import ConsoleService
from categorizer.api.file_service import FileService
from categorizer.api.label_service import LabelService
from categorizer.api.services import ApiServices, ClassifyContext, classify_context_for, verified_principal
from categorizer.contract import ApiSettings, names
from categorizer.engine import Classifier


def services_of(request: Request) -> ApiServices:
    return request.app.state.services


async def app_settings(request: Request) -> ApiSettings:
    return services_of(request).settings


SettingsDep = Annotated[ApiSettings, Depends(app_settings)]


async def serving_classifier(request: Request) -> Classifier:
    """The model serving now (loaded once per container; the model store swaps in a new champion)."""
    return services_of(request).models.get()


ClassifierDep = Annotated[Classifier, Depends(serving_classifier)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A Cognito access token (client credentials, or user/password sign-in) or ID token",
)


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    return verified_principal(services_of(request), credentials.credentials if credentials else None)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def classify_caller(principal: CurrentPrincipal, request: Request) -> Principal:
    identity = services_of(request).settings.identity
    return require_permission(principal, scope=identity.classify_scope, group=identity.classify_group)


async def feedback_caller(principal: CurrentPrincipal, request: Request) -> Principal:
    identity = services_of(request).settings.identity
    return require_permission(principal, scope=identity.feedback_scope, group=identity.feedback_group)


async def review_caller(principal: CurrentPrincipal, request: Request) -> Principal:
    identity = services_of(request).settings.identity
    return require_permission(principal, scope=identity.review_scope, group=identity.review_group)
async def labels_admin(principal: CurrentPrincipal, request: Request) -> Principal:
    identity = services_of(request).settings.identity
    return require_permission(principal, scope=identity.labels_scope, group=identity.admins_group)


# Security(...) with the permission's OAuth scope: the OpenAPI document states, per operation, which permission
# it needs (`security: [{"HTTPBearer": ["categorizer/classify"]}]`), and infra builds API Gateway's methods from
# that document (api/routes.py).
ClassifyCaller = Annotated[Principal, Security(classify_caller, scopes=[names.CLASSIFY_SCOPE])]
FeedbackCaller = Annotated[Principal, Security(feedback_caller, scopes=[names.FEEDBACK_SCOPE])]
ReviewCaller = Annotated[Principal, Security(review_caller, scopes=[names.REVIEW_SCOPE])]
LabelsAdmin = Annotated[Principal, Security(labels_admin, scopes=[names.LABELS_SCOPE])]


async def classify_context(request: Request, credentials: BearerCredentials) -> ClassifyContext:
    return classify_context_for(services_of(request), credentials.credentials if credentials else None)


ClassifyContextDep = Annotated[ClassifyContext, Security(classify_context, scopes=[names.CLASSIFY_SCOPE])]


async def feedback_repository(request: Request) -> FeedbackTable:
    return services_of(request).feedback.get()


FeedbackRepository = Annotated[FeedbackTable, Depends(feedback_repository)]


async def file_service(request: Request) -> FileService:
    return services_of(request).files.get()


FileServiceDep = Annotated[FileService, Depends(file_service)]


async def console_service(request: Request) -> ConsoleService:
    return services_of(request).console.get()


ConsoleServiceDep = Annotated[ConsoleService, Depends(console_service)]


async def review_queue(request: Request) -> ReviewTable | None:
    return services_of(request).review.get()


ReviewQueueDep = Annotated[ReviewTable | None, Depends(review_queue)]
async def label_service(request: Request) -> LabelService:
    return services_of(request).labels.get()


LabelServiceDep = Annotated[LabelService, Depends(label_service)]
