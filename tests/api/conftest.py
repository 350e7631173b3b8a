"""API test fixtures: a moto server (Cognito + DynamoDB) on loopback, real tokens, the real Lambda handler.

moto's Cognito signs its tokens with one RS256 key it ships (kid "dummy") and serves the public half at
http://127.0.0.1:PORT/<pool>/.well-known/jwks.json, while the tokens carry the real AWS issuer. moto has
no /oauth2/token endpoint, so client-credentials (machine) tokens and the forged catalogue are signed here
with that same key, in the claim shape Cognito issues.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import jwt
import pytest
from moto.server import ThreadedMotoServer
from moto.utilities.utils import load_resource

from categorizer import model_store
from categorizer.api.app import create_app
from categorizer.api.lambda_adapter import LambdaHandler, lambda_handler_for
from categorizer.api.services import build_services
from categorizer.contract import ApiSettings, ModelSource, ReviewQueue
from categorizer.contract.names import FEEDBACK_TABLE, REVIEW_TABLE
from categorizer_cli.local.provision import create_user_pool
from tests.support.network import free_port
from tests.support.settings import api_settings

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"
REGION = "us-east-1"
PASSWORD = "Corr3ct-Horse-Battery!"
CLASSIFY_SCOPE = "categorizer/classify"
FEEDBACK_SCOPE = "categorizer/feedback"
# username -> Cognito groups
USERS = {"alice": ("classify", "feedback"), "bob": ("classify",), "carol": (), "dana": ("classify", "admins"),
         "rita": ("classify", "reviewers"), "rob": ("reviewers",), "ada": ("classify", "reviewers", "admins")}



@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@dataclass
class Cognito:
    endpoint: str
    pool_id: str
    machine_client_id: str
    people_client_id: str
    rogue_client_id: str  # same pool, not in APP_CLIENT_IDS
    other_pool_id: str
    other_client_id: str  # another pool; listed in APP_CLIENT_IDS so only the issuer check can refuse it
    signing_key: Any = field(repr=False)  # moto's private key (the one behind its JWKS)
    _tokens: dict = field(default_factory=dict, repr=False)

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint}/{self.pool_id}/.well-known/jwks.json"

    @property
    def app_client_ids(self) -> str:
        return ",".join((self.machine_client_id, self.people_client_id, self.other_client_id))

    def sign_in(self, username: str, *, client_id: str | None = None) -> dict[str, str]:
        """Real tokens from moto: the USER_PASSWORD_AUTH flow of the people app client."""
        client_id = client_id or self.people_client_id
        if (username, client_id) not in self._tokens:
            result = _client("cognito-idp", self.endpoint).initiate_auth(
                ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD})
            self._tokens[username, client_id] = result["AuthenticationResult"]
        return self._tokens[username, client_id]

    def access_token(self, username: str = "alice") -> str:
        return self.sign_in(username)["AccessToken"]

    def id_token(self, username: str = "alice") -> str:
        return self.sign_in(username)["IdToken"]

    def machine_claims(self, scopes: tuple[str, ...] = (CLASSIFY_SCOPE, FEEDBACK_SCOPE)) -> dict[str, Any]:
        """A client-credentials access token's claims, as Cognito issues them."""
        now = int(time.time())
        return {"sub": self.machine_client_id, "token_use": "access", "scope": " ".join(scopes),
                "auth_time": now, "iss": self.issuer, "exp": now + 3600, "iat": now, "version": 2,
                "jti": str(uuid.uuid4()), "client_id": self.machine_client_id}

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None, key: Any = None) -> str:
        return jwt.encode(claims, key or self.signing_key, algorithm="RS256",
                          headers={"kid": "dummy", **(headers or {})})

    def machine_token(self, scopes: tuple[str, ...] = (CLASSIFY_SCOPE, FEEDBACK_SCOPE)) -> str:
        return self.sign(self.machine_claims(scopes))


