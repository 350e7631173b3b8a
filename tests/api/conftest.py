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
import io
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from moto.server import ThreadedMotoServer
from moto.utilities.utils import load_resource

from categorizer import model_store
from categorizer.adapters.feedback_table import TABLE_SCHEMA
from categorizer.api import auth, deps
from categorizer.observability import logger
from categorizer.settings import Settings, get_settings

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"
REGION = "us-east-1"
PASSWORD = "Corr3ct-Horse-Battery!"
CLASSIFY_SCOPE = "categorizer/classify"
FEEDBACK_SCOPE = "categorizer/feedback"
# username -> Cognito groups
USERS = {"alice": ("classify", "feedback"), "bob": ("classify",), "carol": ()}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
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
    pool_id = idp.create_user_pool(
        PoolName="categorizer-test",
        Policies={"PasswordPolicy": {"MinimumLength": 12, "RequireUppercase": True, "RequireLowercase": True,
                                     "RequireNumbers": True, "RequireSymbols": True}},
    )["UserPool"]["Id"]
    idp.create_resource_server(UserPoolId=pool_id, Identifier="categorizer", Name="Categorizer API", Scopes=[
        {"ScopeName": "classify", "ScopeDescription": "classify texts, read the model"},
        {"ScopeName": "feedback", "ScopeDescription": "send corrections"},
    ])
    machine = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="machines", GenerateSecret=True,
        AllowedOAuthFlows=["client_credentials"], AllowedOAuthScopes=[CLASSIFY_SCOPE, FEEDBACK_SCOPE],
        AllowedOAuthFlowsUserPoolClient=True)["UserPoolClient"]["ClientId"]
    people = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="people",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])["UserPoolClient"]["ClientId"]
    rogue = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="not-for-this-api",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    for group in ("classify", "feedback"):
        idp.create_group(UserPoolId=pool_id, GroupName=group)
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
    dynamodb.create_table(TableName=name, **TABLE_SCHEMA)
    return name


@pytest.fixture(scope="session")
def serving_store(tiny_bundle: Path) -> model_store.ModelStore:
    """One model per test session, loaded like in Lambda (MODEL_DIR -> model store)."""
    settings = dataclasses.replace(Settings.from_env(), model_dir=str(tiny_bundle), onnx_threads=1)
    store = model_store.ModelStore(settings)
    store.get()
    return store


def _clear_caches() -> None:
    get_settings.cache_clear()
    auth.token_verifier_for.cache_clear()
    deps.feedback_table_for.cache_clear()


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, cognito: Cognito, tiny_bundle: Path,
            feedback_table_name: str, serving_store: model_store.ModelStore) -> Iterator[Cognito]:
    """The environment the CDK stack gives the function, pointed at moto (for this test only)."""
    env = {
        "STAGE": "test",
        "MODEL_DIR": str(tiny_bundle),
        "ONNX_THREADS": "1",
        "FEEDBACK_TABLE": feedback_table_name,
        "USER_POOL_ID": cognito.pool_id,
        "APP_CLIENT_IDS": cognito.app_client_ids,
        "JWKS_URL": cognito.jwks_url,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TOKEN_ISSUER", raising=False)
    _clear_caches()
    monkeypatch.setattr(model_store, "_store", serving_store)
    yield cognito
    _clear_caches()


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
              method: str | None = None, path: str | None = None, raw_body: bytes | None = None) -> dict[str, Any]:
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

    def _set_headers(self, event: dict[str, Any], headers: dict[str, str]) -> None:
        if self.kind == "rest_v1":
            event["headers"] = headers
            event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        else:
            event["headers"] = {k.lower(): v for k, v in headers.items()}


@pytest.fixture
def api_handler(api_env: Cognito):
    from categorizer.handlers import api as api_module

    return api_module.handler


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
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the Powertools Logger wrote during the test (its stream was bound before capsys)."""
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    logger.registered_handler.setStream(previous)
