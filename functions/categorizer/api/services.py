"""What the API function builds once per container (`ApiServices`), and what a classify request needs from it.

`build_services(settings)` is the one place the API's clients are made, each on first use (a cold start pays
only for what its first request needs). The FastAPI dependencies (api/deps.py) hand these out to routes; the
direct classify path (api/direct.py) reads them without FastAPI, which is why nothing here imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3

from categorizer.adapters.champion_parameter import ChampionParameter
from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.adapters.feedback_table import RETRY_CONFIG, FeedbackTable
from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.adapters.review_table import ReviewTable
from categorizer.adapters.user_files import UserFiles
from categorizer.api.auth import AuthenticationError, Principal, TokenVerifier, build_token_verifier, require_permission
from categorizer.api.console_service import ConsoleService
from categorizer.api.file_service import FileService
from categorizer.api.label_service import LabelService
from categorizer.contract import ApiSettings
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
    """The one place the API function's clients are made, each on first use and from one boto3 session: each
    session parses botocore's data files again (~45 ms of a cold start, bench/results/*-api-cold-start.md)."""
    aws = Lazy(boto3.Session)
    s3, ssm = Lazy(lambda: aws.get().client("s3")), Lazy(lambda: aws.get().client("ssm"))
    user_files = Lazy(lambda: UserFiles(s3.get()))
    files = Lazy(lambda: FileService(settings, user_files.get()))
    source = settings.model

    def registry() -> ModelRegistry:
        return ModelRegistry(ModelBucket(str(source.model_bucket), s3.get()),
                             ChampionParameter(str(source.champion_parameter), ssm.get()),
                             decisions_prefix=settings.decisions_prefix)

    scan = Lazy(lambda: FeedbackScan(settings.feedback_table, aws.get().client("dynamodb", config=RETRY_CONFIG)))
    console = Lazy(lambda: ConsoleService(
        settings=settings, user_files=user_files.get(), files=files.get(),
        registry=registry if source.model_bucket and source.champion_parameter else None,
        read_feedback=lambda limit: scan.get().records(limit)))
    return ApiServices(
        settings=settings,
        models=ModelStore(source, session=aws, bucket=lambda: ModelBucket(str(source.model_bucket), s3.get())),
        verifier=Lazy(lambda: build_token_verifier(settings.identity)),
        feedback=Lazy(lambda: FeedbackTable.create(settings.feedback_table, region=settings.region, session=aws.get())),
        files=files,
        console=console,
        review=Lazy(lambda: ReviewTable.create(settings.review.review_table, region=settings.region,
                                               session=aws.get()) if settings.review.review_table else None),
        labels=Lazy(lambda: LabelService(
            store=CatalogueStore(ModelBucket(str(source.model_bucket), s3.get())) if source.model_bucket else None,
            read_feedback=lambda: scan.get().all_records())),
    )


def verified_principal(services: ApiServices, bearer_token: str | None) -> Principal:
    """The caller of a request whose `Authorization: Bearer <token>` gave `bearer_token` (None: no such header)."""
    if bearer_token is None:
        raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)", token_present=False)
    return services.verifier.get().verify(bearer_token)


@dataclass(frozen=True)
class ClassifyContext:
    """What POST /v1/classify needs, from one dependency: the API's hottest route solves three dependency nodes
    (the route, this, the bearer scheme) rather than one per need (bench/results/*-api-handler.md)."""

    caller: Principal
    classifier: Classifier
    # Made when a prediction is first queued: most requests queue nothing, and a cold start need not make the
    # table's client for nothing.
    review: Lazy[ReviewTable | None]
    settings: ApiSettings


def classify_context_for(services: ApiServices, bearer_token: str | None) -> ClassifyContext:
    """The same checks, in the same order, as api/deps.py's ClassifyCaller then ClassifierDep then ReviewQueueDep
    (what the classify route's one dependency and the direct classify path, api/direct.py, run)."""
    identity = services.settings.identity
    caller = require_permission(verified_principal(services, bearer_token), scope=identity.classify_scope,
                                group=identity.classify_group)
    return ClassifyContext(caller=caller, classifier=services.models.get(), review=services.review,
                           settings=services.settings)