@pytest.fixture(scope="session")
def cognito(moto_endpoint: str) -> Cognito:
    idp = _client("cognito-idp", moto_endpoint)
    # The deployed stack's pool shape (password policy, scopes, groups, clients), as the local stack makes it.
    pool_id, machine, people = create_user_pool(idp, pool_name="categorizer-test", machine_client="machines",
                                                user_client="people")
    rogue = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="not-for-this-api",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    for username, groups in USERS.items():
        idp.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=PASSWORD, Permanent=True)
        for group in groups:
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)

    other_pool = idp.create_user_pool(PoolName="someone-else")["UserPool"]["Id"]
    other_client = idp.create_user_pool_client(
        UserPoolId=other_pool, ClientName="theirs",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    idp.create_group(UserPoolId=other_pool, GroupName="classify")
    idp.admin_create_user(UserPoolId=other_pool, Username="alice", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=other_pool, Username="alice", Password=PASSWORD, Permanent=True)
    idp.admin_add_user_to_group(UserPoolId=other_pool, Username="alice", GroupName="classify")

    signing_key = jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json")).key
    return Cognito(endpoint=moto_endpoint, pool_id=pool_id, machine_client_id=machine, people_client_id=people,
                   rogue_client_id=rogue, other_pool_id=other_pool, other_client_id=other_client,
                   signing_key=signing_key)


@pytest.fixture(scope="session")
def feedback_table_name(moto_endpoint: str) -> str:
    name = "categorizer-feedback-test"
    dynamodb = _client("dynamodb", moto_endpoint)
    dynamodb.create_table(**FEEDBACK_TABLE.create_table_kwargs(name))
    return name


@pytest.fixture(scope="session")
def review_table_name(moto_endpoint: str) -> str:
    name = "categorizer-review-test"
    _client("dynamodb", moto_endpoint).create_table(**REVIEW_TABLE.create_table_kwargs(name))
    return name


@pytest.fixture(scope="session")
def serving_store(tiny_bundle: Path) -> model_store.ModelStore:
    """One model per test session, loaded like in Lambda (MODEL_DIR -> model store)."""
    store = model_store.ModelStore(ModelSource(model_dir=str(tiny_bundle), onnx_threads=1))
    store.get()
    return store


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, cognito: Cognito) -> Cognito:
    """boto3 pointed at moto (for this test only); the function's own values are its settings below."""
    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    return cognito


@pytest.fixture(scope="session")
def file_buckets(moto_endpoint: str) -> tuple[str, str]:
    """The console's ingest and results buckets (the names tests.support.settings.api_settings uses)."""
    names = ("categorizer-ingest-test", "categorizer-results-test")
    for bucket in names:
        _client("s3", moto_endpoint).create_bucket(Bucket=bucket)
    return names


