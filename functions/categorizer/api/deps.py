"""FastAPI dependencies, as `Annotated` aliases the routes use.

They are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, which costs more
than the work they do (a cached lookup); in Lambda one request runs at a time anyway.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from categorizer.adapters.feedback_table import FeedbackStoreError, FeedbackTable
from categorizer.api.auth import AuthenticationError, Principal, require_permission, token_verifier_for
from categorizer.engine import Classifier
from categorizer.model_store import get_classifier
from categorizer.settings import Settings, get_settings


async def app_settings() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def serving_classifier() -> Classifier:
    """The model serving now (loaded once per container; the model store swaps in a new champion)."""
    return get_classifier()


ClassifierDep = Annotated[Classifier, Depends(serving_classifier)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A Cognito access token (client credentials, or user/password sign-in) or ID token",
)


async def current_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    settings: SettingsDep,
) -> Principal:
    if credentials is None:
        raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)", token_present=False)
    return token_verifier_for(settings).verify(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def classify_caller(principal: CurrentPrincipal, settings: SettingsDep) -> Principal:
    return require_permission(principal, scope=settings.classify_scope, group=settings.classify_group)


async def feedback_caller(principal: CurrentPrincipal, settings: SettingsDep) -> Principal:
    return require_permission(principal, scope=settings.feedback_scope, group=settings.feedback_group)


ClassifyCaller = Annotated[Principal, Depends(classify_caller)]
FeedbackCaller = Annotated[Principal, Depends(feedback_caller)]


@lru_cache(maxsize=2)
def feedback_table_for(table_name: str, region: str) -> FeedbackTable:
    return FeedbackTable.create(table_name, region=region)


async def feedback_repository(settings: SettingsDep) -> FeedbackTable:
    if not settings.feedback_table:
        raise FeedbackStoreError("feedback is not configured on this deployment (FEEDBACK_TABLE)")
    return feedback_table_for(settings.feedback_table, settings.region)


FeedbackRepository = Annotated[FeedbackTable, Depends(feedback_repository)]
