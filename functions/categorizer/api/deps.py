"""What the API builds once per container (`ApiServices`) and the FastAPI dependencies that hand it out.

`create_app(settings)` builds the services and keeps them on `app.state`; routes reach them only through the
`Annotated` aliases below, so a test replaces any of them with `app.dependency_overrides` or by passing its
own `ApiServices`. Clients are built on first use (a cold start pays only for what its first request needs).

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, which
costs more than the work they do; in Lambda one request runs at a time anyway. They are also shallow on
purpose: each reads the services from the request (`services_of`) instead of depending on a "services"
dependency, because FastAPI solves every node of a route's dependency tree on every request (its per-request
cache is consulted only after a node's own dependencies are solved), and that tree walk was the largest single
cost of the API layer (bench/results/*-api-handler.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from categorizer.adapters.champion_parameter import ChampionParameter
from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.adapters.feedback_table import FeedbackTable
from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.adapters.review_table import ReviewTable
from categorizer.adapters.user_files import UserFiles
from categorizer.api.auth import AuthenticationError, Principal, TokenVerifier, build_token_verifier, require_permission
from categorizer.api.console_service import ConsoleService
from categorizer.api.file_service import FileService
from categorizer.api.label_service import LabelService
from categorizer.contract import ApiSettings, names
from categorizer.engine import Classifier
from categorizer.model_store import ModelStore
from categorizer.registry.catalogue import CatalogueStore
from categorizer.registry.store import ModelRegistry
from categorizer.wiring import Lazy


@dataclass(frozen=True)
class ApiServices:
    settings: ApiSettings
    models: ModelStore
    verifier: Lazy[TokenVerifier]
    feedback: Lazy[FeedbackTable]
    files: Lazy[FileService]
    console: Lazy[ConsoleService]
    review: Lazy[ReviewTable | None]  # None: this stack has no review queue (nothing is queued)
    labels: Lazy[LabelService]


def build_services(settings: ApiSettings) -> ApiServices:
    """The one place the API function's clients are made (each on first use)."""
    user_files = Lazy(UserFiles)
    files = Lazy(lambda: FileService(settings, user_files.get()))
    source = settings.model

    def registry() -> ModelRegistry:
        return ModelRegistry(ModelBucket(str(source.model_bucket)), ChampionParameter(str(source.champion_parameter)),
                             decisions_prefix=settings.decisions_prefix)

    scan = Lazy(lambda: FeedbackScan(settings.feedback_table))
    console = Lazy(lambda: ConsoleService(
        settings=settings, user_files=user_files.get(), files=files.get(),
        registry=registry if source.model_bucket and source.champion_parameter else None,
        read_feedback=lambda limit: scan.get().records(limit)))
    return ApiServices(
        settings=settings,
        models=ModelStore(source),
        verifier=Lazy(lambda: build_token_verifier(settings.identity)),
        feedback=Lazy(lambda: FeedbackTable.create(settings.feedback_table, region=settings.region)),
        files=files,
        console=console,
        review=Lazy(lambda: ReviewTable.create(settings.review.review_table, region=settings.region)
                    if settings.review.review_table else None),
        labels=Lazy(lambda: LabelService(
            store=CatalogueStore(ModelBucket(str(source.model_bucket))) if source.model_bucket else None,
            read_feedback=lambda: scan.get().all_records())),
    )


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


def verified_principal(services: ApiServices, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None:
        raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)", token_present=False)
    return services.verifier.get().verify(credentials.credentials)


async def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    return verified_principal(services_of(request), credentials)


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


@dataclass(frozen=True)
class ClassifyContext:
    """What POST /v1/classify needs, from one dependency: the API's hottest route solves three dependency nodes
    (the route, this, the bearer scheme) rather than one per need (bench/results/*-api-handler.md)."""

    caller: Principal
    classifier: Classifier
    review: ReviewTable | None
    settings: ApiSettings


def classify_context_for(services: ApiServices, credentials: HTTPAuthorizationCredentials | None) -> ClassifyContext:
    """The same checks, in the same order, as ClassifyCaller then ClassifierDep then ReviewQueueDep (also what
    the direct classify path, api/direct.py, runs)."""
    identity = services.settings.identity
    caller = require_permission(verified_principal(services, credentials), scope=identity.classify_scope,
                                group=identity.classify_group)
    return ClassifyContext(caller=caller, classifier=services.models.get(), review=services.review.get(),
                           settings=services.settings)


async def classify_context(request: Request, credentials: BearerCredentials) -> ClassifyContext:
    return classify_context_for(services_of(request), credentials)


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