@pytest.fixture
def model_bucket(moto_endpoint: str) -> str:
    """A model bucket of this test's own: the label catalogue lives there (the local bundle serves)."""
    name = f"categorizer-models-test-{uuid.uuid4().hex[:12]}"
    _client("s3", moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def api_config(api_env: Cognito, tiny_bundle: Path, feedback_table_name: str, file_buckets,
               model_bucket: str) -> ApiSettings:
    """What the CDK stack gives the function, with this test session's pool, table, buckets and model."""
    return api_settings(model_dir=tiny_bundle, user_pool_id=api_env.pool_id,
                        app_client_ids=tuple(api_env.app_client_ids.split(",")), jwks_url=api_env.jwks_url,
                        feedback_table=feedback_table_name, model_bucket=model_bucket)


@pytest.fixture
def build_handler(serving_store: model_store.ModelStore) -> Callable[[ApiSettings], LambdaHandler]:
    """The Lambda handler around an app built from `settings` (the session's model store already loaded)."""

    def build(settings: ApiSettings) -> LambdaHandler:
        return lambda_handler_for(create_app(settings, services=services_for(settings, serving_store)))

    return build


def services_for(settings: ApiSettings, serving_store: model_store.ModelStore):
    """What build_services makes for these settings, with the session's already loaded model store."""
    return dataclasses.replace(build_services(settings), models=serving_store)



@cache
def _template(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Calls the real Lambda handler with API Gateway events from events/api (REST v1 or HTTP API v2)."""

    TEMPLATES = ("health", "classify", "feedback")  # other routes reuse the health (GET) event

    def __init__(self, handler, context, kind: str) -> None:
        self.handler = handler
        self.context = context
        self.kind = kind  # "rest_v1" or "http_v2"
        self.last_event: dict[str, Any] = {}

    def event(self, route: str, *, token: str | None = None, body: Any = None, headers: dict[str, str] | None = None,
              method: str | None = None, path: str | None = None, raw_body: bytes | None = None,
              query: dict[str, str] | None = None) -> dict[str, Any]:
        template = route if route in self.TEMPLATES else "health"
        event = copy.deepcopy(_template(f"{self.kind}_{template}.json"))
        if route != template or path is not None or method is not None:
            default_method = "GET" if template == "health" else "POST"
            self._set_path(event, path or f"/v1/{route}", method or default_method)
        all_headers = {k: v for k, v in event["headers"].items() if k.lower() != "authorization"}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if raw_body is not None:
            event["body"] = base64.b64encode(raw_body).decode()
            event["isBase64Encoded"] = True
            all_headers["Content-Length"] = str(len(raw_body))
        elif body is not None:
            text = body if isinstance(body, str) else json.dumps(body)
            event["body"] = text
            all_headers["Content-Length"] = str(len(text.encode()))
        all_headers = {k: v for k, v in all_headers.items()
                       if k.lower() not in {h.lower() for h in (headers or {})}}
        all_headers.update(headers or {})
        self._set_headers(event, all_headers)
        if query:
            self._set_query(event, query)
        return event

    def call(self, route: str, **kwargs: Any) -> ApiResponse:
        event = self.event(route, **kwargs)
        self.last_event = event
        return self.invoke(event)

    def invoke(self, event: dict[str, Any]) -> ApiResponse:
        result = self.handler(event, self.context)
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name.lower()] = ", ".join(values)
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        return ApiResponse(status=result["statusCode"], headers=headers, body=raw)

    def _set_path(self, event: dict[str, Any], path: str, method: str) -> None:
        if self.kind == "rest_v1":
            event.update(path=path, resource=path, httpMethod=method)
            event["requestContext"].update(path=f"/prod{path}", resourcePath=path, httpMethod=method)
        else:
            event.update(rawPath=f"/prod{path}", routeKey=f"{method} {path}")
            event["requestContext"]["http"].update(path=f"/prod{path}", method=method)
            event["requestContext"]["routeKey"] = f"{method} {path}"
        if method == "GET":
            event["body"] = None
            event["isBase64Encoded"] = False

    def _set_query(self, event: dict[str, Any], query: dict[str, str]) -> None:
        if self.kind == "rest_v1":
            event["queryStringParameters"] = dict(query)
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        else:
            event["rawQueryString"] = urlencode(query)
            event["queryStringParameters"] = dict(query)

    def _set_headers(self, event: dict[str, Any], headers: dict[str, str]) -> None:
        if self.kind == "rest_v1":
            event["headers"] = headers
            event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        else:
            event["headers"] = {k.lower(): v for k, v in headers.items()}


@pytest.fixture
def api_services(api_config: ApiSettings, serving_store: model_store.ModelStore):
    """This test's API services (its clients), reachable by the test to look inside or to inject faults."""
    return services_for(api_config, serving_store)


@pytest.fixture
def api_handler(api_config: ApiSettings, api_services) -> LambdaHandler:
    return lambda_handler_for(create_app(api_config, services=api_services))


@pytest.fixture(params=["rest_v1", "http_v2"])
def api(request: pytest.FixtureRequest, api_handler, lambda_context) -> Api:
    """The handler behind each kind of API Gateway: every test using it runs for REST v1 and HTTP API v2."""
    return Api(api_handler, lambda_context, request.param)


@pytest.fixture
def rest_api(api_handler, lambda_context) -> Api:
    return Api(api_handler, lambda_context, "rest_v1")


def assert_error(response: ApiResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape, with the expected status (and code)."""
    assert response.status == status, (response.status, response.body[:500])
    body = response.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture
def review_settings(api_config, review_table_name: str, moto_endpoint: str) -> ApiSettings:
    """The API's settings with this test's own review queue (a fresh table name per test keeps tests apart)."""
    name = f"{review_table_name}-{uuid.uuid4().hex[:8]}"
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    dynamodb.create_table(**REVIEW_TABLE.create_table_kwargs(name))
    return dataclasses.replace(api_config, review=ReviewQueue(review_table=name, review_lease_seconds=60))


@pytest.fixture
def review_api(review_settings: ApiSettings, serving_store, lambda_context) -> Api:
    """The API with this test's own review queue."""
    handler = lambda_handler_for(create_app(review_settings, services=services_for(review_settings, serving_store)))
    return Api(handler, lambda_context, "rest_v1")
